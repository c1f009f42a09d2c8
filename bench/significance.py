#!/usr/bin/env python3
"""bench/significance.py -- time the randomization test (POST .../significance) end to end: a
10-input, 1-hidden-layer (10-16-1 tanh) network with 500 samples and targets, 999 permutations of
the registered training (mse, 50 epochs, batch 32, Adam), one and two workers.  Prints a markdown
fragment (figures: wall time of the job, the daemon's CPU time from /proc, retrainings per CPU
second).  `--smoke` runs 9 permutations of 2 epochs.  Standard library only; the daemon is the
build's (ACED_BUILDDIR), started by tests/e2e/acedtest.py."""

import json
import math
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from acedtest import Daemon  # noqa: E402


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    smoke = "--smoke" in sys.argv
    perms, epochs = (9, 2) if smoke else (999, 50)
    rng = random.Random(15)
    K, H, N = 10, 16, 500
    X = [[rng.uniform(-2, 2) for _ in range(K)] for _ in range(N)]
    Y = [[math.tanh(x[0]) + 0.5 * x[1] - 0.3 * x[2] * x[3] + rng.gauss(0, 0.1)] for x in X]
    model = {"name": "bench", "features": [{"name": "x%d" % i, "low": -2.0, "high": 2.0} for i in range(K)],
             "outputs": ["y"],
             "network": {"type": "feedforward", "layers": [
                 {"weights": [[rng.uniform(-0.3, 0.3) for _ in range(K)] for _ in range(H)],
                  "bias": [0.0] * H, "activation": "tanh"},
                 {"weights": [[rng.uniform(-0.3, 0.3) for _ in range(H)]], "bias": [0.0], "activation": "identity"}]},
             "data": {"samples": X, "targets": Y},
             "training": {"loss": "mse", "epochs": epochs, "learning_rate": 0.01, "batch_size": 32,
                          "weight_decay": 0.01, "seed": 1}}
    rows = []
    for workers in (1, 2):
        d = Daemon(args=["--workers=%d" % workers]).start()
        r = d.post("/v1/models", model)
        assert r.status == 201, r
        c0, t0 = cpu_seconds(d.proc.pid), time.time()
        r = d.post("/v1/models/bench/significance", {"permutations": perms, "statistic": "connection_weights",
                                                      "seed": 7})
        assert r.status == 202, r
        j = d.wait_job(r.json["job"]["id"], timeout=3600)
        wall, cpu = time.time() - t0, cpu_seconds(d.proc.pid) - c0
        assert j.json["state"] == "done", j.json
        res = j.json["result"]["results"]
        rows.append((workers, wall, cpu, (perms + 1) / cpu, {e["feature"]: e["p_value"] for e in res}))
        d.stop()
    print("| workers | permutations | wall s | daemon CPU s | retrainings per CPU s |")
    print("|---|---|---|---|---|")
    for w, wall, cpu, rate, _ in rows:
        print("| %d | %d | %.2f | %.2f | %.0f |" % (w, perms, wall, cpu, rate))
    p = rows[0][4]
    print()
    print("p-values (one worker; y = tanh(x0) + 0.5 x1 - 0.3 x2 x3 + noise): " +
          ", ".join("%s %.3f" % (f, p[f]) for f in sorted(p, key=lambda s: int(s[1:]))) +
          "; the same with two workers: %s." % ("yes" if rows[0][4] == rows[1][4] else "NO"))
    if rows[0][4] != rows[1][4]:
        sys.exit(1)


main()
