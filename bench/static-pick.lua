-- wrk script of bench/static.js: every request is GET of a path picked at random from a list
-- file (one URL path a line), with a seeded generator, so each run asks the same sequence.
--
--   wrk -t1 -c4 -d4s -s bench/static-pick.lua http://127.0.0.1:PORT -- LIST SEED
--
-- The requests are formatted once in init(): request() only picks one, so wrk's own cost
-- per request stays small next to the server's.
local requests = {}
local count = 0
local thread_index = 0

function setup(thread)
  -- A different stream per wrk thread, still determined by the seed.
  thread:set("thread_index", thread_index)
  thread_index = thread_index + 1
end

function init(args)
  local list, seed = args[1], tonumber(args[2] or "1")
  local f = assert(io.open(list, "r"))
  for line in f:lines() do
    if line ~= "" then
      count = count + 1
      requests[count] = wrk.format("GET", line)
    end
  end
  f:close()
  assert(count > 0, "empty list " .. list)
  math.randomseed(seed * 1000 + (thread_index or 0))
end

function request()
  return requests[math.random(count)]
end
