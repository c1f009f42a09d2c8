#!/usr/bin/env python3
"""postgres.py -- the PostgreSQL backend against SQLite (issue 17), standard library only.

Starts a throw-away PostgreSQL cluster (tests/pgcluster.sh) and the real daemon, and measures:

  1. cached attributions (the shared fixture, one input row, every regressor cached): wrk against aced
     on SQLite and on PostgreSQL, alternating, several rounds: requests/s and aced's CPU per request
     (from /proc), and the ratio;
  2. a regressors job of 200 features (a 200-input model, output "a", taylor): one replica with 2
     workers running one job, against two replicas with 1 worker each on one database running one job
     submitted to the first (its tasks are claimed from aced_tasks by both: src/svc/split.c), with the
     tasks each replica ran and the time spent in the task claim statement per task (from the replicas'
     "claims took" log lines, client round trip included);
  3. the cost of durable jobs per job: POST .../regressors -> 202 latency on SQLite and on PostgreSQL
     (the journal inserts the job before answering), and the claim statement itself (UPDATE ... WHERE
     id = (SELECT ... FOR UPDATE SKIP LOCKED)) over 400 expired jobs, timed in one psql session.

--smoke: seconds-long versions (a Python client instead of wrk, a 20-input model, 40 claims).
--fragment FILE: write the BENCHMARKS.md section (bench/section.py puts it in place).
Benchmark code: not part of the daemon.
"""

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from http_bench import (free_port, log, proc_cpu_seconds, python_load, request, run_job, run_wrk,  # noqa: E402
                        wait_port)

SRC = os.environ.get("ACED_SRCDIR", os.path.dirname(HERE))
BUILD = os.environ.get("ACED_BUILDDIR", SRC)
ACED = os.path.join(BUILD, "aced")
PGSH = os.path.join(SRC, "tests", "pgcluster.sh")


class Cluster:
    def __init__(self, work):
        self.dir = os.path.join(work, "pg")
        os.mkdir(self.dir)
        self.port = free_port()
        subprocess.run([PGSH, "start", self.dir, str(self.port)], check=True)
        bindir = subprocess.run([PGSH, "bindir"], capture_output=True, text=True).stdout.strip()
        self.psql = os.path.join(bindir, "psql") if os.path.exists(os.path.join(bindir, "psql")) else "psql"

    def sql(self, db, text, **kw):
        return subprocess.run([self.psql, "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "aced",
                               "-d", db], input=text, capture_output=True, text=True, **kw)

    def database(self, name):
        self.sql("postgres", 'CREATE DATABASE "%s";' % name)
        return "postgresql://aced@127.0.0.1:%d/%s" % (self.port, name)

    def stop(self):
        subprocess.run([PGSH, "stop", self.dir, "fast"])


class Aced:
    def __init__(self, work, db, tag, workers=2, threads=2, level="warn"):
        self.port = free_port()
        self.log_path = os.path.join(work, "aced-%s.log" % tag)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([ACED, "--port=%d" % self.port, "--database=%s" % db,
                                      "--workers=%d" % workers, "--http_threads=%d" % threads,
                                      "--log_level=%s" % level], stdout=self.log, stderr=self.log)
        wait_port(self.port, self.proc)
        for _ in range(100):
            if request(self.port, "GET", "/readyz")[0] == 200:
                break
            time.sleep(0.05)

    def cpu(self):
        return proc_cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


def fixture_body(name):
    with open(os.path.join(SRC, "tests", "data", "small_mlp.json")) as f:
        b = json.load(f)
    b.pop("reference", None)
    b["name"] = name
    return b


def wide_model(k, seed=3):
    rnd = random.Random(seed)
    h = 32
    return {"name": "wide", "features": [{"name": "f%d" % i, "low": 0, "high": 1} for i in range(k)],
            "outputs": ["a", "b"],
            "network": {"type": "feedforward", "layers": [
                {"weights": [[rnd.gauss(0, 0.2) for _ in range(k)] for _ in range(h)], "bias": [0.0] * h,
                 "activation": "tanh"},
                {"weights": [[rnd.gauss(0, 0.3) for _ in range(h)] for _ in range(2)], "bias": [0.0, 0.0],
                 "activation": "softmax"}]},
            "data": {"samples": [[rnd.random() for _ in range(k)] for _ in range(100)]}}


def cached(work, pg, smoke):
    """Part 1: requests/s and CPU per request of cached attributions, SQLite vs PostgreSQL."""
    body = {"output": "y0", "inputs": [[0.2, 0.5, 0.6, 0.9]], "estimator": "taylor"}
    bfile = os.path.join(work, "attr.json")
    with open(bfile, "w") as f:
        json.dump(body, f)
    servers = {"sqlite": Aced(work, os.path.join(work, "sqlite.db"), "sqlite"),
               "postgresql": Aced(work, pg.database("cached"), "pg")}
    for s in servers.values():
        request(s.port, "POST", "/v1/models", fixture_body("mlp"))
        run_job(s.port, "mlp", {"outputs": ["y0"], "estimator": "taylor"}, 600)
        st, j, raw, _ = request(s.port, "POST", "/v1/models/mlp/attributions", body)
        assert st == 200 and j["meta"]["cache"] == "hit", raw[:300]
    res = {k: {"rps": [], "cpu_us": []} for k in servers}
    rounds = 1 if smoke else 3
    for _ in range(rounds):
        for name, s in servers.items():
            c0 = s.cpu()
            if smoke:
                r = python_load(s.port, "/v1/models/mlp/attributions", body, 1)
            else:
                r = run_wrk(s.port, "/v1/models/mlp/attributions", bfile, 5, 32, 1)
            cpu = s.cpu() - c0
            if r.get("non_2xx") or not r.get("requests"):
                raise RuntimeError("%s: %s" % (name, r.get("raw", r)))
            res[name]["rps"].append(r["rps"])
            res[name]["cpu_us"].append(cpu / r["requests"] * 1e6)
            log("cached %s: %.0f req/s, %.1f us CPU/request" % (name, r["rps"], res[name]["cpu_us"][-1]))
    for s in servers.values():
        s.stop()
    return res


CLAIMS = re.compile(r"split: job (\w+)(?: \(helping\))?: (\d+) of (\d+) tasks ran here; (\d+) claims took ([\d.]+) ms")


def claims(paths, jid):
    """Tasks run, claim statements and milliseconds in them, over the replicas' logs, for job jid."""
    tasks = n = 0
    ms = 0.0
    for p in paths:
        with open(p, errors="replace") as f:
            for m in CLAIMS.finditer(f.read()):
                if m.group(1) == jid:
                    tasks += int(m.group(2))
                    n += int(m.group(4))
                    ms += float(m.group(5))
    return {"tasks": tasks, "claims": n, "ms": ms}


def job200(work, pg, smoke):
    """Part 2: one job of K features on 1 replica (2 workers) vs the same job split over 2 replicas (1 each)."""
    k = 20 if smoke else 200
    model = wide_model(k)
    body = {"outputs": ["a"], "estimator": "taylor", "num": 100}
    out = {"features": k}
    one = Aced(work, pg.database("job_one"), "job-one", workers=2, level="info")
    request(one.port, "POST", "/v1/models", model)
    c0 = one.cpu()
    fin, secs = run_job(one.port, "wide", body, 3600)
    assert fin["state"] == "done", fin
    out["one"] = {"wall": secs, "cpu": one.cpu() - c0}
    one.stop()
    out["one"].update(claims([one.log_path], fin["id"]))
    uri = pg.database("job_two")
    two = [Aced(work, uri, "job-two-%d" % i, workers=1, level="info") for i in range(2)]
    request(two[0].port, "POST", "/v1/models", model)
    # the helper loads and prepares the model when it first helps, as a fresh replica would
    c0 = [r.cpu() for r in two]
    fin, secs = run_job(two[0].port, "wide", body, 3600)
    assert fin["state"] == "done", fin
    out["two"] = {"wall": secs, "cpu": sum(r.cpu() - c for r, c in zip(two, c0))}
    rows = subprocess.run([pg.psql, "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "aced",
                           "-d", "job_two", "-c", "SELECT owner FROM aced_tasks WHERE job = '%s'" % fin["id"]],
                          capture_output=True, text=True).stdout.split()
    out["two"]["per_replica"] = [sum(1 for o in rows if ":%d:" % r.proc.pid in o) for r in two]
    for r in two:
        r.stop()
    out["two"].update(claims([r.log_path for r in two], fin["id"]))
    for key in ("one", "two"):
        c = out[key]
        c["us_per_claim"] = c["ms"] * 1e3 / c["claims"] if c["claims"] else float("nan")
        c["ms_per_task"] = c["ms"] / k
    log("job of %d features: 1 replica x 2 workers %.2f s (CPU %.2f s); 2 replicas x 1 worker %.2f s (CPU %.2f s),"
        " tasks per replica %s; claims %.0f us each (1 replica) and %.0f us (2)"
        % (k, out["one"]["wall"], out["one"]["cpu"], out["two"]["wall"], out["two"]["cpu"],
           out["two"]["per_replica"], out["one"]["us_per_claim"], out["two"]["us_per_claim"]))
    return out


def overhead(work, pg, smoke):
    """Part 3: POST -> 202 latency with and without the journal, and the claim statement."""
    n = 40 if smoke else 200
    out = {}
    for name, db in (("sqlite", os.path.join(work, "ovh.db")), ("postgresql", pg.database("overhead"))):
        s = Aced(work, db, "ovh-" + name)
        request(s.port, "POST", "/v1/models", fixture_body("mlp"))
        run_job(s.port, "mlp", {"outputs": ["y0"], "features": ["x0"], "estimator": "taylor"}, 600)
        lat = []
        for _ in range(n):  # cached: the job ends at once; we time the submission
            st, j, raw, secs = request(s.port, "POST", "/v1/models/mlp/regressors",
                                       {"outputs": ["y0"], "features": ["x0"], "estimator": "taylor"})
            assert st == 202, raw[:300]
            lat.append(secs)
        lat.sort()
        out[name] = {"p50": lat[len(lat) // 2], "mean": sum(lat) / len(lat)}
        s.stop()
    # The claim statement alone, as src/store/pg_jobs.c sends it, over n expired jobs.
    m = 2 * n
    pg.sql("overhead", "INSERT INTO aced_jobs(id, kind, model, request, state, owner, lease_until, body)"
                       " SELECT 'bench' || g, 'regressors', 'mlp', '{}', 'running', 'dead', now() - interval '1 hour',"
                       " '{\"state\":\"running\"}' FROM generate_series(1, %d) g;" % m)
    claim = ("UPDATE aced_jobs SET owner = 'bench', attempts = attempts + 1, updated = now(),"
             " lease_until = now() + 5000 * interval '1 millisecond'"
             " WHERE id = (SELECT id FROM aced_jobs WHERE state = 'running' AND lease_until < now()"
             " AND NOT cancel AND request IS NOT NULL ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED)"
             " RETURNING id, kind, model, request;\n")
    base = "SELECT 1;\n"
    t0 = time.perf_counter()
    pg.sql("overhead", base * m)
    t_base = time.perf_counter() - t0

    def timed(stmt, count_sql):
        """m copies of stmt in one psql session: seconds per statement net of SELECT 1, rows claimed."""
        t0 = time.perf_counter()
        r = pg.sql("overhead", stmt * m)
        secs = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError("claims: %s" % r.stderr[-500:])
        q = subprocess.run([pg.psql, "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(pg.port), "-U",
                            "aced", "-d", "overhead", "-c", count_sql], capture_output=True, text=True)
        return {"n": m, "claimed": int(q.stdout.strip() or 0), "per_claim": (secs - t_base) / m, "total": secs}

    out["claim"] = timed(claim, "SELECT count(*) FROM aced_jobs WHERE owner = 'bench'")
    # The task claim statement alone, as src/store/pg_tasks.c sends it, over the m tasks of one job.
    pg.sql("overhead", "INSERT INTO aced_jobs(id, kind, model, request, state, owner, lease_until, body)"
                       " VALUES ('benchtasks', 'regressors', 'mlp', '{}', 'running', 'owner',"
                       " now() + interval '1 hour', '{}');"
                       " INSERT INTO aced_tasks(job, i) SELECT 'benchtasks', g FROM generate_series(0, %d) g;"
                       % (m - 1))
    tclaim = ("UPDATE aced_tasks SET state = 'leased', owner = 'bench',"
              " lease_until = now() + 5000 * interval '1 millisecond'"
              " WHERE (job, i) = (SELECT t.job, t.i FROM aced_tasks t"
              " WHERE t.job = 'benchtasks' AND t.state = 'free'"
              " AND EXISTS (SELECT 1 FROM aced_jobs j WHERE j.id = 'benchtasks' AND j.state = 'running'"
              " AND NOT j.cancel) ORDER BY t.i LIMIT 1 FOR UPDATE OF t SKIP LOCKED) RETURNING i;\n")
    out["task_claim"] = timed(tclaim, "SELECT count(*) FROM aced_tasks WHERE owner = 'bench'")
    log("task claim statement %.0f us each (%d claimed)" % (out["task_claim"]["per_claim"] * 1e6,
                                                            out["task_claim"]["claimed"]))
    log("submission p50: sqlite %.2f ms, postgresql %.2f ms; claim statement %.0f us each (%d claimed)" % (
        out["sqlite"]["p50"] * 1e3, out["postgresql"]["p50"] * 1e3, out["claim"]["per_claim"] * 1e6, out["claim"]["claimed"]))
    return out


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def med(a):
    a = sorted(a)
    return a[len(a) // 2]


def fragment(c, j, o, smoke):
    sq, pgr = c["sqlite"], c["postgresql"]
    ratio = med(pgr["rps"]) / med(sq["rps"])
    cpu_ratio = med(pgr["cpu_us"]) / med(sq["cpu_us"])
    pgv = subprocess.run([os.path.join(subprocess.run([PGSH, "bindir"], capture_output=True, text=True)
                                       .stdout.strip(), "postgres"), "--version"],
                         capture_output=True, text=True).stdout.strip()
    lines = [
        "## PostgreSQL backend (issue 17)%s" % (" -- SMOKE RUN, not figures" if smoke else ""),
        "",
        "`make bench-postgres` (bench/postgres.py): %s, Linux %s, %d cores, %s; PostgreSQL on the same machine "
        "(a throw-away cluster, `fsync=off`). **The machine was shared with other work during the run**: wall "
        "times and requests/s are noisy; CPU seconds (from /proc) are the steadier figure." % (
            cpu_name(), platform.release(), os.cpu_count() or 0, pgv),
        "",
        "| | SQLite | PostgreSQL | PostgreSQL / SQLite |",
        "|---|---|---|---|",
        "| cached attributions, requests/s (median of %d rounds, wrk 32 connections) | %.0f | %.0f | %.2f |" % (
            len(sq["rps"]), med(sq["rps"]), med(pgr["rps"]), ratio),
        "| aced CPU per cached attribution | %.1f us | %.1f us | %.2f |" % (
            med(sq["cpu_us"]), med(pgr["cpu_us"]), cpu_ratio),
        "| POST .../regressors -> 202, p50 (%s journal insert) | %.2f ms | %.2f ms | |" % (
            "with the", o["sqlite"]["p50"] * 1e3, o["postgresql"]["p50"] * 1e3),
        "",
        "One regressors job of %d features (%d-input model, output `a`, taylor, num=100), same total "
        "workers; its tasks (one per feature) are claimed from `aced_tasks` by every replica running it "
        "(src/svc/split.c):" % (j["features"], j["features"]),
        "",
        "| | wall | aced CPU (all replicas) | tasks run per replica | claim statements | time in them | per claim | per task |",
        "|---|---|---|---|---|---|---|---|",
        "| 1 replica x 2 workers | %.2f s | %.2f s | %d | %d | %.1f ms | %.0f us | %.2f ms |" % (
            j["one"]["wall"], j["one"]["cpu"], j["features"], j["one"]["claims"], j["one"]["ms"],
            j["one"]["us_per_claim"], j["one"]["ms_per_task"]),
        "| 2 replicas x 1 worker, the job submitted to the first | %.2f s | %.2f s | %s | %d | %.1f ms | %.0f us | %.2f ms |" % (
            j["two"]["wall"], j["two"]["cpu"], " + ".join(str(x) for x in j["two"]["per_replica"]),
            j["two"]["claims"], j["two"]["ms"], j["two"]["us_per_claim"], j["two"]["ms_per_task"]),
        "",
        "Both set-ups have the same two cores here (one machine), so they should take about the same "
        "time; the difference is this shared machine's noise plus the second replica loading and "
        "preparing the model itself when it starts helping. Across machines the split divides the "
        "fitting time by the number of replicas, less that one load per replica. A claim statement is "
        "timed in the daemon around the store call (client round trip included); a replica makes one "
        "per task it runs plus one per task step that finds nothing left, and the owner polls every "
        "100 ms while the last tasks run elsewhere; a task also costs one `UPDATE` marking it done.",
        "",
        "Claiming a job from the database (the `FOR UPDATE SKIP LOCKED` statement of src/store/pg_jobs.c, "
        "%d statements over as many expired jobs in one psql session, %d claimed, net of a `SELECT 1` per "
        "statement): **%.0f us per claim**. Claiming a task (the statement of src/store/pg_tasks.c, %d "
        "statements over the %d tasks of one job, %d claimed, the same way): **%.0f us per task**; inside "
        "the daemons during the job above it took %.0f us (2 replicas) and %.0f us (1 replica) a "
        "statement, waiting for a pooled connection and the shared cores included." % (
            o["claim"]["n"], o["claim"]["claimed"], o["claim"]["per_claim"] * 1e6,
            o["task_claim"]["n"], o["task_claim"]["n"], o["task_claim"]["claimed"],
            o["task_claim"]["per_claim"] * 1e6, j["two"]["us_per_claim"], j["one"]["us_per_claim"]),
        "",
        "How far this scales. Cached answers never touch the database: the latest-version row and the "
        "regressor summaries are in each replica's memory (the listener empties the first on another "
        "replica's write), so the ratio above is ~1 and cached throughput grows with replicas until the "
        "proxy or the network is the limit (ten replicas, ten times the figure above, with PostgreSQL "
        "idle). The database carries what is not cached: a model's first load on each replica (its body, "
        "once), a cache read per missing regressor and a write per fitted feature, and per job (every "
        "request that goes to a worker is a job) an insert, a final write and one heartbeat per second "
        "while it runs. At the %.0f us a statement costs here (the claim above, on this loaded 2-core "
        "machine, client round trip included) one PostgreSQL core takes ~%.0f statements a second, "
        "i.e. ~%.0f short jobs a second: W workers running jobs of T seconds need W/T of them, so jobs of "
        "1 s keep a database core comfortable up to ~%.0f workers, while jobs of 10 ms (a single "
        "regressor of a small model) reach its limit at ~%.0f workers; a dedicated database server with "
        "several cores and real disks moves these bounds up by its core count, but then the WAL flush of "
        "each job insert (synchronous_commit) adds ~1 ms to every submission. A split job adds two "
        "statements per task (the claim, ~%.0f us in the daemon here, and its done mark): against the "
        "%.1f ms of worker time a task took in the split job above (wall x 2 workers / tasks; its CPU "
        "alone was %.1f ms) the claim is %.0f%%, so splitting pays as long as tasks are long next "
        "to a millisecond; a 1000-replica job of 10 ms tasks would instead make the database the limit. "
        "Where it stops: (1) only `regressors` jobs split (their plan is repeatable task by task and "
        "a task's result is its cache rows); the other kinds run whole on one replica, so one huge "
        "explanations or significance job is as fast as its replica's workers; (2) "
        "registrations of one name serialise on an advisory lock; (3) every replica holds `workers + "
        "http_threads + 2` connections, so a few hundred replicas need a connection pooler (PgBouncer in "
        "session mode, because of LISTEN) or a larger max_connections; (4) single flight across replicas "
        "is per fit (`aced_fits`: the second replica asked for a regressor being fitted waits and answers "
        "from the cache), but each replica still loads and prepares a model once; (5) a replica that dies costs its jobs "
        "up to the 5 s lease plus their recomputation (regressors already stored are cache hits)." % (
            o["claim"]["per_claim"] * 1e6, 1 / o["claim"]["per_claim"], 0.5 / o["claim"]["per_claim"],
            0.5 / o["claim"]["per_claim"], 0.005 / o["claim"]["per_claim"],
            j["two"]["us_per_claim"], j["two"]["wall"] * 2 / j["features"] * 1e3,
            j["two"]["cpu"] / j["features"] * 1e3,
            100 * j["two"]["us_per_claim"] * 1e-6 / (j["two"]["wall"] * 2 / j["features"])),
    ]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--fragment")
    args = ap.parse_args()
    if subprocess.run([PGSH, "bindir"], capture_output=True).returncode != 0:
        print("postgres.py: PostgreSQL not installed (Debian package postgresql)")
        return 77
    if not args.smoke and shutil.which("wrk") is None:
        print("postgres.py: wrk not installed (Debian package wrk)")
        return 77
    work = tempfile.mkdtemp(prefix="aced-bench-pg-")
    os.chmod(work, 0o755)
    pg = Cluster(work)
    try:
        c = cached(work, pg, args.smoke)
        j = job200(work, pg, args.smoke)
        o = overhead(work, pg, args.smoke)
        text = fragment(c, j, o, args.smoke)
        if args.fragment:
            with open(args.fragment, "w") as f:
                f.write(text)
        print(text)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
