#!/usr/bin/env python3
"""End to end: the randomization test (Olden and Jackson 2002), POST /v1/models/{name}/significance.

A synthetic task where the answer is known: y = 1.2 tanh(x0) + 0.7 x1 + small noise over five inputs (monotone effects: Olden's signed path sums cancel on non-monotone ones), so
only x0 and x1 matter.  The model registers with its targets and training settings; the test
retrains the 5-8-1 network on the true and on permuted targets (the engine's exact trainer,
tests/unit/test_engine_train.c checks it against PyTorch) and answers, per feature, the observed
statistic, null quantiles and the p-value.  Checked: small p-values for x0 and x1, large ones for
the rest, with connection weights and with ace; 202 with Location like the regressors job;
progress; the same answer for the same seed (recomputed by a fresh daemon) and a different one for
another seed; the cache; cancel; and the errors that name their field."""

import math
import random

from acedtest import Daemon, done, ok

rng = random.Random(15)
K, N = 5, 200
X = [[rng.uniform(-2, 2) for _ in range(K)] for _ in range(N)]
Y = [[1.2 * math.tanh(x[0]) + 0.7 * x[1] + rng.gauss(0, 0.05)] for x in X]
H = 8
model = {"name": "synth",
         "features": [{"name": "x%d" % i, "low": -2.0, "high": 2.0} for i in range(K)],
         "outputs": ["y"],
         "network": {"type": "feedforward", "layers": [
             {"weights": [[rng.uniform(-0.5, 0.5) for _ in range(K)] for _ in range(H)],
              "bias": [0.0] * H, "activation": "tanh"},
             {"weights": [[rng.uniform(-0.5, 0.5) for _ in range(H)]], "bias": [0.0], "activation": "identity"}]},
         "data": {"samples": X, "targets": Y},
         "training": {"loss": "mse", "epochs": 60, "learning_rate": 0.03, "batch_size": 32,
                      "weight_decay": 0.05, "seed": 3}}

d = Daemon(args=["--workers=2"]).start()
r = d.post("/v1/models", model)
ok(r.status == 201, "a model with data.targets and training registers", r)
r = d.get("/v1/models/synth")
ok(r.status == 200 and r.json.get("training", {}).get("loss") == "mse" and r.json["training"]["targets"] is True,
   "its metadata shows the training settings", r)


def run(daemon, body):
    r = daemon.post("/v1/models/synth/significance", body)
    if r.status != 202:
        return r, None
    return r, daemon.wait_job(r.json["job"]["id"], timeout=300)


body = {"permutations": 99, "statistic": "connection_weights", "seed": 7}
r, j = run(d, body)
ok(r.status == 202 and r.headers.get("Location") == "/v1/jobs/" + r.json["job"]["id"]
   and r.json.get("location") == r.headers.get("Location"), "202 with the job and its Location", r)
ok(j is not None and j.json["state"] == "done" and j.json["progress"] == {"done": 100, "total": 100},
   "the job runs 1 + 99 retrainings (progress 100/100)", j)
res = j.json["result"]
p = {e["feature"]: e["p_value"] for e in res["results"]}
ok(res["statistic"] == "connection_weights" and res["permutations"] == 99 and res["seed"] == 7
   and len(res["results"]) == K and res["quantiles"] == [0.025, 0.05, 0.5, 0.95, 0.975]
   and all(len(e["null_quantiles"]) == 5 for e in res["results"]), "the answer's shape", res)
ok(p["x0"] <= 0.02 and p["x1"] <= 0.02, "connection weights: x0 and x1 matter (p %.3g, %.3g)" % (p["x0"], p["x1"]), p)
ok(all(p["x%d" % i] > 0.05 for i in range(2, K)),
   "connection weights: x2..x4 do not (p %s)" % ", ".join("%.2f" % p["x%d" % i] for i in range(2, K)), p)
ok(all(abs(e["p_value"] * 100 - round(e["p_value"] * 100)) < 1e-9 and e["p_value"] >= 0.01 for e in res["results"]),
   "p-values are (1 + count) / (1 + permutations)", res["results"])

# The same request: from the cache.  Another seed: another null.
r2, j2 = run(d, body)
ok(j2 is not None and j2.json["result"]["results"] == res["results"] and j2.json["result"]["meta"]["cache"] == "hit",
   "the same request again is answered from the cache, the same numbers", j2)
r3, j3 = run(d, dict(body, seed=8))
ok(j3 is not None and j3.json["state"] == "done" and j3.json["result"]["results"] != res["results"],
   "another seed, another null distribution", j3)

# Reproducible: a fresh daemon (nothing cached) computes the same answer for the same seed.
d2 = Daemon(args=["--workers=1"]).start()
d2.post("/v1/models", model)
r4, j4 = run(d2, body)
ok(j4 is not None and j4.json["result"]["results"] == res["results"] and j4.json["result"]["meta"]["cache"] == "miss",
   "reproducible: a fresh daemon with one worker gives the same numbers for seed 7")
d2.stop()

# ace as the statistic: the range of the causal effect of each feature.
r5, j5 = run(d, {"permutations": 49, "statistic": "ace", "seed": 1})
pa = {e["feature"]: e["p_value"] for e in j5.json["result"]["results"]} if j5 else {}
ok(j5 is not None and pa.get("x0", 1) <= 0.04 and pa.get("x1", 1) <= 0.04
   and all(pa["x%d" % i] > 0.05 for i in range(2, K)),
   "ace: x0 and x1 matter, x2..x4 do not (p %s)" % ", ".join("%.2f" % pa.get("x%d" % i, -1) for i in range(K)), j5)

# Cancel a long test: it stops with progress short of the total.
slow = dict(model, name="slow", training=dict(model["training"], epochs=2000))
d.post("/v1/models", slow)
r = d.post("/v1/models/slow/significance", {"permutations": 999, "seed": 1})
jid = r.json["job"]["id"] if r.status == 202 else ""
import time
time.sleep(0.5)
c = d.delete("/v1/jobs/" + jid)
j = d.wait_job(jid)
ok(c.status in (200, 202) and j.json["state"] == "cancelled" and j.json["progress"]["done"] < 1000,
   "DELETE cancels a running test (%s after %s)" % (j.json["state"], j.json["progress"]), (c, j))

# Registration: data.targets and training together, checked field by field.
import copy
for change, status, code, field in [
        (lambda b: b["training"].update(loss="hinge"), 422, "invalid_value", "training.loss"),
        (lambda b: b["training"].update(epochs=0), 422, "invalid_value", "training.epochs"),
        (lambda b: b["training"].update(epochs=1.5), 400, "bad_type", "training.epochs"),
        (lambda b: b["training"].pop("learning_rate"), 400, "missing_field", "training.learning_rate"),
        (lambda b: b["training"].update(learning_rate=-1), 422, "invalid_value", "training.learning_rate"),
        (lambda b: b["training"].update(momentum=0.9), 400, "unknown_field", "training.momentum"),
        (lambda b: b.pop("training"), 400, "missing_field", "training"),
        (lambda b: b["data"].pop("targets"), 400, "missing_field", "data.targets"),
        (lambda b: b["data"]["targets"].pop(), 422, "shape_mismatch", "data.targets"),
        (lambda b: b["data"]["targets"].__setitem__(3, [1.0, 2.0]), 422, "shape_mismatch", "data.targets[3]"),
        (lambda b: b["data"]["targets"].__setitem__(4, ["x"]), 400, "bad_type", "data.targets[4][0]"),
        (lambda b: b["training"].update(loss="cross_entropy"), 422, "invalid_value", "training.loss")]:
    b = copy.deepcopy(model)
    b["name"] = "bad"
    if code != "invalid_value" or field != "training.loss" or b["training"]["loss"] == "mse":
        change(b)
    if field == "training.loss" and b["training"]["loss"] == "cross_entropy":
        b["network"]["layers"][1]["activation"] = "relu"  # cross_entropy on a relu output
    r = d.post("/v1/models", b)
    ok(r.status == status and r.error_code() == code and r.error_field() == field,
       "registration: %d %s naming %s" % (status, code, field), r)

# Errors name their field; a model without targets fails its job with no_training_data.
for b, status, code, field in [({"permutations": 0}, 422, "invalid_value", "permutations"),
                               ({"permutations": 10000}, 422, "invalid_value", "permutations"),
                               ({"permutations": "many"}, 400, "bad_type", "permutations"),
                               ({"statistic": "garson"}, 422, "invalid_value", "statistic"),
                               ({"seed": -1}, 422, "invalid_value", "seed"),
                               ({"bogus": 1}, 400, "unknown_field", "bogus")]:
    r = d.post("/v1/models/synth/significance", b)
    ok(r.status == status and r.error_code() == code and r.error_field() == field,
       "%s: %d %s naming %s" % (b, status, code, field), r)
plain = dict(model, name="plain", data={"samples": X})
plain.pop("training")
d.post("/v1/models", plain)
r = d.post("/v1/models/plain/significance", {"permutations": 9})
j = d.wait_job(r.json["job"]["id"]) if r.status == 202 else r
ok(j.json.get("state") == "failed" and j.json["error"]["code"] == "no_training_data",
   "a model registered without targets: the job fails with no_training_data", j)
r = d.post("/v1/models/none/significance", {})
ok(r.status == 404 and r.error_code() == "model_not_found", "an unknown model: 404", r)
d.stop()
done()
