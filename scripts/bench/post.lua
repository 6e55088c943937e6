-- wrk script for scripts/bench/ladder.py: POST one MCP tools/call body with a bearer token.
--   BENCH_BODY    file with the request body (sent as is)
--   BENCH_TOKENS  file with one token per line; with several, requests cycle through them
--                 (pre-formatted once, so rotation costs wrk no Lua work per request)
-- Prints one line "BENCH_JSON {...}" with the summary the ladder reads.

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local body = slurp(os.getenv("BENCH_BODY"))
local tokens = {}
for line in slurp(os.getenv("BENCH_TOKENS")):gmatch("[^\n]+") do
  tokens[#tokens + 1] = line
end

local function headers(token)
  return {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["Authorization"] = "Bearer " .. token,
    ["Host"] = "bench.local",
  }
end

wrk.method = "POST"
wrk.body = body
wrk.headers = headers(tokens[1])

local formatted = nil
local next_index = 0

function init(args)
  if #tokens > 1 then
    formatted = {}
    for i, t in ipairs(tokens) do
      formatted[i] = wrk.format("POST", nil, headers(t), body)
    end
  end
end

if #tokens > 1 then
  function request()
    next_index = next_index % #formatted + 1
    return formatted[next_index]
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
