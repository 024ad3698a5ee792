-- POST /api/v1/users with an email no other request uses: RUN (a nonce prepended by
-- bench/run.py, new for every wrk run) separates runs, the thread id (set in setup())
-- separates wrk's threads, and the counter the requests of one thread.
-- A headers table replaces wrk.headers: it repeats the token bench/run.py set there.
local HEADERS = {["Content-Type"] = "application/json", ["Authorization"] = wrk.headers["Authorization"]}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"email": "b%s-%d-%d@example.com", "name": "Bench %d"}',
    RUN, tid, counter, counter)
  return wrk.format("POST", "/api/v1/users", HEADERS, body)
end
