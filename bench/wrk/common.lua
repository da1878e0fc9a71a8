-- Shared by the wrk scripts of bench/run.sh: collects the threads and prints
-- one machine-readable line for run.sh to parse.
threads = {}

function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local e = summary.errors
   local wrong = 0
   for _, t in ipairs(threads) do
      wrong = wrong + (t:get("wrong") or 0)
   end
   io.write(string.format(
      "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d status=%d connect=%d read=%d write=%d timeout=%d wrong=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.status, e.connect, e.read, e.write, e.timeout, wrong))
end
