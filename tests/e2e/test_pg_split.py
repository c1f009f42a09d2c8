#!/usr/bin/env python3
"""Issue 17: one job's tasks split across replicas (src/svc/split.c, src/store/pg_tasks.c).  A regressors
job submitted to replica A has its tasks (one per feature) recorded in aced_tasks; replica B, idle, helps:
both claim tasks (FOR UPDATE SKIP LOCKED) and the result equals an undisturbed single-replica run to the
last bit.  A helper SIGKILLed mid-job has its leased tasks taken over by A once their lease runs out, with
the same result.  A cancel asked on A stops the tasks B runs.  Two replicas asked the same regressor at
once fit it once (aced_fits): the other waits for it and answers it from the shared cache.
"""

import signal
import threading
import time

import pgcluster
from acedtest import Daemon, diag, done, ok

pg = pgcluster.start_or_skip()

K = 16
MODEL = pgcluster.tanh_model("split", K, 64, 11)


def replica(uri, workers=1):
    d = Daemon(args=["--workers=%d" % workers])
    d.db = uri
    return d.start()


def tasks(db, job):
    """(i, state, owner) of the job's task rows."""
    return pg.query("SELECT i, state, coalesce(owner, '') FROM aced_tasks WHERE job = '%s' ORDER BY i" % job, db)


def count(db, job, where):
    return int(pg.query("SELECT count(*) FROM aced_tasks WHERE job = '%s' AND %s" % (job, where), db)[0][0])


def submit_and_wait_for_b(num):
    """A regressors job submitted to A; returns its id and the tasks B holds a lease on once it holds one
    (60 s at most)."""
    job = A.post("/v1/models/split/regressors", {"estimator": "montecarlo", "num": num}).json["job"]["id"]
    t0 = time.time()
    held = []
    while time.time() - t0 < 60 and not held:
        held = [i for i, s, o in tasks(DB, job) if s == "leased" and (":%d:" % B.proc.pid) in o]
        time.sleep(0.02)
    return job, held


def regressors(d, num):
    out = {}
    for o in ("a", "b"):
        for i in range(K):
            r = d.get("/v1/models/split/regressors/%s/f%d?estimator=montecarlo&num=%d" % (o, i, num))
            out[(o, i)] = (r.status, r.json.get("meta", {}).get("cache") if r.json else None,
                           r.json.get("coefficients") if r.json else None)
    return out


def same_as(got, want):
    return [k for k in want if got[k][0] != 200 or got[k][1] != "hit" or got[k][2] != want[k][2]]


# An undisturbed single replica, on its own database, for reference.
ref = replica(pg.database("split_ref"))
ok(ref.post("/v1/models", MODEL).status == 201, "the reference replica registers the model")
REF = {}
for num in (1500, 1600):
    r = ref.post("/v1/models/split/regressors", {"estimator": "montecarlo", "num": num})
    r = ref.wait_job(r.json["job"]["id"], timeout=300)
    ok(r.json["state"] == "done", "the reference run of num=%d is done" % num, r)
    REF[num] = regressors(ref, num)
ref.stop()

DB = "split"
uri = pg.database(DB)
A, B = replica(uri), replica(uri)
ok(A.post("/v1/models", MODEL).status == 201, "the model registers on A")

# ---- two replicas split one job --------------------------------------------------------------------------
r = A.post("/v1/models/split/regressors", {"estimator": "montecarlo", "num": 1500})
ok(r.status == 202, "a regressors job of %d features is submitted to A" % K, r)
job = r.json["job"]["id"]
r = A.wait_job(job, timeout=300)
ok(r.json["state"] == "done", "the job ends done on A", r)
res = r.json.get("result", {})
rows = tasks(DB, job)
by_a = sum(1 for i, s, o in rows if s == "done" and (":%d:" % A.proc.pid) in o)
by_b = sum(1 for i, s, o in rows if s == "done" and (":%d:" % B.proc.pid) in o)
ok(len(rows) == K and all(s == "done" for _, s, _ in rows), "its %d task rows are all done" % K, rows)
ok(by_a > 0 and by_b > 0 and by_a + by_b == K,
   "both replicas ran some of its tasks (A %d, B %d)" % (by_a, by_b), rows)
ok("helping with the tasks of job " + job in B.read_log(), "B's log says it helped with A's job")
ok(res.get("regressors") == 2 * K and res.get("computed") == 2 * K and res.get("cached") == 0,
   "the result counts every regressor computed once over both replicas (%s computed, %s cached)"
   % (res.get("computed"), res.get("cached")), res)
got = regressors(B, 1500)
bad = same_as(got, REF[1500])
ok(not bad, "all %d regressors are cache hits equal to the undisturbed run's, to the last bit" % (2 * K), bad[:4])
rb = B.get("/v1/jobs/" + job)
ok(rb.status == 200 and rb.json["state"] == "done" and rb.json["progress"]["done"] == rb.json["progress"]["total"],
   "B shows the job done with its progress summed over the replicas (%s)" % rb.json.get("progress"), rb)
m = [l for l in A.read_log().splitlines() if "claims took" in l]
diag("A: " + (m[-1] if m else "no claim line"))
m = [l for l in B.read_log().splitlines() if "claims took" in l]
diag("B: " + (m[-1] if m else "no claim line"))

# ---- a helper SIGKILLed mid-job: its leased tasks go to A when their lease runs out ------------------------
job, held = submit_and_wait_for_b(1600)
ok(held, "B holds a lease on a task of A's job")
B.proc.send_signal(signal.SIGKILL)
B.proc.wait()
t_kill = time.time()
r = A.wait_job(job, timeout=300)
ok(r.json["state"] == "done", "A completes the job (%.1f s after the kill)" % (time.time() - t_kill), r)
rows = tasks(DB, job)
ok(all(s == "done" for _, s, _ in rows), "every task is done", rows)
ok(all(":%d:" % A.proc.pid in o for i, s, o in rows if i in [str(h) for h in held]),
   "A ran the tasks B held when it died (%s)" % held, rows)
got = regressors(A, 1600)
bad = same_as(got, REF[1600])
ok(not bad, "all %d regressors equal the undisturbed run's, to the last bit" % (2 * K), bad[:4])

# ---- cancel on one replica stops the tasks running on the other ------------------------------------------
B = replica(uri)
job, held = submit_and_wait_for_b(9999)
ok(held, "B runs a task of A's new job")
helper = job[::-1]
t_cancel = time.time()
r = A.delete("/v1/jobs/" + job)
ok(r.status == 200, "DELETE of the job on A: 200", r)
hb = None
while time.time() - t_cancel < 10:
    hb = B.get("/v1/jobs/" + helper)
    if hb.status == 200 and hb.json["state"] in ("cancelled", "failed", "done"):
        break
    time.sleep(0.02)
took = time.time() - t_cancel
ok(hb is not None and hb.status == 200 and hb.json["state"] == "cancelled",
   "B's helper job of it is cancelled (%.2f s after the DELETE on A)" % took, hb)
ok("cancelled from another replica" in B.read_log(), "B's log says the cancel came from another replica")
n_done, n_free = count(DB, job, "state = 'done'"), count(DB, job, "state = 'free'")
time.sleep(1.5)
ok(count(DB, job, "state = 'done'") == n_done and count(DB, job, "state = 'free'") == n_free and n_free > 0,
   "no task of it is claimed or done after the cancel (%d done, %d never claimed of %d)" % (n_done, n_free, K))
ra = A.wait_job(job, timeout=10)
ok(ra.json["state"] == "cancelled", "the job is cancelled on A", ra)

# ---- a helper stopping cleanly gives its task back at once ------------------------------------------------
B = replica(uri)
job, held = submit_and_wait_for_b(9997)
pid_b = B.proc.pid
ok(held and B.stop() == 0, "B stops cleanly (SIGTERM) while it runs task %s of A's job" % held)
rows = {i: (s, o) for i, s, o in tasks(DB, job)}
ok(all(rows[i][0] != "leased" or (":%d:" % pid_b) not in rows[i][1] for i in held),
   "the task it held is not left leased to it (%s)" % [rows[i] for i in held])
r = A.wait_job(job, timeout=300)
ok(r.json["state"] == "done" and all(s == "done" for _, s, _ in tasks(DB, job)),
   "A completes the job, every task done", r)
B = replica(uri)

# ---- single flight across replicas: the same regressor asked of both at once is fitted once --------------
def ask(d, out, key):
    out[key] = d.get("/v1/models/split/regressors/a/f3?estimator=montecarlo&num=9998")


got = {}
ts = [threading.Thread(target=ask, args=(d, got, k)) for k, d in (("A", A), ("B", B))]
for t in ts:
    t.start()
for t in ts:
    t.join()
caches = sorted(got[k].json["meta"]["cache"] for k in got)
ok(all(got[k].status == 200 for k in got) and got["A"].json["coefficients"] == got["B"].json["coefficients"],
   "both replicas answer the same regressor, equal to the last bit", got)
ok(caches == ["hit", "miss"], "one fitted it (miss), the other took it from the shared cache (hit): %s" % caches)
ok("fitted on another replica now, waiting for it" in A.read_log() + B.read_log(),
   "one replica's log says it waited for the other's fit instead of fitting it again")
ok(pg.query("SELECT count(*) FROM aced_fits", DB) == [["0"]], "no fit is left claimed")

ok(A.stop() == 0 and B.stop() == 0, "both replicas stop cleanly")
done()
