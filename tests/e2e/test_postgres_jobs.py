#!/usr/bin/env python3
"""Issue 17: durable jobs with PostgreSQL.  Jobs live in the database: GET /v1/jobs/{id} answers on every
replica, a cancel reaches whichever replica runs the job, a replica SIGKILLed in the middle of a regressors
job has it taken over by another when its lease runs out (the job completes there with the same
regressors as an undisturbed run on a fresh database), and a replica stopping cleanly gives its job up at
once to another.
"""

import signal
import time

import pgcluster
from acedtest import Daemon, diag, done, ok

pg = pgcluster.start_or_skip()

K = 12
SLOW = pgcluster.tanh_model("slow", K, 64, 7)
JOB = {"estimator": "montecarlo", "num": 1000}


def replica(uri, workers=1):
    d = Daemon(args=["--workers=%d" % workers])
    d.db = uri
    return d.start()


def wait_state(d, job, states, timeout):
    t0 = time.time()
    r = None
    while time.time() - t0 < timeout:
        r = d.get("/v1/jobs/" + job)
        if r.status == 200 and r.json["state"] in states:
            return r
        time.sleep(0.1)
    return r


uri = pg.database("jobs")
A, B = replica(uri), replica(uri)
ok(A.post("/v1/models", SLOW).status == 201, "a 12-input model registers")

# ---- GET on every replica, cancel from another replica ----------------------------------------------
# (a grid long enough that the cancel below finds it running on a quiet machine: the 24 regressors
# of num=1001 took 0.8 s there)
r = A.post("/v1/models/slow/regressors", dict(JOB, num=9001))
ok(r.status == 202, "a regressors job is submitted to A (202)", r)
job = r.json["job"]["id"]
rb = B.get("/v1/jobs/" + job)
ok(rb.status == 200 and rb.json["id"] == job and rb.json["kind"] == "regressors",
   "B answers GET /v1/jobs/{id} of A's job at once", rb)
rb = wait_state(B, job, ["running"], 10)
t0 = time.time()  # a heartbeat a second; a loaded machine may take some for the first feature
while time.time() - t0 < 20:
    rb = B.get("/v1/jobs/" + job)
    if rb.status != 200 or rb.json["progress"]["done"] > 0:
        break
    time.sleep(0.25)
ok(rb.status == 200 and rb.json["progress"]["done"] > 0,
   "B shows its progress as A's heartbeats record it (%s)" % (rb.json or {}).get("progress"), rb)
r = B.delete("/v1/jobs/" + job)
ok(r.status == 200, "DELETE of A's job through B: 200", r)
ra = wait_state(A, job, ["cancelled"], 10)
ok(ra is not None and ra.json["state"] == "cancelled", "the cancel reached A: the job is cancelled there", ra)
rb = wait_state(B, job, ["cancelled"], 5)
ok(rb is not None and rb.json["state"] == "cancelled", "and B reports it cancelled", rb)
r = B.delete("/v1/jobs/" + job)
ok(r.status == 409 and r.error_code() == "conflict", "cancelling it again: 409", r)

# ---- jobs queued longer than the lease stay with their replica ------------------------------------------
ids = [A.post("/v1/models/slow/regressors", dict(JOB, num=1003 + i, features=["f%d" % f for f in range(4)]))
       .json["job"]["id"] for i in range(4)]
t0 = time.time()
states = [(wait_state(A, j, ["done", "failed", "cancelled"], 120).json or {}).get("state") for j in ids]
ok(states == ["done"] * 4 and "taken over" not in B.read_log() + A.read_log(),
   "four jobs queued on A's one worker (%.1f s, over the %d s lease) all end done on A, none taken over"
   % (time.time() - t0, 5), states)

# ---- SIGKILL of the replica running the job ------------------------------------------------------------
# (a grid four times the others': B, idle, helps with the job's tasks from the start, and progress
# shows in steps of whole tasks, so a shorter job could be over before A is seen in the middle of it)
KJOB = dict(JOB, num=4001)
r = A.post("/v1/models/slow/regressors", KJOB)
job = r.json["job"]["id"]
t0 = time.time()
while time.time() - t0 < 30:
    rb = B.get("/v1/jobs/" + job)
    if rb.status == 200 and rb.json["progress"]["done"] > 0:
        break
    time.sleep(0.1)
ok(rb.json["state"] == "running" and 0 < rb.json["progress"]["done"] < rb.json["progress"]["total"],
   "A is in the middle of the job (%s)" % rb.json["progress"], rb)
A.proc.send_signal(signal.SIGKILL)
A.proc.wait()
t_kill = time.time()
rb = wait_state(B, job, ["done", "failed", "cancelled"], 120)
took = time.time() - t_kill
ok(rb.status == 200 and rb.json["state"] == "done",
   "A SIGKILLed: B takes the job over and completes it (%.1f s after the kill)" % took, rb)
ok("taken over" in B.read_log(), "B's log says it took the job over")
res = rb.json.get("result", {})

# An undisturbed run on a fresh database, for reference.
ref = replica(pg.database("jobs_ref"))
ref.post("/v1/models", SLOW)
rr = ref.post("/v1/models/slow/regressors", KJOB)
rr = ref.wait_job(rr.json["job"]["id"], timeout=300)
want = rr.json.get("result", {})
same_keys = ["model", "version", "outputs", "features", "estimator", "regressors", "warnings"]
ok(rr.json["state"] == "done" and all(res.get(k) == want.get(k) for k in same_keys),
   "its result matches the undisturbed run's (%s)" % ", ".join(same_keys), (res, want))
diag("after the takeover: %d regressors computed again, %d already cached by A" %
     (res.get("computed", -1), res.get("cached", -1)))
diff = []
for o in ("a", "b"):
    for i in range(K):
        p = "/v1/models/slow/regressors/%s/f%d?estimator=montecarlo&num=%d" % (o, i, KJOB["num"])
        g, w = B.get(p), ref.get(p)
        if g.status != 200 or g.json["meta"]["cache"] != "hit" or g.json.get("coefficients") != w.json.get("coefficients"):
            diff.append((o, i, g.status))
ok(not diff, "all %d regressors are cached and equal to the undisturbed run's, to the last bit" % (2 * K), diff[:5])

# ---- a clean stop gives the job up at once -------------------------------------------------------------
C = replica(uri)
# (the longest grid, ten times the others': B must still be in the middle of it when it stops, or
# there is nothing to give up; C, idle, helps with its tasks from the start, so the stop comes as
# soon as the job is seen running, not after a fixed wait)
r = B.post("/v1/models/slow/regressors", dict(JOB, num=10000))
job = r.json["job"]["id"]
wait_state(C, job, ["running"], 10)
before = C.get("/v1/jobs/" + job)
diag("B's job before the stop: %s %s" % (before.json.get("state"), before.json.get("progress")))
ok(before.json.get("state") == "running", "B's job is running when B is stopped", before.json)
t0 = time.time()
ok(B.stop() == 0, "B stops cleanly (SIGTERM) in the middle of a job")
rc = wait_state(C, job, ["done", "failed"], 120)
ok(rc.status == 200 and rc.json["state"] == "done",
   "C takes the job B gave up and completes it (%.1f s after the stop)" % (time.time() - t0), rc)
ok("given up" in B.read_log(), "B's log says it gave the job up")

ok(C.stop() == 0 and ref.stop() == 0, "the other replicas stop cleanly")
done()
