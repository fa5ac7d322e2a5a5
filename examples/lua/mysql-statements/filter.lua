-- MySQL / MariaDB statements by verb, with latency, and errors by code.
--
-- Statements come from the runtime's statement tracker (envoy_on_statement):
-- one per statement the server ran, through multi-statement queries (each
-- statement of `select 1; insert ...` by its own verb), CALLs with several
-- result sets, prepared statements (COM_STMT_EXECUTE under the prepared
-- statement's verb, cursor fetches folded into one statement) and pipelines
-- of any depth. Counting only `stmt.counted` ones makes `statements` equal
-- the server's Com_* status: a statement that failed while running still
-- counts there (a duplicate key, a missing table), one the parser rejected
-- (error 1064) does not. `stmt.kind` is the verb (select, insert, update,
-- delete, replace, begin, commit, rollback, other, unknown).
--
-- Errors are the failed statements, by MySQL error number (parse errors
-- included); errors of other commands (a failed login, COM_STMT_PREPARE of bad
-- SQL) are not statements and are not counted here.

local errors_total = wirelab.counter("errors")

-- metric objects by verb / error code, made on first use (a table lookup is
-- cheaper than wirelab.counter(), which builds the full name)
local function by(kind, name, key)
  return setmetatable({}, { __index = function(t, v)
    local m = wirelab[kind](name, { [key] = v })
    t[v] = m
    return m
  end })
end
local statements = by("counter", "statements", "verb")
local latency = by("histogram", "statement_latency_us", "verb")
local errors_by_code = by("counter", "errors_by_code", "code")
local transactions = by("counter", "transactions", "outcome")

function envoy_on_statement(conn, stmt)
  if stmt.failed then
    errors_total:inc()
    errors_by_code[stmt.err_code or 0]:inc()
  end
  if not stmt.counted then return end  -- rejected by the parser: not in Com_*
  local verb = stmt.kind
  statements[verb]:inc()
  local us = stmt.latency_us
  if us then latency[verb]:observe(us) end
end

-- executed COMMIT / ROLLBACK statements (Com_commit / Com_rollback)
function envoy_on_transaction(conn, txn)
  transactions[txn.outcome]:inc()
end
