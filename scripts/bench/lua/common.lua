-- Prepended to every scenario by load.py. setup() runs in wrk's main Lua state, once per
-- thread, before the thread starts: it numbers the threads (`id`, 1..threads). A scenario that
-- keeps per-connection state runs one connection per thread (-t N -c N).
local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

-- One machine-readable line for load.py (latencies in microseconds).
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH-RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, ' ..
      '"socket_errors": %d, "timeouts": %d, "p50_us": %.0f, "p99_us": %.0f}\n',
      summary.requests, summary.duration, e.status, e.connect + e.read + e.write,
      e.timeout, latency:percentile(50), latency:percentile(99)))
end
