-- GET /api/v1/users/{id} over a fixed set of ids (IDS is prepended by bench/run.py).
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/api/v1/users/" .. IDS[(n % #IDS) + 1])
end
