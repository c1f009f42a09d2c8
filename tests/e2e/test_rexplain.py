#!/usr/bin/env python3
"""End to end: POST /v1/models/{name}/explanations on recurrent models over real HTTP, against
references computed independently in PyTorch float64 (tests/data/rexplain_ref.json, written by
tools/gen_rexplain_ref.py from the models of tests/data/recurrent_ref.json): gradient,
gradient_x_input, integrated_gradients with every rule and baseline (mean, zeros, domain_low, an
explicit sequence) and ablation, for GRU, LSTM, Elman tanh and relu cells, stacked or not, with
and without feedback, output_at last and every (output_timestep); the completeness of integrated
gradients within the quadrature error; ace beside them (the attributions route's numbers);
connection_weights refused naming the method; the errors that name their field; concurrent
clients; and an ONNX-imported model getting every method."""

import base64
import json
import os
import threading

from acedtest import DATA, Daemon, done, ok

TOL = 1e-10
ref = json.load(open(os.path.join(DATA, "rexplain_ref.json")))
d = Daemon().start()


def err(r):
    e = (r.json or {}).get("error") or {}
    return r.status, e.get("code"), e.get("field")


def flat(a):
    if isinstance(a, list):
        return [y for x in a for y in flat(x)]
    return [a]


def diff(got, want):
    g, w = flat(got), flat(want)
    if len(g) != len(w):
        return float("inf")
    return max([abs(x - y) / max(1.0, abs(y)) for x, y in zip(g, w)] + [0.0])


for c in ref["cases"]:
    r = d.post("/v1/models", c["model"])
    ok(r.status == 201, "%s registers" % c["name"], r)

worst = {}
for c in ref["cases"]:
    name, fb = c["name"], c["model"]["network"]["feedback"]
    path = "/v1/models/%s/explanations" % name
    base = {"output": c["output"], "inputs": c["inputs"]}
    if c["output_timestep"] is not None:
        base["output_timestep"] = c["output_timestep"]
    bad = []
    for q in c["requests"]:
        methods = ["integrated_gradients"]
        if q["rule"] == "gauss_legendre":
            methods = ["gradient", "gradient_x_input", "integrated_gradients", "ablation"]
        body = dict(base, methods=methods, baseline=q["baseline"], rule=q["rule"], steps=q["steps"])
        r = d.post(path, body)
        if r.status != 200:
            bad.append((q["baseline"], q["rule"], r.status, (r.json or {}).get("error")))
            continue
        blocks = {b["method"]: b for b in r.json["explanations"]}
        checks = [("integrated_gradients", blocks["integrated_gradients"]["attributions"], q["integrated_gradients"]),
                  ("completeness_gap", blocks["integrated_gradients"]["completeness_gap"], q["completeness_gap"])]
        if "ablation" in q:
            checks += [("gradient", blocks["gradient"]["attributions"], c["gradient"]),
                       ("gradient_x_input", blocks["gradient_x_input"]["attributions"], c["gradient_x_input"]),
                       ("ablation", blocks["ablation"]["attributions"], q["ablation"]),
                       ("baseline", blocks["ablation"]["baseline"], q["baseline_row"])]
        for what, got, want in checks:
            e = diff(got, want)
            worst[what] = max(worst.get(what, 0.0), e)
            if not e <= TOL:
                bad.append((what, q["baseline"] if isinstance(q["baseline"], str) else "given", q["rule"], e))
        b = blocks["gradient" if "gradient" in blocks else "integrated_gradients"]
        shape = [len(b["attributions"]), len(b["attributions"][0]), len(b["attributions"][0][0])]
        want_shape = [len(c["inputs"]), len(c["inputs"][0]), len(c["inputs"][0][0])]
        if shape != want_shape or b["output"] != c["output"] or \
                b["output_timestep"] != (c["output_timestep"] if c["output_timestep"] is not None
                                         else len(c["inputs"][0]) - 1) or \
                (fb and not b.get("warnings")):
            bad.append(("shape/output/warnings", shape, b.get("output_timestep")))
    ok(not bad, "%s (%s, feedback %s, output_at %s): %d requests agree with PyTorch float64 to 1e-10"
       % (name, c["model"]["network"]["cell"], fb, c["model"]["network"]["output_at"], len(c["requests"])),
       bad[:3])
ok(all(v <= TOL for v in worst.values()),
   "worst relative differences: " + ", ".join("%s %.2e" % kv for kv in sorted(worst.items())))

# Completeness: without feedback, 64 Gauss-Legendre nodes leave a gap at the torch quadrature's,
# below 1e-12; with feedback each step's attribution is of its own function and the gap is the
# reference's (not zero: said in a warning).
for c in ref["cases"]:
    body = {"method": "integrated_gradients", "output": c["output"], "inputs": c["inputs"]}
    if c["output_timestep"] is not None:
        body["output_timestep"] = c["output_timestep"]
    r = d.post("/v1/models/%s/explanations" % c["name"], body)
    fb = c["model"]["network"]["feedback"]
    good = r.status == 200 and diff(r.json["completeness_gap"], c["gap_gauss_legendre_64"]) <= 1e-9
    if not fb:
        good = good and max(abs(g) for g in r.json["completeness_gap"]) < 1e-12
    ok(good, "%s: completeness gap with 64 Gauss-Legendre nodes %s" % (
        c["name"], "below 1e-12" if not fb else "as torch's (feedback)"),
        r.json.get("completeness_gap") if r.json else r)

# Steps after output_timestep do not reach the output: zero there.
every = next(c for c in ref["cases"] if c["output_timestep"] is not None)
r = d.post("/v1/models/%s/explanations" % every["name"],
           {"method": "gradient", "output": every["output"], "output_timestep": 0, "inputs": every["inputs"]})
ok(r.status == 200 and all(v == 0 for row in r.json["attributions"] for step in row[1:] for v in step)
   and any(v != 0 for row in r.json["attributions"] for v in row[0]) and r.json["output_timestep"] == 0,
   "output_timestep 0: only step 0 has a gradient", r)

# ace beside them: the attributions route's very numbers (all_timesteps: every step).
last = ref["cases"][0]
body = {"output": last["output"], "inputs": last["inputs"][:1], "all_timesteps": True,
        "estimator": "montecarlo", "num": 8}
att = d.post("/v1/models/%s/attributions" % last["name"], body)
r = d.post("/v1/models/%s/explanations" % last["name"], dict(body, methods=["ace", "gradient"]))
ok(att.status == 200 and r.status == 200 and r.json["explanations"][0]["attributions"] == att.json["attributions"]
   and r.json["explanations"][0]["estimator"] == "montecarlo",
   "ace on a recurrent model: the attributions route's numbers, rows x T x features", (att, r))

# Errors name their field.
c0 = ref["cases"][0]
path = "/v1/models/%s/explanations" % c0["name"]
T, I = len(c0["inputs"][0]), len(c0["inputs"][0][0])
r = d.post(path, {"method": "connection_weights", "output": c0["output"]})
ok(err(r) == (422, "invalid_value", "method") and "recurrent" in r.json["error"]["message"],
   "connection_weights on a recurrent model: 422 naming method, saying why", r)
r = d.post(path, {"methods": ["gradient", "connection_weights"], "output": c0["output"], "inputs": c0["inputs"]})
ok(err(r) == (422, "invalid_value", "methods[1]"), "connection_weights among methods: 422 naming methods[1]", r)
r = d.post(path, {"method": "gradient", "output": c0["output"], "inputs": [c0["inputs"][0][:-1]]})
ok(err(r) == (422, "shape_mismatch", "inputs[0]"), "a sequence one step short: 422 naming inputs[0]", r)
r = d.post(path, {"method": "ablation", "output": c0["output"], "inputs": c0["inputs"], "baseline": [[0.0] * I] * (T + 1)})
ok(err(r) == (422, "shape_mismatch", "baseline"), "a baseline sequence of the wrong length: 422 naming baseline", r)
r = d.post(path, {"method": "ablation", "output": c0["output"], "inputs": c0["inputs"], "baseline": [0.0] * (T * I)})
ok(err(r) == (422, "shape_mismatch", "baseline"), "a flat baseline for a recurrent model: 422 naming baseline", r)
r = d.post(path, {"method": "gradient", "output": c0["output"], "inputs": c0["inputs"], "output_timestep": 1})
ok(err(r) == (422, "invalid_value", "output_timestep"), "output_timestep with output_at last: 422", r)
r = d.post("/v1/models/%s/explanations" % every["name"],
           {"method": "gradient", "output": every["output"], "inputs": every["inputs"], "output_timestep": 99})
ok(err(r) == (422, "invalid_value", "output_timestep"), "output_timestep out of range: 422", r)
r = d.post(path, {"method": "gradient", "output": c0["output"], "inputs": [[[1e308] * I] * T]})
ok(r.status in (200, 422) and (r.status == 200 or err(r)[2].startswith("inputs[0]")),
   "huge inputs: an answer or a 422 naming the input, never a crash", r)
r = d.post(path, {"method": "gradient", "output": c0["output"], "inputs": [[["x"] * I] * T]})
ok(err(r)[0] == 400 and err(r)[2] == "inputs[0][0][0]", "a string in a sequence: 400 naming it", r)

# Concurrent clients: the same answers as alone.
fbc = next(c for c in ref["cases"] if c["model"]["network"]["feedback"])
body = {"methods": ["gradient", "integrated_gradients", "ablation"], "output": fbc["output"],
        "inputs": fbc["inputs"], "steps": 6}
if fbc["output_timestep"] is not None:
    body["output_timestep"] = fbc["output_timestep"]
alone = d.post("/v1/models/%s/explanations" % fbc["name"], body).json["explanations"]
results = []


def client():
    for _ in range(3):
        rr = d.post("/v1/models/%s/explanations" % fbc["name"], body)
        results.append(rr.status == 200 and rr.json["explanations"] == alone)


threads = [threading.Thread(target=client) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ok(len(results) == 18 and all(results), "6 concurrent clients x 3 requests: the same answers as alone")

# ONNX-imported models become the JSON network: every method answers, as for the JSON twin.
ONNX = os.path.join(DATA, "onnx")


def b64(name):
    with open(os.path.join(ONNX, name), "rb") as f:
        return base64.b64encode(f.read()).decode()


ALL = ["gradient", "gradient_x_input", "integrated_gradients", "ablation", "connection_weights", "ace"]
ff = json.load(open(os.path.join(ONNX, "ff_ref.json")))
c = next(c for c in ff["cases"] if c["name"].startswith("ff_tanh_softmax"))
outs = ["y%d" % i for i in range(c["n_outputs"])]
for name, net in (("onnx_ff", {"type": "onnx", "model": b64(c["file"])}), ("onnx_ff_json", c["network"])):
    r = d.post("/v1/models", {"name": name, "features": c["features"], "outputs": outs,
                              "data": {"samples": c["samples"]}, "network": net})
    ok(r.status == 201, "%s (%s) registers" % (name, c["file"]), r)
rows = c["samples"][:3]
body = {"methods": ALL, "output": "y1", "inputs": rows, "estimator": "montecarlo", "num": 8}
a = d.post("/v1/models/onnx_ff/explanations", body)
b = d.post("/v1/models/onnx_ff_json/explanations", body)
ok(a.status == 200 and [x["method"] for x in a.json["explanations"]] == ALL
   and all(len(x["attributions"][0]) == len(c["features"]) for x in a.json["explanations"])
   and b.status == 200 and [x["attributions"] for x in a.json["explanations"]]
   == [x["attributions"] for x in b.json["explanations"]],
   "an ONNX-imported feedforward model: every method, the JSON twin's numbers", (a, b))
rnn = json.load(open(os.path.join(ONNX, "rnn_ref.json")))
for c in rnn["cases"][:3]:
    r = d.post("/v1/models", {"name": "onnx_" + c["name"], "features": c["features"],
                              "network": {"type": "onnx", "model": b64(c["file"])},
                              "data": {"sequences": c["sequences"]}})
    ok(r.status == 201, "%s registers" % c["file"], r)
    every = c["network"].get("output_at") == "every"
    body = {"methods": [m for m in ALL if m != "connection_weights"], "output": 0,
            "inputs": c["sequences"][:2], "estimator": "montecarlo", "num": 8, "all_timesteps": True}
    if every:
        body["output_timestep"] = c["sequence_length"] - 2
    r = d.post("/v1/models/onnx_%s/explanations" % c["name"], body)
    blocks = r.json.get("explanations", []) if r.status == 200 else []
    T, I = c["sequence_length"], len(c["features"])
    good = len(blocks) == 5 and all(len(x["attributions"]) == 2 and len(x["attributions"][0]) == T
                                    and len(x["attributions"][0][0]) == I for x in blocks)
    if good and not c["network"].get("feedback"):
        good = max(abs(g) for g in blocks[2]["completeness_gap"]) < 1e-10
    ok(good, "an ONNX-imported %s: gradient, gradient_x_input, integrated_gradients (complete), "
       "ablation and ace answer rows x T x features" % c["name"], r)
ok(d.alive(), "daemon alive")
d.stop()
done()
