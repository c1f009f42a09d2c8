#!/usr/bin/env python3
"""Regression (issue 9, "wrong answers under concurrency"): identical requests in flight share one job
(single flight), and different requests never do.  Output and feature names may be 128 characters;
the regressor GET's single-flight key must tell apart names that differ only after character 60.

A model with three outputs whose names share their first 70 characters ('o' * 70 + '_a', '_b', '_c')
and one feature named likewise; a fresh daemon (nothing cached); then rounds of concurrent
GET /v1/models/{name}/regressors/{output}/{feature}, one or more per output, released together by a
barrier, each round on a (feature, num) not fitted before so that every round is a cache miss and a
job (montecarlo over the 200 samples, large num, so that the jobs overlap).  Every reply must be the
regressor of the output it asked for.
"""

import threading

from acedtest import Daemon, diag, done, fixture_body, ok

PREFIX = "o" * 70
OUTPUTS = [PREFIX + "_a", PREFIX + "_b", PREFIX + "_c"]
FPREFIX = "f" * 90
ROUNDS = 6
PER_OUTPUT = 2  # concurrent GETs per output and round

body = fixture_body("sf")
body["outputs"] = list(OUTPUTS)
FEATURES = [FPREFIX + "_%d" % i for i in range(len(body["features"]))]
for f, name in zip(body["features"], FEATURES):
    f["name"] = name
ok(all(len(n) <= 128 for n in OUTPUTS + FEATURES), "names are within the 128-character limit")

d = Daemon(args=["--workers=2"]).start()
r = d.post("/v1/models", body)
ok(r.status == 201, "a model whose output names differ only after character 70 registers", r)


def fetch(path, out, i, barrier):
    barrier.wait()
    try:
        r = d.get(path, timeout=120)
        if r.status == 202 and r.json:  # waited longer than sync_wait_ms: follow the job
            r = d.wait_job(r.json["job"]["id"])
            out[i] = (r.status, (r.json or {}).get("result"), r.raw[:300])
        else:
            out[i] = (r.status, r.json, r.raw[:300])
    except OSError as e:
        out[i] = (None, None, repr(e))


wrong, failed, total = [], [], 0
for rnd in range(ROUNDS):
    feature = FEATURES[rnd % len(FEATURES)]
    num = 3000 + rnd  # a (feature, num) never fitted before: a miss, so a job
    asks = [o for o in OUTPUTS for _ in range(PER_OUTPUT)]
    out = [None] * len(asks)
    barrier = threading.Barrier(len(asks))
    threads = [threading.Thread(target=fetch, args=(
        "/v1/models/sf/regressors/%s/%s?estimator=montecarlo&num=%d" % (o, feature, num), out, i, barrier))
        for i, o in enumerate(asks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for asked, (status, j, raw) in zip(asks, out):
        total += 1
        if status != 200 or not isinstance(j, dict):
            failed.append((rnd, asked[-2:], status, raw))
        elif j.get("output") != asked or j.get("feature") != feature:
            wrong.append("round %d: asked %s...%s, got output %s...%s" % (
                rnd, asked[:3], asked[-2:], str(j.get("output"))[:3], str(j.get("output"))[-2:]))

ok(not failed, "every concurrent regressor GET answers 200 (%d of %d did not)" % (len(failed), total), failed[:5])
ok(not wrong, "every reply is the regressor of the output it asked for (%d of %d were another output's)"
   % (len(wrong), total), "\n".join(wrong[:12]))

# The three regressors really differ (so a mix-up cannot go unseen), and later cached answers agree.
feature, num = FEATURES[0], 3000
regs = [d.get("/v1/models/sf/regressors/%s/%s?estimator=montecarlo&num=%d" % (o, feature, num)).json or {} for o in OUTPUTS]
ok([g.get("output") for g in regs] == OUTPUTS and len({tuple(g.get("coefficients", [])) for g in regs}) == 3,
   "sequential GETs answer each output with its own, distinct regressor", [g.get("output", "")[-2:] for g in regs])

ok(d.alive(), "daemon alive")
ok(d.stop() == 0, "clean shutdown")
diag("log tail:\n" + "\n".join(d.read_log().splitlines()[-3:]))
d.cleanup()
done()
