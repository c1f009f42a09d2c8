#!/usr/bin/env python3
"""End to end: what a regressor's band means when its points come from Monte Carlo.

Each Monte Carlo point averages the same samples, so the points' errors are correlated along the
grid; the regressor fit takes that covariance as known noise (engine/regressor.c,
eng_regressor_fit_known), and the curve's std is then the uncertainty about the interventional
expectation itself.  Checked against the truth of a known distribution (tests/data/band_ref.json,
tools/gen_band_ref.py: Gaussian inputs, a 3-6-1 tanh/sigmoid network, E[y | do(x_i = a)] by
Gauss-Hermite quadrature): over R independent sets of 200 samples, the share of curve points whose
truth lies within 1.96 std of the curve's mean is close to 95% (and within 1 std close to 68%: the
band is not merely wide); the band is of the size of the Monte Carlo standard error, not hundreds of
times smaller; the chosen orders are not at the cap; the regressor says which noise it took."""

import json
import os

from acedtest import DATA, Daemon, done, ok

ref = json.load(open(os.path.join(DATA, "band_ref.json")))
d = Daemon(args=["--workers=2"]).start()
xs, truth = ref["curve_x"], ref["truth"]
in95 = in68 = total = 0
ratios, orders, noises, runs95 = [], [], set(), []
for r, samples in enumerate(ref["sample_sets"]):
    body = dict(ref["model"])
    body["name"] = "band%d" % r
    body["data"] = {"samples": samples}
    reg = d.post("/v1/models", body)
    if reg.status != 201:
        ok(False, "sample set %d registers" % r, reg)
        continue
    hit = 0
    for i in range(3):
        g = d.get("/v1/models/band%d/regressors/p/x%d?estimator=montecarlo&num=50" % (r, i))
        if g.status != 200:
            ok(False, "regressor band%d/x%d" % (r, i), g)
            continue
        j = g.json
        noises.add(j["band"]["noise"])
        orders.append(j["order"])
        for c, pt in enumerate(j["curve"]):
            assert abs(pt["x"] - xs[c]) < 1e-12
            err = abs(pt["mean"] - truth[i][c])
            in95 += err <= 1.96 * pt["std"]
            in68 += err <= pt["std"]
            hit += err <= 1.96 * pt["std"]
            total += 1
        se = sum(p["stderr"] for p in j["points"]) / len(j["points"])
        ratios.append(sum(pt["std"] for pt in j["curve"]) / len(j["curve"]) / se)
    runs95.append(hit / (3.0 * len(xs)))
    d.delete("/v1/models/band%d" % r)
c95, c68 = in95 / float(total), in68 / float(total)
ok(noises == {"montecarlo_covariance"}, "every regressor took the Monte Carlo covariance as known noise", noises)
ok(0.85 <= c95 <= 0.995, "truth within 1.96 std at %.1f%% of %d curve points over %d sample sets (nominal 95%%)"
   % (100 * c95, total, len(ref["sample_sets"])), sorted(runs95))
ok(0.5 <= c68 <= 0.85, "truth within 1 std at %.1f%% (nominal 68%%): the band is not merely wide" % (100 * c68))
ok(min(ratios) > 0.2 and max(ratios) < 5,
   "the band is of the size of the Monte Carlo standard error (mean std / mean stderr in [%.2f, %.2f])"
   % (min(ratios), max(ratios)))
ok(max(orders) < 20, "no order at the cap of 20 (orders %d..%d)" % (min(orders), max(orders)))

# Deterministic points keep the fitted noise (and their numbers).
body = dict(ref["model"])
body["name"] = "bandt"
body["data"] = {"mean": ref["mean"], "covariance": ref["covariance"]}
d.post("/v1/models", body)
g = d.get("/v1/models/bandt/regressors/p/x0?estimator=taylor&num=50")
ok(g.status == 200 and g.json["band"]["noise"] == "fitted" and g.json["band"]["misfit_std"] > 0,
   "taylor points: the band is the fitted misfit ('fitted')", g)
d.stop()
done()
