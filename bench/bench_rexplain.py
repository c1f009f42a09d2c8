#!/usr/bin/env python3
"""bench_rexplain.py -- explanations of a recurrent model (`make bench-rexplain`).

The LSTM of bench_recurrent.py (input 8, hidden 64, T = 50, sigmoid head at the last step)
registered with 500 stored sequences; through POST .../explanations (one worker): the gradient of
1,000 sequences, integrated gradients with 64 Gauss-Legendre nodes for 100 sequences, ablation of
every (timestep, feature) of 20 sequences.  Beside it the PyTorch peer (bench/peer_rexplain.py,
float64, one thread), whose attributions must agree with aced's to 1e-9.  Figures are CPU seconds
(the daemon's utime + stime from /proc around each request, the peer's getrusage).

    bench_rexplain.py [--smoke] [--fragment OUT.md] [--json OUT.json]

--smoke: a small LSTM (T 6, hidden 4) in seconds; the peer runs only when /usr/bin/python3 has
torch."""
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
sys.path.insert(0, HERE)
from bench_recurrent import Daemon, cpu_s, model  # noqa: E402

TORCH_PY = os.environ.get("TORCH_PYTHON", "/usr/bin/python3")


def flat(a):
    return [y for x in a for y in flat(x)] if isinstance(a, list) else [a]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--fragment")
    ap.add_argument("--json")
    a = ap.parse_args()
    I, H, T, n = (2, 4, 6, 40) if a.smoke else (8, 64, 50, 500)
    rows = {"gradient": 20, "integrated_gradients": 4, "ablation": 3} if a.smoke else \
        {"gradient": 1000, "integrated_gradients": 100, "ablation": 20}
    steps = 8 if a.smoke else 64
    m = model(I, H, T, n)
    m["name"] = "lstm_rexplain"
    rnd = random.Random(3)
    seqs = m["data"]["sequences"]
    baseline = [[0.0] * I for _ in range(T)]
    inputs = {k: [seqs[rnd.randrange(n)] for _ in range(v)] for k, v in rows.items()}
    d = Daemon(args=["--workers=1"]).start()
    r = d.post("/v1/models", m)
    if r.status != 201:
        raise RuntimeError("register: %s" % r)
    d.get("/v1/models/" + m["name"])  # prepared
    out = {"smoke": a.smoke, "I": I, "H": H, "T": T, "n": n, "rows": rows, "steps": steps, "aced": {}}
    got = {}
    for meth in ("gradient", "integrated_gradients", "ablation"):
        body = {"method": meth, "output": "p", "inputs": inputs[meth], "baseline": baseline, "steps": steps}
        c0, w0 = cpu_s(d.proc.pid), time.perf_counter()
        r = d.post("/v1/models/%s/explanations" % m["name"], body)
        if r.status == 202:
            r = d.wait_job(r.json["job"]["id"], timeout=3600)
            res = r.json.get("result")
        else:
            res = r.json
        w1, c1 = time.perf_counter(), cpu_s(d.proc.pid)
        if not res or "attributions" not in res:
            raise RuntimeError("%s: %s" % (meth, r))
        got[meth] = res["attributions"]
        out["aced"][meth] = {"cpu_s": c1 - c0, "wall_s": w1 - w0}
    d.stop()
    if subprocess.run([TORCH_PY, "-c", "import torch"], capture_output=True).returncode == 0:
        tmp = tempfile.mkdtemp(prefix="aced-bench-rexplain-")
        mp, wp, op = (os.path.join(tmp, x) for x in ("model.json", "work.json", "peer.json"))
        json.dump(m, open(mp, "w"))
        json.dump({"inputs": inputs, "steps": steps, "baseline": baseline}, open(wp, "w"))
        subprocess.run([TORCH_PY, os.path.join(HERE, "peer_rexplain.py"), mp, wp, op], check=True)
        peer = json.load(open(op))
        out["peer"] = {"torch": peer["torch"]}
        for meth in got:
            diff = max(abs(x - y) for x, y in zip(flat(got[meth]), flat(peer[meth]["attributions"])))
            out["peer"][meth] = {"cpu_s": peer[meth]["cpu_s"], "wall_s": peer[meth]["wall_s"], "max_diff": diff}
            if diff > 1e-9:
                raise RuntimeError("%s: aced and the PyTorch peer disagree by %g" % (meth, diff))
    print(json.dumps(out, indent=1))
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)
    if a.fragment:
        write_fragment(a.fragment, out)


def write_fragment(path, o):
    cpu = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    p = o.get("peer")
    what = {"gradient": "gradient, %d sequences" % o["rows"]["gradient"],
            "integrated_gradients": "integrated gradients, %d Gauss-Legendre nodes, %d sequences"
            % (o["steps"], o["rows"]["integrated_gradients"]),
            "ablation": "ablation of every (timestep, feature), %d sequences (%d runs each)"
            % (o["rows"]["ablation"], o["T"] * o["I"])}
    lines = ["## Explanations of recurrent models: `make bench-rexplain`", "",
             "LSTM, input %d, hidden %d, T = %d, sigmoid head at the last step, %d stored sequences; "
             "POST .../explanations with one worker, reverse mode through the cells and head batched "
             "over sequences and nodes. CPU time of the daemon (utime + stime from /proc around each request, "
             "HTTP and JSON included) against the PyTorch peer written the usual way (bench/peer_rexplain.py: "
             "autograd, float64, one thread; its attributions agree with aced's to the difference shown). "
             "Host: %s, Linux %s, %d cores, shared with other helpers' builds and tests during this run: "
             "wall times are noisy, CPU times less so."
             % (o["I"], o["H"], o["T"], o["n"], cpu, platform.release(), os.cpu_count() or 0), "",
             "| method | aced CPU s | aced wall s | PyTorch CPU s | ratio | max abs diff |",
             "|---|---|---|---|---|---|"]
    for meth in ("gradient", "integrated_gradients", "ablation"):
        ac = o["aced"][meth]
        if p:
            pc = p[meth]
            ratio = "%.2fx" % (pc["cpu_s"] / ac["cpu_s"]) if ac["cpu_s"] >= 0.05 else "(too short)"
            lines.append("| %s | %.2f | %.2f | %.2f | %s | %.1e |" % (
                what[meth], ac["cpu_s"], ac["wall_s"], pc["cpu_s"], ratio, pc["max_diff"]))
        else:
            lines.append("| %s | %.2f | %.2f | | | |" % (what[meth], ac["cpu_s"], ac["wall_s"]))
    if p:
        lines += ["", "PyTorch %s. Ratio: the peer's CPU seconds over aced's (above 1: aced is faster)." % p["torch"]]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
