-- wrk script of bench_decisions.py: POSTs JSON with a Bearer key, rotating recipient ids.
-- BENCH_BODY_FILE: a fixed body instead (mlflow scoring); BENCH_KEY, BENCH_EXPERIMENT,
-- BENCH_RECIPIENTS (how many ids r0000000.. to rotate through) configure decisions.
-- BENCH_RATE (requests/s of all threads together, BENCH_THREADS threads): an open schedule,
-- each thread sending its i-th request at start + i / (BENCH_RATE / BENCH_THREADS); without
-- it, every connection sends its next request as soon as the last one is answered.
local key = os.getenv("BENCH_KEY")
local experiment = os.getenv("BENCH_EXPERIMENT") or "bench-4arm"
local recipients = tonumber(os.getenv("BENCH_RECIPIENTS") or "10000")
local body_file = os.getenv("BENCH_BODY_FILE")
local fixed = nil
if body_file then
  local f = assert(io.open(body_file, "r"))
  fixed = f:read("*a")
  f:close()
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if key then
  wrk.headers["Authorization"] = "Bearer " .. key
end

local rate = tonumber(os.getenv("BENCH_RATE") or "0") / tonumber(os.getenv("BENCH_THREADS") or "1")

-- A monotonic clock in milliseconds (wrk's Lua is LuaJIT: its FFI reaches clock_gettime).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local timespec = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) * 1e3 + tonumber(timespec.tv_nsec) / 1e6
end

local start, scheduled = nil, 0
function delay()
  if rate <= 0 then
    return 0
  end
  local now = now_ms()
  start = start or now
  local due = start + scheduled * 1e3 / rate
  scheduled = scheduled + 1
  -- wrk's timers count whole milliseconds: round, so the mean rate stays exact.
  return math.max(0, math.floor(due - now + 0.5))
end

local counter = 0

function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end

local i = 0
function request()
  if fixed then
    return wrk.format(nil, nil, nil, fixed)
  end
  i = i + 1
  local body = string.format(
    '{"recipient_id":"r%07d","campaign_id":"bench","experiment_id":"%s",' ..
    '"variants":["a","b","c","d"]}',
    (i + (offset or 0)) % recipients, experiment)
  return wrk.format(nil, nil, nil, body)
end
