-- POST /api/v1/users with an email no other request of the run uses: each wrk thread
-- gets its own id in setup(), and os.time() separates runs.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"email": "b%d-%d-%d@example.com", "name": "Bench %d"}',
    os.time(), tid, counter, counter)
  return wrk.format("POST", "/api/v1/users", {["Content-Type"] = "application/json"}, body)
end
