-- PostgreSQL statements by type, with latency.
--
-- A request starts with a Query ('Q') or, in the extended protocol, with the
-- first Parse/Bind/Execute after a Sync; it ends with ReadyForQuery ('Z').
-- Every CommandComplete ('C') in between is one statement: counted by its
-- type (the tag's verb) and timed from the start of its request.
--
-- This runs for every message, so it keeps the per-message work small: it
-- asks only for the message types it uses, reads one field of `msg` (its
-- name) to tell them apart, and the metric objects of each
-- statement type are made once and kept in a table (wirelab.counter() builds
-- the metric's full name on every call; a table lookup does not).

local now = wirelab.now_us
local errors_total = wirelab.counter("errors")

-- metric objects by statement type / SQLSTATE, made on first use
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

function envoy_on_new_connection(conn)
  local st = conn.state
  st.starts = {}   -- FIFO of request start times (pipelining): starts[head..tail]
  st.head, st.tail = 1, 0
  st.open = false  -- an extended-protocol request is being sent
end

-- Only these message types reach envoy_on_pg_message (RowDescription,
-- DataRow and the rest never cost a call into Lua).
envoy_pg_message_types = { client = "QPBES", server = "CEZ" }

function envoy_on_pg_message(conn, msg)
  local name = msg.name
  if name == nil then return end  -- startup, SSL negotiation: not statements
  local st = conn.state
  if name == "CommandComplete" then
    local verb = msg.verb
    statements[verb]:inc()
    local started = st.starts[st.head]
    if started then latency[verb]:observe(now() - started) end
  elseif name == "ReadyForQuery" then
    local head = st.head
    if head <= st.tail then
      st.starts[head] = nil
      st.head = head + 1
    end
  elseif name == "Query" then
    st.tail = st.tail + 1
    st.starts[st.tail] = now()
  elseif name == "Sync" then
    st.open = false
  elseif name == "ErrorResponse" then
    errors_total:inc()
    errors_by_code[msg.sqlstate]:inc()
  elseif not st.open then  -- Parse, Bind or Execute: the first one starts a request
    st.open = true
    st.tail = st.tail + 1
    st.starts[st.tail] = now()
  end
end
