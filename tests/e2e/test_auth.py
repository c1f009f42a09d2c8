#!/usr/bin/env python3
"""End to end: bearer tokens (hashed in the token file) with read and write scopes, 401/403 replies,
SIGHUP reload, audit log of writes, and the refusal to listen beyond loopback without tokens."""

import os
import signal
import statistics
import subprocess
import time

from acedtest import ACED, Daemon, done, fixture_body, ok

work = Daemon().workdir
tokfile = os.path.join(work, "tokens")


def hash_line(token, label, scopes):
    out = subprocess.run([ACED, "--hash-token", label, scopes], input=token.encode(), capture_output=True, check=True)
    return out.stdout.decode()


WRITER, READER = "w" * 20 + "-pipeline-secret", "r" * 20 + "-dashboard-secret"
with open(tokfile, "w") as f:
    f.write("# test tokens\n")
    f.write(hash_line(WRITER, "pipeline", "read,write"))
    f.write(hash_line(READER, "dashboard", "read"))
content = open(tokfile).read()
ok(WRITER not in content and READER not in content and "sha256:" in content, "token file holds hashes, not tokens")

r = subprocess.run([ACED, "--hash-token"], input=b"short\n", capture_output=True)
ok(r.returncode != 0, "--hash-token refuses a short token")

d = Daemon(args=["--token-file=" + tokfile], workdir=work).start()
body = fixture_body("m")

r = d.post("/v1/models", body)
ok(r.status == 401 and r.error_code() == "unauthorized" and r.error_field() == "Authorization", "no token: 401", r)
ok(r.headers.get("WWW-Authenticate", "").startswith("Bearer"), "401 carries WWW-Authenticate", r.headers)
r = d.post("/v1/models", body, token="not-a-valid-token-at-all")
ok(r.status == 401 and r.error_code() == "unauthorized", "wrong token: 401", r)
r = d.post("/v1/models", body, headers={"Authorization": "Basic dXNlcjpwYXNz"})
ok(r.status == 401, "non-bearer scheme: 401", r)
r = d.post("/v1/models", body, token=READER)
ok(r.status == 403 and r.error_code() == "forbidden", "read token cannot register: 403", r)
r = d.post("/v1/models", body, token=WRITER)
ok(r.status == 201, "write token registers", r)
r = d.get("/v1/models", token=READER)
ok(r.status == 200 and len(r.json["models"]) == 1, "read token lists models", r)
r = d.get("/v1/models")
ok(r.status == 401, "listing needs a token too", r)
r = d.delete("/v1/models/m", token=READER)
ok(r.status == 403, "read token cannot delete: 403", r)
r = d.get("/healthz")
ok(r.status == 200, "/healthz needs no token", r)
r = d.get("/readyz")
ok(r.status == 200, "/readyz needs no token", r)
ok("model registered name=m version=1" in d.read_log() and "by=pipeline" in d.read_log(),
   "the write is logged with who made it")

# Timing: a wrong token of the right shape takes as long as a near-miss; both are hashed and compared
# against every entry in constant time.  Loopback noise dominates, so only check gross differences.
def timed(tok, n=40):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        d.get("/v1/models", token=tok)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


near = READER[:-1] + "X"
far = "Z" * len(READER)
t_near, t_far = timed(near), timed(far)
ok(abs(t_near - t_far) < 0.5 * max(t_near, t_far) + 0.002,
   "no gross timing difference between near-miss and far-off tokens (%.3f ms vs %.3f ms)" % (t_near * 1e3, t_far * 1e3))

# SIGHUP: drop the reader token, add a new one.
NEWTOK = "n" * 24 + "-rotated"
OTHER = "o" * 24 + "-other-reader"
with open(tokfile, "w") as f:
    f.write(hash_line(WRITER, "pipeline", "read,write"))
    f.write(hash_line(NEWTOK, "rotated", "read"))
    f.write(hash_line(OTHER, "other", "read"))
d.proc.send_signal(signal.SIGHUP)
time.sleep(0.5)
r = d.get("/v1/models", token=READER)
ok(r.status == 401, "after SIGHUP the removed token is refused", r)
r = d.get("/v1/models", token=NEWTOK)
ok(r.status == 200, "after SIGHUP the new token works", r)
r = d.post("/v1/models/m/regressors", {"features": ["x0"], "num": 20}, token=NEWTOK)
ok(r.status == 202, "a read token may start a regressors job", r)
job = r.json["job"]["id"]
r = d.request("DELETE", "/v1/jobs/" + job, token="")
ok(r.status == 401, "cancelling without a token: 401", r)
r = d.delete("/v1/jobs/" + job, token=OTHER)
ok(r.status == 403 and r.error_code() == "forbidden", "another read token cannot cancel the job: 403", r)
r = d.delete("/v1/jobs/" + job, token=WRITER)
ok(r.status in (200, 409), "a write token may cancel any job", r)
r = d.get("/v1/jobs/" + job, token=NEWTOK)
ok(r.status == 200 and r.json["id"] == job, "the job can be read", r)
ok(d.alive(), "daemon up after reload")
ok(d.stop() == 0, "clean shutdown")

# Without a token file, only loopback addresses are allowed.
r = subprocess.run([ACED, "--listen-address=0.0.0.0", "--check-config"], capture_output=True)
ok(r.returncode != 0 and b"token_file" in r.stderr, "refuses 0.0.0.0 without a token file", r.stderr)
r = subprocess.run([ACED, "--listen-address=0.0.0.0", "--token-file=" + tokfile, "--check-config"], capture_output=True)
ok(r.returncode == 0, "0.0.0.0 is fine with a token file", r.stderr)
r = subprocess.run([ACED, "--token-file=/nonexistent/tokens", "--check-config"], capture_output=True)
ok(r.returncode != 0 and b"/nonexistent/tokens" in r.stderr, "missing token file is an error", r.stderr)
bad = os.path.join(work, "badtokens")
with open(bad, "w") as f:
    f.write("read plaintext-token\n")
r = subprocess.run([ACED, "--token-file=" + bad, "--check-config"], capture_output=True)
ok(r.returncode != 0 and b"badtokens:1" in r.stderr, "a plaintext token line is rejected with its line number", r.stderr)
d.cleanup()
done()
