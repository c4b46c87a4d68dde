-- wrk done() hook: prints one machine-readable line with exact latency
-- percentiles (microseconds) and the request/byte/error counters.
-- rounds.py parses the line that starts with "WRK_RESULT ".
local function int(x) return math.floor(tonumber(x) or 0) end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"bytes":%d,"duration_us":%d,' ..
    '"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_max_us":%d,"lat_mean_us":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    int(summary.requests), int(summary.bytes), int(summary.duration),
    int(latency:percentile(50)), int(latency:percentile(90)), int(latency:percentile(99)),
    int(latency.max), int(latency.mean),
    int(e.connect), int(e.read), int(e.write), int(e.status), int(e.timeout)))
end
