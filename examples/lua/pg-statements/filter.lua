-- PostgreSQL statements by type, with latency, and errors by SQLSTATE.
--
-- Statements come from the runtime's statement tracker (envoy_on_statement):
-- it pairs every answer with its request through pipelines, suspended portals
-- (row-limited Executes, cursors), multi-statement queries and errors, so the
-- counts here equal the server's own (pg_stat_statements calls) without the
-- script keeping any protocol state. `stmt.kind` is the statement type
-- (select, insert, update, delete, begin, commit, ddl, ...); `stmt.latency_us`
-- runs from the request (or from when the server could start it) to its end.
--
-- Errors are ErrorResponse messages, login failures included: the script asks
-- for that one message type, so no other message ever enters Lua.

local errors_total = wirelab.counter("errors")

-- metric objects by statement type / SQLSTATE, made on first use (a table
-- lookup is cheaper than wirelab.counter(), which builds the full name)
local function by(kind, name, key)
  return setmetatable({}, { __index = function(t, v)
    local m = wirelab[kind](name, { [key] = v })
    t[v] = m
    return m
  end })
end
local statements = by("counter", "statements", "type")
local latency = by("histogram", "statement_latency_us", "type")
local errors_by_code = by("counter", "errors_by_code", "sqlstate")

function envoy_on_statement(conn, stmt)
  if stmt.failed then return end  -- counted below, by its ErrorResponse
  local kind = stmt.kind
  statements[kind]:inc()
  local us = stmt.latency_us
  if us then latency[kind]:observe(us) end
end

envoy_pg_message_types = { server = "E" }

function envoy_on_pg_message(conn, msg)
  if msg.name ~= "ErrorResponse" then return end  -- startup, SSL negotiation
  errors_total:inc()
  errors_by_code[msg.sqlstate]:inc()
end
