-- Connections per user: a counter of connections opened and a gauge of the
-- connections open right now, tagged with the user and database the client
-- named in its StartupMessage. Connections that switch to TLS before the
-- StartupMessage are counted with user "tls".

function envoy_on_pg_message(conn, msg)
  if msg.kind == "startup" then
    local tags = { user = msg.user, database = msg.database }
    conn.state.tags = tags
    wirelab.counter("connections", tags):inc()
    wirelab.gauge("active_connections", tags):inc()
  elseif msg.kind == "encryption_response" and msg.answer == "S" then
    local tags = { user = "tls", database = "tls" }
    conn.state.tags = tags
    wirelab.counter("connections", tags):inc()
    wirelab.gauge("active_connections", tags):inc()
  end
end

function envoy_on_close(conn)
  local tags = conn.state.tags
  if tags then wirelab.gauge("active_connections", tags):dec() end
end
