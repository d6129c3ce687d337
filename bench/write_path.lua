-- The write benchmark's requests (bench/write_path.py), one unique write each.
--
--   wrk -s write_path.lua <base>/api/leads -- post  <run tag>
--   wrk -s write_path.lua <base>/api/leads -- patch <run tag> <file of lead ids> <threads>
--
-- post:  POST /api/leads {name, email, company}; the email is unique per
--        request (run tag, thread, a random tag of the thread, a counter).
-- patch: PATCH /api/leads/{id} {"status": ...}; the ids are dealt out to the
--        threads, each thread walks its own share in turn and moves every lead
--        one status further per pass (contacted, qualified, proposal, closed,
--        new, ...), so each request changes the status. The pool must start
--        at `new`, and a share must be longer than a thread's connections, so
--        that a lead's previous request has been answered before the next.
-- Both count the responses by status; done() prints "wrk-status <code> <n>".
-- The Authorization header comes from wrk's -H.

local threads = {}
local CYCLE = {"contacted", "qualified", "proposal", "closed", "new"}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

function init(args)
   mode, run = args[1], args[2]
   counter = 0
   statuses = {}
   wrk.headers["Content-Type"] = "application/json"
   local seed = tonumber(run:sub(1, 6), 16) or 0
   math.randomseed(seed * 64 + id)
   tag = string.format("%06x", math.random(0, 0xffffff))
   if mode == "patch" then
      local count = tonumber(args[4])
      mine = {}
      local n = 0
      for line in io.lines(args[3]) do
         if n % count == id - 1 then
            table.insert(mine, line)
         end
         n = n + 1
      end
   end
end

function request()
   local k = counter
   counter = counter + 1
   if mode == "post" then
      local body = string.format(
         '{"name":"Bench Lead %d","email":"w%s-%d-%s-%d@bench.example","company":"Bench Co"}',
         k, run, id, tag, k)
      return wrk.format("POST", "/api/leads", nil, body)
   end
   local pass = math.floor(k / #mine)
   local body = string.format('{"status":"%s"}', CYCLE[pass % #CYCLE + 1])
   return wrk.format("PATCH", "/api/leads/" .. mine[k % #mine + 1], nil, body)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local total = {}
   for _, thread in ipairs(threads) do
      for code, n in pairs(thread:get("statuses")) do
         total[code] = (total[code] or 0) + n
      end
   end
   for code, n in pairs(total) do
      io.write(string.format("wrk-status %d %d\n", code, n))
   end
end
