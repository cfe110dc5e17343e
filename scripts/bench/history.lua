-- wrk: pages of 1,000 readings of one station's day of one-second
-- readings, each from a random second of the day.
math.randomseed(os.time())
local station = os.getenv("BENCH_STATION") or "BENCH1"

request = function()
  local s = math.random(0, 86400 - 1000)
  local path = string.format(
    "/api/v1/stations/%s/readings?from=2025-01-13T%02d:%02d:%02dZ&to=2025-01-14T00:00:00Z&limit=1000",
    station, math.floor(s / 3600), math.floor(s / 60) % 60, s % 60)
  return wrk.format("GET", path)
end

-- A page that is not 200 would make the numbers meaningless.
response = function(status, headers, body)
  if status ~= 200 then
    error("history page answered " .. status)
  end
end
