-- wrk script: each request picks a random "<path> <bearer token>" line from $TARGETS,
-- so load spreads over every seeded tenant instead of hammering one cache key.
local targets = {}

init = function(args)
  for line in io.lines(os.getenv("TARGETS")) do
    local path, token = line:match("^(%S+) (%S+)$")
    if path then
      targets[#targets + 1] = { path, { ["Authorization"] = "Bearer " .. token } }
    end
  end
  math.randomseed(os.time() + (wrk.thread and 0 or 1))
end

request = function()
  local t = targets[math.random(#targets)]
  return wrk.format("GET", t[1], t[2])
end
