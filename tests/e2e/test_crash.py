#!/usr/bin/env python3
"""End to end: crash safety. Several threads register distinct small models (some as new versions of
an existing name) and ask for regressor fits (GET, cache misses, and POST .../regressors jobs) while
the daemon is SIGKILLed at a random moment; it is then restarted on the same database. After every
kill:

  - `PRAGMA integrity_check` of a copy of the database (taken while the daemon is down) says ok, and
    every cached regressor row holds valid JSON;
  - every registration acknowledged with 201 before the kill is there, same version, same digest;
  - every model listed by GET /v1/models answers GET /v1/models/{name} (its metadata loads), and any
    model present that was never acknowledged is one of the bodies actually sent for that name;
  - every regressor in the cache is served as a cache hit, and its numbers are identical to the same
    regressor fitted by a fresh daemon on a fresh database with the same model.

Usage: test_crash.py [--seed N] [--rounds N]   (defaults: seed from ACED_SEED or 20261122, 4 rounds)
"""

import argparse
import copy
import json
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time

from acedtest import BACKEND, Daemon, diag, done, fixture_body, free_port, ok, pg_cluster

ap = argparse.ArgumentParser()
ap.add_argument("--seed", type=int, default=int(os.environ.get("ACED_SEED", "20261122")))
ap.add_argument("--rounds", type=int, default=4)
args = ap.parse_args()
rng = random.Random(args.seed)
KILL_AFTER = [rng.uniform(0.4, 2.5) for _ in range(args.rounds)]  # drawn first: same kill points for a seed
diag("seed %d, %d rounds (rerun with --seed %d to reproduce the kill points)" % (args.seed, args.rounds, args.seed))

T0 = time.time()
BASE = fixture_body("base")
OUTPUTS = BASE["outputs"]
FEATURES = [f["name"] for f in BASE["features"]]

d = Daemon(args=["--workers=2"])
ref = Daemon(args=["--workers=2"]).start()  # fresh daemon, fresh database: the "fresh computation"

lock = threading.Lock()
acked = {}        # (name, version) -> digest, from 201 replies received before the kill
sent = {}         # name -> [bodies sent] (every attempt, acknowledged or not)
status_seen = {}  # status -> count (all rounds)
ref_digest = {}   # json text of a body -> its digest in the reference daemon


def variant(name, r):
    b = copy.deepcopy(BASE)
    b["name"] = name
    layer = b["network"]["layers"][r.randrange(len(b["network"]["layers"]))]
    i = r.randrange(len(layer["bias"]))
    layer["bias"][i] += r.uniform(-0.5, 0.5)
    return b


def count(status):
    with lock:
        status_seen[status] = status_seen.get(status, 0) + 1


def acked_names():
    with lock:
        return sorted({n for n, _ in acked})


def worker_register(stop, tid, rnd, r):
    i = 0
    while not stop.is_set():
        names = acked_names()
        if names and r.random() < 0.25:
            name = r.choice(names)  # a new version of an existing name
        else:
            name = "crash-r%d-t%d-%d" % (rnd, tid, i)
            i += 1
        body = variant(name, r)
        with lock:
            sent.setdefault(name, []).append(body)
        try:
            resp = d.post("/v1/models", body, timeout=15)
        except OSError:
            return  # the daemon is gone
        count(resp.status)
        if resp.status == 201:
            with lock:
                acked[(name, resp.json["version"])] = resp.json["digest"]


def worker_regressor_get(stop, tid, rnd, r):
    while not stop.is_set():
        names = acked_names()
        if not names:
            time.sleep(0.01)
            continue
        q = "estimator=%s&num=%d" % (r.choice(["taylor", "auto", "montecarlo"]), r.choice([20, 33, 50, 100]))
        path = "/v1/models/%s/regressors/%s/%s?%s" % (r.choice(names), r.choice(OUTPUTS), r.choice(FEATURES), q)
        try:
            resp = d.get(path, timeout=15)
        except OSError:
            return
        count(resp.status)


def worker_regressors_post(stop, tid, rnd, r):
    while not stop.is_set():
        names = acked_names()
        if not names:
            time.sleep(0.01)
            continue
        body = {"estimator": r.choice(["taylor", "auto"]), "num": r.choice([21, 40, 64])}
        try:
            resp = d.post("/v1/models/%s/regressors" % r.choice(names), body, timeout=15)
        except OSError:
            return
        count(resp.status)
        time.sleep(r.uniform(0.1, 0.4))  # a full-model job is ~100 ms of work: leave workers for the GETs


def db_pg_check(what):
    """The PostgreSQL backend (ACED_TEST_BACKEND=postgresql): the rows, read with psql."""
    pg, db = pg_cluster(), d.db.rsplit("/", 1)[1]
    models = [(n, int(v), g) for n, v, g in pg.query("SELECT name, version, digest FROM models", db)]
    rows = pg.query("SELECT digest, output, feature, estimator, params FROM regressor_cache", db)
    bad = pg.query("SELECT digest FROM regressor_cache WHERE NOT (value::jsonb IS NOT NULL)", db) \
        if rows else []
    ok(not bad, "%s: all %d cached regressor rows hold valid JSON" % (what, len(rows)), bad[:5])
    return models, [(g, int(o), int(f), e, p) for g, o, f, e, p in rows]


def db_copy_check(what):
    """Copy the database (and its WAL) while the daemon is down and check it with Python's sqlite3."""
    if BACKEND == "postgresql":
        return db_pg_check(what)
    tmp = tempfile.mkdtemp(prefix="aced-crash-copy-")
    try:
        for suffix in ("", "-wal"):
            if os.path.exists(d.db + suffix):
                shutil.copyfile(d.db + suffix, os.path.join(tmp, "aced.db" + suffix))
        con = sqlite3.connect(os.path.join(tmp, "aced.db"))
        integrity = con.execute("PRAGMA integrity_check").fetchall()
        ok(integrity == [("ok",)], "%s: PRAGMA integrity_check says ok" % what, integrity)
        models = con.execute("SELECT name, version, digest FROM models").fetchall()
        rows = con.execute("SELECT digest, output, feature, estimator, params, value FROM regressor_cache").fetchall()
        con.close()
        bad = []
        for row in rows:
            try:
                json.loads(row[5])
            except ValueError:
                bad.append(row[:5])
        ok(not bad, "%s: all %d cached regressor rows hold valid JSON" % (what, len(rows)), bad[:5])
        return models, [row[:5] for row in rows]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def reference_digest(body):
    key = json.dumps(body, sort_keys=True)
    if key not in ref_digest:
        r = ref.post("/v1/models", body)
        ref_digest[key] = r.json["digest"] if r.status in (200, 201) else None
    return ref_digest[key]


def strip(j):
    return {k: v for k, v in j.items() if k != "meta"}


def check_registry(what, db_models):
    r = d.get("/v1/models")
    if not ok(r.status == 200, "%s: GET /v1/models answers" % what, r):
        return {}
    listed = {m["name"]: m for m in r.json["models"]}
    meta = {}
    broken = []
    for name in listed:
        g = d.get("/v1/models/" + name)
        if g.status != 200 or g.json.get("name") != name or "prepared" not in g.json:
            broken.append((name, g))
        else:
            meta[name] = g.json
    ok(not broken, "%s: each of the %d listed models answers GET with its metadata" % (what, len(listed)), broken[:3])
    ok(sorted(listed) == sorted({n for n, _, _ in db_models}),
       "%s: the listing holds exactly the names in the database" % what)
    with lock:
        want = dict(acked)
    missing = []
    for (name, version), digest in sorted(want.items()):
        vers = {v["version"]: v["digest"] for v in meta.get(name, {}).get("versions", [])}
        if vers.get(version) != digest:
            missing.append((name, version, digest, vers.get(version)))
    ok(not missing, "%s: all %d acknowledged registrations present with the same version and digest"
       % (what, len(want)), missing[:5])
    # Present but never acknowledged (committed, reply lost in the kill): must be a body we sent.
    stray = []
    n_unacked = 0
    for name, version, digest in db_models:
        if (name, version) in want:
            continue
        n_unacked += 1
        with lock:
            bodies = list(sent.get(name, []))
        if digest not in [reference_digest(b) for b in bodies]:
            stray.append((name, version, digest))
    ok(not stray, "%s: the %d unacknowledged versions present are bodies actually sent" % (what, n_unacked), stray)
    return meta


def check_cache(what, db_models, cache_rows, limit=60):
    """Every cached row is served as a hit equal to a fresh fit on the reference daemon."""
    by_digest = {}
    for name, version, digest in db_models:
        by_digest.setdefault(digest, (name, version))
    rows = list(cache_rows)
    rng.shuffle(rows)
    rows = rows[:limit]
    not_hit, differ, checked = [], [], 0
    for digest, o, f, est, params in rows:
        name, version = by_digest[digest]
        p = dict(kv.split("=") for kv in params.split(";"))
        q = "estimator=%s&num=%s&max_order=%s" % (est, p["num"], p["max_order"])
        path = "/regressors/%s/%s?%s" % (OUTPUTS[o], FEATURES[f], q)
        # The latest version is what a GET by name serves: only check rows of the latest version's digest.
        latest = d.get("/v1/models/" + name).json["digest"]
        if latest != digest:
            continue
        hit = d.get("/v1/models/%s%s" % (name, path))
        if hit.status != 200 or hit.json["meta"]["cache"] != "hit":
            not_hit.append((name, path, hit.status, (hit.json or {}).get("meta")))
            continue
        with lock:
            bodies = list(sent.get(name, []))
        body = [b for b in bodies if reference_digest(b) == digest][0]
        refname = "ref-" + digest[7:23]
        rb = dict(body, name=refname)
        ref.post("/v1/models", rb)
        fresh = ref.get("/v1/models/%s%s" % (refname, path))
        checked += 1
        if fresh.status != 200 or strip(fresh.json) != strip(hit.json):
            differ.append((name, path, fresh))
    ok(not not_hit, "%s: cached regressors are served as cache hits after the restart" % what, not_hit[:5])
    ok(not differ, "%s: %d cache hits identical, number for number, to a fresh fit on a fresh database"
       % (what, checked), differ[:2])


def run_round(rnd):
    d.port = free_port()
    d.start()
    stop = threading.Event()
    threads = []
    for tid in range(3):
        threads.append(threading.Thread(target=worker_register, args=(stop, tid, rnd, random.Random(rng.random()))))
    for tid in range(2):
        threads.append(threading.Thread(target=worker_regressor_get, args=(stop, tid, rnd, random.Random(rng.random()))))
    threads.append(threading.Thread(target=worker_regressors_post, args=(stop, 0, rnd, random.Random(rng.random()))))
    for t in threads:
        t.daemon = True
        t.start()
    delay = KILL_AFTER[rnd]
    time.sleep(delay)
    pid = d.proc.pid
    d.proc.kill()  # SIGKILL
    d.proc.wait()
    d.logf.close()
    d.proc = None
    stop.set()
    for t in threads:
        t.join(30)
    with lock:
        n = len(acked)
    diag("round %d: SIGKILL (pid %d) after %.2f s; %d acknowledged registrations so far" % (rnd, pid, delay, n))
    what = "round %d" % rnd
    db_models, cache_rows = db_copy_check(what)
    d.port = free_port()
    d.start()
    check_registry(what, db_models)
    check_cache(what, db_models, cache_rows)
    diag("round %d: %d model versions, %d cached regressor rows in the database" % (rnd, len(db_models), len(cache_rows)))
    ok(d.stop() == 0, "%s: clean shutdown after the checks" % what)


for rnd in range(args.rounds):
    run_round(rnd)

diag("replies seen during the load: %s" % json.dumps(status_seen, sort_keys=True))
bad = {s: n for s, n in status_seen.items() if s >= 500}
ok(not bad, "no 5xx replies during the load", bad)
ok(sum(1 for _ in acked) >= args.rounds, "registrations were acknowledged (%d)" % len(acked))
diag("%.1f s" % (time.time() - T0))
ref.stop()
ref.cleanup()
d.cleanup()
done()
