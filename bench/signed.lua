-- wrk script: cycles through pre-signed unique orders, one request per line of a file
-- (`<signature>\t<body>`, written by bench/orders.py). Usage:
--   wrk -t2 -c64 -d20s -s bench/signed.lua http://127.0.0.1:PORT/v1/webhooks/direct -- FILE THREADS
-- Each wrk thread keeps every THREADS-th line, so no order is sent twice until a thread has
-- used up its share (then it starts over, and `repeats` says how many came round again).
-- No response() hook: defining one makes wrk parse every body, which costs the client CPU;
-- wrk counts non-2xx/3xx replies itself (errors.status).

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local requests = {}
local count = 0
local position = 0
repeats = 0
loaded = 0

function init(args)
   local path, total = args[1], tonumber(args[2])
   local file = assert(io.open(path, "rb"))
   local line_no = 0
   for line in file:lines() do
      if line_no % total == id then
         local tab = line:find("\t", 1, true)
         local headers = {
            ["Content-Type"] = "application/json",
            ["X-VuonMinh-Signature"] = line:sub(1, tab - 1),
         }
         count = count + 1
         requests[count] = wrk.format("POST", wrk.path, headers, line:sub(tab + 1))
      end
      line_no = line_no + 1
   end
   file:close()
   loaded = count
   assert(count > 0, "no requests for this thread in " .. path)
end

function request()
   position = position + 1
   if position > count then
      position = 1
      repeats = repeats + count
   end
   return requests[position]
end

function done(summary, latency, requests)
   local repeated, unique = 0, 0
   for _, thread in ipairs(threads) do
      repeated = repeated + (thread:get("repeats") or 0)
      unique = unique + (thread:get("loaded") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"duration_us": %d, "requests": %d, "bytes": %d, "connect_errors": %d, '
         .. '"read_errors": %d, "write_errors": %d, "non_2xx_3xx": %d, "timeouts": %d, '
         .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "loaded": %d, "repeated_at_least": %d}\n',
      summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, unique, repeated))
end
