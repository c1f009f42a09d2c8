#!/usr/bin/env python3
"""End to end: what pipeline engineers met registering real models (issue 10) -- constant features
(a one-point domain, accepted, reported, skipped by all-feature jobs with a note, a 422 naming the
feature when asked for), attributions and regressor jobs for several outputs at once ("outputs"), and
names with '/' addressed as %2F in a path segment."""

import copy

from acedtest import Daemon, done, fixture_body, ok


def answer(d, r):
    """A 200 reply, or the result of the job a 202 handed over."""
    if r.status == 202:
        jr = d.wait_job(r.json["job"]["id"])
        return jr.json.get("result") if jr.status == 200 and jr.json["state"] == "done" else jr
    return r.json if r.status == 200 else r


d = Daemon(args=["--workers=2"]).start()

# ---- constant features ----
body = fixture_body("const")
body["features"][2] = {"name": "border", "low": 0.25, "high": 0.25}
del body["data"]["mean"], body["data"]["covariance"]
for row in body["data"]["samples"]:
    row[2] = 0.25
r = d.post("/v1/models", body)
ok(r.status == 201, "a model with a constant feature (low == high) registers", r)
r = d.get("/v1/models/const")
fs = r.json["features"] if r.status == 200 else []
ok(len(fs) == 4 and fs[2].get("constant") is True and all("constant" not in f for f in fs[:2] + fs[3:]),
   "its metadata marks that feature \"constant\": true", r)

inputs = [[0.1, 0.2, 0.25, 0.4], [0.9, 0.5, 0.25, 0.3]]
for est in ("taylor", "montecarlo"):
    q = {"output": "y1", "inputs": inputs, "estimator": est, "num": 40}
    a = answer(d, d.post("/v1/models/const/attributions", q))
    ok(isinstance(a, dict) and a.get("features") == ["x0", "x1", "x3"] and len(a["attributions"][0]) == 3
       and any("border" in w and "constant" in w for w in a["meta"]["warnings"]),
       "%s attributions without \"features\" skip the constant one, with a note in warnings" % est, a)
    # the cached path (the HTTP thread's) says the same
    r = d.post("/v1/models/const/attributions", q)
    ok(r.status == 200 and r.json["meta"]["cache"] == "hit" and r.json["features"] == ["x0", "x1", "x3"]
       and any("border" in w for w in r.json["meta"]["warnings"]),
       "%s: the cached reply skips it with the same note" % est, r)

r = d.post("/v1/models/const/attributions", {"output": "y1", "inputs": inputs, "features": ["x0", "border"]})
ok(r.status == 422 and r.error_field() == "features[1]" and "border" in r.json["error"]["message"]
   and "constant" in r.json["error"]["message"], "asking for its attribution: 422 naming the feature", r)
r = d.get("/v1/models/const/regressors/y0/border")
ok(r.status == 422 and r.error_field() == "feature" and "border" in r.json["error"]["message"],
   "asking for its regressor: 422 naming the feature", r)
r = d.get("/v1/models/const/regressors/y0/2")
ok(r.status == 422 and "border" in r.json["error"]["message"], "by index too", r)
r = d.post("/v1/models/const/regressors", {"features": ["border"]})
ok(r.status in (202, 422), "a regressors job naming it", r)
if r.status == 202:
    jr = d.wait_job(r.json["job"]["id"])
    ok(jr.json["state"] == "failed" and "border" in jr.json["error"]["message"], "fails naming the feature", jr)
r = d.post("/v1/models/const/regressors", {"estimator": "taylor", "num": 30})
jr = d.wait_job(r.json["job"]["id"]) if r.status == 202 else r
res = jr.json.get("result", {}) if jr.status == 200 else {}
ok(jr.json.get("state") == "done" and res.get("features") == ["x0", "x1", "x3"] and res.get("regressors") == 9
   and any("border" in w for w in res.get("warnings", [])),
   "an all-feature regressors job skips it, with a note in the result's warnings", jr)
r = d.post("/v1/models/const/interventions", {"output": "y0", "feature": "border", "values": [0.25],
                                               "estimator": "montecarlo"})
ok(r.status == 200, "interventions on it still answer (do(x = a) is defined for any a)", r)
bad = fixture_body("bad")
bad["features"][1]["low"] = 2.0
r = d.post("/v1/models", bad)
ok(r.status == 422 and r.error_field() == "features[1].low", "low > high is still refused", r)

# ---- several outputs at once ----
r = d.post("/v1/models", fixture_body("multi"))
ok(r.status == 201, "fixture registers as 'multi'", r)
inputs = [[0.1, 0.2, 0.3, 0.4], [0.9, 0.5, 0.1, 0.3], [0.5, 0.5, 0.5, 0.5]]
q = {"outputs": ["y2", 0], "inputs": inputs, "estimator": "taylor", "num": 60}
cold = answer(d, d.post("/v1/models/multi/attributions", q))
ok(isinstance(cold, dict) and [b.get("output") for b in cold.get("results", [])] == ["y2", "y0"],
   "\"outputs\": one block per output, in the order asked (fitted by a job)", cold)
hot = d.post("/v1/models/multi/attributions", q)
ok(hot.status == 200 and [b["meta"]["cache"] for b in hot.json["results"]] == ["hit", "hit"],
   "the same request again is answered from the cache", hot)
same = True
for blk, o in zip(cold.get("results", []), ("y2", "y0")):
    one = d.post("/v1/models/multi/attributions", {"output": o, "inputs": inputs, "estimator": "taylor", "num": 60})
    same = same and one.status == 200 and "results" not in one.json and all(
        one.json[key] == blk[key] for key in ("output", "features", "attributions", "baselines", "estimators"))
ok(same, "each block is exactly the single-output reply for that output (\"output\" unchanged)")
hotb = hot.json["results"] if hot.status == 200 else []
ok(len(hotb) == 2 and all(hotb[i]["attributions"] == cold["results"][i]["attributions"] for i in range(2)),
   "cached and fitted replies agree number for number")
r = d.post("/v1/models/multi/attributions", {"outputs": ["y1"], "features": ["x3", "x0"], "inputs": inputs,
                                             "estimator": "taylor", "num": 60})
ok(r.status in (200, 202), "a subset of features with one output in \"outputs\"", r)
a = answer(d, r)
ok(isinstance(a, dict) and len(a["results"]) == 1 and a["results"][0]["features"] == ["x3", "x0"],
   "answers {\"results\": [one block]}", a)
for bad, status, field in (({"output": "y0", "outputs": ["y1"]}, 422, "outputs"),
                           ({}, 400, "output"),
                           ({"outputs": ["y0", "nope"]}, 404, "outputs[1]"),
                           ({"outputs": ["y0", "y0"]}, 422, "outputs[1]"),
                           ({"outputs": []}, 400, "outputs")):
    b = dict(bad, inputs=inputs)
    r = d.post("/v1/models/multi/attributions", b)
    ok(r.status == status and r.error_field() == field, "attributions %s: %d naming %s" % (bad, status, field), r)

# A regressors job with several outputs fits each of them, in the order asked, and each is then a
# cache hit of the regressor GET.
r = d.post("/v1/models/multi/regressors", {"outputs": ["y1", "y2"], "features": ["x2"], "estimator": "taylor",
                                           "num": 40})
jr = d.wait_job(r.json["job"]["id"]) if r.status == 202 else r
res = jr.json.get("result", {}) if jr.status == 200 else {}
ok(r.status == 202 and jr.json.get("state") == "done" and res.get("outputs") == ["y1", "y2"] and
   res.get("features") == ["x2"] and res.get("regressors") == 2 and res.get("computed") == 2,
   "a regressors job with \"outputs\": [\"y1\", \"y2\"] fits both", jr)
hits = [d.get("/v1/models/multi/regressors/%s/x2?estimator=taylor&num=40" % o) for o in ("y1", "y2")]
ok(all(h.status == 200 and h.json["meta"]["cache"] == "hit" for h in hits) and
   hits[0].json["curve"] != hits[1].json["curve"],
   "each output's regressor is then served from the cache, and they differ", [h.json.get("meta") for h in hits])

# ---- names with '/' (scikit-learn's wine: od280/od315_of_diluted_wines), addressed as %2F ----
body = fixture_body("wine")
body["features"][1]["name"] = "od280/od315_of_diluted_wines"
body["features"][2]["name"] = "100%"
body["features"][3]["name"] = "a%2Fb"
body["outputs"][0] = "class/0"
r = d.post("/v1/models", body)
ok(r.status == 201, "names with '/' and '%' register", r)
r = d.get("/v1/models/wine/regressors/class%2F0/od280%2Fod315_of_diluted_wines?num=20&estimator=taylor")
ok(r.status == 200 and r.json.get("feature") == "od280/od315_of_diluted_wines" and r.json.get("output") == "class/0",
   "GET .../regressors/class%2F0/od280%2Fod315_of_diluted_wines: %2F decodes to '/' within its segment", r)
r = d.get("/v1/models/wine/regressors/class%2f0/1?num=20&estimator=taylor")
ok(r.status == 200 and r.json.get("feature") == "od280/od315_of_diluted_wines", "lower-case %2f too", r)
r = d.get("/v1/models/wine/regressors/class/0/od280%2Fod315_of_diluted_wines")
ok(r.status == 404 and r.error_code() == "not_found", "a raw '/' still separates segments (no such route)", r)
r = d.get("/v1/models/wine/regressors/class%2F0/100%25?num=20&estimator=taylor")
ok(r.status == 200 and r.json.get("feature") == "100%", "%25 decodes to '%' within its segment", r)
r = d.get("/v1/models/wine/regressors/class%2F0/a%252Fb?num=20&estimator=taylor")
ok(r.status == 200 and r.json.get("feature") == "a%2Fb", "%252F is a literal '%2F', decoded once, not twice", r)
r = d.get("/v1/models/wine%00x")
ok(r.status in (400, 404) and r.error_code() != None and "wine" != (r.json or {}).get("name"),
   "%00 is still not decoded (a%00b is not served as a)", r)
r = d.get("/v1%2Fmodels")
ok(r.status == 404, "%2F does not join route segments: /v1%2Fmodels is no route", r)
r = d.get("/v1/model%73/wine")
ok(r.status == 200 and r.json.get("name") == "wine", "other escapes still decode before routing", r)

d.stop()
done()
