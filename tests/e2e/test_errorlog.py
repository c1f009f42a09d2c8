#!/usr/bin/env python3
"""End to end: every 5xx aced answers is logged at error level with its cause (issue #9: 500s under
mixed load were logged at info level only, so nobody saw them).  A queue that is full is the 5xx a
client can cause on purpose: one worker busy with a long job, one job queued behind it, and the next
request is refused with 503 + Retry-After.  The log must then hold an error-level line (priority
<3>) naming the route, the status and the error code; 4xx replies must not be logged as errors."""

from acedtest import Daemon, done, fixture_body, ok

d = Daemon(args=["--workers=1", "--queue_max=1", "--sync_wait_ms=0"]).start()
body = fixture_body("mlp")
r = d.post("/v1/models", body)
ok(r.status in (201, 202), "the fixture registers", r)
if r.status == 202:
    d.wait_job(r.json["job"]["id"])

# A 4xx is the client's: not an error of ours.
r = d.post("/v1/models/mlp/interventions", {"output": 0, "feature": 0, "values": [0.5], "bogus": 1})
ok(r.status == 400 and r.error_code() == "unknown_field", "a bad body is a 400", r)

# The worker busy for a while: a montecarlo regressor set on a big grid.
r = d.post("/v1/models/mlp/regressors", {"estimator": "montecarlo", "num": 10000})
ok(r.status == 202, "a long background job is accepted", r)
statuses = []
for i in range(6):
    r = d.post("/v1/models/mlp/interventions",
               {"output": 0, "feature": 0, "values": [0.1 * (i + 1)], "estimator": "montecarlo"})
    statuses.append(r.status)
    if r.status == 503:
        ok(r.headers.get("Retry-After") == "1" and r.error_code() == "queue_full",
           "the 503 says queue_full with Retry-After", r)
        break
ok(503 in statuses, "with the worker busy and the queue full a request gets 503 (%s)" % statuses)
d.stop()
log = d.read_log()
errors = [l for l in log.splitlines() if l.startswith("<3>")]
ok(any("answered 503" in l and "queue_full" in l and "/interventions" in l for l in errors),
   "the 503 is logged at error level with its route and cause", errors[-3:])
ok(not any(" 400" in l or "unknown_field" in l for l in errors),
   "the 400 is not logged as an error", errors)
done()
