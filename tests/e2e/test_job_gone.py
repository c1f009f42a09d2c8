#!/usr/bin/env python3
"""Issue 17: with SQLite, jobs live in memory; a restart no longer loses a job id silently.

A job id begins with the start time of the daemon that issued it, so after a restart GET and DELETE
/v1/jobs/{id} of a job from before answer 410 `job_gone` (not 404), while an id this run never issued
and never could have (a stamp from the future, or not an id at all) stays 404 `job_not_found`, and
the jobs of the new run are found as before.
"""

from acedtest import Daemon, done, fixture_body, ok

d = Daemon(args=["--workers=1"]).start()
ok(d.post("/v1/models", fixture_body("mlp")).status == 201, "a model registers")
r = d.post("/v1/models/mlp/regressors", {"estimator": "taylor", "num": 20})
ok(r.status == 202, "a background job is submitted (202)", r)
old = r.json["job"]["id"]
done_job = d.wait_job(old)
ok(done_job.status == 200 and done_job.json["state"] == "done", "and finishes", done_job)
ok(len(old) == 32 and all(c in "0123456789abcdef" for c in old), "its id is 32 lowercase hex digits (%s)" % old)

d.restart()
r = d.get("/v1/jobs/" + old)
ok(r.status == 410 and r.error_code() == "job_gone" and r.error_field() == "id",
   "after a restart, GET of the old job id: 410 job_gone", r)
r = d.delete("/v1/jobs/" + old)
ok(r.status == 410 and r.error_code() == "job_gone", "and DELETE of it: 410 job_gone", r)

r = d.post("/v1/models/mlp/regressors", {"estimator": "taylor", "num": 21})
new = r.json["job"]["id"]
ok(new[:11] > old[:11] and d.wait_job(new).json["state"] == "done",
   "a job of the new run has a later stamp (%s > %s) and is found" % (new[:11], old[:11]))
future = "f" * 11 + new[11:]
for jid, what in [(future, "an id stamped in the future"), ("doesnotexist", "not an id"),
                  (new[:11] + "0" * 21, "an id of this run that was never issued"),
                  ("0123456789abcdef0123456789abcdef", "a stamp older than the id format (1972)")]:
    r = d.get("/v1/jobs/" + jid)
    ok(r.status == 404 and r.error_code() == "job_not_found", "%s: 404 job_not_found" % what, r)
ok(d.stop() == 0, "clean shutdown")
d.cleanup()
done()
