-- attr.lua -- wrk script for bench/http_bench.py: every request POSTs the
-- JSON body read from the file named by $ACED_BENCH_BODY to the URL given
-- on wrk's command line.
local f = assert(io.open(os.getenv("ACED_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
