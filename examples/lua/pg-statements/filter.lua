-- PostgreSQL statements by type, with latency.
--
-- A request starts with a Query ('Q') or, in the extended protocol, with the
-- first Parse/Bind/Execute after a Sync; it ends with ReadyForQuery ('Z').
-- Every CommandComplete ('C') in between is one statement: counted by its
-- type (the tag's verb) and timed from the start of its request.

local errors_total = wirelab.counter("errors")

local function statements(verb)
  return wirelab.counter("statements", { type = verb })
end

local function latency(verb)
  return wirelab.histogram("statement_latency_us", { type = verb })
end

function envoy_on_new_connection(conn)
  conn.state.starts = {}   -- FIFO of request start times (pipelining)
  conn.state.open = false  -- an extended-protocol request is being sent
end

function envoy_on_pg_message(conn, msg)
  local st = conn.state
  if msg.direction == "client" then
    if msg.type == "Q" then
      st.starts[#st.starts + 1] = wirelab.now_us()
    elseif msg.type == "P" or msg.type == "B" or msg.type == "E" then
      if not st.open then
        st.open = true
        st.starts[#st.starts + 1] = wirelab.now_us()
      end
    elseif msg.type == "S" then
      st.open = false
    end
    return
  end
  if msg.type == "C" then
    statements(msg.verb):inc()
    local started = st.starts[1]
    if started then latency(msg.verb):observe(wirelab.now_us() - started) end
  elseif msg.type == "E" then
    errors_total:inc()
    wirelab.counter("errors_by_code", { sqlstate = msg.sqlstate }):inc()
  elseif msg.type == "Z" then
    table.remove(st.starts, 1)
  end
end
