-- attr.lua -- wrk script for bench/http_bench.py: POSTs the JSON bodies in
-- the file named by $ACED_BENCH_BODY (one per line) to the URL given on
-- wrk's command line, each connection going through them in turn: a
-- dashboard asks the same query with other rows.  The requests are
-- formatted once, at start, so that the client's cost per request is the
-- same as with one fixed body.
local bodies = {}
for line in io.lines(os.getenv("ACED_BENCH_BODY")) do
  if #line > 0 then
    bodies[#bodies + 1] = line
  end
end
assert(#bodies > 0, "no bodies in $ACED_BENCH_BODY")
wrk.method = "POST"
wrk.body = bodies[1]
wrk.headers["Content-Type"] = "application/json"

local requests = {}
local next_one = 1

function init(args)
  for i, b in ipairs(bodies) do
    requests[i] = wrk.format("POST", nil, nil, b)
  end
  next_one = math.random(#requests)
end

function request()
  local r = requests[next_one]
  next_one = next_one % #requests + 1
  return r
end
