-- wrk script: POST a small, non-streamed OpenAI chat request.
--
--   wrk -t1 -c32 -d15s --latency -s bench/post.lua http://127.0.0.1:8080/v1/<key>/chat/completions
--
-- Optional script argument: stop after that many responses (counted per wrk thread, so use
-- -t1), with -d as an upper bound:
--
--   wrk -t1 -c32 -d600s -s bench/post.lua <url> -- 100000
--
-- wrk's main thread sleeps out the whole -d even when every worker thread has stopped, so the
-- script also prints a marker line; bench/wrk_runner.py interrupts wrk (SIGINT) when it sees it,
-- and wrk then prints its normal report.

wrk.method = "POST"
-- HELIOGRAPH_BENCH_BODY replaces the body (the prompt benchmark sends a body naming a prompt).
wrk.body = os.getenv("HELIOGRAPH_BENCH_BODY")
   or '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}]}'
wrk.headers["Content-Type"] = "application/json"

local limit = nil
local count = 0

local function count_response(status, headers, body)
   count = count + 1
   if count == limit then
      io.write("HELIOGRAPH-BENCH-LIMIT-REACHED ", count, "\n")
      io.stdout:flush()
      wrk.thread:stop()
   end
end

function init(args)
   if args[1] ~= nil then
      limit = tonumber(args[1])
      -- Only now define response(): when it is nil wrk skips parsing headers and bodies.
      response = count_response
   end
end

-- After the run: a machine-readable line with finer percentiles than --latency prints
-- (microseconds), parsed by bench/wrk_runner.py.
function done(summary, latency, requests)
   local parts = {}
   for _, q in ipairs({50, 75, 90, 95, 99, 99.9, 99.99}) do
      parts[#parts + 1] = string.format('"%g":%.0f', q, latency:percentile(q))
   end
   io.write(string.format(
      'HELIOGRAPH-BENCH-LATENCY-US {%s,"max":%.0f,"mean":%.1f,"stdev":%.1f}\n',
      table.concat(parts, ","), latency.max, latency.mean, latency.stdev))
end
