#!/usr/bin/env python3
"""graph_bench.py -- structure learning (issue 14): aced's learner (bench/bench_graph, the engine's
eng_learn_dag on one thread) against the reference implementations of DAGMA
(kevinsbello/dagma, src/dagma/linear.py) and NOTEARS (xunzheng/notears, notears/linear.py), run
side by side on the same data with Debian's numpy and scipy, OPENBLAS_NUM_THREADS=1.

The peers are never copied into aced's tree: their source folders come from the environment,
    DAGMA_SRC    a folder holding dagma/linear.py   (e.g. the src/ of a checkout)
    NOTEARS_SRC  a folder holding notears/linear.py (the root of a checkout)
and a peer whose variable is unset is skipped.  A checkout from the `fetch` tool's read-only mirror:
    git --git-dir=/work/.mirror/kevinsbello+dagma/repo archive HEAD src | tar -x -C /tmp/dagma
(DAGMA_SRC=/tmp/dagma/src).  DAGMA's progress bar (tqdm, not in Debian's python3 here) is replaced
by a no-op stub module written to a temporary folder.

Data: Erdos-Renyi DAGs with exactly the given number of edges (uniform over node pairs, random
order), weights uniform on [-2, -0.5] U [0.5, 2], Gaussian noise of variance 1 (the identifiable
case), n = 1000.  Metrics as notears.utils.count_accuracy defines them: SHD = extra + missing +
reversed edges, TPR = correctly oriented true edges / true edges, FPR = (reversed + extra) /
(d (d - 1) / 2 - true edges).  Time: the learner's CPU time (process_time for the peers, the
learner thread's CPU clock for aced), one core each.  Parameters: lambda1 0.02 for both DAGMA
flavours (DAGMA's README example), 0.1 for both NOTEARS flavours (NOTEARS's own example),
threshold 0.3 everywhere; DAGMA with its fit() defaults otherwise.

    graph_bench.py [--out FILE] [--smoke] [--seeds 1,2,3] [--no-scale]

Needs numpy (and scipy for the peers).  --smoke: d = 10, one seed, aced only unless peers are set,
a few seconds.
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

BUILD = os.environ.get("ACED_BUILDDIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PEER_TIMEOUT = 600

PEER_RUNNER = r"""
import os, sys, time
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np
kind, src, xfile, wfile, lam = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
sys.path.insert(0, src)
X = np.loadtxt(xfile, skiprows=1)
if kind == "dagma":
    from dagma.linear import DagmaLinear
    t0 = time.process_time()
    W = DagmaLinear(loss_type="l2").fit(X, lambda1=lam, w_threshold=0.3)
else:
    from notears.linear import notears_linear
    t0 = time.process_time()
    W = notears_linear(X, lambda1=lam, loss_type="l2", w_threshold=0.3)
t = time.process_time() - t0
np.savetxt(wfile, W)
print("cpu_seconds %.6f" % t)
"""

TQDM_STUB = """class tqdm:
    def __init__(self, *a, **k): pass
    def __enter__(self): return self
    def __exit__(self, *a): return False
    def update(self, *a, **k): pass
    def close(self): pass
"""


def simulate(d, e, n, seed):
    rng = np.random.default_rng(seed)
    pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
    pick = rng.choice(len(pairs), size=e, replace=False)
    perm = rng.permutation(d)
    B = np.zeros((d, d))
    for k in pick:
        i, j = pairs[k]
        B[perm[i], perm[j]] = rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0])
    X = np.zeros((n, d))
    for j in perm:  # a topological order: edges go from perm[i] to perm[j], i < j
        X[:, j] = X @ B[:, j] + rng.normal(size=n)
    return B, X


def accuracy(B, W):
    T, E = B != 0, W != 0
    d = B.shape[0]
    cond = int(T.sum())
    true_pos = int((E & T).sum())
    reverse = int((E & T.T & ~T).sum())
    extra = int((E & ~T & ~T.T).sum())
    missing = int((T & ~E & ~E.T).sum())
    # SHD counts a pair once: extra + missing + reversed
    shd = extra + missing + reverse
    fpr = (reverse + extra) / max(d * (d - 1) / 2 - cond, 1)
    return {"shd": shd, "tpr": true_pos / max(cond, 1), "fpr": fpr, "edges": int(E.sum())}


def write_x(path, X):
    with open(path, "w") as fh:
        fh.write("%d %d\n" % X.shape)
        np.savetxt(fh, X, fmt="%.17g")


def run_aced(method, lam, xfile, wfile):
    try:
        out = subprocess.run([os.path.join(BUILD, "bench", "bench_graph"), method, str(lam), "0.3", xfile,
                              wfile], capture_output=True, text=True, timeout=PEER_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, None
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    t = float(out.stdout.split()[1])
    return t, np.loadtxt(wfile, ndmin=2)


def run_peer(kind, src, lam, xfile, wfile, stub):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=stub)
    try:
        out = subprocess.run([sys.executable, "-c", PEER_RUNNER, kind, src, xfile, wfile, str(lam)],
                             capture_output=True, text=True, timeout=PEER_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        return None, None
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    t = float(out.stdout.strip().split()[-1])
    return t, np.loadtxt(wfile, ndmin=2)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--no-scale", action="store_true")
    ap.add_argument("--extra", help="a file of lines to append (the effect-cost measurement)")
    ap.add_argument("--resume", help="a log of an interrupted run (this script's stdout): its "
                    "lines are kept and their runs not repeated")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    peers = {k: os.environ.get(v) for k, v in (("dagma", "DAGMA_SRC"), ("notears", "NOTEARS_SRC"))}
    cases = [(10, 15, seeds[:1])] if a.smoke else [(20, 40, seeds), (50, 100, seeds)]
    scale = [] if (a.smoke or a.no_scale) else [(100, 200, seeds[:1]), (200, 400, seeds[:1])]
    tmp = tempfile.mkdtemp(prefix="aced-graph-bench.")
    stub = os.path.join(tmp, "stub")
    os.makedirs(os.path.join(stub, "tqdm"))
    open(os.path.join(stub, "tqdm", "__init__.py"), "w").write(TQDM_STUB)
    open(os.path.join(stub, "tqdm", "auto.py"), "w").write("from tqdm import tqdm\n")
    rows = []
    if a.resume:
        for line in open(a.resume):
            f = line.split()
            if len(f) >= 11 and f[0].startswith("d=") and f[-2] == "FPR":
                name = " ".join(f[3:-8])
                rows.append((int(f[0][2:]), int(f[1][2:]), int(f[2][5:]), name, float(f[-8]),
                             {"shd": int(f[-5]), "tpr": float(f[-3]), "fpr": float(f[-1])}))
                print(line.rstrip(), flush=True)
    done_runs = {r[:4] for r in rows}
    for (d, e, ss), is_scale in [(c, False) for c in cases] + [(c, True) for c in scale]:
        for seed in ss:
            B, X = simulate(d, e, 1000, seed)
            xfile = os.path.join(tmp, "X.txt")
            write_x(xfile, X)
            runs = [("aced dagma", lambda: run_aced("dagma", 0.02, xfile, os.path.join(tmp, "W.txt")))]
            if d <= 100:  # aced's notears at d = 200 takes over ten minutes, as the reference does at 50
                runs.append(("aced notears", lambda: run_aced("notears", 0.1, xfile, os.path.join(tmp, "W.txt"))))
            if peers["dagma"]:  # at every size: a run past the timeout is reported as such
                runs.append(("DAGMA", lambda: run_peer("dagma", peers["dagma"], 0.02, xfile,
                                                       os.path.join(tmp, "Wp.txt"), stub)))
            if peers["notears"] and d <= 50:
                runs.append(("NOTEARS", lambda: run_peer("notears", peers["notears"], 0.1, xfile,
                                                         os.path.join(tmp, "Wp.txt"), stub)))
            for name, fn in runs:
                if (d, e, seed, name) in done_runs:
                    continue
                t, W = fn()
                acc = accuracy(B, W) if W is not None else None
                rows.append((d, e, seed, name, t, acc))
                print("d=%d e=%d seed=%d %-13s %s" % (d, e, seed, name,
                      "timeout" if t is None else "%.3f s SHD %d TPR %.3f FPR %.4f" %
                      (t, acc["shd"], acc["tpr"], acc["fpr"])), flush=True)
    lines = ["## Structure learning (issue 14)", "",
             "`make bench-graph` (bench/graph_bench.py), %s; CPU %s, kernel %s, %s. The machine was "
             "shared with other helpers' builds and tests during the run, so the times are CPU "
             "times of the learner (one thread each; OPENBLAS_NUM_THREADS=1 for the peers), not wall "
             "time." % (time.strftime("%Y-%m-%d"), cpu_name(), platform.release(),
                        "peers: " + ", ".join(k for k, v in peers.items() if v) if any(peers.values())
                        else "peers not run (DAGMA_SRC / NOTEARS_SRC unset)"),
             "", "Erdos-Renyi DAGs, Gaussian noise of equal variance, n = 1000; lambda1 0.02 (dagma) "
             "and 0.1 (notears), threshold 0.3. SHD, TPR, FPR as notears.utils.count_accuracy.", "",
             "| d | edges | seed | learner | CPU s | SHD | TPR | FPR |", "|---|---|---|---|---|---|---|---|"]
    rank = {"aced dagma": 0, "DAGMA": 1, "aced notears": 2, "NOTEARS": 3}
    rows.sort(key=lambda r: (r[0], r[2], rank.get(r[3], 9)))
    for d, e, seed, name, t, acc in rows:
        if t is None:
            lines.append("| %d | %d | %d | %s | > %d (stopped) | | | |" % (d, e, seed, name, PEER_TIMEOUT))
        else:
            lines.append("| %d | %d | %d | %s | %.3f | %d | %.3f | %.4f |" % (
                d, e, seed, name, t, acc["shd"], acc["tpr"], acc["fpr"]))
    # the targets: aced dagma >= 5x faster than DAGMA with SHD no worse, on every seed, d = 20 and 50
    verdict = []
    for d, e, _ in cases:
        for seed in seeds:
            mine = [r for r in rows if r[:3] == (d, e, seed) and r[3] == "aced dagma"]
            peer = [r for r in rows if r[:3] == (d, e, seed) and r[3] == "DAGMA"]
            if mine and peer and peer[0][4] is not None:
                sp = peer[0][4] / mine[0][4]
                good = sp >= 5 and mine[0][5]["shd"] <= peer[0][5]["shd"]
                verdict.append("d=%d seed %d: %.1fx faster, SHD %d vs %d: %s" % (
                    d, seed, sp, mine[0][5]["shd"], peer[0][5]["shd"], "met" if good else "NOT met"))
    if verdict:
        lines += ["", "Target (aced at least 5x faster than DAGMA, SHD no worse, every seed): " +
                  "; ".join(verdict) + "."]
    if a.extra and os.path.exists(a.extra):
        lines += ["", "Total against direct effects (bench/graph_effect_cost.py, wall time in the daemon's "
                  "meta.elapsed_ms; target: a total-effect regressor at most 2x a direct one with "
                  "montecarlo): " + open(a.extra).read().strip()]
    text = "\n".join(lines) + "\n"
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        open(a.out, "w").write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
