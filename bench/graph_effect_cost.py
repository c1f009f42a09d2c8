#!/usr/bin/env python3
"""graph_effect_cost.py -- what a total-effect regressor costs against a direct one (issue 14
target: at most 2x with montecarlo).  Registers tests/data/scm_mlp.json (3 features, 1000
samples, a 16-unit MLP) with its graph under several names (distinct descriptions, so distinct
digests and cold caches), then times GET .../regressors/y/{feature}?estimator=montecarlo&num=N
with effect=direct and effect=total on fresh models: meta.elapsed_ms of cache misses, the
median over the repetitions.  Prints one line per feature and the ratio.  Standard library only.

    graph_effect_cost.py [--reps 5] [--num 100]
"""
import argparse
import copy
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from acedtest import DATA, Daemon  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--num", type=int, default=100)
    a = ap.parse_args()
    spec = json.load(open(os.path.join(DATA, "scm_mlp.json")))
    d = Daemon().start()
    times = {"direct": [], "total": []}
    for rep in range(a.reps):
        for eff in ("direct", "total"):
            body = copy.deepcopy(spec["model"])
            body["name"] = "m%d%s" % (rep, eff)
            body["description"] = "cost %d %s" % (rep, eff)
            body["graph"] = {"edges": spec["reference"]["edges"]}
            assert d.post("/v1/models", body).status == 201
            d.get("/v1/models/%s" % body["name"])  # load it first: the time is the regressor's
            r = d.get("/v1/models/%s/regressors/y/w?estimator=montecarlo&num=%d&effect=%s" %
                      (body["name"], a.num, eff))
            assert r.status == 200 and r.json["meta"]["cache"] == "miss", r
            times[eff].append(r.json["meta"]["elapsed_ms"])
    d.stop()
    md, mt = statistics.median(times["direct"]), statistics.median(times["total"])
    print("montecarlo regressor, num=%d, 1000 samples, median of %d cache misses: direct %.3f ms, "
          "total %.3f ms, ratio %.2f" % (a.num, a.reps, md, mt, mt / md))


if __name__ == "__main__":
    main()
