#!/usr/bin/env python3
"""Where the capabilities meet (issues #12, #14, #15, #16 landed side by side): each pair below was
written by a different change and is checked here together.

- recurrent x unscented: without feedback the sigma points run through the time-unrolled network;
  with every stored sequence the same (zero covariance) that is f(mu with x_i^t = a) exactly, which
  is also what montecarlo averages; with feedback it is refused, naming `estimator`.
- recurrent x graph / training: refused at registration, naming the field.
- recurrent x the regressor band: a montecarlo regressor says its band takes the errors as
  independent (`band.noise` montecarlo_variance) and why.
- graph x the band: a total-effect montecarlo regressor likewise.
- recurrent x warm GETs and ETags: two timesteps are two replies and two tags; a repeat is the
  same bytes (but elapsed_ms) from memory.
"""

import copy
import json
import os
import re

from acedtest import DATA, Daemon, done, ok

ref = {c["model"]["name"]: c["model"] for c in json.load(open(os.path.join(DATA, "recurrent_ref.json")))["cases"]}
d = Daemon(args=["--workers=2"]).start()


def register(body):
    r = d.post("/v1/models", body, timeout=120)
    if r.status == 202:
        r = d.wait_job(r.json["job"]["id"], timeout=120)
        return 201 if r.json.get("state") == "done" else 500, r
    return r.status, r


# ---- recurrent x unscented ----
flat = copy.deepcopy(ref["gru_last"])
flat["name"] = "gru_flat"
seq0 = flat["data"]["sequences"][0]
flat["data"]["sequences"] = [copy.deepcopy(seq0) for _ in range(6)]  # zero covariance
st, r = register(flat)
ok(st == 201, "a GRU whose stored sequences are all the same registers", r)
q = {"output": "y0", "feature": flat["features"][0]["name"], "timestep": 2, "values": [-0.5, 0.25, 1.0]}
u = d.post("/v1/models/gru_flat/interventions", dict(q, estimator="unscented"))
m = d.post("/v1/models/gru_flat/interventions", dict(q, estimator="montecarlo"))
okk = u.status == 200 and m.status == 200
gap = max(abs(a - b) for a, b in zip(u.json["expectations"], m.json["expectations"])) if okk else None
ok(okk and gap <= 1e-12, "unscented on a recurrent model (zero covariance) = montecarlo (%s)" % gap, (u, m))

gru = copy.deepcopy(ref["gru_last"])
st, r = register(gru)
ok(st == 201, "gru_last registers", r)
u = d.post("/v1/models/gru_last/interventions", dict(q, estimator="unscented"))
ok(u.status == 200 and all(0.0 <= v <= 1.0 for v in u.json["expectations"]),
   "unscented on a GRU with a sigmoid head stays in [0, 1]", u)
fb = copy.deepcopy(ref["rnn_tanh_feedback"])
st, r = register(fb)
ok(st == 201, "rnn_tanh_feedback registers", r)
qf = {"output": "y0", "feature": fb["features"][0]["name"], "timestep": 1, "values": [0.1],
      "estimator": "unscented"}
u = d.post("/v1/models/rnn_tanh_feedback/interventions", qf)
ok(u.status == 422 and u.error_field() == "estimator", "unscented with feedback: 422 naming estimator", u)
a = d.post("/v1/models/rnn_tanh_feedback/interventions", dict(qf, estimator="auto"))
ok(a.status == 200, "auto with feedback still answers", a)

# ---- recurrent x graph / training ----
for field, value in (("graph", {"edges": []}),
                     ("training", {"loss": "mse", "epochs": 1, "learning_rate": 0.1})):
    b = copy.deepcopy(ref["gru_last"])
    b["name"] = "gru_" + field
    b[field] = value
    r = d.post("/v1/models", b)
    ok(r.status in (400, 422) and r.error_field() == field,
       "a recurrent registration with %s: %d naming %s" % (field, r.status, field), r)

# ---- recurrent x band ----
path = "/v1/models/gru_last/regressors/y0/%s?timestep=%%d&num=20&estimator=montecarlo" % q["feature"]
g = d.get(path % 2, timeout=120)
if g.status == 202:
    g = d.get(path % 2, timeout=120)
ok(g.status == 200 and g.json.get("band", {}).get("noise") == "montecarlo_variance" and
   any("recurrent" in w for w in g.json["meta"]["warnings"]),
   "a recurrent montecarlo regressor: band noise montecarlo_variance, and the warning says why", g)

# ---- recurrent x warm GETs and ETags ----
g2 = d.get(path % 2)
g3 = d.get(path % 3, timeout=120)
if g3.status == 202:
    g3 = d.get(path % 3, timeout=120)
norm = lambda raw: re.sub(rb'"elapsed_ms":[-+.0-9eE]+', b"", raw).replace(b'"cache":"miss"', b'"cache":"hit"')
ok(g2.status == 200 and g2.json["meta"]["cache"] == "hit" and norm(g2.raw) == norm(g.raw),
   "the repeat is a hit with the same bytes (but elapsed_ms)")
ok(g3.status == 200 and g3.json.get("timestep") == 3 and g.json.get("timestep") == 2 and
   norm(g3.raw) != norm(g2.raw), "another timestep is another regressor", (g.json.get("timestep"), g3.json.get("timestep")))
ok(g2.headers.get("ETag") and g3.headers.get("ETag") and g2.headers.get("ETag") != g3.headers.get("ETag"),
   "and another ETag (%s, %s)" % (g2.headers.get("ETag"), g3.headers.get("ETag")))
nm = d.get(path % 2, headers={"If-None-Match": g2.headers.get("ETag", "")})
ok(nm.status == 304, "If-None-Match with the timestep's own tag: 304", nm)
nm = d.get(path % 3, headers={"If-None-Match": g2.headers.get("ETag", "")})
ok(nm.status == 200, "and with the other timestep's tag: 200", nm)

# ---- graph x band ----
scm = json.load(open(os.path.join(DATA, "scm_mlp.json")))
body = copy.deepcopy(scm["model"])
body["name"] = "scm"
body["graph"] = {"edges": scm["reference"]["edges"]}
st, r = register(body)
ok(st == 201, "the SCM model of test_graph registers", r)
if st == 201:
    meta = d.get("/v1/models/scm").json
    has_graph = bool(meta.get("graph"))
    f0 = meta["features"][0]["name"]
    o0 = meta["outputs"][0] if isinstance(meta["outputs"][0], str) else meta["outputs"][0]["name"]
    gp = "/v1/models/scm/regressors/%s/%s?num=20&estimator=montecarlo&effect=total" % (o0, f0)
    g = d.get(gp, timeout=120)
    if g.status == 202:
        g = d.get(gp, timeout=120)
    ok(has_graph and g.status == 200 and g.json.get("band", {}).get("noise") == "montecarlo_variance" and
       any("total and indirect" in w for w in g.json["meta"]["warnings"]),
       "a total-effect montecarlo regressor: band noise montecarlo_variance, and why", g)

d.stop()
done()
