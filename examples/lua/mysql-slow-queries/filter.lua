-- MySQL slow-query log. Every command that carries SQL is timed from the
-- command to the end of its response; slow ones are logged with their SQL and
-- counted by verb. Latency of all statements goes to a histogram.

local slow_us = (wirelab.settings.slow_ms or 100) * 1000
local max_sql = wirelab.settings.max_sql_chars or 200
local query_errors = wirelab.counter("query_errors")

function envoy_on_new_connection(conn)
  conn.state.pending = {}  -- cmd_no -> { t = start, sql = text }
end

function envoy_on_mysql_event(conn, ev)
  if ev.kind == "login" then conn.state.user = ev.user end
end

function envoy_on_mysql_command(conn, cmd)
  if cmd.sql then
    conn.state.pending[cmd.cmd_no] = { t = wirelab.now_us(), sql = cmd.sql }
  end
end

function envoy_on_mysql_result(conn, res)
  local p = conn.state.pending[res.cmd_no]
  if not p then return end
  conn.state.pending[res.cmd_no] = nil
  local took = wirelab.now_us() - p.t
  wirelab.histogram("query_latency_us", { verb = res.verb }):observe(took)
  if res.outcome == "error" then query_errors:inc() end
  if took >= slow_us then
    wirelab.counter("slow_queries", { verb = res.verb }):inc()
    conn:logWarn(string.format("slow query: %d ms user=%s rows=%d sql=%s",
      took // 1000, conn.state.user or "?", res.rows, p.sql:sub(1, max_sql)))
  end
end
