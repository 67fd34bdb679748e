-- wrk script: POSTs one CSV request body (the file named after `--`) to /invocations and prints one RESULT line.
local body
local headers = { ["Content-Type"] = "text/csv", ["Accept"] = "application/json" }

init = function(args)
  local file = assert(io.open(args[1], "rb"))
  body = file:read("*a")
  file:close()
end

request = function()
  return wrk.format("POST", "/invocations", headers, body)
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
