#!/usr/bin/env python3
"""End to end: POST /v1/models/{name}/explanations over real HTTP against references computed
independently in PyTorch float64 (tests/data/explanations_ref.json, written by
tools/gen_explanations_ref.py): gradient, gradient x input, integrated gradients with every
quadrature rule and baseline (nodes from numpy there, from aced's own Newton iteration here),
ablation and connection weights, on a tanh/softplus network, a softmax classifier and a log_softmax
output; several methods at once; the
completeness property; ace (the causal attribution) beside them with the attributions route's very
numbers; and the errors that name their field."""

import copy
import json
import os

from acedtest import DATA, Daemon, done, fixture, fixture_body, ok

TOL = 1e-10
ref = json.load(open(os.path.join(DATA, "explanations_ref.json")))
d = Daemon().start()
r = d.post("/v1/models", fixture_body("mlp"))
ok(r.status == 201, "mlp registers", r)
sharp = fixture("sharp_classifier.json")
sharp["name"] = "sharp"
r = d.post("/v1/models", sharp)
ok(r.status == 201, "sharp registers", r)
logsm = fixture("log_softmax_mlp.json")
logsm.pop("reference", None)
logsm["name"] = "logsm"
r = d.post("/v1/models", logsm)
ok(r.status == 201, "logsm (log_softmax output) registers", r)
relusig = fixture("relu_sigmoid_mlp.json")
relusig["name"] = "relusig"
r = d.post("/v1/models", relusig)
ok(r.status == 201, "relusig (relu hidden layers, sigmoid outputs) registers", r)


def close(a, b):
    return all(abs(x - y) <= TOL * max(1.0, abs(y)) for x, y in zip(a, b)) and len(a) == len(b)


for m in ref["models"]:
    worst, bad = 0.0, []
    for c in m["cases"]:
        body = {"method": c["method"], "output": c["output"]}
        if "inputs" in c:
            body["inputs"] = c["inputs"]
        for key in ("baseline", "rule", "steps"):
            if key in c:
                body[key] = c[key]
        r = d.post("/v1/models/%s/explanations" % m["model"], body)
        got = (r.json or {}).get("attributions") if r.status == 200 else None
        good = got is not None and all(close(g, w) for g, w in zip(got, c["attributions"]))
        if good and "completeness_gap" in c:
            good = close(r.json["completeness_gap"], c["completeness_gap"])
        if good and "relative_importance" in c:
            good = close(r.json["relative_importance"], c["relative_importance"])
        if good and "baseline_row" in c:
            good = close(r.json["baseline"], c["baseline_row"])
        if got:
            worst = max([worst] + [abs(x - y) for g, w in zip(got, c["attributions"]) for x, y in zip(g, w)])
        if not good:
            bad.append((body, r.status, (r.json or {}).get("error")))
    ok(not bad, "%s: %d cases agree with PyTorch float64 to 1e-10 (worst abs diff %.2e)"
       % (m["model"], len(m["cases"]), worst), bad[:2])

# Integrated gradients with 64 Gauss-Legendre nodes: complete to rounding on smooth networks.
row = ref["models"][0]["cases"][0]["inputs"]
r = d.post("/v1/models/mlp/explanations", {"method": "integrated_gradients", "output": "y1", "inputs": row})
ok(r.status == 200 and max(abs(g) for g in r.json["completeness_gap"]) < 1e-12 and r.json["rule"] == "gauss_legendre"
   and r.json["steps"] == 64 and r.json["baseline_kind"] == "mean" and r.json["output"] == "y1",
   "defaults: gauss_legendre, 64 steps, the mean as baseline; completeness gap below 1e-12", r)

# Several methods at once: one block per method, in the order asked, each as if asked alone.
methods = ["ablation", "gradient", "integrated_gradients", "gradient_x_input", "connection_weights"]
r = d.post("/v1/models/sharp/explanations", {"methods": methods, "output": 2, "inputs": row, "baseline": "zeros"})
blocks = (r.json or {}).get("explanations", [])
ok(r.status == 200 and [b["method"] for b in blocks] == methods, "methods: blocks in the order asked", r)
same = True
for b in blocks:
    alone = d.post("/v1/models/sharp/explanations", {"method": b["method"], "output": 2, "inputs": row, "baseline": "zeros"})
    same &= alone.status == 200 and alone.json["attributions"] == b["attributions"]
ok(same, "each block equals the method asked alone")

# connection_weights ignores the inputs and answers one row; the others need inputs.
r1 = d.post("/v1/models/mlp/explanations", {"method": "connection_weights", "output": 1})
r2 = d.post("/v1/models/mlp/explanations", {"method": "connection_weights", "output": 1, "inputs": row})
ok(r1.status == 200 and r2.status == 200 and r1.json["attributions"] == r2.json["attributions"]
   and len(r1.json["attributions"]) == 1 and abs(sum(r1.json["relative_importance"]) - 1) < 1e-12,
   "connection_weights: one row whatever the inputs; Garson's importances sum to 1", r1)
r = d.post("/v1/models/mlp/explanations", {"methods": ["connection_weights", "gradient"], "output": 1})
ok(r.status == 400 and r.error_code() == "missing_field" and r.error_field() == "inputs",
   "gradient without inputs: 400 missing_field inputs", r)

# ace: the causal attribution beside the others, the very numbers POST .../attributions answers
# (the same regressors, whichever estimator), alone or in a list.
rows = [[0.2, 0.5, 0.6, 0.9], [0.1, 0.3, 0.3, 0.2]]
for est in ("taylor", "montecarlo", "auto", "unscented"):
    for model, out in (("mlp", "y1"), ("sharp", 2)):
        e = d.post("/v1/models/%s/explanations" % model,
                   {"method": "ace", "output": out, "inputs": rows, "estimator": est, "num": 40})
        a = d.post("/v1/models/%s/attributions" % model,
                   {"output": out, "inputs": rows, "estimator": est, "num": 40})
        ok(e.status == 200 and a.status == 200 and e.json["attributions"] == a.json["attributions"]
           and e.json["method"] == "ace" and e.json["meta"]["estimator"] == a.json["meta"]["estimator"]
           and e.json["features"] == a.json["features"],
           "ace (%s, %s) answers the attributions route's numbers" % (model, est), (e, a))
r = d.post("/v1/models/mlp/explanations", {"methods": ["gradient", "ace"], "output": "y1", "inputs": rows,
                                           "estimator": "montecarlo", "num": 40})
a = d.post("/v1/models/mlp/attributions", {"output": "y1", "inputs": rows, "estimator": "montecarlo", "num": 40})
blocks = (r.json or {}).get("explanations", [])
ok(r.status == 200 and [b["method"] for b in blocks] == ["gradient", "ace"]
   and blocks[1]["attributions"] == a.json["attributions"] and blocks[1]["estimator"] == "montecarlo",
   "methods [gradient, ace]: the ace block carries its estimator and the attributions' numbers", r)
r = d.post("/v1/models/mlp/explanations", {"method": "ace", "output": "y1"})
ok(r.status == 400 and r.error_field() == "inputs", "ace without inputs: 400 naming inputs", r)

# Errors name their field.
base = {"method": "gradient", "output": 0, "inputs": row}
for change, status, code, field, what in [
        ({"methods": ["gradient"]}, 422, "invalid_value", "method", "method and methods together"),
        ({"method": None}, 400, "missing_field", "method", "neither method nor methods"),
        ({"method": "saliency"}, 422, "invalid_value", "method", "an unknown method"),
        ({"method": "integrated_gradients", "steps": 0}, 422, "invalid_value", "steps", "steps 0"),
        ({"method": "integrated_gradients", "steps": 1025}, 422, "invalid_value", "steps", "steps over the cap"),
        ({"method": "integrated_gradients", "rule": "simpson"}, 422, "invalid_value", "rule", "an unknown rule"),
        ({"method": "integrated_gradients", "rule": "trapezoid", "steps": 1}, 422, "invalid_value", "steps",
         "a trapezoid of one node"),
        ({"method": "ablation", "baseline": [0.0, 1.0]}, 422, "shape_mismatch", "baseline", "a short baseline row"),
        ({"method": "ablation", "baseline": "median"}, 422, "invalid_value", "baseline", "an unknown baseline"),
        ({"inputs": [[0.1, 0.2]]}, 422, "shape_mismatch", "inputs[0]", "a short input row"),
        ({"output": "nope"}, 404, "unknown_output", "output", "an unknown output"),
        ({"steps": "many"}, 400, "bad_type", "steps", "steps not an integer"),
        ({"methods": []}, 400, "bad_type", "methods", "an empty methods list"),
        ({"bogus": 1}, 400, "unknown_field", "bogus", "an unknown field"),
        ({"method": "ace", "estimator": "exact"}, 422, "invalid_value", "estimator", "ace: an unknown estimator"),
        ({"method": "ace", "num": 1}, 422, "invalid_value", "num", "ace: a grid of one point"),
        ({"method": "ace", "max_order": "x"}, 400, "bad_type", "max_order", "ace: max_order not an integer")]:
    body = copy.deepcopy(base)
    for key, v in change.items():
        if v is None:
            body.pop(key, None)
        else:
            body[key] = v
    if "methods" in change and change["methods"] == []:
        body.pop("method")
    r = d.post("/v1/models/mlp/explanations", body)
    ok(r.status == status and r.error_code() == code and r.error_field() == field,
       "%s: %d %s naming %s" % (what, status, code, field), r)
r = d.post("/v1/models/none/explanations", base)
ok(r.status == 404 and r.error_code() == "model_not_found", "an unknown model: 404", r)
d.stop()
done()
