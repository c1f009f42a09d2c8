#!/usr/bin/env python3
"""End to end: estimator "unscented", the unscented transform over the interventional mean and
covariance (src/engine/unscented.c).

- Against an independent PyTorch float64 transform (tests/data/unscented_ref.json, written by
  tools/gen_unscented_ref.py: sigma points in input space from torch.linalg.eigh), every feature and
  output of three models, to 1e-10.
- Closed form: on a linear network the transform is exact, E[y | do(x_i = a)] = f(mu_a), computed
  here in plain Python.
- Range: on the sharp classifier Eq. 4 leaves [0, 1]; the unscented values never do.
- auto: without samples, auto answers with the unscented transform where the taylor diagnostic
  fails (instead of a warned taylor), with a warning that says so; with samples it still answers
  with montecarlo.
- Accepted wherever an estimator is: interventions, regressors (GET and the POST job),
  attributions."""

import json
import os
import random

from acedtest import DATA, Daemon, done, fixture, ok

TOL = 1e-10
ref = json.load(open(os.path.join(DATA, "unscented_ref.json")))
d = Daemon().start()
for m in ref["models"]:
    body = fixture(m["fixture"])
    body.pop("reference", None)
    body["name"] = m["model"]
    r = d.post("/v1/models", body)
    ok(r.status == 201, "%s registers" % m["model"], r)


def close(a, b, tol=TOL):
    return len(a) == len(b) and all(abs(x - y) <= tol * max(1.0, abs(y)) for x, y in zip(a, b))


for m in ref["models"]:
    worst, bad = 0.0, []
    n_out = len(m["cases"][0]["expectations"][0])
    for c in m["cases"]:
        for o in range(n_out):
            r = d.post("/v1/models/%s/interventions" % m["model"],
                       {"output": o, "feature": c["feature"], "values": c["values"], "estimator": "unscented"})
            want = [e[o] for e in c["expectations"]]
            got = r.json.get("expectations") if r.status == 200 else None
            if got is None or not close(got, want) or r.json["meta"]["estimator"] != "unscented":
                bad.append((c["feature"], o, r.status, r.json))
            else:
                worst = max([worst] + [abs(x - y) for x, y in zip(got, want)])
    ok(not bad, "%s (rank %d): unscented agrees with the PyTorch float64 transform to 1e-10 (worst %.2e)"
       % (m["model"], m["rank"], worst), bad[:2])

# A linear network: the transform is exact, E = f(mu_a), whatever the covariance.
rng = random.Random(15)
k, h, no = 5, 4, 2
W1 = [[rng.uniform(-1, 1) for _ in range(k)] for _ in range(h)]
b1 = [rng.uniform(-1, 1) for _ in range(h)]
W2 = [[rng.uniform(-1, 1) for _ in range(h)] for _ in range(no)]
b2 = [rng.uniform(-1, 1) for _ in range(no)]
A = [[rng.gauss(0, 1) for _ in range(k)] for _ in range(k)]
cov = [[sum(A[i][t] * A[j][t] for t in range(k)) / k for j in range(k)] for i in range(k)]
mean = [rng.uniform(-1, 1) for _ in range(k)]
lin = {"name": "linear", "features": [{"name": "f%d" % i, "low": -2.0, "high": 2.0} for i in range(k)],
       "outputs": ["o0", "o1"],
       "network": {"type": "feedforward", "layers": [
           {"weights": W1, "bias": b1, "activation": "identity"},
           {"weights": W2, "bias": b2, "activation": "identity"}]},
       "data": {"mean": mean, "covariance": cov}}
r = d.post("/v1/models", lin)
ok(r.status == 201, "a linear network registers (mean and covariance only)", r)


def f_lin(x):
    z = [sum(W1[j][i] * x[i] for i in range(k)) + b1[j] for j in range(h)]
    return [sum(W2[o][j] * z[j] for j in range(h)) + b2[o] for o in range(no)]


bad = []
vals = [-2.0, -0.5, 0.3, 1.7]
for i in range(k):
    for o in range(no):
        r = d.post("/v1/models/linear/interventions",
                   {"output": o, "feature": i, "values": vals, "estimator": "unscented"})
        want = []
        for a in vals:
            mu = list(mean)
            mu[i] = a
            want.append(f_lin(mu)[o])
        if r.status != 200 or not close(r.json["expectations"], want, 1e-12):
            bad.append((i, o, r.status, r.json))
ok(not bad, "linear network: unscented gives the exact mean f(mu_a) (1e-12)", bad[:2])

# Range: Eq. 4 leaves [0, 1] on the sharp classifier; the unscented transform stays inside.
grid = [4.0 * t / 199 for t in range(200)]
lo_t, hi_t, lo_u, hi_u = 1e9, -1e9, 1e9, -1e9
for f in range(4):
    for o in range(3):
        vals_f = [fixture("sharp_classifier.json")["features"][f]["low"] + t / 199.0 *
                  (fixture("sharp_classifier.json")["features"][f]["high"] -
                   fixture("sharp_classifier.json")["features"][f]["low"]) for t in range(200)]
        rt = d.post("/v1/models/sharp/interventions", {"output": o, "feature": f, "values": vals_f, "estimator": "taylor"})
        ru = d.post("/v1/models/sharp/interventions", {"output": o, "feature": f, "values": vals_f, "estimator": "unscented"})
        lo_t, hi_t = min([lo_t] + rt.json["expectations"]), max([hi_t] + rt.json["expectations"])
        lo_u, hi_u = min([lo_u] + ru.json["expectations"]), max([hi_u] + ru.json["expectations"])
ok(lo_t < -0.05 or hi_t > 1.05, "sharp classifier: taylor leaves [0, 1] ([%.3g, %.3g])" % (lo_t, hi_t))
ok(lo_u >= -1e-12 and hi_u <= 1 + 1e-12, "sharp classifier: unscented stays in [0, 1] ([%.3g, %.3g])" % (lo_u, hi_u))

# auto without samples: the unscented transform where taylor fails, with a warning.
bare = fixture("sharp_classifier.json")
bare["name"] = "sharp_bare"
bare["data"].pop("samples")
r = d.post("/v1/models", bare)
ok(r.status == 201, "the sharp classifier registers without samples", r)
seen_ut, agree, warned = 0, True, True
for f in range(4):
    for o in range(3):
        r = d.get("/v1/models/sharp_bare/regressors/%d/%d?estimator=auto&num=30" % (o, f))
        if r.status != 200:
            agree = False
            continue
        if r.json["estimator"] == "unscented":
            seen_ut += 1
            xs = [p["x"] for p in r.json["points"]]
            u = d.post("/v1/models/sharp_bare/interventions",
                       {"output": o, "feature": f, "values": xs, "estimator": "unscented"})
            agree &= close([p["expectation"] for p in r.json["points"]], u.json["expectations"], 1e-12)
            agree &= r.json["diagnostic"]["reliable"] is False
            warned &= any("unscented" in w for w in r.json["warnings"])
            agree &= "no samples" in r.json["estimator_reason"]
        else:
            agree &= r.json["estimator"] == "taylor" and r.json["diagnostic"]["reliable"] is True
ok(seen_ut > 0 and agree and warned,
   "auto without samples: %d of 12 regressors answered by the unscented transform where taylor failed, "
   "warned, the same points as estimator unscented" % seen_ut)
r = d.get("/v1/models/sharp/regressors/2/3?estimator=auto&num=30")
ok(r.status == 200 and r.json["estimator"] in ("montecarlo", "taylor"), "auto with samples: montecarlo still", r)

# Accepted wherever an estimator is.
r = d.get("/v1/models/mlp/regressors/y1/x1?estimator=unscented&num=30")
ok(r.status == 200 and r.json["estimator"] == "unscented" and r.json["estimator_requested"] == "unscented",
   "GET regressor: estimator=unscented", r)
r = d.post("/v1/models/mlp/regressors", {"estimator": "unscented", "num": 20, "features": ["x0"]})
ok(r.status == 202, "POST regressors job with estimator unscented: 202", r)
if r.status == 202:
    j = d.wait_job(r.json["job"]["id"])
    ok(j.status == 200 and j.json["state"] == "done", "the unscented regressors job finishes", j)
r = d.post("/v1/models/mlp/attributions", {"output": "y1", "inputs": [[0.2, 0.5, 0.6, 0.9]], "estimator": "unscented"})
ok(r.status == 200 and r.json["meta"]["estimator"] == "unscented", "attributions with estimator unscented", r)
r = d.post("/v1/models/mlp/interventions", {"output": 0, "feature": 0, "values": [0.1], "estimator": "sigma"})
ok(r.status == 422 and r.error_field() == "estimator" and "unscented" in r.json["error"]["message"],
   "an unknown estimator: 422 naming estimator, listing unscented", r)
d.stop()
done()
