-- wrk script for writes: each request picks a random "<METHOD> <path> <bearer token>"
-- line from $TARGETS and sends a JSON body whose values vary from request to request
-- (a new task for POST, a changed title/status/priority for PATCH, no If-Match).
local targets = {}
local statuses = { "todo", "doing", "done" }
local counter = 0

init = function(args)
  for line in io.lines(os.getenv("TARGETS")) do
    local method, path, token = line:match("^(%S+) (%S+) (%S+)$")
    if method then
      targets[#targets + 1] = {
        method,
        path,
        { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" },
      }
    end
  end
  math.randomseed(os.time() + (wrk.thread and 0 or 1))
end

request = function()
  local t = targets[math.random(#targets)]
  counter = counter + 1
  local status = statuses[math.random(3)]
  local priority = math.random(4)
  local body
  if t[1] == "POST" then
    body = string.format(
      '{"title":"bench write %d","description":"written by wrk, round %d","status":"%s","priority":%d}',
      counter, math.random(1000000), status, priority)
  else
    body = string.format(
      '{"title":"bench edit %d","status":"%s","priority":%d}', counter, status, priority)
  end
  return wrk.format(t[1], t[2], t[3], body)
end
