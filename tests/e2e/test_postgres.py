#!/usr/bin/env python3
"""Issue 17: several replicas on one PostgreSQL database share one registry and one regressor cache.

A real PostgreSQL (tests/pgcluster.sh, a cluster in a temporary folder) and three aced replicas on one
database: registrations through any replica are seen by all and stay idempotent across them; a
regressor fitted by one is a cache hit on the others (same numbers); a model deleted through one is
gone on all; PostgreSQL restarted under a registration load loses no acknowledged registration, answers
only 503 (with Retry-After) while down, never a wrong answer, and service resumes by itself.
"""

import copy
import threading
import time

import pgcluster
from acedtest import Daemon, diag, done, fixture_body, ok

pg = pgcluster.start_or_skip()
uri = pg.database("replicas")


def replica(workers=1):
    d = Daemon(args=["--workers=%d" % workers])
    d.db = uri
    return d.start()


# Three replicas started at the same moment on an empty database: one creates the schema, under the
# advisory lock; the others wait for it and find it current.
A, B, C = [Daemon(args=["--workers=1"]) for _ in range(3)]
for d in (A, B, C):
    d.db = uri
    d.start(wait=False)
for d in (A, B, C):
    d.wait_ready()
ok(all(d.alive() for d in (A, B, C)), "three replicas started together on an empty database all come up")
rows = pg.query("SELECT version FROM aced_schema", "replicas")
ok(rows == [["4"]], "the schema is at version 4, recorded once", rows)

# ---- registry ------------------------------------------------------------------------------------
body = fixture_body("mlp")
r = A.post("/v1/models", body)
ok(r.status == 201 and r.json["version"] == 1, "register through A: 201, version 1", r)
digest = (r.json or {}).get("digest")
seen = [d.get("/v1/models/mlp") for d in (B, C)]
ok(all(s.status == 200 and s.json.get("digest") == digest for s in seen),
   "B and C see the model registered through A", seen)
r = B.post("/v1/models", body)
ok(r.status == 200 and r.json.get("version") == 1, "the same body through B: 200, version 1 (not a second version)", r)
b2 = copy.deepcopy(body)
b2["name"] = "other"
r = C.post("/v1/models", b2)
lst = A.get("/v1/models").json or {}
names = sorted(m.get("name") for m in lst.get("models", []))
ok(r.status == 201 and names == ["mlp", "other"], "registered through C, listed by A", (r, names))

# Racing registrations of the same new body through all three replicas: one version.
b3 = copy.deepcopy(body)
b3["name"] = "race"
out = [None] * 6
bar = threading.Barrier(6)


def reg(i, d):
    bar.wait()
    out[i] = d.post("/v1/models", b3)


ts = [threading.Thread(target=reg, args=(i, (A, B, C)[i % 3])) for i in range(6)]
for t in ts:
    t.start()
for t in ts:
    t.join()
ok(sorted(o.status for o in out) == [200] * 5 + [201] and {o.json["version"] for o in out} == {1},
   "six racing registrations of one body through three replicas: one 201, five 200, all version 1",
   [(o.status, (o.json or {}).get("version")) for o in out])

# ---- regressor cache -----------------------------------------------------------------------------
path = "/v1/models/mlp/regressors/y0/x0?num=60"
ra = A.get(path, timeout=120)
rb = B.get(path, timeout=120)
rc = C.get(path, timeout=120)
ok(ra.status == 200 and ra.json["meta"]["cache"] == "miss", "A fits the regressor (cache miss)", ra)
ok(rb.status == 200 and rb.json["meta"]["cache"] == "hit" and rc.json["meta"]["cache"] == "hit",
   "B and C answer it from the shared cache (hit)", (rb.raw[:200], rc.raw[:200]))
ok(rb.json.get("coefficients") == ra.json.get("coefficients") == rc.json.get("coefficients"),
   "with the same coefficients")
att = {"output": "y0", "inputs": [[0.2, 0.5, 0.6, 0.9][:len(body["features"])]]}
atts = [d.post("/v1/models/mlp/attributions", att, timeout=120) for d in (A, B, C)]
ok(all(a.status == 200 for a in atts) and len({a.raw.split(b'"meta"')[0] for a in atts}) == 1,
   "attributions agree on the three replicas", [a.raw[:160] for a in atts])

# ---- delete ---------------------------------------------------------------------------------------
B.get("/v1/models/other")  # B and C remember the latest row of "other"
C.get("/v1/models/other")
r = A.delete("/v1/models/other")
t0 = time.time()
gone = False
while time.time() - t0 < 2:
    if B.get("/v1/models/other").status == 404 and C.get("/v1/models/other").status == 404:
        gone = True
        break
    time.sleep(0.002)
ok(r.status in (200, 204) and gone, "deleted through A: 404 on B and C after %.1f ms" % ((time.time() - t0) * 1e3), r)
ok(C.post("/v1/models/other/attributions", att).status == 404, "and attributions of it on C are 404")

# ---- PostgreSQL restarted under load ---------------------------------------------------------------
stop = threading.Event()
acked, statuses, bad = [], {}, []
lock = threading.Lock()


def load(k, d):
    i = 0
    while not stop.is_set():
        b = copy.deepcopy(body)
        b["name"] = "load%d" % k
        b["network"]["layers"][0]["bias"][0] += (i + 1) * 1e-3
        i += 1
        try:
            r = d.post("/v1/models", b, timeout=30)
        except OSError as e:
            with lock:
                bad.append(repr(e))
            continue
        with lock:
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status in (200, 201):
                acked.append((b["name"], r.json["version"], r.json["digest"]))
            elif r.status != 503 or "Retry-After" not in r.headers:
                bad.append(repr(r))
        if r.status == 503:
            time.sleep(0.05)


ref_att = C.post("/v1/models/mlp/attributions", att).json
wrong = []


def attribute():
    """Cached attributions through C while the database restarts: the right answer or 503."""
    while not stop.is_set():
        try:
            r = C.post("/v1/models/mlp/attributions", att, timeout=30)
        except OSError as e:
            with lock:
                bad.append(repr(e))
            continue
        with lock:
            statuses["attributions %d" % r.status] = statuses.get("attributions %d" % r.status, 0) + 1
            if r.status == 200 and r.json.get("attributions") != ref_att.get("attributions"):
                wrong.append(r.raw[:300])
            elif r.status not in (200, 503):
                bad.append(repr(r))


threads = [threading.Thread(target=load, args=(k, (A, B)[k % 2])) for k in range(4)]
threads.append(threading.Thread(target=attribute))
for t in threads:
    t.start()
time.sleep(1.0)
pg.restart("fast")
time.sleep(1.0)
pg.restart("immediate")
time.sleep(1.5)
stop.set()
for t in threads:
    t.join()
diag("statuses during the restarts: %s" % statuses)
ok(not bad, "only 201/200 and 503 + Retry-After while PostgreSQL restarted (no other status, no dropped "
   "connection)", bad[:5])
ok(not wrong and statuses.get("attributions 200", 0) > 0,
   "attributions through C during the restarts: %d right answers, no wrong one" % statuses.get("attributions 200", 0),
   wrong[:3])
ok(statuses.get(503, 0) > 0, "the registrations sent while it was down were answered 503 (%d)" % statuses.get(503, 0))
resumed = None
t0 = time.time()
while time.time() - t0 < 10:
    if all(d.get("/readyz").status == 200 for d in (A, B, C)):
        resumed = time.time() - t0
        break
    time.sleep(0.05)
ok(resumed is not None, "every replica is ready again by itself (%.2f s)" % (resumed or -1))
missing, stored = [], {}
for name in sorted({a[0] for a in acked}):
    r = C.get("/v1/models/" + name)
    stored[name] = {v["version"]: v["digest"] for v in (r.json or {}).get("versions", [])}
for name, version, dig in acked:
    if stored[name].get(version) != dig:
        missing.append((name, version, stored[name].get(version)))
ok(len(acked) > 20 and not missing, "all %d acknowledged registrations are in the database" % len(acked), missing[:5])
r = B.get(path)
ok(r.status == 200 and r.json["meta"]["cache"] == "hit" and r.json.get("coefficients") == ra.json.get("coefficients"),
   "the cached regressor is still served, unchanged, after the restarts", r)

for d in (A, B, C):
    ok(d.stop() == 0, "replica on port %d stops cleanly" % d.port, d.read_log()[-1500:])
done()
