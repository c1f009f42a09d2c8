#!/usr/bin/env python3
"""End to end: a causal graph among the inputs (issue 14) over real HTTP.

The model is tests/data/scm_mlp.json (tools/gen_graph_ref.py): an MLP trained on the linear
Gaussian SCM w -> z, w -> x, z -> x, registered with 1000 samples drawn from it.  Checked:
  - registration with "graph": the graph is in GET /v1/models/{name} and GET .../graph with the
    least-squares weights PyTorch fitted on the same samples; it changes the digest; cycles are 422
    cyclic_graph naming every feature of the cycle, unknown names 422 naming the edge;
  - effects: montecarlo direct and total agree with PyTorch float64 on the same samples (1e-9:
    the same algorithm, computed independently); taylor total agrees with f(mu') + 1/2 tr(H S')
    over the re-generated inputs; indirect = total - direct;
  - total effects match E[f | do(w = a)] of the TRUE SCM (Monte Carlo over 400,000 draws) within
    the estimator's own sampling error: |aced - truth| <= 4 sqrt(sd^2 + se^2), sd the spread of
    the same estimator over 300 replicate data sets, se the reference's standard error;
  - total and direct differ as the issue says: the total effect of w falls, the direct one rises;
  - defaults (total with a graph, direct without) and meta.effect / effect_reason;
  - PUT .../graph makes a new version with a new digest, and a regressor cached under the old
    graph is never served under the new one (cache miss, different curve);
  - total or indirect without a graph: 422 no_graph naming "effect";
  - concurrent clients asking for total regressors of the same model (one view prepared, shared).
"""

import copy
import json
import os
import threading

from acedtest import DATA, Daemon, done, ok

spec = json.load(open(os.path.join(DATA, "scm_mlp.json")))
ref = spec["reference"]
A = ref["alphas"]
d = Daemon().start()

body = copy.deepcopy(spec["model"])
body["name"] = "nog"
r = d.post("/v1/models", body)
ok(r.status == 201, "model without a graph registers", r)
nog_digest = r.json["digest"]
body["name"] = "scm"
body["graph"] = {"edges": ref["edges"]}
r = d.post("/v1/models", body)
ok(r.status == 201, "model with a graph registers", r)
ok(r.json["digest"] != nog_digest, "the graph is part of the digest")
scm_digest = r.json["digest"]
body2 = copy.deepcopy(body)
body2["name"] = "scm2"
body2["graph"] = {"edges": list(reversed(ref["edges"]))}
r = d.post("/v1/models", body2)
ok(r.status == 201 and r.json["digest"] == scm_digest,
   "edge order does not change the digest", r)

# ---- validation ----
bad = copy.deepcopy(body)
bad["graph"] = {"edges": [["w", "z"], ["z", "x"], ["x", "w"]]}
r = d.post("/v1/models", bad)
msg = (r.json or {}).get("error", {}).get("message", "")
cycle = msg.split(": ", 1)[-1].split(" -> ")
ok(r.status == 422 and r.error_code() == "cyclic_graph" and r.error_field() == "graph.edges" and
   len(cycle) == 4 and cycle[0] == cycle[-1] and sorted(cycle[:3]) == ["w", "x", "z"] and
   all(e in [["w", "z"], ["z", "x"], ["x", "w"]] for e in zip(cycle, cycle[1:]) for e in [list(e)]),
   "a cycle is 422 cyclic_graph naming every feature of it in order: " + msg, r)
bad["graph"] = {"edges": [["w", "w"]]}
r = d.post("/v1/models", bad)
ok(r.status == 422 and r.error_code() == "cyclic_graph", "a self-loop is a cycle", r)
bad["graph"] = {"edges": [["w", "z"], ["w", "nope"]]}
r = d.post("/v1/models", bad)
ok(r.status == 422 and r.error_field() == "graph.edges[1][1]" and "nope" in str(r.json),
   "an unknown feature name is 422 naming the edge", r)
bad["graph"] = {"edges": [["w", "z"], ["w", "z"]]}
r = d.post("/v1/models", bad)
ok(r.status == 422 and r.error_field() == "graph.edges[1]", "a duplicate edge is 422", r)
bad["graph"] = {"edges": [["w"]]}
r = d.post("/v1/models", bad)
ok(r.status == 422 and r.error_field() == "graph.edges[0]", "an edge of one name is 422", r)
bad["graph"] = {"edges": [], "source": "learned"}
r = d.post("/v1/models", bad)
ok(r.status == 400 and r.error_field() == "graph.source", "clients cannot claim a learned graph", r)
bad["graph"] = [["w", "z"]]
r = d.post("/v1/models", bad)
ok(r.status == 400 and r.error_field() == "graph", "a graph that is not an object is 400", r)

# ---- the graph in metadata and GET .../graph ----
r = d.get("/v1/models/scm")
g = (r.json or {}).get("graph") or {}
ok(r.status == 200 and g.get("source") == "given" and len(g.get("edges", [])) == 3,
   "GET /v1/models/{name} shows the graph", r)
ok(d.get("/v1/models/nog").json.get("graph") is None, "no graph: graph is null")
r = d.get("/v1/models/scm/graph")
ok(r.status == 200, "GET .../graph", r)
wts = {"%s->%s" % (e["from"], e["to"]): e["weight"] for e in r.json["edges"]}
ok(all(abs(wts[k] - v) < 1e-9 for k, v in ref["weights"].items()),
   "edge weights are the least-squares fit (PyTorch lstsq on the same samples)", (wts, ref["weights"]))
r = d.get("/v1/models/nog/graph")
ok(r.status == 404, "GET .../graph without a graph is 404", r)


def interv(model, est, effect=None):
    b = {"output": "y", "feature": "w", "values": A, "estimator": est}
    if effect:
        b["effect"] = effect
    return d.post("/v1/models/%s/interventions" % model, b)


def close(a, b, tol):
    return len(a) == len(b) and all(abs(x - y) <= tol * max(1.0, abs(y)) for x, y in zip(a, b))


r = interv("scm", "montecarlo", "direct")
ok(r.status == 200 and close(r.json["expectations"], ref["direct_mc"], 1e-9),
   "direct montecarlo = PyTorch on the same samples", r)
ok(r.json["meta"]["effect"] == "direct" and r.json["meta"]["effect_reason"] == "requested",
   "meta says direct, requested")
direct = r.json["expectations"]
r = interv("scm", "montecarlo", "total")
ok(r.status == 200 and close(r.json["expectations"], ref["total_mc"], 1e-9),
   "total montecarlo = PyTorch re-generation from fitted equations and kept residuals", r)
total = r.json["expectations"]
r = interv("scm", "montecarlo")
ok(r.status == 200 and r.json["meta"]["effect"] == "total" and "graph" in
   r.json["meta"]["effect_reason"] and close(r.json["expectations"], total, 1e-15),
   "default with a graph: total, and meta says why", r)
r = interv("nog", "montecarlo")
ok(r.status == 200 and r.json["meta"]["effect"] == "direct" and close(r.json["expectations"], direct, 1e-12),
   "default without a graph: direct", r)
r = interv("scm", "montecarlo", "indirect")
ok(r.status == 200 and close(r.json["expectations"], [t - u for t, u in zip(total, direct)], 1e-9),
   "indirect = total - direct", r)
r = interv("scm", "taylor", "total")
ok(r.status == 200 and close(r.json["expectations"], ref["total_taylor"], 1e-8),
   "total taylor = f(mu') + 1/2 tr(H S') over the re-generated inputs (PyTorch Hessian)", r)

tol = [4 * (s * s + e * e) ** 0.5 for s, e in zip(ref["sd_estimator"], ref["se_truth"])]
gaps = [abs(x - y) for x, y in zip(total, ref["truth"])]
ok(all(g <= t for g, t in zip(gaps, tol)),
   "total effects match the true SCM's E[f | do(w = a)] within 4 sampling sd (gaps %s, tol %s)"
   % (["%.3f" % g for g in gaps], ["%.3f" % t for t in tol]))
ok(total[-1] < total[0] and direct[-1] > direct[0] and abs(total[-1] - direct[-1]) > 1,
   "the total effect of w falls while the direct one rises")

r = interv("nog", "montecarlo", "total")
ok(r.status == 422 and r.error_code() == "no_graph" and r.error_field() == "effect",
   "total without a graph: 422 no_graph naming effect", r)
r = interv("scm", "montecarlo", "sideways")
ok(r.status == 422 and r.error_field() == "effect", "unknown effect: 422 naming effect", r)

# ---- regressors and attributions ----
r = d.get("/v1/models/scm/regressors/y/w?estimator=montecarlo&num=20&effect=total")
ok(r.status == 200 and r.json["effect"] == "total" and r.json["meta"]["effect"] == "total",
   "total regressor", r)
tot_reg = r.json
r = d.get("/v1/models/scm/regressors/y/w?estimator=montecarlo&num=20")
ok(r.status == 200 and r.json["meta"]["cache"] == "hit" and r.json["meta"]["effect_reason"] != "requested",
   "default regressor with a graph is the cached total one", r)
r = d.get("/v1/models/scm/regressors/y/w?estimator=montecarlo&num=20&effect=direct")
ok(r.status == 200 and r.json["meta"]["cache"] == "miss" and r.json["effect"] == "direct" and
   r.json["coefficients"] != tot_reg["coefficients"], "direct regressor is cached apart", r)
r = d.get("/v1/models/scm/regressors/y/w?effect=bogus")
ok(r.status == 400 and r.error_field() == "effect", "bad effect query parameter is 400", r)
r = d.get("/v1/models/nog/regressors/y/w?effect=indirect")
ok(r.status == 422 and r.error_code() == "no_graph", "indirect regressor without a graph: 422", r)
ab = {"output": "y", "inputs": [[1.0, 0.5, 1.0]], "estimator": "montecarlo", "num": 20}
r = d.post("/v1/models/scm/attributions", dict(ab, effect="total"))
ok(r.status == 200 and r.json["meta"]["effect"] == "total", "total attributions", r)
ta = r.json["attributions"][0]
r = d.post("/v1/models/scm/attributions", dict(ab, effect="direct"))
ok(r.status == 200 and r.json["meta"]["effect"] == "direct" and r.json["attributions"][0] != ta,
   "direct attributions differ", r)
r = d.post("/v1/models/scm/attributions", dict(ab, effect="total"))
ok(r.status == 200 and r.json["meta"]["cache"] == "hit" and r.json["attributions"][0] == ta,
   "total attributions from the cache", r)

# ---- PUT .../graph: a new version; nothing fitted under the old graph is served ----
r = d.request("PUT", "/v1/models/scm/graph", {"edges": [["w", "z"]]})
ok(r.status == 201 and r.json["version"] == 2 and r.json["digest"] != scm_digest,
   "PUT .../graph stores a new version under a new digest", r)
r = d.request("PUT", "/v1/models/scm/graph", {"edges": [["w", "z"]]})
ok(r.status == 200 and r.json["created"] is False, "the same graph again: 200, not created", r)
r = d.get("/v1/models/scm/regressors/y/w?estimator=montecarlo&num=20&effect=total")
ok(r.status == 200 and r.json["meta"]["cache"] == "miss" and
   r.json["coefficients"] != tot_reg["coefficients"],
   "the total regressor under the new graph is fitted anew, not served from the old", r)
r = d.get("/v1/models/scm/graph")
ok(r.status == 200 and [(e["from"], e["to"]) for e in r.json["edges"]] == [("w", "z")]
   and r.json["version"] == 2, "GET .../graph shows the new graph", r)
r = d.request("PUT", "/v1/models/scm/graph", {"edges": [["z", "w"], ["w", "z"]]})
ok(r.status == 422 and r.error_code() == "cyclic_graph" and r.error_field() == "edges",
   "PUT with a cycle: 422", r)
r = d.request("PUT", "/v1/models/scm/graph", {"edges": [["z", "q"]]})
ok(r.status == 422 and r.error_field() == "edges[0][1]", "PUT with an unknown name: 422 naming it", r)
r = d.request("PUT", "/v1/models/scm/graph", {"edges": [], "extra": 1})
ok(r.status == 400 and r.error_field() == "extra", "PUT with an unknown field: 400", r)
r = d.request("PUT", "/v1/models/nosuch/graph", {"edges": []})
ok(r.status == 404, "PUT on an unknown model: 404", r)

# ---- concurrent clients: the total-effect views are prepared once and shared ----
body3 = copy.deepcopy(body)
body3["name"] = "conc"
body3["description"] = "concurrency"
ok(d.post("/v1/models", body3).status == 201, "conc registers")
res, lock = [], threading.Lock()


def client(i):
    f = ["w", "z", "x"][i % 3]
    rr = d.get("/v1/models/conc/regressors/y/%s?estimator=montecarlo&num=10&effect=%s" %
               (f, ["total", "indirect"][i % 2]))
    with lock:
        res.append((f, i % 2, rr.status, (rr.json or {}).get("coefficients")))


ts = [threading.Thread(target=client, args=(i,)) for i in range(12)]
for t in ts:
    t.start()
for t in ts:
    t.join()
same = {}
for f, e, st, c in res:
    same.setdefault((f, e), set()).add(json.dumps(c))
ok(all(st == 200 for _, _, st, _ in res) and all(len(v) == 1 for v in same.values()),
   "12 concurrent clients on total/indirect regressors: all 200, identical per key",
   [(f, e, st) for f, e, st, _ in res])
ok(d.alive(), "daemon still running")
done()
