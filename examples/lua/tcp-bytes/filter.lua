-- Raw TCP byte counter: connections, open connections, bytes per direction,
-- and a histogram of bytes per connection. Only data:length() is used, so no
-- payload bytes are ever copied into Lua.

local connections = wirelab.counter("connections")
local open = wirelab.gauge("open_connections")
local rx = wirelab.counter("bytes", { direction = "client" })
local tx = wirelab.counter("bytes", { direction = "server" })
local per_conn = wirelab.histogram("connection_bytes")

function envoy_on_new_connection(conn)
  connections:inc()
  open:inc()
  conn.state.bytes = 0
end

function envoy_on_downstream_data(conn, data, end_of_stream)
  local n = data:length()
  rx:inc(n)
  conn.state.bytes = conn.state.bytes + n
end

function envoy_on_upstream_data(conn, data, end_of_stream)
  local n = data:length()
  tx:inc(n)
  conn.state.bytes = conn.state.bytes + n
end

function envoy_on_close(conn)
  open:dec()
  per_conn:observe(conn.state.bytes)
end
