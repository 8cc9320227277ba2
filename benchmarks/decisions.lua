-- wrk script of bench_decisions.py: POSTs JSON with a Bearer key, rotating recipient ids.
-- BENCH_BODY_FILE: a fixed body instead (mlflow scoring); BENCH_KEY, BENCH_EXPERIMENT,
-- BENCH_RECIPIENTS (how many ids r0000000.. to rotate through) configure decisions.
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
