#!/usr/bin/env python3
"""End to end: the causal attribution API over real HTTP -- Phase I against the shared fixture's
independent reference values, regressors (cache miss, hit, hit after restart, gone after delete),
attributions checked against the regressor evaluated here in Python, jobs (progress, cancel),
the sync-wait 202, queue-full 503, and the taylor reliability diagnostic on a sharp classifier."""

import copy
import json
import os
import random
import time

from acedtest import SRCDIR, Daemon, diag, done, fixture, fixture_body, ok

ref = fixture()["reference"]
d = Daemon(args=["--workers=2"]).start()
r = d.post("/v1/models", fixture_body("mlp"))
ok(r.status == 201, "fixture registers", r)


def close(a, b, tol):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


# ---- Phase I against the reference (computed independently with an exact autograd Hessian) ----
worst = {"taylor": 0.0, "montecarlo": 0.0}
for est in ("taylor", "montecarlo"):
    for case in ref[est]:
        r = d.post("/v1/models/mlp/interventions",
                   {"output": case["output"], "feature": case["feature"], "values": case["alpha"], "estimator": est})
        if r.status != 200:
            ok(False, "interventions %s %s/%s" % (est, case["output"], case["feature"]), r)
            continue
        got = r.json["expectations"]
        worst[est] = max(worst[est], max(abs(x - y) for x, y in zip(got, case["expectation"])))
for est in worst:
    ok(worst[est] <= 1e-10, "%s reproduces the fixture reference to 1e-10 over HTTP (max err %.2e)" % (est, worst[est]))

case = ref["montecarlo"][0]
r = d.post("/v1/models/mlp/interventions",
           {"output": case["output"], "feature": case["feature"], "values": case["alpha"], "estimator": "montecarlo"})
ok(r.status == 200 and len(r.json.get("stderr", [])) == len(case["alpha"]) and all(s > 0 for s in r.json["stderr"]),
   "montecarlo answers carry a positive standard error", r)
ok(r.json["meta"]["estimator"] == "montecarlo" and r.json["meta"]["cache"] == "none", "meta says how it was obtained", r.json["meta"])
# estimator auto (the default) is determined by the fixture: on y1/x2 over [0.1, 0.9] the taylor
# diagnostic fails (second-order term 0.82 x the spread) and the model has samples, so montecarlo;
# on y1/x1 it passes, so taylor.  Either way the values are the reference's.
def ref_at(est, o, f, idx):
    c = [c for c in ref[est] if c["output"] == o and c["feature"] == f][0]
    return [c["expectation"][i] for i in idx]


r = d.post("/v1/models/mlp/interventions", {"output": 1, "feature": "x2", "values": [0.1, 0.9]})
ok(r.status == 200 and r.json["meta"]["estimator"] == "montecarlo" and r.json["estimator"] == "montecarlo" and
   r.json["estimator_reason"] == "taylor diagnostic failed; model has samples",
   "estimator auto answers y1/x2 with montecarlo and says why (the taylor diagnostic failed)", r)
ok(isinstance(r.json.get("diagnostic"), dict) and r.json["diagnostic"].get("reliable") is False,
   "interventions carry the taylor diagnostic (unreliable here)", r)
ok(close(r.json.get("expectations", []), ref_at("montecarlo", "y1", "x2", [1, 9]), 1e-10),
   "auto's montecarlo values are the reference montecarlo values", r)
r = d.post("/v1/models/mlp/interventions", {"output": 1, "feature": "x1", "values": [0.1, 0.9]})
ok(r.status == 200 and r.json["meta"]["estimator"] == "taylor" and r.json["diagnostic"]["reliable"] is True and
   r.json["estimator_reason"] == "taylor diagnostic passed" and
   close(r.json["expectations"], ref_at("taylor", "y1", "x1", [1, 9]), 1e-10),
   "estimator auto answers y1/x1 with taylor (diagnostic passed), the reference taylor values", r)
r = d.post("/v1/models/mlp/interventions",
           {"output": 0, "feature": 0, "values": [0.3], "estimator": "finite_difference", "epsilon": 1e-4})
t = [c for c in ref["taylor"] if c["output"] == "y0" and c["feature"] == "x0"][0]
ok(r.status == 200 and abs(r.json["expectations"][0] - t["expectation"][3]) < 1e-5,
   "finite_difference agrees with the reference taylor value to 1e-5", r)

# A model registered with mean and covariance only: montecarlo is a clear 422.
nos = fixture_body("nosamples")
nos["data"] = {"mean": nos["data"]["mean"], "covariance": nos["data"]["covariance"]}
ok(d.post("/v1/models", nos).status == 201, "model without samples registers")
r = d.post("/v1/models/nosamples/interventions", {"output": 0, "feature": 0, "values": [0.5], "estimator": "montecarlo"})
ok(r.status == 422 and r.json["error"]["code"] == "no_samples" and r.json["error"]["field"] == "estimator",
   "montecarlo without samples: 422 no_samples", r)

# ---- regressors ----
r1 = d.get("/v1/models/mlp/regressors/y1/x1?estimator=taylor&num=100")
reg = r1.json or {}
ok(r1.status == 200 and reg.get("meta", {}).get("cache") == "miss", "first regressor query is a cache miss", r1)
for k in ("order", "basis", "coefficients", "baseline", "domain", "evidence", "points", "curve"):
    ok(k in reg, "regressor has %s" % k)
ok(reg.get("domain") == [0.0, 1.0] and len(reg.get("points", [])) == 100 and len(reg.get("curve", [])) == 101,
   "regressor: domain, 100 grid points, 101 curve points",
   {"domain": reg.get("domain"), "points": len(reg.get("points", [])), "curve": len(reg.get("curve", []))})
ok(all(abs(p["x"] - i / 100) < 1e-12 for i, p in enumerate(reg.get("curve", []))),
   "the curve's points are evenly spaced over the domain", [p["x"] for p in reg.get("curve", [])][:5])
ok(len(reg.get("coefficients", [])) == reg.get("order", -5) + 1 and len(reg.get("evidence", [])) == 21,
   "coefficients match the order; evidence for orders 0..20", reg.get("order"))


def legendre(coef, x, low, high):
    t = 2 * (x - low) / (high - low) - 1
    p0, p1, s = 1.0, t, coef[0]
    for k in range(1, len(coef)):
        s += coef[k] * p1
        p0, p1 = p1, ((2 * k + 1) * t * p1 - k * p0) / (k + 1)
    return s


curve_ok = all(abs(legendre(reg["coefficients"], p["x"], 0, 1) - p["mean"]) < 1e-9 for p in reg["curve"])
ok(curve_ok, "curve means are the Legendre polynomial of the coefficients (evaluated here)")
fit_err = max(abs(legendre(reg["coefficients"], p["x"], 0, 1) - p["expectation"]) for p in reg["points"])
spread = max(p["expectation"] for p in reg["points"]) - min(p["expectation"] for p in reg["points"])
ok(fit_err < 0.01 * spread, "regressor fits the Phase I points (max err %.2e vs spread %.2e)" % (fit_err, spread))
tcase = [c for c in ref["taylor"] if c["output"] == "y1" and c["feature"] == "x1"][0]
ok(all(abs(legendre(reg["coefficients"], a, 0, 1) - e) < 0.01 * spread for a, e in zip(tcase["alpha"], tcase["expectation"])),
   "regressor passes near the reference taylor values")
avg = sum(p["mean"] for p in reg["curve"][1:-1]) + 0.5 * (reg["curve"][0]["mean"] + reg["curve"][-1]["mean"])
avg /= len(reg["curve"]) - 1
ok(abs(avg - reg["baseline"]) < 1e-3 * max(1, abs(avg)), "baseline equals the average of the curve (trapezoid %.6f vs %.6f)" % (avg, reg["baseline"]))

r2 = d.get("/v1/models/mlp/regressors/y1/x1?estimator=taylor&num=100")
ok(r2.status == 200 and r2.json["meta"]["cache"] == "hit", "repeat query is a cache hit", r2.json.get("meta") if r2.json else r2)
strip = lambda j: {k: v for k, v in j.items() if k != "meta"}
ok(strip(r2.json) == strip(reg), "the cache hit carries identical numbers")
r3 = d.get("/v1/models/mlp/regressors/y0/1?estimator=taylor&num=100")
ok(r3.status == 200 and r3.json["meta"]["cache"] == "hit" and r3.json["output"] == "y0",
   "other outputs of a fitted feature are cached too (feature by index)", r3.json.get("meta") if r3.json else r3)

d.restart()
r4 = d.get("/v1/models/mlp/regressors/y1/x1?estimator=taylor&num=100")
ok(r4.status == 200 and r4.json["meta"]["cache"] == "hit" and strip(r4.json) == strip(reg),
   "after a restart: still a hit, identical numbers", r4.json.get("meta") if r4.json else r4)

# ---- attributions ----
row = [0.2, 0.7, 0.4, 0.9]
r = d.post("/v1/models/mlp/attributions", {"output": "y1", "inputs": [row], "estimator": "taylor"})
att = r.json or {}
ok(r.status == 200 and att.get("features") == ["x0", "x1", "x2", "x3"] and len(att.get("attributions", [[]])[0]) == 4,
   "attributions: one ACE per feature", r)
regs = [d.get("/v1/models/mlp/regressors/y1/x%d?estimator=taylor" % i).json for i in range(4)]
expect = [legendre(g["coefficients"], row[i], 0, 1) - g["baseline"] for i, g in enumerate(regs)]
ok(close(att["attributions"][0], expect, 1e-9), "ACE = regressor(x_i) - baseline, checked here", (att.get("attributions"), expect))
ok(close(att["baselines"], [g["baseline"] for g in regs], 1e-12), "attributions report the baselines")
r = d.post("/v1/models/mlp/attributions", {"output": "y1", "inputs": [row, row], "features": ["x1"], "estimator": "taylor"})
ok(r.status == 200 and r.json["features"] == ["x1"] and r.json["meta"]["cache"] == "hit" and
   abs(r.json["attributions"][1][0] - expect[1]) < 1e-9, "feature subset, two rows, answered from the cache", r)

# ---- a slower model for jobs ----
random.seed(7)
K, H = 120, 200
samples = [[random.random() for _ in range(K)] for _ in range(300)]
slow = {"name": "slow", "features": [{"name": "f%d" % i, "low": 0, "high": 1} for i in range(K)],
        "outputs": ["a", "b"],
        "network": {"type": "feedforward", "layers": [
            {"weights": [[random.gauss(0, 0.3) for _ in range(K)] for _ in range(H)], "bias": [0.0] * H, "activation": "tanh"},
            {"weights": [[random.gauss(0, 0.3) for _ in range(H)] for _ in range(2)], "bias": [0.0, 0.0], "activation": "softmax"}]},
        "data": {"samples": samples}}
r = d.post("/v1/models", slow)
ok(r.status == 201, "a 120-input model registers", r)

r = d.post("/v1/models/slow/regressors", {"outputs": ["a"], "features": ["f0", "f1", "f2"], "estimator": "taylor", "num": 50})
ok(r.status == 202 and r.json["job"]["state"] in ("queued", "running", "done"), "POST regressors answers 202 with a job", r)
job = r.json["job"]["id"]
ok(r.json.get("location") == "/v1/jobs/" + job and r.headers.get("Location") == "/v1/jobs/" + job,
   "202 says where to poll (body and Location header)", r.headers)
jr = d.wait_job(job)
ok(jr.json["state"] == "done" and jr.json["progress"] == {"done": 3, "total": 3}, "job completes with progress 3/3", jr)
ok(jr.json["result"]["computed"] == 3 and jr.json["elapsed_ms"] >= 0, "job result counts computed regressors", jr)
r = d.get("/v1/models/slow/regressors/a/f2?estimator=taylor&num=50")
ok(r.status == 200 and r.json["meta"]["cache"] == "hit", "regressors fitted by a job are cache hits", r)

r = d.post("/v1/models/slow/regressors", {"estimator": "montecarlo", "num": 4000})
job = r.json["job"]["id"]
time.sleep(0.3)
st = d.get("/v1/jobs/" + job).json
ok(st["state"] in ("queued", "running") and st["progress"]["total"] == 2 * K, "a big job reports progress (%s)" % st["progress"], st)
r = d.delete("/v1/jobs/" + job)
ok(r.status == 200, "DELETE /v1/jobs/{id} cancels", r)
jr = d.wait_job(job)
ok(jr.json["state"] == "cancelled" and jr.json["progress"]["done"] < 2 * K, "cancelled job stops early (%s)" % jr.json["progress"], jr)
r = d.delete("/v1/jobs/" + job)
ok(r.status == 409 and r.json["error"]["code"] == "conflict", "cancelling a finished job: 409", r)

# Deleting a model cancels its jobs and drops its cache.
r = d.post("/v1/models/slow/regressors", {"estimator": "montecarlo", "num": 4000})
job = r.json["job"]["id"]
time.sleep(0.2)
ok(d.delete("/v1/models/slow").status == 200, "delete a model with a job running")
jr = d.wait_job(job)
ok(jr.json["state"] == "cancelled", "its job is cancelled", jr)
ok(d.post("/v1/models", slow).status == 201, "re-register the same content")
r = d.get("/v1/models/slow/regressors/a/f2?estimator=taylor&num=50")
ok(r.status == 200 and r.json["meta"]["cache"] == "miss", "after delete the cache entries are gone (miss)", r.json.get("meta") if r.json else r)

# ---- names that need escaping: the job's reply (jansson) and the cached
# reply (written as text by jsonw) must be the same JSON, byte for byte
# apart from meta.cache and meta.elapsed_ms ----
import re
odd = fixture_body("oddnames")
odd["features"][0]["name"] = 'x "quoted"'
odd["features"][1]["name"] = "back\\slash"
odd["features"][2]["name"] = "caf\u00e9 \u20ac/unit"
odd["outputs"] = ['y "0"', "y\\1", "y\u00e92"]
r = d.post("/v1/models", odd)
ok(r.status == 201, "a model whose names need escaping registers", r)
q = {"output": "y\\1", "inputs": [[0.2, 0.7, 0.4, 0.9], [0.9, 0.1, 0.5, 0.3]], "estimator": "taylor", "num": 40}
first = d.post("/v1/models/oddnames/attributions", q)
second = d.post("/v1/models/oddnames/attributions", q)
ok(first.status == 200 and first.json["meta"]["cache"] == "miss" and second.status == 200
   and second.json["meta"]["cache"] == "hit", "first answer from a job (miss), second from memory (hit)",
   (first.raw[:200], second.raw[:200]))
strip = lambda raw: re.sub(rb'"elapsed_ms":[^,}]*', b'', re.sub(rb'"cache":"[a-z]*"', b'', raw))
ok(strip(first.raw) == strip(second.raw), "the cached reply is the job's reply, byte for byte",
   (first.raw, second.raw))
ok(second.json["output"] == "y\\1" and second.json["features"] == [f["name"] for f in odd["features"]],
   "names with quotes, backslashes and UTF-8 come back exactly", second.json.get("features"))
ok(isinstance(second.json["meta"]["elapsed_ms"], float) and second.json["meta"]["elapsed_ms"] >= 0,
   "meta.elapsed_ms is a number of milliseconds", second.json["meta"])
d.stop()

# ---- sync wait exceeded -> 202 with the job; queue full -> 503 ----
d2 = Daemon(args=["--workers=1", "--queue-max=1", "--sync-wait-ms=50"], workdir=d.workdir).start()
import threading
replies = []
threads = [threading.Thread(target=lambda: replies.append(d2.get("/v1/models/slow/regressors/b/f7?estimator=montecarlo&num=6000")))
           for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
r = replies[0]
ok(r.status == 202 and r.json["job"]["kind"] == "regressor", "a slow synchronous query answers 202 with its job", r)
ok(all(x.status == 202 for x in replies) and len({x.json["job"]["id"] for x in replies}) == 1,
   "three identical concurrent queries share one job", [x.raw[:120] for x in replies])
sync_job = r.json["job"]["id"] if r.status == 202 else None
big = [d2.post("/v1/models/slow/regressors", {"estimator": "montecarlo", "num": 4000, "features": ["f%d" % i]}) for i in range(8, 12)]
codes = [b.status for b in big]
ok(503 in codes, "queue full: 503 (%s)" % codes, [b.raw[:200] for b in big])
full = [b for b in big if b.status == 503]
ok(full and full[0].headers.get("Retry-After") == "1" and full[0].json["error"]["code"] == "queue_full",
   "503 carries Retry-After and queue_full", full[0] if full else None)
if sync_job:
    jr = d2.wait_job(sync_job)
    ok(jr.json["state"] == "done" and jr.json["result"]["order"] >= 0, "the 202'd query's job finishes with the regressor", jr)
m = d2.get("/metrics").raw.decode()
ok('aced_cache_requests_total{result="hit"}' in m and "aced_queue_depth" in m, "metrics have cache and queue figures")
for b in big:
    if b.status == 202:
        d2.delete("/v1/jobs/" + b.json["job"]["id"])
ok(d2.alive(), "daemon up")
ok(d2.stop() == 0, "SIGTERM with jobs in flight exits 0")

# ---- the sharp classifier: taylor leaves [0, 1]; auto answers with montecarlo ----
sharp_path = os.path.join(SRCDIR, "tests", "data", "sharp_classifier.json")
d3 = Daemon().start()
sharp = json.load(open(sharp_path))
sharp["name"] = "sharp"
r = d3.post("/v1/models", sharp)
ok(r.status == 201, "sharp classifier registers", r)
found = None
for o in sharp["outputs"]:
    for f in sharp["features"]:
        vals = [f["low"] + (f["high"] - f["low"]) * i / 10 for i in range(11)]
        r = d3.post("/v1/models/sharp/interventions", {"output": o, "feature": f["name"], "values": vals, "estimator": "taylor"})
        e = r.json["expectations"]
        if min(e) < -0.05 or max(e) > 1.05:
            found = (o, f["name"], vals, r.json)
            break
    if found:
        break
ok(found is not None, "taylor leaves [0, 1] somewhere on the sharp classifier")
if found:
    o, fname, vals, tj = found
    diag("taylor range on %s/%s: [%.3f, %.3f]" % (o, fname, min(tj["expectations"]), max(tj["expectations"])))
    ok(tj["diagnostic"]["reliable"] is False and tj["diagnostic"]["out_of_range"] is True, "the diagnostic flags it", tj["diagnostic"])
    ok(len(tj["meta"]["warnings"]) >= 1 and "unreliable" in tj["meta"]["warnings"][0], "meta.warnings carries a warning", tj["meta"])
    r = d3.post("/v1/models/sharp/interventions", {"output": o, "feature": fname, "values": vals})
    ok(r.status == 200 and r.json["meta"]["estimator"] == "montecarlo", "auto answers with montecarlo", r)
    ok(all(-1e-12 <= e <= 1 + 1e-12 for e in r.json["expectations"]), "and its values stay in [0, 1]", r.json["expectations"])
    ok("taylor diagnostic failed" in r.json["estimator_reason"], "and says why", r.json["estimator_reason"])
    r = d3.get("/v1/models/sharp/regressors/%s/%s" % (o, fname))
    ok(r.status == 200 and r.json["estimator"] == "montecarlo" and r.json["diagnostic"]["reliable"] is False,
       "the auto regressor is fitted on montecarlo values and carries the diagnostic", r.json.get("estimator") if r.json else r)
ok(d3.stop() == 0, "clean shutdown")
d3.cleanup()
d.cleanup()
done()
