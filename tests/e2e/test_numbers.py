#!/usr/bin/env python3
"""End to end: the precision of numbers in replies (issue 10).

Every time in a reply (`elapsed_ms`, `queued_ms`, wherever they appear) is milliseconds rounded to the
microsecond, written with exactly three decimals; jansson alone wrote 87.911 as 87.911000000000001.
Checked on the raw text of every route that writes one, synchronous and through a job, cache miss and
hit.  Other reals keep 17 significant digits (they read back as the double aced computed).
"""

import json
import re
import time

from acedtest import Daemon, done, fixture_body, ok

TIME = re.compile(rb'"(elapsed_ms|queued_ms)":(-?[0-9.eE+-]+|null)')
REAL = re.compile(rb'(?<=[:\[,])-?\d+\.\d{4,}(?:[eE][-+]?\d+)?')


def times(raw):
    return [(k.decode(), v.decode()) for k, v in TIME.findall(raw)]


def check(what, r, expect_times=1):
    ts = times(r.raw)
    bad = [t for t in ts if not re.fullmatch(r"\d+\.\d{3}", t[1])]
    ok(r.status in (200, 201, 202) and len(ts) >= expect_times and not bad,
       "%s: %d time(s), each to the microsecond (%s)" % (what, len(ts), ", ".join("%s=%s" % t for t in ts[:4])),
       "status %d bad %r raw %r" % (r.status, bad, r.raw[:400]))
    return r


d = Daemon(args=["--sync-wait-ms=10000"]).start()
check("POST /v1/models (registration job)", d.post("/v1/models", fixture_body("mlp")), 0)
check("GET /v1/models/mlp", d.get("/v1/models/mlp"), 0)
check("POST interventions", d.post("/v1/models/mlp/interventions",
                                   {"output": "y0", "feature": "x0", "values": [0.1, 0.2, 0.3]}))
check("GET regressor, miss", d.get("/v1/models/mlp/regressors/y0/x0?num=50"))
check("GET regressor, hit", d.get("/v1/models/mlp/regressors/y0/x0?num=50"))
body = {"output": "y1", "inputs": [[0.1, 0.2, 0.3, 0.4]], "num": 40}
check("POST attributions, miss", d.post("/v1/models/mlp/attributions", body))
r = check("POST attributions, cached", d.post("/v1/models/mlp/attributions", body))
r = check("POST regressors (202 with the job)", d.post("/v1/models/mlp/regressors", {"num": 30}), 2)
job = r.json["job"]["id"]
deadline = time.time() + 60
while time.time() < deadline:
    jr = d.get("/v1/jobs/" + job)
    if jr.json and jr.json.get("state") in ("done", "failed", "cancelled"):
        break
    time.sleep(0.05)
check("GET /v1/jobs/{id} (done, with result)", jr, 2)
check("POST explanations (two methods side by side)",
      d.post("/v1/models/mlp/explanations", {"methods": ["gradient", "integrated_gradients"], "output": 0,
                                             "inputs": [[0.1, 0.2, 0.3, 0.4]]}))
r = check("POST graph (the learner's 202 with the job)", d.post("/v1/models/mlp/graph", {"method": "dagma"}), 2)
check("GET /v1/jobs/{id} of the graph learner, done", d.wait_job(r.json["job"]["id"]), 2)
# A synchronous query answered after 202: its job's result carries its own elapsed_ms.
d2 = Daemon(args=["--sync-wait-ms=0"]).start()
r = d2.post("/v1/models", fixture_body("m2"))
if r.status == 202:
    d2.wait_job(r.json["job"]["id"])
r = d2.get("/v1/models/m2/regressors/y2/x3?num=60")
if r.status == 202:
    check("202 of a regressor with sync_wait_ms 0", r, 2)
    jid = r.json["job"]["id"]
    deadline = time.time() + 60
    while time.time() < deadline:
        jr = d2.get("/v1/jobs/" + jid)
        if jr.json and jr.json.get("state") in ("done", "failed", "cancelled"):
            break
        time.sleep(0.05)
    check("GET /v1/jobs/{id} of a regressor answered 202 (elapsed, queued, result)", jr, 3)
else:
    check("GET regressor with sync_wait_ms 0", r)
d2.cleanup()

# Other reals: 17 significant digits, read back exactly.
r = d.get("/v1/models/mlp/regressors/y0/x0?num=50")
reals = REAL.findall(r.raw)
long_ones = [x for x in reals if len(re.sub(rb"[-.]|[eE].*", b"", x).lstrip(b"0")) > 15]
ok(len(long_ones) > 0, "the regressor's other reals keep up to 17 significant digits (%d of %d have more than 15)"
   % (len(long_ones), len(reals)))
d.cleanup()
done()
