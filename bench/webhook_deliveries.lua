-- wrk script of bench/webhook.py: POSTs pre-signed Meta webhook deliveries.
--
--   wrk ... -s webhook_deliveries.lua URL -- DELIVERIES_FILE THREADS
--
-- Each line of DELIVERIES_FILE is "<X-Hub-Signature-256 value>\t<raw JSON body>"
-- (the body holds no tab or newline). Thread i of THREADS (wrk's -t) takes
-- lines i+1, i+1+THREADS, ... so the threads post disjoint leadgen ids, and
-- cycles through its share. The requests are formatted once, in init, so
-- wrk spends nothing per request but the send. done() prints how many
-- requests each thread made:
--
--   webhook-lua: thread 0 sent 7512 of 1500
--
-- from which bench/webhook.py knows which leadgen ids were posted.

local threads = {}
local count = 0

function setup(thread)
  thread:set("index", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  requests, sent, size = {}, 0, 0
  local n = 0
  for line in io.lines(path) do
    if n % nthreads == index then
      local tab = line:find("\t", 1, true)
      local headers = {}
      for name, value in pairs(wrk.headers) do headers[name] = value end
      headers["Content-Type"] = "application/json"
      headers["X-Hub-Signature-256"] = line:sub(1, tab - 1)
      size = size + 1
      requests[size] = wrk.format("POST", nil, headers, line:sub(tab + 1))
    end
    n = n + 1
  end
  if size == 0 then
    error("no deliveries for thread " .. index .. " in " .. path)
  end
end

function request()
  sent = sent + 1
  return requests[(sent - 1) % size + 1]
end

function done(summary, latency, reqs)
  for _, thread in ipairs(threads) do
    io.write(string.format("webhook-lua: thread %d sent %d of %d\n",
                           thread:get("index"), thread:get("sent"), thread:get("size")))
  end
end
