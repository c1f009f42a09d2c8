#!/usr/bin/env python3
"""onnx_bench.py -- `make bench-onnx`: registering a model as its ONNX export against registering the
same weights as JSON (issue #13).

Two models exported by torch.onnx.export (Debian's python3-torch; float32, opset 13, dynamic batch):
  mlp1m:  256-1024-768-10 (tanh, relu), 1,058,058 parameters, 300 samples;
  wide:   4096-64-10 (relu), 262,858 parameters (4096 inputs), 2 samples.
For each, the ONNX body ("network": {"type": "onnx", "model": base64}) and the JSON body of the same
weights (float32 widened, the same digest), each run by bench/bench_onnx in a fresh process:
  network: json_loadb of the body, plus the import for ONNX -- the part that differs;
  full:    the whole model_parse (checks, the covariance of the samples, digest).
Median CPU time (user + system) and wall time of RUNS runs, the largest peak RSS of the process.

    /usr/bin/python3 bench/onnx_bench.py --builddir . --benchmarks BENCHMARKS.md [--runs 5]
    python3 bench/onnx_bench.py --smoke --builddir .      # committed small exports, no torch: TAP
"""
import argparse
import base64
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)


def bodies(onnx_bytes, network, n_in, samples, name):
    feats = [{"name": "x%d" % i, "low": -1.0, "high": 1.0} for i in range(n_in)]
    n_out = len(network["layers"][-1]["weights"])
    onnx_body = {"name": name, "features": feats, "data": {"samples": samples},
                 "network": {"type": "onnx", "model": base64.b64encode(onnx_bytes).decode()}}
    json_body = {"name": name, "features": feats, "data": {"samples": samples}, "network": network,
                 "outputs": ["y%d" % i for i in range(n_out)]}
    return onnx_body, json_body


def run(exe, path, mode, runs):
    out = []
    for _ in range(runs):
        p = subprocess.run([exe, path, mode], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("%s %s %s: %s" % (exe, path, mode, p.stderr.strip()))
        out.append(json.loads(p.stdout))
    return {"cpu_s": statistics.median(r["cpu_s"] for r in out),
            "wall_s": statistics.median(r["wall_s"] for r in out),
            "peak_mb": max(r["peak_rss_kb"] for r in out) / 1024.0,
            "start_mb": min(r["start_rss_kb"] for r in out) / 1024.0,
            "body_mb": out[0]["body_bytes"] / 1e6, "digest": out[0]["digest"],
            "n_params": out[0]["n_params"]}


def export(layers, acts, seed):
    import torch
    torch.manual_seed(seed)
    mods = []
    for i, (a, b) in enumerate(zip(layers, layers[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(acts):
            mods.append({"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[acts[i]]())
    net = torch.nn.Sequential(*mods).eval()
    f = io.BytesIO()
    torch.onnx.export(net, torch.zeros(1, layers[0]), f, opset_version=13, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    js = []
    for m in net:
        if isinstance(m, torch.nn.Linear):
            js.append({"weights": m.weight.detach().double().tolist(),
                       "bias": m.bias.detach().double().tolist(), "activation": "identity"})
        else:
            js[-1]["activation"] = "tanh" if isinstance(m, torch.nn.Tanh) else "relu"
    return f.getvalue(), {"type": "feedforward", "layers": js}


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def smoke(exe):
    ref = json.load(open(os.path.join(SRC, "tests", "data", "onnx", "ff_ref.json")))
    c = [c for c in ref["cases"] if c["dtype"] == "float32"][0]
    onnx_bytes = open(os.path.join(SRC, "tests", "data", "onnx", c["file"]), "rb").read()
    ob, jb = bodies(onnx_bytes, c["network"], len(c["features"]), c["samples"], "smoke")
    with tempfile.TemporaryDirectory() as d:
        po, pj = os.path.join(d, "onnx.json"), os.path.join(d, "json.json")
        json.dump(ob, open(po, "w"))
        json.dump(jb, open(pj, "w"))
        r = {(k, m): run(exe, p, m, 1) for k, p in (("onnx", po), ("json", pj))
             for m in ("network", "full")}
    good = (r["onnx", "full"]["digest"] == r["json", "full"]["digest"] != "" and
            all(v["cpu_s"] >= 0 and v["peak_mb"] > 0 for v in r.values()))
    print("%s 1 - bench_onnx runs both bodies of %s (network and full), one digest"
          % ("ok" if good else "not ok", c["name"]))
    print("1..1")
    return 0 if good else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", default=".")
    ap.add_argument("--benchmarks", default=None, help="BENCHMARKS.md to put the section into")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    exe = os.path.join(args.builddir, "bench", "bench_onnx")
    if args.smoke:
        return smoke(exe)
    import torch  # noqa: F401 -- the full run exports with PyTorch
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name, layers, acts, n_samples, modes in (
                ("mlp1m", [256, 1024, 768, 10], ["tanh", "relu"], 300, ("network", "full")),
                ("wide", [4096, 64, 10], ["relu"], 2, ("network", "full"))):
            onnx_bytes, network = export(layers, acts, 1)
            g = __import__("torch").Generator().manual_seed(2)
            samples = (__import__("torch").rand(n_samples, layers[0], generator=g) * 2 - 1).double().tolist()
            ob, jb = bodies(onnx_bytes, network, layers[0], samples, name)
            po, pj = os.path.join(d, name + "_onnx.json"), os.path.join(d, name + "_json.json")
            json.dump(ob, open(po, "w"), separators=(",", ":"))
            json.dump(jb, open(pj, "w"), separators=(",", ":"))
            for mode in modes:
                ro, rj = run(exe, po, mode, args.runs), run(exe, pj, mode, args.runs)
                if mode == "full" and ro["digest"] != rj["digest"]:
                    raise RuntimeError("%s: the ONNX and JSON registrations differ" % name)
                rows.append((name, mode, len(onnx_bytes), ro, rj))
                print(name, mode, "onnx", ro, "json", rj, file=sys.stderr)
    commit = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    lines = ["## ONNX import (`make bench-onnx`)", "",
             "Registering a model as its `torch.onnx.export` file (`\"network\": {\"type\": \"onnx\"}`, "
             "base64) against the JSON registration of the same weights (float32 widened: the same "
             "digest, checked). `bench/bench_onnx` in a fresh process per run: **network** is "
             "`json_loadb` of the body plus, for ONNX, the import into the JSON network (what the two "
             "registrations do differently); **full** is the whole `model_parse` (checks, covariance, "
             "digest) as the register worker runs it. Median of %d runs, CPU time (user + system); "
             "peak RSS is the process's high-water mark (the body text included; %.0f MB before the "
             "body was read)." % (args.runs, min(r[3]["start_mb"] for r in rows)), "",
             "| model | parameters | part | body ONNX / JSON | CPU ONNX | CPU JSON | wall ONNX | "
             "wall JSON | peak RSS ONNX | peak RSS JSON |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, mode, nbytes, ro, rj in rows:
        params = ro["n_params"] or rj["n_params"] or {"mlp1m": 1058058, "wide": 262858}[name]
        lines.append("| %s | %s | %s | %.1f / %.1f MB | %.3f s | %.3f s | %.3f s | %.3f s | %.0f MB | %.0f MB |"
                     % (name, format(params, ","), mode, ro["body_mb"], rj["body_mb"], ro["cpu_s"],
                        rj["cpu_s"], ro["wall_s"], rj["wall_s"], ro["peak_mb"], rj["peak_mb"]))
    lines += ["", "`mlp1m`: 256-1024-768-10 (tanh, relu), 300 samples; `wide`: 4096-64-10 (relu), "
              "2 samples (its full registration includes the 4096 x 4096 covariance of the samples, "
              "the same work for both bodies). The ONNX file is %.1f MB "
              "and %.1f MB. Measured on %s, Linux %s, at commit %s, on a machine shared with other "
              "builds at the time (CPU time is the fairer figure; wall time includes waiting)."
              % (rows[0][2] / 1e6, rows[-1][2] / 1e6, cpu_name(), platform.release(), commit)]
    fragment = "\n".join(lines) + "\n"
    print(fragment)
    if args.benchmarks:
        with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as f:
            f.write(fragment)
        subprocess.run([sys.executable, os.path.join(HERE, "section.py"), args.benchmarks, "onnx",
                        f.name], check=True)
        os.unlink(f.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
