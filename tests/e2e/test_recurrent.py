#!/usr/bin/env python3
"""End to end: recurrent networks (issue #12) over real HTTP.

Against references computed independently in PyTorch float64 (tests/data/recurrent_ref.json,
written by tools/gen_recurrent_ref.py with torch.nn.GRU / LSTM / RNN): interventions by montecarlo
(with feedback: Algorithm 2's re-simulation) and taylor (Eq. 4 with torch's Hessian) at every
output step, their standard errors, and the time lag in GET /v1/models/{name}; registration
(idempotent, the single-layer and the stacked form are one content), shape errors naming the field
and the expected shape, the timestep parameters of the query routes and their errors, regressors
cached per timestep, regressor jobs and attributions limited to the lag, concurrent clients on
one prepared model, and the paper's synthetic task (App. A.6.1): a GRU trained on it has large
effects at steps 0..2 and near zero after."""

import copy
import json
import os
import threading

from acedtest import DATA, Daemon, done, fixture_body, ok

TOL = 1e-10
ref = json.load(open(os.path.join(DATA, "recurrent_ref.json")))
d = Daemon().start()


def err(r):
    e = (r.json or {}).get("error", {})
    return r.status, e.get("code"), e.get("field")


# ---- registration, metadata, lag ----
for c in ref["cases"]:
    body = c["model"]
    name = body["name"]
    r = d.post("/v1/models", body)
    ok(r.status == 201, "%s registers" % name, r)
    digest = r.json.get("digest") if r.json else None
    r = d.post("/v1/models", body)
    ok(r.status == 200 and r.json.get("digest") == digest, "%s: the same body again is 200 with the same digest" % name, r)
    r = d.get("/v1/models/" + name)
    md = r.json or {}
    net = md.get("network", {})
    ok(r.status == 200 and net.get("type") == "recurrent" and net.get("cell") == body["network"]["cell"]
       and md.get("sequence_length") == body["sequence_length"]
       and len(md.get("features", [])) == body["network"]["input_size"]
       and md.get("outputs") == body["outputs"], "%s: metadata describes the recurrent network" % name, md)
    lag = md.get("lag", {})
    per = lag.get("per_timestep", [])
    ok(len(per) == body["sequence_length"]
       and max(abs(a - b) for a, b in zip(per, c["lag"]["per_timestep"])) <= TOL
       and abs(lag.get("tau_mean", -1) - c["lag"]["tau"]) <= 1e-12
       and lag.get("tau") == -int(-c["lag"]["tau"] // 1) and lag.get("threshold") == 1e-6,
       "%s: lag per_timestep and tau agree with torch's jacobian" % name, lag)

lst = {m["name"]: m for m in d.get("/v1/models").json["models"]}
ok(all(lst[c["model"]["name"]]["n_features"] == c["model"]["network"]["input_size"]
       and lst[c["model"]["name"]]["n_outputs"] == len(c["model"]["outputs"]) for c in ref["cases"]),
   "the model list counts the per-step features and outputs", lst)

# a one-layer network in the stacked form is the same content
c0 = copy.deepcopy(ref["cases"][0]["model"])
netw = c0["network"]
netw["layers"] = [{k: netw.pop(k) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}]
r1 = d.get("/v1/models/" + c0["name"])
r = d.post("/v1/models", c0)
ok(r.status == 200 and r.json.get("digest") == r1.json.get("digest"),
   "the stacked form of a one-layer network has the same digest (200, not a new version)", r)

# ---- interventions against torch ----
for c in ref["cases"]:
    body = c["model"]
    name, T, O = body["name"], body["sequence_length"], len(body["outputs"])
    every = body["network"]["output_at"] == "every"
    worst = {"montecarlo": 0.0, "taylor": 0.0, "stderr": 0.0}
    steps = range(T) if every else [None]
    good = True
    for q in c["queries"]:
        for est in ("montecarlo", "taylor"):
            for s in steps:
                for o in range(O):
                    req = {"output": o, "feature": q["feature"], "timestep": q["timestep"],
                           "values": q["alphas"], "estimator": est}
                    if s is not None:
                        req["output_timestep"] = s
                    r = d.post("/v1/models/%s/interventions" % name, req)
                    if r.status != 200:
                        good = ok(False, "%s: interventions answer" % name, r)
                        continue
                    col = (s * O + o) if every else o
                    want = [row[col] for row in q[est]]
                    got = r.json["expectations"]
                    worst[est] = max(worst[est], max(abs(a - b) for a, b in zip(got, want)))
                    good &= r.json.get("timestep") == q["timestep"] and r.json.get("output_timestep") == (T - 1 if s is None else s)
                    if est == "montecarlo":
                        se = [row[col] for row in q["stderr"]]
                        worst["stderr"] = max(worst["stderr"], max(abs(a - b) for a, b in zip(r.json["stderr"], se)))
    ok(good and worst["montecarlo"] <= TOL and worst["stderr"] <= TOL,
       "%s: montecarlo and its stderr agree with torch%s (max diff %.3g, %.3g)"
       % (name, " (Algorithm 2 re-simulation)" if body["network"]["feedback"] else "",
          worst["montecarlo"], worst["stderr"]))
    ok(good and worst["taylor"] <= TOL,
       "%s: taylor (Eq. 4 on the unrolled network) agrees with torch's hessian (max diff %.3g)"
       % (name, worst["taylor"]))

# ---- query errors ----
last = ref["cases"][0]["model"]["name"]        # output_at last, T 5
every = ref["cases"][1]["model"]["name"]       # output_at every, T 4
base = {"output": 0, "feature": 0, "values": [0.5]}
r = d.post("/v1/models/%s/interventions" % last, base)
ok(err(r) == (400, "missing_field", "timestep"), "interventions without timestep: 400 naming timestep", r)
r = d.post("/v1/models/%s/interventions" % last, dict(base, timestep=5))
ok(err(r) == (422, "invalid_value", "timestep"), "timestep = sequence_length: 422 naming timestep", r)
r = d.post("/v1/models/%s/interventions" % last, dict(base, timestep=-1))
ok(err(r) == (422, "invalid_value", "timestep"), "negative timestep: 422", r)
r = d.post("/v1/models/%s/interventions" % last, dict(base, timestep="1"))
ok(err(r)[0] == 400 and err(r)[2] == "timestep", "a string timestep: 400", r)
r = d.post("/v1/models/%s/interventions" % last, dict(base, timestep=1, output_timestep=2))
ok(err(r) == (422, "invalid_value", "output_timestep"), "output_timestep with output_at last: 422", r)
r = d.post("/v1/models/%s/interventions" % every, dict(base, timestep=1, output_timestep=4))
ok(err(r) == (422, "invalid_value", "output_timestep"), "output_timestep out of range: 422", r)
r = d.post("/v1/models", fixture_body("mlp"))
ok(r.status in (200, 201), "a feedforward model registers", r)
r = d.post("/v1/models/mlp/interventions", {"output": 0, "feature": 0, "values": [0.5], "timestep": 0})
ok(err(r) == (422, "invalid_value", "timestep"), "timestep on a feedforward model: 422", r)
r = d.post("/v1/models/mlp/attributions", {"output": 0, "inputs": [[[0.1, 0.2, 0.3, 0.4]] * 4]})
ok(err(r) == (422, "shape_mismatch", "inputs[0]"), "sequences as inputs of a feedforward model: 422", r)
r = d.post("/v1/models/mlp/explanations", {"method": "gradient", "output": 0, "inputs": [[[0.1, 0.2, 0.3, 0.4]] * 4]})
ok(err(r) == (422, "shape_mismatch", "inputs[0]"), "explanations of a feedforward model take rows, not sequences: 422", r)
r = d.post("/v1/models/%s/explanations" % last, {"method": "gradient", "output": 0, "inputs": [[0.1] * 10]})
ok(err(r) == (422, "shape_mismatch", "inputs[0]"), "explanations of a recurrent model take sequences: 422 naming the row", r)

# ---- regressors: GET per timestep, cached ----
path = "/v1/models/%s/regressors/y0/x1?num=12&estimator=montecarlo" % last
r1 = d.get(path + "&timestep=3")
r2 = d.get(path + "&timestep=3")
r3 = d.get(path + "&timestep=1")
ok(r1.status == 200 and r1.json["meta"]["cache"] == "miss" and r2.json["meta"]["cache"] == "hit"
   and r3.json["meta"]["cache"] == "miss" and r1.json["timestep"] == 3 and r3.json["timestep"] == 1
   and r1.json["feature_index"] == 1 and r1.json["curve"] != r3.json["curve"],
   "regressor GET with ?timestep: fitted, then cached per timestep", (r1, r3))
grid = [p["x"] for p in r1.json["points"]]
r = d.post("/v1/models/%s/interventions" % last, {"output": 0, "feature": 1, "timestep": 3, "values": grid,
                                                 "estimator": "montecarlo"})
ok(r.status == 200 and len(grid) == 12
   and max(abs(a - p["expectation"]) for a, p in zip(r.json["expectations"], r1.json["points"])) <= 1e-12,
   "the regressor's points are the interventions at that timestep", r)
r = d.get(path)
ok(err(r) == (400, "missing_field", "timestep"), "regressor GET without timestep: 400", r)
r = d.get(path + "&timestep=x")
ok(err(r) == (400, "bad_parameter", "timestep"), "regressor GET with timestep=x: 400 bad_parameter", r)
r = d.get("/v1/models/%s/regressors/y1/x0?num=10&timestep=1&output_timestep=2" % every)
ok(r.status == 200 and r.json["output_timestep"] == 2 and r.json["output_index"] == 1,
   "regressor GET with output_timestep (output_at every)", r)

# ---- shape errors at registration ----
def bad(mut, field, what, code="shape_mismatch", status=422, case=0):
    b = copy.deepcopy(ref["cases"][case]["model"])
    b["name"] = "bad"
    mut(b)
    r = d.post("/v1/models", b)
    ok(err(r) == (status, code, field), "%s: %d %s naming %s" % (what, status, code, field), r)
    return r


r = bad(lambda b: b["network"]["weight_hh"].pop(), "network.weight_hh", "weight_hh missing a row")
ok("9 x 3" in r.json["error"]["message"], "the message gives the expected shape (9 x 3)", r.json)
bad(lambda b: b["network"]["weight_ih"][0].append(0.0), "network.weight_ih[0]", "weight_ih row too long")
bad(lambda b: b["network"]["bias_hh"].pop(), "network.bias_hh", "bias_hh too short")
bad(lambda b: b["network"]["layers"][1]["weight_ih"][0].pop(), "network.layers[1].weight_ih[0]",
    "a stacked layer's weight_ih", case=1)
bad(lambda b: b["network"].update(input_size=3), "network.input_size", "input_size != features")
bad(lambda b: b["network"].update(cell="gru2"), "network.cell", "unknown cell", "invalid_value")
bad(lambda b: b["network"].update(output_at="first"), "network.output_at", "bad output_at", "invalid_value")
bad(lambda b: b.pop("sequence_length"), "sequence_length", "no sequence_length", "missing_field", 400)
bad(lambda b: b["data"]["sequences"][3].pop(), "data.sequences[3]", "a sequence one step short")
bad(lambda b: b["data"]["sequences"][3][1].append(1.0), "data.sequences[3][1]", "a step with 3 values")
bad(lambda b: (b["network"]["head"][-1]["weights"].append([0.0] * 2), b["network"]["head"][-1]["bias"].append(0.0)),
    "network.head[1].weights", "head with more units than outputs")
bad(lambda b: b["network"].update(feedback=True), "network.feedback",
    "feedback with head outputs != input_size")
bad(lambda b: b.update(data={"mean": [0.0] * 10, "covariance": [[float(i == j) for j in range(10)] for i in range(10)]}),
    "data.sequences", "feedback without sequences", "missing_field", 400, case=2)
bad(lambda b: b.update(data={"mean": [0.0] * 9, "covariance": [[0.0] * 9] * 9}), "data.mean",
    "mean over the wrong number of flattened inputs")
bad(lambda b: b["network"].update(layers=[]), "network.layers", "layers and single keys together",
    "invalid_value")
r = d.post("/v1/models", dict(copy.deepcopy(ref["cases"][0]["model"]), name="mc",
                              data={"mean": [0.0] * 10, "covariance": [[float(i == j) for j in range(10)] for i in range(10)]}))
ok(r.status == 201, "a recurrent model without feedback may give mean and covariance instead of sequences", r)
r = d.post("/v1/models/mc/interventions", dict(base, timestep=2, estimator="taylor"))
ok(r.status == 200, "and answers taylor", r)

# ---- lag: jobs and attributions skip the steps beyond it ----
T = 6
short = {"name": "short", "features": [{"name": "u", "low": -1, "high": 1}], "outputs": ["y"],
         "sequence_length": T,
         "network": {"type": "recurrent", "cell": "rnn_tanh", "input_size": 1, "hidden_size": 2,
                     "weight_ih": [[0.9], [-0.7]], "weight_hh": [[0.0005, 0.0], [0.0, 0.0005]],
                     "bias_ih": [0.1, 0.0], "bias_hh": [0.0, 0.05],
                     "head": [{"weights": [[1.0, -0.5]], "bias": [0.0], "activation": "identity"}]},
         "data": {"sequences": [[[((7 * s + 3 * t) % 11) / 6.0 - 0.8] for t in range(T)] for s in range(40)]}}
r = d.post("/v1/models", short)
ok(r.status == 201, "a network with a short memory registers", r)
lag = d.get("/v1/models/short").json.get("lag", {})
ok(lag.get("tau") == 1, "its lag is 1 step (recurrent weights 5e-4: the gradient two steps back is 2e-7 of the last)", lag)
r = d.post("/v1/models/short/regressors", {"num": 10, "estimator": "montecarlo"})
j = d.wait_job(r.json["job"]["id"]).json if r.status == 202 else {}
res = j.get("result", {})
ok(res.get("timesteps") == [4, 5] and res.get("regressors") == 2 and res.get("warnings"),
   "a regressors job covers the steps within the lag and says so", j)
r = d.post("/v1/models/short/regressors", {"num": 10, "estimator": "montecarlo", "all_timesteps": True})
j = d.wait_job(r.json["job"]["id"]).json if r.status == 202 else {}
ok(j.get("result", {}).get("timesteps") == list(range(T)), "all_timesteps: every step", j)
seqs = short["data"]["sequences"][:3]
r = d.post("/v1/models/short/attributions", {"output": "y", "inputs": seqs, "num": 10, "estimator": "montecarlo"})
a = (r.json or {}).get("attributions")
ok(r.status == 200 and len(a) == 3 and all(len(row) == T and all(len(st) == 1 for st in row) for row in a)
   and all(row[t][0] == 0 for row in a for t in range(4)) and any(row[5][0] != 0 for row in a)
   and r.json["timesteps"] == [4, 5] and any("lag" in w for w in r.json["meta"]["warnings"]),
   "attributions are rows x T x features, zero beyond the lag, and say so", r)
r2 = d.post("/v1/models/short/attributions", {"output": "y", "inputs": seqs, "num": 10, "estimator": "montecarlo"})
ok(r2.status == 200 and r2.json["attributions"] == a and r2.json["meta"]["cache"] == "hit",
   "the same attributions again come from the cache", r2)
r = d.post("/v1/models/short/attributions", {"output": "y", "inputs": [[[0.1]] * 5], "num": 10})
ok(err(r) == (422, "shape_mismatch", "inputs[0]"), "a sequence one step short: 422 naming inputs[0]", r)

# ---- concurrent clients on one prepared recurrent model ----
name = ref["cases"][3]["model"]["name"]  # rnn_relu, every, feedback
req = {"output": 0, "feature": 0, "timestep": 2, "output_timestep": 5, "values": [-1.0, 0.0, 1.0],
       "estimator": "montecarlo"}
first = d.post("/v1/models/%s/interventions" % name, req).json
answers, lock = [], threading.Lock()


def client():
    for _ in range(5):
        r = d.post("/v1/models/%s/interventions" % name, req)
        with lock:
            answers.append(r.json if r.status == 200 else r.status)


threads = [threading.Thread(target=client) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ok(len(answers) == 40 and all(isinstance(a, dict) and a["expectations"] == first["expectations"] for a in answers),
   "8 concurrent clients x 5 interventions on one recurrent model: 40 identical answers")

# ---- the paper's synthetic task (App. A.6.1) ----
syn = json.load(open(os.path.join(DATA, "recurrent_synthetic.json")))
r = d.post("/v1/models", syn["model"])
ok(r.status == 201, "the GRU trained on the synthetic task registers (training accuracy %.4f)" % syn["accuracy"], r)
effects = []
for t in range(10):
    r = d.post("/v1/models/synthetic/interventions", {"output": 0, "feature": 0, "timestep": t,
                                                      "values": [-1.0, 1.0], "estimator": "montecarlo"})
    e = r.json["expectations"] if r.status == 200 else [0, 0]
    effects.append(e[1] - e[0])
ok(effects[0] > 0.1 and min(effects[:3]) > 10 * max(abs(e) for e in effects[3:]),
   "synthetic task: do(x^t) moves the class probability at t = 0..2, hardly after",
   " ".join("%.3g" % e for e in effects))
r = d.post("/v1/models/synthetic/attributions", {"output": 0, "all_timesteps": True, "num": 20,
                                                 "estimator": "montecarlo",
                                                 "inputs": syn["model"]["data"]["sequences"][:4]})
a = (r.json or {}).get("attributions", [])
ok(r.status == 200 and all(max(abs(row[t][0]) for t in range(3)) > 3 * max(abs(row[t][0]) for t in range(3, 10))
                           for row in a),
   "synthetic task: the attribution map is largest on the first three steps", a[:1])
done()
