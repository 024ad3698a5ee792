-- 90% GET by id, 10% POST (IDS and RUN are prepended by bench/run.py); emails unique
-- per run, thread and request as in create_user.lua.
-- A headers table replaces wrk.headers: it repeats the token bench/run.py set there.
local HEADERS = {["Content-Type"] = "application/json", ["Authorization"] = wrk.headers["Authorization"]}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local n = 0
request = function()
  n = n + 1
  if n % 10 == 0 then
    local body = string.format('{"email": "m%s-%d-%d@example.com", "name": "Mixed %d"}',
      RUN, tid, n, n)
    return wrk.format("POST", "/api/v1/users", HEADERS, body)
  end
  return wrk.format("GET", "/api/v1/users/" .. IDS[(n % #IDS) + 1])
end
