#!/usr/bin/env python3
"""report.py -- turn the JSON results of one benchmark run into BENCHMARKS.md.

Inputs (any of engine/torch/http may be missing: the report then says what was not measured):
  --info FILE    machine description written by bench/run
  --engine FILE  bench_engine --json
  --torch FILE   peer_torch.py --json
  --http FILE    http_bench.py --json
  --out FILE
Python 3 standard library only.  Targets are issue #4's, verbatim; they are judged here, never relaxed.
"""

import argparse
import json
import math
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import section  # noqa: E402  (bench/section.py: marked sections kept across runs)


def load(path):
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def ms(x, digits=3):
    return "n/a" if x is None else ("%.*f ms" % (digits, 1e3 * x))


def sec(x):
    return "n/a" if x is None else ("%.2f s" % x)


def mib(x):
    return "n/a" if x is None else ("%.1f MiB" % (x / 2**20))


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "n/a"
    return "%.*fx" % (digits, a / b)


def sci(x):
    return "n/a" if x is None else ("%.2e" % x)


def maxdiff(a, b):
    if a is None or b is None:
        return None
    return max(abs(x - y) for x, y in zip(a, b))


MET, NOT, NA = "**met**", "**not met**", "not measured"


def judged_by_config(confs, oks):
    """Status of a target measured in several HTTP-thread configurations: met in all, in some, or none."""
    if all(oks):
        return MET
    if not any(oks):
        return NOT
    return "**met with %s only**" % " and ".join(
        "%d HTTP thread%s%s" % (c["threads"], "" if c["threads"] == 1 else "s",
                                "" if c.get("log_level", "warn") == "warn" else " at log_level " + c["log_level"])
        for c, ok in zip(confs, oks) if ok)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--info")
    ap.add_argument("--engine")
    ap.add_argument("--torch")
    ap.add_argument("--http")
    ap.add_argument("--out", required=True)
    ap.add_argument("--hosts", help="the per-host-kind figures kept across runs (default: bench/hosts.json "
                    "beside OUT)")
    a = ap.parse_args()
    info = load(a.info) or {}
    eng = load(a.engine)
    tor = load(a.torch)
    htt = load(a.http)
    L = []
    w = L.append
    targets = []  # (requirement, target, measured, status)

    w("# aced benchmarks")
    w("")
    w("Written by `make bench` (`bench/run`); every figure below comes from the one run described here, "
      "measured side by side. Do not edit by hand: rerun `make bench`.")
    w("")
    w("| | |")
    w("|---|---|")
    for k, label in (("date", "run at"), ("commit", "source"), ("host", "host"), ("cpu", "CPU"),
                     ("cores", "cores (nproc)"), ("blas", "BLAS (openblas_get_config)"),
                     ("compiler", "compiler"), ("cflags", "CFLAGS"), ("kernel", "kernel"),
                     ("mhd", "libmicrohttpd"),
                     ("torch", "PyTorch peer"), ("wrk", "HTTP load generator"),
                     ("load_start", "load average at start"), ("load_end", "load average at end")):
        if info.get(k):
            w("| %s | %s |" % (label, str(info[k]).replace("|", "/")))
    w("")
    w("**The machine is shared.** It has %s cores, shared with other engineers' builds and tests while this "
      "ran. The engine benchmark and the PyTorch peer run pinned to one core (`taskset -c 1`); each engine "
      "figure is given both as wall time and as the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which is "
      "what the same code takes on an otherwise idle core. Where the two differ much, something else held the "
      "core. The HTTP benchmark runs the server and `wrk` on the same two cores." % info.get("cores", "?"))
    w("")

    body = []
    b = body.append

    # ---------------- engine ----------------
    full = eng.get("full") if eng else None
    if eng:
        wl = eng["workload"]
        dims = "-".join(str(d) for d in wl["dims"])
        b("## Engine: `bench/bench_engine` (one core, float64)")
        b("")
        b("Workload (generated from a fixed seed): a %s network, sigmoid hidden layers, softmax output, random "
          "weights with each unit's row scaled so that its pre-activation spreads by 0.3 to 0.9 (0.8 for the "
          "logits) over the data: no unit saturated, none linear. Inputs: %d image-like samples on a %d-pixel "
          "square (smooth blobs with decaying variance plus pixel noise, through a sigmoid, in (0,1)), an "
          "all-zero border: %d of %d inputs vary, so the covariance is singular (semidefinite). "
          "Timed: %d features (evenly spread over the varying inputs) x %d alphas on [0, 1], all %d outputs "
          "per call, after `eng_init()` (BLAS on %s thread)."
          % (dims, wl["samples"], wl["dims"][0], wl["nonconstant_inputs"], wl["dims"][0],
             wl["features_timed"], wl["alphas_per_feature"], wl["dims"][-1], eng.get("blas_threads")))
        b("")
        g = eng["gemm"]
        b("| figure | wall | CPU | ratio |")
        b("|---|---|---|---|")
        b("| `eng_model_prepare` (full rank, eigendecomposition of the %dx%d covariance, W1 L, QR) | %s | | |"
          % (wl["dims"][0], wl["dims"][0], sec(full["prepare_seconds"])))
        b("| memory held: `eng_model_bytes` / RSS growth during prepare | %s / %s | | (includes the %d stored samples) |"
          % (mib(full["model_bytes"]), mib(full["rss_delta_bytes"]), wl["samples"]))
        b("| factor rank / tangent columns per evaluation | %d / %d | | |" % (full["rank"], full["tangent_columns"]))
        b("| **`eng_taylor` per (feature, alpha), all outputs** | %s | %s | %.0f%% / %.0f%% of the 5 ms target |"
          % (ms(full["taylor_seconds_per_eval"]), ms(full["taylor_cpu_seconds_per_eval"]),
             100 * full["taylor_seconds_per_eval"] / 5e-3, 100 * full["taylor_cpu_seconds_per_eval"] / 5e-3))
        b("| fastest single call, per alpha | %s | | |" % ms(full["taylor_best_call_seconds_per_eval"]))
        b("| DGEMM %dx%dx%d (m x n x k) on one thread | %.1f GFLOP/s | %.1f GFLOP/s | |"
          % (g["shape"][0], g["shape"][1], g["shape"][2], g["gflops"], g["gflops_cpu"]))
        b("| GEMM floor per (feature, alpha): %.1f MFLOP | %s | %s | |"
          % (full["floor_flops_per_eval"] / 1e6, ms(full["floor_seconds_per_eval"]), ms(full["floor_cpu_seconds_per_eval"])))
        b("| **taylor / GEMM floor** | %s | %s | target <= 1.5x |"
          % (ratio(full["taylor_seconds_per_eval"], full["floor_seconds_per_eval"]),
             ratio(full["taylor_cpu_seconds_per_eval"], full["floor_cpu_seconds_per_eval"])))
        fi = full.get("floor_interleaved_cpu_seconds_per_eval")
        if fi:
            b("| GEMM floor timed between the taylor calls | %s | %s | |"
              % (ms(full["floor_interleaved_seconds_per_eval"]), ms(fi)))
            b("| **taylor / floor timed between its calls** | %s | %s | target <= 1.15x (issue #11) |"
              % (ratio(full["taylor_seconds_per_eval"], full["floor_interleaved_seconds_per_eval"]),
                 ratio(full["taylor_cpu_seconds_per_eval"], fi)))
        b("")
        b("The floor counts the GEMMs one evaluation cannot avoid: with the factor compressed to "
          "c = min(rank, n1) columns (here %d), every layer after the first multiplies its weights by the "
          "tangent block, `Tz = W_l T` (n_l x n_{l-1} times n_{l-1} x c), which is 2 n_l n_{l-1} c flops per "
          "layer: %s. The first layer's block `W1 L_i` does not depend on alpha and is a rank-one change of "
          "`W1 L`, which prepare computes once, so it is not per-evaluation work; the value and `Q` passes "
          "are matrix-vector products (under 1%%). Each floor GEMM was timed at its exact shape on this BLAS "
          "(best of 3 runs); their sum is the floor. Since 2026-12-02 the same GEMMs also run between the "
          "taylor calls, as many sets as the call had alphas, on matrices of their own: taylor and that floor "
          "are timed over the same minutes of this shared machine, and issue #11's 1.15x is judged on their "
          "ratio (the best-of-3 floor, taken minutes apart from taylor, is the optimistic bound and stays "
          "above it):"
          % (full["tangent_columns"], " + ".join("2x%dx%dx%d" % (s["mnk"][0], s["mnk"][2], s["mnk"][1])
                                                  for s in g["shapes"] if s["mnk"][1] == full["tangent_columns"])))
        b("")
        b("| GEMM m x n x k | wall | CPU | GFLOP/s (wall) |")
        b("|---|---|---|---|")
        for s in g["shapes"]:
            b("| %dx%dx%d | %s | %s | %.1f |" % (s["mnk"][0], s["mnk"][1], s["mnk"][2], ms(s["seconds"], 4),
                                                ms(s["cpu_seconds"], 4), s["gflops"]))
        b("")
        lr = eng.get("lowrank") or []
        b("### Low-rank mode (`lowrank_share`)")
        b("")
        b("Same features and alphas; error is the max abs difference from full rank over all of them and all "
          "outputs, and that error over the largest |second-order term| of full rank (%.3g), i.e. the share of "
          "Eq. 4's correction that the truncation loses."
          % full.get("max_abs_second_order_term", float("nan")))
        b("")
        b("| share | rank | columns | prepare | taylor (wall / CPU) | speed-up vs full (CPU) | floor (CPU) | taylor / floor (CPU) | max abs err | err / max abs second-order term |")
        b("|---|---|---|---|---|---|---|---|---|---|")
        b("| 1 (full) | %d | %d | %s | %s / %s | 1.00x | %s | %s | 0 | 0 |"
          % (full["rank"], full["tangent_columns"], sec(full["prepare_seconds"]), ms(full["taylor_seconds_per_eval"]),
             ms(full["taylor_cpu_seconds_per_eval"]), ms(full["floor_cpu_seconds_per_eval"]),
             ratio(full["taylor_cpu_seconds_per_eval"], full["floor_cpu_seconds_per_eval"])))
        for r in lr:
            err = r.get("max_abs_err_vs_full")
            b("| %.2f | %d | %d | %s | %s / %s | %s | %s | %s | %s | %s |"
              % (r["share"], r["rank"], r["tangent_columns"], sec(r["prepare_seconds"]),
                 ms(r["taylor_seconds_per_eval"]), ms(r["taylor_cpu_seconds_per_eval"]),
                 ratio(full["taylor_cpu_seconds_per_eval"], r["taylor_cpu_seconds_per_eval"]),
                 ms(r["floor_cpu_seconds_per_eval"]), ratio(r["taylor_cpu_seconds_per_eval"], r["floor_cpu_seconds_per_eval"]),
                 sci(err), "n/a" if err is None else "%.1f%%" % (100 * err / full["max_abs_second_order_term"])))
        b("")
        fd = eng.get("finite_difference")
        if fd:
            b("### `finite_difference` (paper App. A.5 in aced)")
            b("")
            b("| figure | value | ratio |")
            b("|---|---|---|")
            b("| time per (feature, alpha), %d features x %d alphas (wall / CPU) | %s / %s | taylor is %s faster (CPU) |"
              % (fd["features"], fd["alphas"], ms(fd["seconds_per_eval"]), ms(fd["cpu_seconds_per_eval"]),
                 ratio(fd["cpu_seconds_per_eval"], full["taylor_cpu_seconds_per_eval"], 1)))
            b("| max abs diff from taylor, eps = 1e-6 (the paper's) | %s | %s of the largest second-order term |"
              % (sci(fd["max_abs_diff_eps_1e-6"]), ratio(fd["max_abs_diff_eps_1e-6"], full["max_abs_second_order_term"])))
            b("| max abs diff from taylor, eps = 1e-4 | %s | |" % sci(fd["max_abs_diff_eps_1e-4"]))
            b("")
        fx = eng.get("fixture")
        if fx:
            b("### Shared fixture (`small_mlp.json`, reference from an exact autograd Hessian)")
            b("")
            b("| estimator | max abs error vs reference |")
            b("|---|---|")
            b("| taylor | %s |" % sci(fx.get("taylor_max_abs_err")))
            b("| montecarlo | %s |" % sci(fx.get("montecarlo_max_abs_err")))
            b("")

    # ---------------- torch ----------------
    if tor and eng:
        t_aced = full["taylor_seconds_per_eval"]
        t_aced_c = full["taylor_cpu_seconds_per_eval"]
        a5 = tor["a5"]
        ex = tor.get("exact")
        b("## PyTorch peers: `bench/peer_torch.py` (same network and covariance, float64, one thread)")
        b("")
        b("PyTorch %s (%s), `torch.set_num_threads(1)`, pinned like the engine. **A.5**: the paper's Appendix "
          "A.5 script: eigendecomposition of the interventional covariance S_i once per feature, then per alpha "
          "one batched forward pass over mu_a and mu_a +- eps v_r for every eigenvector column (%d rows), "
          "eps = %g. Its per-evaluation time charges the per-feature eigendecomposition to the %d alphas of a "
          "regressor grid. **Exact**: Eq. 4 with `torch.autograd.functional.hessian` of one output at mu_a "
          "(vectorize=%s), trace with S_i, once per output."
          % (tor["torch_version"], ", ".join(tor.get("build", [])) or "Debian build", 2 * tor["dims"][0] + 1,
             tor["epsilon"], a5["amortized_over_alphas"], tor.get("vectorize")))
        b("")
        b("| per (feature, alpha), all %d outputs | wall | CPU | aced taylor is faster by (wall / CPU) |" % tor["dims"][-1])
        b("|---|---|---|---|")
        b("| aced `taylor` | %s | %s | |" % (ms(t_aced), ms(t_aced_c)))
        b("| torch A.5 (%d features x %d alphas) | %s | %s | **%s / %s** |"
          % (a5["features"], a5["alphas"], ms(a5["seconds_per_eval"], 1), ms(a5["cpu_seconds_per_eval"], 1),
             ratio(a5["seconds_per_eval"], t_aced, 1), ratio(a5["cpu_seconds_per_eval"], t_aced_c, 1)))
        b("| of which: forward passes per alpha / eigendecomposition per feature | %s / %s | | |"
          % (ms(a5["forward_seconds_per_alpha"], 1), ms(a5["eigh_seconds_per_feature"], 1)))
        fa = tor.get("a5_fast")
        if fa:
            b("| torch A.5, the fastest obvious way: W1 (eps V) once per feature, then per alpha only "
              "W1 mu_a + b and the later layers for the %d rows (agrees with the plain script to %s at eps 1e-4) "
              "| %s | %s | **%s / %s** |"
              % (2 * tor["dims"][0] + 1, sci(fa["max_abs_diff_vs_a5"]), ms(fa["seconds_per_eval"], 1),
                 ms(fa["cpu_seconds_per_eval"], 1), ratio(fa["seconds_per_eval"], t_aced, 1),
                 ratio(fa["cpu_seconds_per_eval"], t_aced_c, 1)))
        if ex:
            b("| torch exact Hessian (%d pairs) | %s | %s | **%s / %s** |"
              % (ex["pairs"], ms(ex["seconds_per_eval"], 1), ms(ex["cpu_seconds_per_eval"], 1),
                 ratio(ex["seconds_per_eval"], t_aced, 0), ratio(ex["cpu_seconds_per_eval"], t_aced_c, 0)))
        b("")
        # agreement
        echk = {(c["feature"], round(c["alpha"], 12)): c for c in eng["check"]}
        rows = []
        worst = {"ex": 0.0, "ex_rel": 0.0, "a5": 0.0, "a5_4": 0.0, "fd": 0.0, "a5ex": 0.0, "fd_a5": 0.0}
        n_ex = 0
        for c in tor["check"]:
            e = echk.get((c["feature"], round(c["alpha"], 12)))
            if e is None:
                continue
            d_ex = maxdiff(e["taylor"], c.get("exact"))
            rel = None
            if d_ex is not None:
                n_ex += 1
                scale = max(abs(x) for x in c["exact"])
                rel = d_ex / scale if scale else d_ex
                worst["ex"] = max(worst["ex"], d_ex)
                worst["ex_rel"] = max(worst["ex_rel"], rel)
                worst["a5ex"] = max(worst["a5ex"], maxdiff(c["a5"], c["exact"]))
            worst["a5"] = max(worst["a5"], maxdiff(e["taylor"], c["a5"]))
            worst["a5_4"] = max(worst["a5_4"], maxdiff(e["taylor"], c["a5_eps_1e-4"]))
            fdv = e.get("finite_difference_1e-6")
            if fdv and None not in fdv:
                worst["fd"] = max(worst["fd"], maxdiff(e["taylor"], fdv))
                worst["fd_a5"] = max(worst["fd_a5"], maxdiff(fdv, c["a5"]))
            rows.append((c["feature"], c["alpha"], d_ex, rel, maxdiff(e["taylor"], c["a5"]),
                         maxdiff(e["taylor"], c["a5_eps_1e-4"])))
        b("Numerical agreement at the check pairs (all outputs of each; values printed by both programs):")
        b("")
        b("| feature | alpha | aced taylor vs torch exact (abs) | (relative) | aced taylor vs torch A.5 eps 1e-6 | vs torch A.5 eps 1e-4 |")
        b("|---|---|---|---|---|---|")
        for r in rows:
            b("| %d | %.2f | %s | %s | %s | %s |" % (r[0], r[1], sci(r[2]), sci(r[3]), sci(r[4]), sci(r[5])))
        b("")
        b("Worst over the pairs: aced taylor vs torch exact %s (relative %s, over %d pairs); torch A.5 (eps 1e-6) "
          "vs torch exact %s; aced `finite_difference` (eps 1e-6) vs aced taylor %s and vs torch A.5 %s. "
          "At the paper's eps = 1e-6, central second differences in float64 lose to cancellation an amount "
          "comparable to the second-order term itself, in both implementations; at eps = 1e-4 torch A.5 agrees "
          "with taylor to %s."
          % (sci(worst["ex"]), sci(worst["ex_rel"]), n_ex, sci(worst["a5ex"]), sci(worst["fd"]),
             sci(worst["fd_a5"]), sci(worst["a5_4"])))
        b("")
        tor_worst = worst
    else:
        tor_worst = None

    # ---------------- http ----------------
    cached = htt.get("cached") if htt else None
    cached1 = htt.get("cached_1thread") if htt else None
    cachedi = htt.get("cached_info") if htt else None
    if htt:
        b("## HTTP: `bench/http_bench.py` (aced with 2 workers; `bench/mhd_fixed` with the same libmicrohttpd flags)")
        b("")
        if cached:
            b("Cached attributions: the shared fixture (4 inputs, 3 outputs) registered, the regressors of one "
              "output fitted through the job API (%s), then `POST /v1/models/fixture/attributions` with one input "
              "row, 64 bodies that differ only in that row sent in turn on every connection (a dashboard's "
              "refreshes: every answer a cache hit, from the quick path of `src/svc/quick.c` once each HTTP "
              "thread has answered the query; %d-byte reply) against `mhd_fixed` answering a fixed %d-byte JSON "
              "body: %s, %d connection(s), %d run(s) of %d s per server, alternating, after a warm-up. "
              "Every figure, latency percentiles included, is the median run's, the same rule for both servers "
              "(a run that lost its core to a neighbour on this shared machine does not move them; until "
              "2026-12-02 the percentiles were the worst run's, and one disturbed run decided the p99 "
              "comparison); the worst run's p99 is given in the targets and every run below. Server CPU is "
              "the server process's user + system time per request over the run (from /proc)."
              % (sec(htt.get("warm_job_seconds")), htt["reply_bytes"], htt["baseline_reply_bytes"],
                 "wrk, 2 threads" if htt.get("client") == "wrk" else "a Python client (wrk absent)",
                 cached["connections"], cached["rounds"], cached["duration"]))
            b("")
            b("It runs in two configurations, each server with the same number of HTTP threads: 2 (the daemon's "
              "default) and 1. wrk runs on the same two cores and keeps about one of them busy. With 2 HTTP "
              "threads both servers compete with wrk for both cores; once a server has no idle time left, a "
              "request waits whenever the scheduler has its thread off the CPU (a time slice, milliseconds), "
              "whatever the server does per request. The third server of the 2-thread run shows this: bare "
              "libmicrohttpd plus a fixed busy loop per request (`mhd_fixed --spin-ns`, the amount below). "
              "Both run aced at `log_level=warn`; a third run is the default configuration, 2 HTTP threads at "
              "`info` (one access-log line per request, batched, to a file here), against bare libmicrohttpd "
              "again.")
            b("")
            b("| HTTP threads | server | requests/s | p50 | p99 | server CPU per request | non-2xx | socket errors |")
            b("|---|---|---|---|---|---|---|---|")
            for c in (cached, cached1, cachedi):
                if not c:
                    continue
                names = [("aced", "aced (cache hit)"), ("mhd", "bare libmicrohttpd")]
                if c.get("spin"):
                    names.append(("spin", "bare + %d ns busy work per request" % c["spin_ns"]))
                for key, label in names:
                    X = c[key]
                    cpu = X.get("server_cpu_us_per_request")
                    b("| %s | %s | %.0f | %s | %s | %s | %d | %d |"
                      % (conf_label(c), label, X["rps"], ms(X["p50"]), ms(X["p99"]),
                         "n/a" if cpu is None else "%.1f us" % cpu, X["non_2xx"], X["socket_errors"]))
                A, M = c["aced"], c["mhd"]
                b("| %s | **ratio aced / bare** | **%s** | %s | %s | %s | | |"
                  % (conf_label(c), "n/a" if c["ratio"] is None else "%.1f%%" % (100 * c["ratio"]),
                     ratio(A["p50"], M["p50"]), ratio(A["p99"], M["p99"]),
                     ratio(A.get("server_cpu_us_per_request"), M.get("server_cpu_us_per_request"))))
            b("")
            b("Every run, in order (requests/s, p50, p99):")
            b("")
            b("| HTTP threads | run | server | requests/s | p50 | p99 | server CPU per request |")
            b("|---|---|---|---|---|---|---|")
            for c in (cached, cached1, cachedi):
                if not c:
                    continue
                keys = [k for k in ("aced", "mhd", "spin") if c.get(k)]
                for i in range(len(c["aced"]["runs"])):
                    for k in keys:
                        r = c[k]["runs"][i]
                        cpu = r.get("server_cpu_us_per_request")
                        b("| %s | %d | %s | %.0f | %s | %s | %s |"
                          % (conf_label(c), i + 1, k, r["rps"] or 0, ms(r["p50"]), ms(r["p99"]),
                             "n/a" if cpu is None else "%.1f us" % cpu))
            b("")
        for key, title in (("big", "Registration of a ~1M-parameter model over HTTP"),
                           ("k4096", "A 4096-input model")):
            r = htt.get(key)
            if not r:
                continue
            b("%s (%s, %s parameters, %d samples in the body; registering with samples, so aced computes the "
              "covariance; the factorization happens once, on a worker, at the first query):"
              % (title, r["arch"], "{:,}".format(r["params"]) if "params" in r else "about %s" % r["arch"], r["samples"]))
            b("")
            b("| figure | value |")
            b("|---|---|")
            b("| body | %s |" % mib(r["body_bytes"]))
            b("| `POST /v1/models` | HTTP %s in %s |" % (r["status"], sec(r["register_seconds"])))
            if "first_query_seconds" in r:
                b("| first `POST .../interventions` (3 values, taylor; includes loading and prepare) | HTTP %s in %s |"
                  % (r["first_query_status"], sec(r["first_query_seconds"])))
                if "first_query_202_seconds" in r:
                    b("| of which: answered 202 (a job) after | %s; job %s |"
                      % (sec(r["first_query_202_seconds"]), r.get("first_query_via_job")))
                b("| second, same query (model prepared) | HTTP %s in %s (%s faster) |"
                  % (r["second_query_status"], ms(r["second_query_seconds"], 1), ratio(r["first_query_seconds"], r["second_query_seconds"], 0)))
            b("| daemon peak RSS (VmHWM) before / after | %s / %s |" % (mib(r.get("vmhwm_before")), mib(r.get("vmhwm_after"))))
            p = r.get("probe", {})
            b("| worst `GET /healthz` latency meanwhile (%d probes, every 50 ms) | %s (%d failed) |"
              % (p.get("probes", 0), ms(p.get("worst_healthz_seconds"), 1), p.get("failures", 0)))
            if r.get("error") or r.get("first_query_error"):
                b("| error | %s |" % (r.get("error") or r.get("first_query_error")).replace("|", "/")[:300])
            b("")
        mj = htt.get("mnist_job")
        if mj:
            b("All regressors of one output of the MNIST-scale model (%s, %d features, num = %d, estimator taylor) "
              "through `POST /v1/models/mnist/regressors` and `GET /v1/jobs/{id}`, 2 workers:"
              % (mj["arch"], mj["features"], mj["num"]))
            b("")
            b("| figure | value | ratio |")
            b("|---|---|---|")
            b("| job: %s | %s | |" % (mj["state"], sec(mj["seconds"])))
            eng_t = full["taylor_seconds_per_eval"] if full else None
            b("| per (feature, alpha) per worker | %s | %s of bench_engine's taylor (the rest: regressor fits, "
              "cache writes, 2 workers on 2 shared cores) |" % (ms(mj["seconds_per_feature_alpha_per_worker"]),
                                                              ratio(mj["seconds_per_feature_alpha_per_worker"], eng_t)))
            if mj.get("parallelism") is not None:
                b("| daemon CPU time during the job / cores kept busy on average | %s / %.2f | of 2 workers |"
                  % (sec(mj["daemon_cpu_seconds"]), mj["parallelism"]))
                b("| daemon CPU per (feature, alpha) | %s | %s of bench_engine's taylor (CPU) |"
                  % (ms(mj["daemon_cpu_seconds"] / (mj["features"] * mj["num"])),
                     ratio(mj["daemon_cpu_seconds"] / (mj["features"] * mj["num"]),
                           full["taylor_cpu_seconds_per_eval"] if full else None)))
                ref, rname = job_reference(mj, full)
                if mj.get("taylor_reference_cpu_seconds"):
                    b("| the same against %s | | %s |"
                      % (rname, ratio(mj["daemon_cpu_seconds"] / (mj["features"] * mj["num"]), ref)))
            if mj.get("error"):
                b("| error | %s | |" % json.dumps(mj["error"])[:300])
            b("")

    # ---------------- integrated gradients ----------------
    eig, tig = (eng or {}).get("integrated_gradients"), (tor or {}).get("integrated_gradients")
    if eig:
        w("## Integrated gradients: `eng_integrated_gradients` vs PyTorch autograd (one core, float64)")
        w("")
        w("%d input rows of the MNIST-scale network, %d Gauss-Legendre steps, baseline zeros, output 0 "
          "(`POST .../explanations` with `integrated_gradients`). aced takes the first layer's pre-activations "
          "along each path as a line and applies W1 once per row; PyTorch runs autograd at every point of "
          "every path, 16 rows at a time." % (eig["rows"], eig["steps"]))
        w("")
        w("| | wall | CPU |")
        w("|---|---|---|")
        w("| aced | %s | %s |" % (sec(eig["seconds"]), sec(eig["cpu_seconds"])))
        if tig:
            w("| PyTorch | %s | %s |" % (sec(tig["seconds"]), sec(tig["cpu_seconds"])))
            w("| **PyTorch / aced** | **%s** | **%s** |" % (ratio(tig["seconds"], eig["seconds"]),
                                                         ratio(tig["cpu_seconds"], eig["cpu_seconds"])))
        w("")
        diff = (max(maxdiff(a, b) for a, b in zip(eig["first_rows"], tig["first_rows"]))
                if tig and eig.get("first_rows") and tig.get("first_rows") else None)
        w("Completeness gap (largest |sum(attributions) - (f(x) - f(0))| over the rows): %s; largest difference "
          "from PyTorch on the first two rows: %s." % (sci(eig["completeness_gap"]),
                                                       sci(diff) if diff is not None else "n/a"))
        w("")
        if tig:
            sp = tig["cpu_seconds"] / eig["cpu_seconds"]
            targets.append(("integrated gradients, 64 steps, 1000 rows, MNIST-scale, vs PyTorch, one core", ">= 3x",
                            "%s CPU (aced %s, PyTorch %s), %s wall" % (ratio(tig["cpu_seconds"], eig["cpu_seconds"]),
                                                                      sec(eig["cpu_seconds"]), sec(tig["cpu_seconds"]),
                                                                      ratio(tig["seconds"], eig["seconds"])),
                            MET if sp >= 3 else NOT))

    # ---------------- targets ----------------
    if full:
        tw, tc = full["taylor_seconds_per_eval"], full["taylor_cpu_seconds_per_eval"]
        st = MET if tw <= 5e-3 and tc <= 5e-3 else (
            "met on CPU time, not on wall time (core shared)" if tc <= 5e-3 else NOT)
        targets.append(("taylor, exact, full-rank, MNIST-scale: time per (feature, alpha), all 10 outputs, one core, float64",
                        "<= 5 ms", "%s wall, %s CPU" % (ms(tw), ms(tc)), st))
        rw = tw / full["floor_seconds_per_eval"]
        rc = tc / full["floor_cpu_seconds_per_eval"]
        st = MET if rw <= 1.5 and rc <= 1.5 else ("met on CPU time only" if rc <= 1.5 else NOT)
        targets.append(("taylor within 1.5x of the GEMM floor", "<= 1.5x",
                        "%.2fx wall, %.2fx CPU (floor %s CPU)" % (rw, rc, ms(full["floor_cpu_seconds_per_eval"])), st))
        fi = full.get("floor_interleaved_cpu_seconds_per_eval")
        if fi:
            ri = tc / fi
            targets.append(("taylor within 1.15x of the GEMM floor (issue #11), the floor timed between the taylor "
                            "calls", "<= 1.15x", "%.2fx CPU (floor %s; against the best-of-3 floor %.2fx)"
                            % (ri, ms(fi), rc), MET if ri <= 1.15 else NOT))
        else:
            targets.append(("taylor within 1.15x of the GEMM floor (issue #11)", "<= 1.15x", "%.2fx CPU" % rc,
                            MET if rc <= 1.15 else NOT))
        mj = htt.get("mnist_job") if htt else None
        if mj and mj.get("daemon_cpu_seconds"):
            per = mj["daemon_cpu_seconds"] / (mj["features"] * mj["num"])
            ref, rname = job_reference(mj, full)
            targets.append(("regressor job: daemon CPU per (feature, alpha) within 1.2x of bench_engine's taylor "
                            "(issue #11)", "<= 1.2x", "%.2fx (%s vs %s, %s; against bench_engine's full run %.2fx; "
                            "%d samples, %.2f cores busy)"
                            % (per / ref, ms(per), ms(ref), rname, per / tc, mj.get("samples", 0),
                               mj.get("parallelism") or 0),
                            MET if per / ref <= 1.2 else NOT))
        mm = htt.get("mnist_moments_job") if htt else None
        if mm and mm.get("daemon_cpu_seconds"):
            per = mm["daemon_cpu_seconds"] / (mm["features"] * mm["num"])
            ref, rname = job_reference(mm, full)
            targets.append(("regressor job without samples (mean and covariance): daemon CPU per (feature, "
                            "alpha) within 1.2x of bench_engine's taylor (issue #11)", "<= 1.2x",
                            "%.2fx (%s vs %s, %s; against bench_engine's full run %.2fx; %d features, "
                            "%.2f cores busy)"
                            % (per / ref, ms(per), ms(ref), rname, per / tc, mm["features"],
                               mm.get("parallelism") or 0),
                            MET if per / ref <= 1.2 else NOT))
    else:
        targets.append(("taylor time and GEMM floor", "<= 5 ms, <= 1.5x", "engine benchmark did not run", NA))
    if tor and full:
        a5 = tor["a5"]
        rw = a5["seconds_per_eval"] / full["taylor_seconds_per_eval"]
        rc = a5["cpu_seconds_per_eval"] / full["taylor_cpu_seconds_per_eval"]
        targets.append(("taylor >= 10x faster than the PyTorch A.5 script", ">= 10x",
                        "%.1fx wall, %.1fx CPU (A.5 %s)" % (rw, rc, ms(a5["seconds_per_eval"], 1)),
                        MET if min(rw, rc) >= 10 else NOT))
    else:
        targets.append(("taylor >= 10x faster than the PyTorch A.5 script", ">= 10x", "PyTorch peer did not run", NA))
    if eng and eng.get("lowrank"):
        parts = ["%.2f: %s, %s vs full" % (r["share"], ms(r["taylor_cpu_seconds_per_eval"]), ratio(full["taylor_cpu_seconds_per_eval"], r["taylor_cpu_seconds_per_eval"]))
                 + ", err %s" % sci(r.get("max_abs_err_vs_full")) for r in eng["lowrank"]]
        targets.append(("low-rank mode: speed and error reported", "report", "; ".join(parts), MET))
    if cached:
        wrk_used = htt.get("client") == "wrk"
        confs = [c for c in (cached, cached1) if c]
        parts, oks = [], []
        for c in confs:
            r = c["ratio"]
            parts.append("%d HTTP thread%s: %s (%.0f vs %.0f req/s)"
                         % (c["threads"], "" if c["threads"] == 1 else "s", "n/a" if r is None else "%.1f%%" % (100 * r), c["aced"]["rps"], c["mhd"]["rps"]))
            oks.append(r is not None and r >= 0.70)
        targets.append(("cached queries: throughput vs bare libmicrohttpd, same run", ">= 70%", "; ".join(parts),
                        NA if not wrk_used else judged_by_config(confs, oks)))
        parts, oks = [], []
        for c in confs:
            p99 = c["aced"]["p99"]
            extra = ""
            if c.get("spin"):
                extra = "; bare + %d ns/request: %s" % (c["spin_ns"], ms(c["spin"]["p99"]))
            parts.append("%d HTTP thread%s: %s (p50 %s; bare %s%s)"
                         % (c["threads"], "" if c["threads"] == 1 else "s", ms(p99), ms(c["aced"]["p50"]), ms(c["mhd"]["p99"]), extra))
            oks.append(p99 is not None and p99 <= 5e-3)
        ok64 = wrk_used and all(c["connections"] == 64 for c in confs)
        targets.append(("cached queries: p99 at 64 connections", "<= 5 ms", "; ".join(parts),
                        NA if not ok64 else judged_by_config(confs, oks)))
        # issue #11: the same comparison, tighter, with p99 and CPU, and the default configuration
        confs11 = [c for c in (cached, cached1, cachedi) if c]
        parts, oks = [], []
        for c in confs11:
            r, A, M = c["ratio"], c["aced"], c["mhd"]
            ac, mc = A.get("server_cpu_us_per_request"), M.get("server_cpu_us_per_request")
            cr = ac / mc if ac and mc else None
            worst = ""
            if A.get("p99_worst") is not None and M.get("p99_worst") is not None:
                worst = " (worst run %s vs %s)" % (ms(A["p99_worst"]), ms(M["p99_worst"]))
            parts.append("%s HTTP thread(s): %s, p99 %s vs %s%s, CPU %s"
                         % (conf_label(c), "n/a" if r is None else "%.1f%%" % (100 * r), ms(A["p99"]), ms(M["p99"]),
                            worst, "n/a" if cr is None else "%.2fx" % cr))
            oks.append(r is not None and r >= 0.80 and A["p99"] is not None and M["p99"] is not None and
                       A["p99"] <= M["p99"] and cr is not None and cr <= 1.3)
        targets.append(("cached attributions vs bare libmicrohttpd (issue #11): throughput, p99 no worse, server CPU "
                        "per request", ">= 80%, p99 <= bare's, CPU <= 1.3x", "; ".join(parts),
                        NA if not wrk_used else judged_by_config(confs11, oks)))
    else:
        targets.append(("cached queries: throughput ratio and p99", ">= 70%, <= 5 ms", "HTTP benchmark did not run", NA))
    k4 = htt.get("k4096") if htt else None
    if k4:
        okk = k4["status"] in (200, 201) and k4.get("first_query_status") == 200
        targets.append(("models with up to 4096 inputs register and answer", "register + answer",
                        "%s: HTTP %s in %s; first query HTTP %s in %s" % (k4["arch"], k4["status"], sec(k4["register_seconds"]),
                                                                           k4.get("first_query_status"), sec(k4.get("first_query_seconds"))),
                        MET if okk else NOT))
        p = k4.get("probe", {})
        once = (k4.get("second_query_seconds") is not None and k4.get("first_query_seconds")
                and k4["second_query_seconds"] < 0.2 * k4["first_query_seconds"])
        calm = p.get("worst_healthz_seconds") is not None and p["worst_healthz_seconds"] < 0.25 and p.get("failures", 1) == 0
        targets.append(("covariance factorization once per model, off the HTTP threads",
                        "once; HTTP threads stay responsive",
                        "4096 inputs: second query %s after a first of %s; worst /healthz %s during registration and "
                        "first query (judged: second query < 20%% of the first, /healthz < 250 ms)"
                        % (ms(k4.get("second_query_seconds"), 1), sec(k4.get("first_query_seconds")), ms(p.get("worst_healthz_seconds"), 1)),
                        MET if okk and once and calm else NOT))
    else:
        targets.append(("models with up to 4096 inputs; factorization once, off the HTTP threads", "", "not run", NA))
    fx = eng.get("fixture") if eng else None
    if fx:
        et, em = fx.get("taylor_max_abs_err"), fx.get("montecarlo_max_abs_err")
        okf = et is not None and em is not None and et <= 1e-10 and em <= 1e-10
        targets.append(("no regression in the shared fixture's accuracy", "<= 1e-10 (the e2e bar; ~1e-12 expected)",
                        "taylor %s, montecarlo %s" % (sci(et), sci(em)), MET if okf else NOT))
    if tor_worst is not None:
        targets.append(("(check) aced taylor agrees with the torch exact Hessian", "<= 1e-9 relative",
                        "%s relative (%s abs)" % (sci(tor_worst["ex_rel"]), sci(tor_worst["ex"])),
                        MET if tor_worst["ex_rel"] <= 1e-9 else NOT))

    w("## Targets (issues #4, #11 and #15)")
    w("")
    w("| requirement | target | measured | status |")
    w("|---|---|---|---|")
    for t in targets:
        w("| %s | %s | %s | %s |" % t)
    w("")
    hosts_table(a, info, w, host_figures(full, cached, cached1, cachedi, htt, eig, tig))
    L.extend(body)
    w("## Reproducing")
    w("")
    w("`make bench` builds `bench/bench_engine`, `bench/mhd_fixed` and `aced` and runs `bench/run` "
      "(about ten minutes), which writes this file; intermediate JSON stays in `bench-results/` of the build "
      "folder. `make bench-smoke` (also part of `make check`) runs a seconds-long version of every part "
      "without PyTorch or wrk. Peers: Debian's `python3-torch` run with `/usr/bin/python3`, Debian's `wrk`.")
    w("")
    # Sections written by other topics' benchmarks (bench/section.py)
    # survive this rewrite, in their order, after the core figures.
    try:
        with open(a.out) as f:
            kept = [blk for _, blk in section.sections(f.read())]
    except FileNotFoundError:
        kept = []
    text = "\n".join(L)
    for blk in kept:
        text = text.rstrip("\n") + "\n\n" + blk
    with open(a.out, "w") as f:
        f.write(text)


def conf_label(c):
    """The HTTP-threads column of a cached configuration, with its log level when not warn."""
    lv = c.get("log_level", "warn")
    return "%d%s" % (c["threads"], "" if lv == "warn" else " (log_level %s)" % lv)


def job_reference(job, full):
    """eng_taylor's CPU seconds per (feature, alpha) that a regressor job is judged against: the mean of the
    references http_bench.py took just before and after the job (bench_engine --taylor-only), or, from an older
    run without them, bench_engine's full run; and how to name it."""
    refs = [r for r in (job.get("taylor_reference_cpu_seconds") or []) if r]
    if refs:
        return sum(refs) / len(refs), "eng_taylor beside the job (%s before, %s after)" % (
            ms(refs[0]), ms(refs[-1]))
    if full:
        return full["taylor_cpu_seconds_per_eval"], "bench_engine's taylor"
    return None, "no taylor reference"


def host_figures(full, cached, cached1, cachedi, htt, eig, tig):
    """The headline figures of this run that differ between kinds of host, as text."""
    f = {}
    if full:
        f["taylor per (feature, alpha), CPU"] = ms(full["taylor_cpu_seconds_per_eval"])
        f["taylor / GEMM floor (CPU)"] = "%.2fx" % (full["taylor_cpu_seconds_per_eval"] /
                                                   full["floor_cpu_seconds_per_eval"])
        if full.get("floor_interleaved_cpu_seconds_per_eval"):
            f["taylor / GEMM floor timed between its calls (CPU)"] = "%.2fx" % (
                full["taylor_cpu_seconds_per_eval"] / full["floor_interleaved_cpu_seconds_per_eval"])
    for c, label in ((cached, "2 HTTP threads"), (cached1, "1 HTTP thread"),
                     (cachedi, "2 HTTP threads, log_level info (the default)")):
        if c and c.get("ratio") is not None:
            f["cached attributions vs bare libmicrohttpd, " + label] = "%.1f%% (%.0f vs %.0f req/s)" % (
                100 * c["ratio"], c["aced"]["rps"], c["mhd"]["rps"])
            a_cpu, m_cpu = c["aced"].get("server_cpu_us_per_request"), c["mhd"].get("server_cpu_us_per_request")
            if a_cpu and m_cpu:
                f["server CPU per cached request, aced / bare, " + label] = "%.1f / %.1f us (%.2fx)" % (
                    a_cpu, m_cpu, a_cpu / m_cpu)
    mj = htt.get("mnist_job") if htt else None
    if mj and full and mj.get("daemon_cpu_seconds"):
        per = mj["daemon_cpu_seconds"] / (mj["features"] * mj["num"])
        ref, rname = job_reference(mj, full)
        f["regressor job: daemon CPU per (feature, alpha) / bench_engine taylor"] = "%.2fx (%s vs %s, %s)" % (
            per / ref, ms(per), ms(ref), rname)
    mm = htt.get("mnist_moments_job") if htt else None
    if mm and full and mm.get("daemon_cpu_seconds"):
        per = mm["daemon_cpu_seconds"] / (mm["features"] * mm["num"])
        ref, rname = job_reference(mm, full)
        f["regressor job without samples: daemon CPU per (feature, alpha) / bench_engine taylor"] = \
            "%.2fx (%s vs %s, %s)" % (per / ref, ms(per), ms(ref), rname)
    if eig and tig:
        f["integrated gradients: PyTorch / aced (CPU)"] = ratio(tig["cpu_seconds"], eig["cpu_seconds"])
    return f


def hosts_table(a, info, w, figures):
    """One column per kind of host (CPU model and kernel), kept across runs in the hosts file: this
    run replaces its own kind's column and leaves the others as they were measured."""
    path = a.hosts or os.path.join(os.path.dirname(os.path.abspath(a.out)), "bench", "hosts.json")
    try:
        with open(path) as fh:
            hosts = json.load(fh)
    except (OSError, ValueError):
        hosts = []
    kind = "%s, %s" % (info.get("cpu", "?"), info.get("kernel", "?"))
    if figures:
        hosts = [h for h in hosts if h.get("kind") != kind]
        hosts.append({"kind": kind, "run": "%s at %s" % (info.get("date", "?"), info.get("commit", "?")),
                      "libmicrohttpd": info.get("mhd", "?"), "figures": figures})
        try:
            with open(path, "w") as fh:
                json.dump(hosts, fh, indent=1)
                fh.write("\n")
        except OSError:
            pass
    if not hosts:
        return
    w("## On each kind of host")
    w("")
    w("A ratio measured on one kind of host does not stand for another: system-call costs and vector "
      "units differ. Each column is the latest run on that kind (CPU model and kernel), kept in "
      "`bench/hosts.json`; this run replaced its own column only.")
    w("")
    w("| figure | " + " | ".join(h["kind"] for h in hosts) + " |")
    w("|---|" + "---|" * len(hosts))
    w("| measured | " + " | ".join(h.get("run", "?") for h in hosts) + " |")
    w("| libmicrohttpd | " + " | ".join(h.get("libmicrohttpd", "?") for h in hosts) + " |")
    names = []
    for h in hosts:
        for k in h.get("figures", {}):
            if k not in names:
                names.append(k)
    for k in names:
        w("| %s | %s |" % (k, " | ".join(h.get("figures", {}).get(k, "not measured") for h in hosts)))
    w("")


if __name__ == "__main__":
    main()
