#!/usr/bin/env python3
"""http_bench.py -- aced over HTTP, side by side with a bare libmicrohttpd server, in one run.

Python 3 standard library only.  Starts the real daemon (./aced, --workers=2, a temporary database)
and bench/mhd_fixed, and measures:

  1. cached attributions: the shared fixture registered, the regressors of one output fitted through
     the job API, then bounded `wrk` runs (POST /v1/models/{name}/attributions, one input row,
     --latency, 64 connections, 2 threads) against aced and against mhd_fixed answering a fixed body
     of the same size, alternating, several rounds: throughput ratio, p50/p99, server CPU per
     request.  Twice: both servers with 2 HTTP threads (the daemon's default), then both with 1
     (wrk keeps one of this machine's two cores busy).  With 2 threads a third server runs too:
     mhd_fixed plus --spin-ns of busy work per request, a calibration of how p99 depends on the
     server having idle time at all;
  2. registration of a ~1M-parameter model (784-1024-192-10, 2000 samples): time, the daemon's peak
     RSS (VmHWM), first and second interventions query;
  3. all 784 regressors of one output of the MNIST-scale model (784-512-256-128-64-10, num=100,
     estimator taylor) through POST /v1/models/{name}/regressors on 2 workers: time;
  4. a 4096-input model (4096-256-10, 800 samples): registration and one interventions query.

While 2 and 4 run, a probe thread sends GET /healthz every 50 ms and records its worst latency:
numerical work (parsing, covariance, factorization) must not stall the HTTP threads.

--smoke: the fixture only, a one-second Python client instead of wrk (wrk not needed), small models.
Writes --json FILE.  Benchmark code: not part of the daemon.
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(msg)
    sys.stdout.flush()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(port, method, path, body=None, raw=None, timeout=600):
    """One request on a fresh connection: (status, parsed JSON or None, raw bytes, seconds)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Content-Type": "application/json"} if data is not None else {}
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = r.read()
        dt = time.perf_counter() - t0
    finally:
        c.close()
    try:
        j = json.loads(out) if out else None
    except ValueError:
        j = None
    return r.status, j, out, dt


def wait_port(port, proc, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server on port %d not up" % port)


def proc_cpu_seconds(pid):
    """User + system CPU seconds of a process so far, from /proc/<pid>/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    """VmHWM and VmRSS in bytes from /proc/<pid>/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) * 1024
    return out


class Probe(threading.Thread):
    """GET /healthz every 50 ms; keeps the worst latency (seconds) and failures."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.worst = 0.0
        self.n = 0
        self.failures = 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                st, _, _, dt = request(self.port, "GET", "/healthz", timeout=60)
                self.worst = max(self.worst, dt)
                self.failures += st != 200
            except OSError:
                self.failures += 1
            self.n += 1
            self.stop_ev.wait(0.05)

    def stop(self):
        self.stop_ev.set()
        self.join()
        return {"probes": self.n, "worst_healthz_seconds": self.worst, "failures": self.failures}


def wait_job(port, job_id, timeout):
    deadline = time.time() + timeout
    while True:
        st, j, raw, _ = request(port, "GET", "/v1/jobs/" + job_id)
        if st != 200:
            raise RuntimeError("GET job: HTTP %d %s" % (st, raw[:300]))
        if j["state"] in ("done", "failed", "cancelled") or time.time() > deadline:
            return j
        time.sleep(0.1)


def run_job(port, model, body, timeout):
    t0 = time.perf_counter()
    st, j, raw, _ = request(port, "POST", "/v1/models/%s/regressors" % model, body)
    if st not in (200, 202):
        raise RuntimeError("POST regressors: HTTP %d %s" % (st, raw[:300]))
    jid = j["job"]["id"]
    fin = wait_job(port, jid, timeout)
    return fin, time.perf_counter() - t0


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_wrk(text):
    out = {}
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s*%s(?:\.000)?%%\s+([\d.]+)(us|ms|s|m)\s*$" % pct, text, re.M)
        out["p" + pct] = float(m.group(1)) * UNITS[m.group(2)] if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    out["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return out


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def run_wrk(port, path, body_file, duration, conns, threads):
    env = dict(os.environ, ACED_BENCH_BODY=body_file)
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--latency", "--timeout", "10s",
           "-s", os.path.join(HERE, "attr.lua"), "http://127.0.0.1:%d%s" % (port, path)]
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=duration + 60)
    r = parse_wrk(p.stdout)
    r["raw"] = p.stdout
    return r


def python_load(port, path, body, seconds):
    """Sequential keep-alive requests for `seconds`: the smoke test's stand-in for wrk."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = json.dumps(body).encode()
    lat = []
    bad = 0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        c.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        lat.append(time.perf_counter() - t0)
        bad += r.status != 200
    c.close()
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    return {"rps": len(lat) / seconds, "p50": pick(0.5), "p99": pick(0.99), "requests": len(lat),
            "non_2xx": bad, "socket_errors": 0, "client": "python, 1 connection"}


def gen_body(bench_engine, path, name, arch, samples, moments=False):
    subprocess.run([bench_engine, "--body", path, "--name", name, "--arch", arch, "--samples", str(samples)]
                   + (["--moments"] if moments else []),
                   check=True, timeout=600)
    return os.path.getsize(path)


def taylor_reference(bench_engine, arch, samples, features=4):
    """bench_engine --taylor-only on the job's network, pinned to one core as in `make bench`: eng_taylor's CPU
    seconds per (feature, alpha), taken beside a regressor job rather than minutes apart (a shared host's speed
    drifts by 10% and more within a run)."""
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        cmd = [bench_engine, "--taylor-only", "--arch", arch, "--samples", str(samples),
               "--features", str(features), "--json", path]
        ts = shutil.which("taskset")
        if ts and subprocess.run([ts, "-c", "1", "true"], capture_output=True).returncode == 0:
            cmd = [ts, "-c", "1"] + cmd
        subprocess.run(cmd, check=True, timeout=600, stdout=subprocess.DEVNULL)
        with open(path) as f:
            return json.load(f)["full"]["taylor_cpu_seconds_per_eval"]
    finally:
        os.unlink(path)


def register_big(port, pid, path, name, probe_port, query_feature):
    """POST a generated body; time it, the first and second interventions query, and VmHWM."""
    with open(path, "rb") as f:
        raw = f.read()
    before = proc_status(pid)
    probe = Probe(probe_port)
    probe.start()
    st, j, out, dt = request(port, "POST", "/v1/models", raw=raw)
    res = {"body_bytes": len(raw), "status": st, "register_seconds": dt}
    if st not in (200, 201):
        res["error"] = out[:500].decode("utf-8", "replace")
        res["probe"] = probe.stop()
        return res
    q = {"output": "c0", "feature": query_feature, "values": [0.25, 0.5, 0.75], "estimator": "taylor"}
    st1, j1, out1, dt1 = request(port, "POST", "/v1/models/%s/interventions" % name, q)
    if st1 == 202 and j1 and "job" in j1:
        # slower than --sync_wait_ms: the answer comes from the job; follow it
        res["first_query_202_seconds"] = dt1
        t0 = time.perf_counter()
        fin = wait_job(port, j1["job"]["id"], 3600)
        dt1 += time.perf_counter() - t0
        st1 = 200 if fin["state"] == "done" else 500
        res["first_query_via_job"] = fin["state"]
    st2, j2, out2, dt2 = request(port, "POST", "/v1/models/%s/interventions" % name, q)
    res.update({"first_query_status": st1, "first_query_seconds": dt1, "second_query_status": st2,
                "second_query_seconds": dt2, "vmhwm_before": before["VmHWM"]})
    if st1 != 200:
        res["first_query_error"] = out1[:500].decode("utf-8", "replace")
    after = proc_status(pid)
    res["vmhwm_after"] = after["VmHWM"]
    res["vmrss_after"] = after["VmRSS"]
    res["probe"] = probe.stop()
    st, mj, _, _ = request(port, "GET", "/v1/models/" + name)
    if st == 200:
        res["model_meta"] = {k: v for k, v in mj.items() if isinstance(v, (int, float, str))}
    return res


def start_aced(aced, work, tag, threads, level="warn"):
    """./aced on a free port with database and log <work>/<tag>.db and .log, 2 workers and `threads` HTTP
    threads, once /readyz answers: (process, port)."""
    port = free_port()
    alog = open(os.path.join(work, tag + ".log"), "wb")
    p = subprocess.Popen([aced, "--port=%d" % port, "--database=%s" % os.path.join(work, tag + ".db"),
                          "--workers=2", "--http_threads=%d" % threads, "--log_level=" + level],
                         stdout=alog, stderr=alog)
    wait_port(port, p)
    deadline = time.time() + 20
    while request(port, "GET", "/readyz")[0] != 200 and time.time() < deadline:
        time.sleep(0.05)
    return p, port


def cached_config(aced, mhd, fixture, work, threads, args, use_wrk, spin_ns, level="warn"):
    """Cached attributions on aced against bare libmicrohttpd, both with `threads` HTTP threads.

    A fresh aced (its own database, 2 workers): the shared fixture registered, the regressors of one
    output fitted through the job API, then alternating wrk rounds against aced, mhd_fixed and (if
    spin_ns) mhd_fixed adding spin_ns of busy work per request.  Each run also records the server's
    CPU time per request (from /proc)."""
    out = {"threads": threads, "log_level": level}
    procs = []
    try:
        pa, port = start_aced(aced, work, "cached-%d-%s" % (threads, level), threads, level)
        procs.append(pa)
        with open(fixture) as f:
            fx = json.load(f)
        fx.pop("reference", None)
        fx["name"] = "fixture"
        st, j, raw, _ = request(port, "POST", "/v1/models", fx)
        if st not in (200, 201):
            raise RuntimeError("fixture registration: HTTP %d %s" % (st, raw[:300]))
        out_name = fx["outputs"][1]
        fin, dt = run_job(port, "fixture", {"outputs": [out_name], "estimator": "taylor", "num": 100}, 120)
        if fin["state"] != "done":
            raise RuntimeError("warming job: %s" % fin)
        out["warm_job_seconds"] = dt
        row = [0.2, 0.7, 0.4, 0.9]
        q = {"output": out_name, "inputs": [row], "estimator": "taylor", "num": 100}
        st, j, raw, _ = request(port, "POST", "/v1/models/fixture/attributions", q)
        if st != 200 or j["meta"].get("cache") != "hit":
            raise RuntimeError("attributions after warm-up not a cache hit: HTTP %d %s" % (st, raw[:300]))
        reply_bytes = len(raw)
        out["reply_bytes"] = reply_bytes
        # 64 bodies, the same query with other rows (a dashboard's refreshes), sent in turn: every
        # answer still a cache hit, none a repeat of the body before
        rng = random.Random(64)
        body_file = os.path.join(work, "attr.json")
        with open(body_file, "w") as f:
            for i in range(64):
                qi = dict(q, inputs=[row] if i == 0 else [[round(rng.uniform(0, 1), 6) for _ in row]])
                f.write(json.dumps(qi, separators=(",", ":")) + "\n")
        out["bodies"] = 64
        servers = [("aced", port, pa)]
        for name, extra in (("mhd", []), ("spin", ["--spin-ns=%d" % spin_ns])):
            if name == "spin" and not spin_ns:
                continue
            mport = free_port()
            mlog = open(os.path.join(work, "%s-%d.log" % (name, threads)), "wb")
            pm = subprocess.Popen([mhd, "--port=%d" % mport, "--size=%d" % reply_bytes,
                                   "--threads=%d" % threads] + extra, stdout=mlog, stderr=mlog)
            procs.append(pm)
            wait_port(mport, pm)
            servers.append((name, mport, pm))
        st, _, mraw, _ = request(servers[1][1], "POST", "/v1/models/fixture/attributions", q)
        out["baseline_reply_bytes"] = len(mraw)
        path = "/v1/models/fixture/attributions"
        runs = {name: [] for name, _, _ in servers}
        if use_wrk:
            for _, p, _ in servers:
                run_wrk(p, path, body_file, 2, args.connections, args.threads)  # warm-up
            for _ in range(args.rounds):
                for name, p, proc in servers:
                    cpu0 = proc_cpu_seconds(proc.pid)
                    r = run_wrk(p, path, body_file, args.duration, args.connections, args.threads)
                    cpu = proc_cpu_seconds(proc.pid) - cpu0
                    r["server_cpu_us_per_request"] = 1e6 * cpu / r["requests"] if r["requests"] else None
                    log("%d thread(s): wrk %-4s %10.0f req/s  p50 %.3f ms  p99 %.3f ms  %.1f us CPU/request  "
                        "non-2xx %d" % (threads, name, r["rps"] or 0, 1e3 * (r["p50"] or 0), 1e3 * (r["p99"] or 0),
                                        r["server_cpu_us_per_request"] or 0, r["non_2xx"]))
                    runs[name].append(r)
        else:
            for name, p, _ in servers:
                r = python_load(p, path, q, 0.5)
                log("python %-4s %8.0f req/s  p50 %.3f ms  p99 %.3f ms" %
                    (name, r["rps"], 1e3 * r["p50"], 1e3 * r["p99"]))
                runs[name].append(r)
        for name in runs:
            rs = runs[name]
            cpus = [r.get("server_cpu_us_per_request") for r in rs if r.get("server_cpu_us_per_request")]
            # the median run's figures, for throughput, CPU and latency alike:
            # on a shared machine one run now and then loses its core to a
            # neighbour, and a mean (or, for latency, the worst run) would
            # carry that over to the one server it happened to; the worst
            # run's p99 is kept beside it
            out[name] = {"rps": median([r["rps"] or 0 for r in rs]),
                         "p50": median([r["p50"] or 0 for r in rs]),
                         "p99": median([r["p99"] or 0 for r in rs]),
                         "p99_worst": max(r["p99"] or 0 for r in rs),
                         "non_2xx": sum(r["non_2xx"] for r in rs),
                         "socket_errors": sum(r["socket_errors"] for r in rs),
                         "server_cpu_us_per_request": median(cpus) if cpus else None,
                         "runs": [{k: v for k, v in r.items() if k != "raw"} for r in rs]}
        out["ratio"] = out["aced"]["rps"] / out["mhd"]["rps"] if out["mhd"]["rps"] else None
        out["spin_ns"] = spin_ns if "spin" in out else 0
        out["connections"] = args.connections if use_wrk else 1
        out["duration"] = args.duration if use_wrk else 1
        out["rounds"] = args.rounds if use_wrk else 1
        if use_wrk:
            out["wrk_sample"] = runs["aced"][-1]["raw"]
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", default=os.environ.get("ACED_BUILDDIR", "."))
    ap.add_argument("--fixture", help="the reference fixture (default: tests/data/small_mlp.json "
                    "of $ACED_SRCDIR, else of this script's source tree)")
    ap.add_argument("--json", required=True)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=5, help="wrk runs per server, alternating")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--spin-ns", type=int, default=1000,
                    help="busy work per request of the calibration server (mhd_fixed --spin-ns)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: cached,big,mnist,k4096")
    args = ap.parse_args()
    skip = set(s for s in args.skip.split(",") if s)
    b = os.path.abspath(args.builddir)
    aced = os.path.join(b, "aced")
    mhd = os.path.join(b, "bench", "mhd_fixed")
    bench_engine = os.path.join(b, "bench", "bench_engine")
    srcdir = os.environ.get("ACED_SRCDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    fixture = args.fixture or os.path.join(srcdir, "tests", "data", "small_mlp.json")
    for p in (aced, mhd, bench_engine):
        if not os.access(p, os.X_OK):
            sys.exit("http_bench: %s is not built" % p)
    use_wrk = not args.smoke and shutil.which("wrk") is not None
    work = tempfile.mkdtemp(prefix="aced-bench-")
    res = {"smoke": args.smoke, "workers": 2, "http_threads": 2, "client": "wrk" if use_wrk else "python"}
    procs = []
    try:
        pa, port = start_aced(aced, work, "aced", 2)
        procs.append(pa)
        res["vmhwm_start"] = proc_status(pa.pid)["VmHWM"]

        # ---- 1. cached attributions vs bare libmicrohttpd ----
        # with 2 HTTP threads (the daemon's default; the spin calibration
        # runs here) and with 1 (the core wrk leaves free)
        # and the default configuration: 2 HTTP threads at log_level info (an access-log line per
        # request, batched; the others run at warn, as the comparison with bare libmicrohttpd is of
        # the request path)
        confs = ((2, "cached", "warn"), (1, "cached_1thread", "warn"), (2, "cached_info", "info"))
        for threads, key, level in confs if "cached" not in skip else ():
            res[key] = cached_config(aced, mhd, fixture, work, threads, args, use_wrk,
                                     spin_ns=args.spin_ns if key == "cached" and use_wrk else 0,
                                     level=level)
            if "reply_bytes" not in res:
                res["reply_bytes"] = res[key]["reply_bytes"]
                res["baseline_reply_bytes"] = res[key]["baseline_reply_bytes"]
                res["warm_job_seconds"] = res[key]["warm_job_seconds"]

        # ---- 2. a ~1M-parameter model ----
        if "big" not in skip:
            arch, ns, name = ("784,1024,192,10", 2000, "big1m") if not args.smoke else ("64,128,10", 200, "big1m")
            bp = os.path.join(work, "big.json")
            gen_body(bench_engine, bp, name, arch, ns)
            dims = [int(x) for x in arch.split(",")]
            r = register_big(port, pa.pid, bp, name, port, "p%d" % (dims[0] // 2))
            r["arch"] = arch
            r["params"] = sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1))
            r["samples"] = ns
            log("1M-param registration: HTTP %s in %.2f s, first query %.2f s, VmHWM %.0f MiB" %
                (r["status"], r["register_seconds"], r.get("first_query_seconds", -1), r.get("vmhwm_after", 0) / 2**20))
            res["big"] = r
            os.unlink(bp)

        # ---- 3. all regressors of one output of the MNIST-scale model ----
        if "mnist" not in skip:
            arch, ns, num = ("784,512,256,128,64,10", 3000, 100) if not args.smoke else ("16,12,10", 100, 10)
            mp = os.path.join(work, "mnist.json")
            gen_body(bench_engine, mp, "mnist", arch, ns)
            with open(mp, "rb") as f:
                st, _, raw, dt = request(port, "POST", "/v1/models", raw=f.read())
            os.unlink(mp)
            if st not in (200, 201):
                raise RuntimeError("mnist registration: HTTP %d %s" % (st, raw[:300]))
            k = int(arch.split(",")[0])
            ref0 = taylor_reference(bench_engine, arch, ns)
            cpu0 = proc_cpu_seconds(pa.pid)
            fin, dt_job = run_job(port, "mnist", {"outputs": ["c0"], "num": num, "estimator": "taylor"}, 7200)
            cpu_job = proc_cpu_seconds(pa.pid) - cpu0
            ref1 = taylor_reference(bench_engine, arch, ns)
            r = {"arch": arch, "features": k, "num": num, "samples": ns, "state": fin["state"], "seconds": dt_job,
                 "job_elapsed_ms": fin.get("elapsed_ms"), "progress": fin.get("progress"),
                 "result": fin.get("result"), "register_seconds": dt, "daemon_cpu_seconds": cpu_job,
                 # how many cores the job kept busy on average (2 workers: up to 2)
                 "parallelism": cpu_job / dt_job if dt_job > 0 else None,
                 # eng_taylor's CPU per (feature, alpha) just before and just after the job
                 "taylor_reference_cpu_seconds": [ref0, ref1]}
            if fin["state"] != "done":
                r["error"] = fin.get("error")
            r["seconds_per_feature_alpha_per_worker"] = dt_job * 2 / (k * num)
            log("mnist job: %s, %d features x %d alphas in %.1f s" % (fin["state"], k, num, dt_job))
            res["mnist_job"] = r

            # the same network registered without samples (their mean and covariance): no
            # Monte Carlo reliability check over samples, so this is Eq. 4 plus the fits and the
            # cache writes; a slice of the features, as the cost per (feature, alpha) is the same
            mp = os.path.join(work, "mnist_m.json")
            gen_body(bench_engine, mp, "mnist_m", arch, ns, moments=True)
            with open(mp, "rb") as f:
                st, _, raw, dt = request(port, "POST", "/v1/models", raw=f.read())
            os.unlink(mp)
            if st not in (200, 201):
                raise RuntimeError("mnist_m registration: HTTP %d %s" % (st, raw[:300]))
            nf = 96 if not args.smoke else 4
            feats = ["p%d" % (k // 4 + i) for i in range(nf)]
            ref0 = taylor_reference(bench_engine, arch, ns)
            cpu0 = proc_cpu_seconds(pa.pid)
            fin, dt_job = run_job(port, "mnist_m", {"outputs": ["c0"], "features": feats, "num": num,
                                                   "estimator": "taylor"}, 7200)
            cpu_job = proc_cpu_seconds(pa.pid) - cpu0
            ref1 = taylor_reference(bench_engine, arch, ns)
            res["mnist_moments_job"] = {"arch": arch, "features": nf, "num": num, "state": fin["state"],
                                        "seconds": dt_job, "daemon_cpu_seconds": cpu_job,
                                        "parallelism": cpu_job / dt_job if dt_job > 0 else None,
                                        "taylor_reference_cpu_seconds": [ref0, ref1]}
            log("mnist job without samples: %s, %d features x %d alphas in %.1f s" % (fin["state"], nf, num, dt_job))

        # ---- 4. a 4096-input model ----
        if "k4096" not in skip:
            arch, ns = ("4096,256,10", 800) if not args.smoke else ("256,32,10", 100)
            kp = os.path.join(work, "k4096.json")
            gen_body(bench_engine, kp, "k4096", arch, ns)
            r = register_big(port, pa.pid, kp, "k4096", port, "p%d" % (int(arch.split(",")[0]) // 2 + 32))
            r["arch"] = arch
            dims = [int(x) for x in arch.split(",")]
            r["params"] = sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1))
            r["samples"] = ns
            log("4096-input model: HTTP %s in %.2f s, first query %s %.2f s" %
                (r["status"], r["register_seconds"], r.get("first_query_status"), r.get("first_query_seconds", -1)))
            res["k4096"] = r
            os.unlink(kp)
        res["vmhwm_end"] = proc_status(pa.pid)["VmHWM"]
        pa.terminate()
        res["aced_exit"] = pa.wait(timeout=30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        try:
            with open(os.path.join(work, "aced.log"), "rb") as f:
                res["aced_log_tail"] = f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            pass
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
