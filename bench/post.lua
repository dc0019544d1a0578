-- wrk script for the benchmark: POSTs the JSON body in $BODY_FILE (with `Authorization: Bearer $TOKEN` when
-- set) and, when done, prints one machine-readable line with throughput, latency percentiles, errors and
-- the sums of the gateway's per-response work headers over all threads.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("TOKEN") or ""
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

sql, cerbos, counted, non200 = 0, 0, 0, 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
  local s = headers["x-akson-sql-statements"]
  if s then
    sql = sql + tonumber(s)
    cerbos = cerbos + tonumber(headers["x-akson-cerbos-calls"] or "0")
    counted = counted + 1
  end
end

function done(summary, latency, requests)
  local totals = { sql = 0, cerbos = 0, counted = 0, non200 = 0 }
  for _, thread in ipairs(threads) do
    for key, _ in pairs(totals) do
      totals[key] = totals[key] + thread:get(key)
    end
  end
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d errors=%d non200=%d p50_ms=%.3f p99_ms=%.3f rps=%.3f sql=%d cerbos=%d counted=%d\n",
    summary.requests, e.connect + e.read + e.write + e.timeout, totals.non200,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6),
    totals.sql, totals.cerbos, totals.counted))
end
