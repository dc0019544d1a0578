-- wrk script for the benchmark: POSTs the JSON body in $BODY_FILE (with `Authorization: Bearer $TOKEN` when
-- set) and, when done, prints one machine-readable line with throughput, latency percentiles, errors and
-- the sums of the gateway's per-response work headers over all threads. With $WARMUP_SECONDS, throughput
-- counts only the responses after the first WARMUP_SECONDS of the run: a server answering 32 concurrent
-- requests in parallel completes its first ones only after seconds, and counting from the start would
-- charge that ramp to its throughput. A body holding the id 00000000-0000-4000-8000-00000000beef (a row id
-- for PostGraphile's create mutation, whose table draws no ids itself) gets a new random UUID per request.
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } akson_timespec;
int clock_gettime(int clock_id, akson_timespec *tp);
]])
local clock = ffi.new("akson_timespec")
local function now()
  ffi.C.clock_gettime(1, clock)
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) / 1e9
end
local warmup = tonumber(os.getenv("WARMUP_SECONDS") or "0")
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("TOKEN") or ""
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
local NEW_ID = "00000000%-0000%-4000%-8000%-00000000beef"
local fresh_ids = string.find(wrk.body, NEW_ID) ~= nil

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

local function uuid4()
  return (string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end

if fresh_ids then
  function request()
    return wrk.format(nil, nil, nil, (string.gsub(wrk.body, NEW_ID, uuid4())))
  end
end

sql, cerbos, counted, non200, steady = 0, 0, 0, 0, 0
local counting_from = now() + warmup
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if now() >= counting_from then
    steady = steady + 1
  end
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
  local totals = { sql = 0, cerbos = 0, counted = 0, non200 = 0, steady = 0 }
  for _, thread in ipairs(threads) do
    for key, _ in pairs(totals) do
      totals[key] = totals[key] + thread:get(key)
    end
  end
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d errors=%d non200=%d p50_ms=%.3f p99_ms=%.3f rps=%.3f sql=%d cerbos=%d counted=%d\n",
    summary.requests, e.connect + e.read + e.write + e.timeout, totals.non200,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    totals.steady / (summary.duration / 1e6 - warmup), totals.sql, totals.cerbos, totals.counted))
end
