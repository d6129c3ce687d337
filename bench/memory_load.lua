-- wrk script of bench/memory.py: a read + write mix through the gateway that
-- reaches every service. Each thread goes round the requests below in turn;
-- every created lead gets an email of its own (thread index, counter).
-- The Authorization header comes from wrk's -H.

local threads = 0

function setup(thread)
  thread:set("index", threads)
  threads = threads + 1
end

local ROUND = {
  {"GET", "/api/leads?limit=50"},
  {"POST", "/api/leads", function(n)
    return string.format('{"name":"Memory Lead %d-%d","email":"mem.%d.%d@memload.example",' ..
                         '"company":"Memory Bench"}', index, n, index, n) end},
  {"GET", "/api/contacts?limit=50"},
  {"POST", "/api/contacts", function(n)
    return string.format('{"name":"Memory Contact %d-%d","email":"mem.%d.%d@memload.example"}',
                         index, n, index, n) end},
  {"GET", "/api/tasks?limit=50"},
  {"POST", "/api/tasks", function(n)
    return string.format('{"title":"Memory task %d-%d","priority":"high"}', index, n) end},
  {"GET", "/api/campaigns"},
  {"GET", "/api/dashboard/stats"},
}

function init(args)
  n = 0
  headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local step = ROUND[(n - 1) % #ROUND + 1]
  local body = step[3] and step[3](n) or nil
  -- wrk.format adds Host and Content-Length to the table: a copy per request.
  local h = {}
  for name, value in pairs(headers) do h[name] = value end
  return wrk.format(step[1], step[2], h, body)
end
