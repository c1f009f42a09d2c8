#!/usr/bin/env python3
"""bench_recurrent.py -- the recurrent benchmark of issue #12 (`make bench-recurrent`).

An LSTM (input 8, hidden 64, sigmoid head, T = 50) registered with 2,000 stored sequences; through
the job API (POST .../regressors, montecarlo, num = 100), every regressor of its output over every
(feature, timestep) within the time lag.  Beside it, in the same run: the PyTorch peer written the
obvious way (bench/peer_recurrent.py: a full forward of every sequence per alpha, one thread) on a
sample of those pairs, whose expectations must match aced's points to 1e-9; and the same job with
the taylor estimator.  Figures are CPU seconds (the daemon's utime + stime from /proc, the peer's
getrusage) per (feature, timestep, alpha).

    bench_recurrent.py [--smoke] [--fragment OUT.md] [--json OUT.json]

--smoke: a small model (T 8, hidden 8, 100 sequences, num 5) in seconds; the peer runs only when
/usr/bin/python3 has torch.  Standard library only (plus the daemon, and torch for the peer)."""
import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("ACED_SRCDIR", os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "e2e"))
from acedtest import Daemon  # noqa: E402

TORCH_PY = os.environ.get("TORCH_PYTHON", "/usr/bin/python3")


def model(I, H, T, n, seed=12):
    """An LSTM with PyTorch's default initialisation, U(-1/sqrt(H), 1/sqrt(H)), and inputs from an
    AR(1) process per feature (the kind of sensor sequence an LSTM is trained on)."""
    rnd = random.Random(seed)
    k = 1.0 / H ** 0.5
    u = lambda r, c: [[rnd.uniform(-k, k) for _ in range(c)] for _ in range(r)]
    seqs = []
    for _ in range(n):
        x = [rnd.gauss(0, 1) for _ in range(I)]
        s = []
        for _ in range(T):
            x = [0.8 * v + 0.6 * rnd.gauss(0, 1) for v in x]
            s.append(x)
        seqs.append(s)
    return {"name": "lstm_bench", "features": [{"name": "s%d" % i, "low": -2.5, "high": 2.5} for i in range(I)],
            "outputs": ["p"], "sequence_length": T,
            "network": {"type": "recurrent", "cell": "lstm", "input_size": I, "hidden_size": H,
                        "weight_ih": u(4 * H, I), "weight_hh": u(4 * H, H),
                        "bias_ih": [rnd.uniform(-k, k) for _ in range(4 * H)],
                        "bias_hh": [rnd.uniform(-k, k) for _ in range(4 * H)],
                        "head": [{"weights": u(1, H), "bias": [0.1], "activation": "sigmoid"}],
                        "output_at": "last", "feedback": False},
            "data": {"sequences": seqs}}


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_job(d, name, body):
    c0, w0 = cpu_s(d.proc.pid), time.perf_counter()
    r = d.post("/v1/models/%s/regressors" % name, body)
    if r.status != 202:
        raise RuntimeError("regressors job: %s" % r)
    j = d.wait_job(r.json["job"]["id"], timeout=3600).json
    w1, c1 = time.perf_counter(), cpu_s(d.proc.pid)
    if j.get("state") != "done":
        raise RuntimeError("job: %s" % j)
    return j["result"], c1 - c0, w1 - w0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--fragment")
    ap.add_argument("--json")
    ap.add_argument("--features", type=int, default=0,
                    help="the montecarlo job over the first N features only (default all: the issue's "
                         "workload); the per-(feature, timestep, alpha) figure does not depend on N")
    ap.add_argument("--peer-pairs", type=int, default=0, help="pairs the PyTorch peer runs (default 4)")
    ap.add_argument("--from-json", help="only write the fragment of a saved --json run")
    a = ap.parse_args()
    if a.from_json:
        write_fragment(a.fragment, json.load(open(a.from_json)))
        return
    I, H, T, n, num, npairs = (3, 8, 8, 100, 5, 2) if a.smoke else (8, 64, 50, 2000, 100, 4)
    npairs = a.peer_pairs or npairs
    nfeat = a.features if 0 < a.features <= I else I
    feats = ["s%d" % i for i in range(nfeat)]
    m = model(I, H, T, n)
    load0 = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="aced-bench-rec-")
    d = Daemon(args=["--workers=2"]).start()
    c0 = cpu_s(d.proc.pid)
    t0 = time.perf_counter()
    r = d.post("/v1/models", m)
    if r.status != 201:
        raise RuntimeError("register: %s" % r)
    md = d.get("/v1/models/" + m["name"]).json  # prepares the model (factor, spread, lag)
    t_reg, c_reg = time.perf_counter() - t0, cpu_s(d.proc.pid) - c0
    lag = md["lag"]
    res, cpu_mc, wall_mc = run_job(d, m["name"], {"outputs": ["p"], "features": feats, "num": num,
                                                  "estimator": "montecarlo"})
    steps = sorted(set(res["timesteps"]))
    units = len(res["features"]) * num
    # taylor on the first feature's pairs within the lag (its cost per alpha does not depend on the feature)
    res_t, cpu_t, wall_t = run_job(d, m["name"], {"outputs": ["p"], "features": ["s0"], "num": num, "estimator": "taylor"})
    units_t = len(res_t["features"]) * num
    # the peer on a sample of the pairs, against aced's points for them
    rnd = random.Random(5)
    pairs = [[rnd.randrange(nfeat), rnd.choice(steps)] for _ in range(npairs)]
    got = []
    for f, t in pairs:
        rr = d.get("/v1/models/%s/regressors/p/s%d?timestep=%d&num=%d&estimator=montecarlo" % (m["name"], f, t, num))
        if rr.status != 200 or rr.json["meta"]["cache"] != "hit":
            raise RuntimeError("the job's regressor for (s%d, t=%d) is not cached: %s" % (f, t, rr))
        got.append([p["expectation"] for p in rr.json["points"]])
        alphas = [p["x"] for p in rr.json["points"]]
    d.stop()
    out = {"smoke": a.smoke, "I": I, "H": H, "T": T, "n": n, "num": num, "lag": {k: lag[k] for k in ("tau", "tau_mean", "threshold")},
           "timesteps": [steps[0], steps[-1]], "pairs": len(res["features"]), "features": nfeat, "register_s": t_reg, "register_cpu_s": c_reg,
           "aced_mc": {"cpu_s": cpu_mc, "wall_s": wall_mc, "per_unit_us": 1e6 * cpu_mc / units},
           "aced_taylor": {"cpu_s": cpu_t, "wall_s": wall_t, "pairs": len(res_t["features"]), "per_unit_us": 1e6 * cpu_t / units_t}}
    out["aced_mc"]["sequence_steps"] = n * num * sum(T - t for t in res["timesteps"])
    out["aced_mc"]["per_sequence_step_us"] = 1e6 * cpu_mc / out["aced_mc"]["sequence_steps"]
    out["step"] = step_figures(a.smoke)
    have_torch = subprocess.run([TORCH_PY, "-c", "import torch"], capture_output=True).returncode == 0
    if have_torch:
        mp, pp, op = (os.path.join(tmp, x) for x in ("model.json", "pairs.json", "peer.json"))
        json.dump(m, open(mp, "w"))
        json.dump({"pairs": pairs, "alphas": alphas}, open(pp, "w"))
        subprocess.run([TORCH_PY, os.path.join(HERE, "peer_recurrent.py"), mp, pp, op], check=True)
        peer = json.load(open(op))
        diff = max(abs(x - y) for g, w in zip(got, peer["expectations"]) for x, y in zip(g, w))
        pu = len(pairs) * num
        out["peer"] = {"cpu_s": peer["cpu_s"], "wall_s": peer["wall_s"], "pairs": len(pairs),
                       "per_sequence_step_us": 1e6 * peer["cpu_s"] / (pu * n * T),
                       "per_unit_us": 1e6 * peer["cpu_s"] / pu, "max_diff": diff, "torch": peer["torch"]}
        out["speedup"] = out["peer"]["per_unit_us"] / out["aced_mc"]["per_unit_us"]
        if diff > 1e-9:
            raise RuntimeError("aced and the PyTorch peer disagree by %g" % diff)
    out["loadavg"] = [load0, os.getloadavg()[0]]
    print(json.dumps(out, indent=1))
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)
    if a.fragment:
        write_fragment(a.fragment, out)


def step_figures(smoke):
    """bench/bench_rnn_step on one thread: CPU per sequence-step of the general and fused passes
    and the GEMM floor of a step, from the same run (None if the program is not built)."""
    exe = os.path.join(os.environ.get("ACED_BUILDDIR", os.path.join(HERE, "..")), "bench", "bench_rnn_step")
    if not os.path.exists(exe):
        return None
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([exe] + (["--smoke"] if smoke else []), capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError("bench_rnn_step failed:\n" + r.stdout + r.stderr)
    return r.stdout.strip().splitlines()


def write_fragment(path, o):
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    p = o.get("peer")
    lines = [
        "## Recurrent networks: `make bench-recurrent` (issue #12)",
        "",
        "LSTM, input %d, hidden %d, T = %d, %d stored sequences, sigmoid head; every regressor of its output "
        "over every (feature, timestep) within the time lag (tau = %d, mean %.2f: steps %d..%d, %d pairs), "
        "num = %d, through the job API (POST .../regressors, 2 workers)%s. CPU time of the daemon (utime + stime) "
        "divided by the (feature, timestep, alpha) triples. Host: %s, Linux %s, %d cores; the load average at the "
        "start and end of the run is given below: when it is high, other work shared the cores and wall times "
        "are noisy, CPU times less so."
        % (o["I"], o["H"], o["T"], o["n"], o["lag"]["tau"], o["lag"]["tau_mean"], o["timesteps"][0], o["timesteps"][1],
           o["pairs"], o["num"],
           "" if o["features"] == o["I"] else " over the first %d of the %d features (`--features %d`: the "
           "machine was shared; the cost per (feature, timestep, alpha) does not depend on how many features "
           "the job covers)" % (o["features"], o["I"], o["features"]),
           cpu, platform.release(), os.cpu_count() or 0),
        "",
        "| | CPU s | wall s | CPU per (feature, timestep, alpha) |",
        "|---|---|---|---|",
        "| aced montecarlo (fused LSTM pass, src/engine/recurrent_mc.c: prefix states reused, one GEMM per step "
        "over 256 sequences, the intervened step a rank-one update) | %.2f | %.2f | %.2f ms |"
        % (o["aced_mc"]["cpu_s"], o["aced_mc"]["wall_s"], o["aced_mc"]["per_unit_us"] / 1e3),
        "| aced taylor (Eq. 4, exact Hessian trace on the unrolled network), feature s0's %d pairs | %.2f | %.2f | %.2f ms |"
        % (o["aced_taylor"]["pairs"], o["aced_taylor"]["cpu_s"], o["aced_taylor"]["wall_s"], o["aced_taylor"]["per_unit_us"] / 1e3),
    ]
    if p:
        lines.append("| PyTorch %s, the obvious way (full forward per alpha, one thread), %d sampled pairs | %.2f | %.2f | %.2f ms |"
                     % (p["torch"], p["pairs"], p["cpu_s"], p["wall_s"], p["per_unit_us"] / 1e3))
        lines += ["", "Speed-up of montecarlo per (feature, timestep, alpha): **%.1fx** (target >= 10x: %s). "
                  "The peer's expectations agree with aced's regressor points to %.1e."
                  % (o["speedup"], "met" if o["speedup"] >= 10 else "not met", p["max_diff"])]
    else:
        lines += ["", "PyTorch was not available: no peer figures."]
    lines += ["", "Per sequence-step (one sequence through one LSTM step), CPU: aced's montecarlo job %.3f us "
              "(%d sequence-steps: steps t..%d per alpha)%s."
              % (o["aced_mc"]["per_sequence_step_us"], o["aced_mc"]["sequence_steps"], o["T"] - 1,
                 "; the PyTorch peer %.3f us (all %d steps per alpha)" % (p["per_sequence_step_us"], o["T"]) if p else "")]
    if o.get("step"):
        lines += ["", "`bench/bench_rnn_step` in the same run (no daemon; the general pass is the code "
                  "before the fused one, still used for the other cells, several layers, feedback or outputs at every step):", ""]
        lines += ["    " + x for x in o["step"]]
    if o.get("loadavg"):
        lines += ["", "Load average (1 min) of the machine at the start and end of the run: %.1f, %.1f (2 cores)."
                  % tuple(o["loadavg"])]
    lines += ["", "Registration and preparation (parse, covariance factor over the %d flattened inputs, output "
              "spread, time lag over 256 sequences): %.2f s wall, %.2f s CPU." % (o["I"] * o["T"], o["register_s"], o["register_cpu_s"])]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
