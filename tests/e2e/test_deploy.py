#!/usr/bin/env python3
"""Issue 17, deployment: the systemd template aced@.service passes `systemd-analyze verify` as installed,
and the shipped nginx configuration (etc/nginx/aced.conf, only its ports changed) in front of two replicas
on one PostgreSQL database serves them: requests reach both replicas, a body over max_body_bytes is 413
at the proxy, a GET is retried on the other replica when one is SIGKILLed (proxy_next_upstream), and a
POST is not (idempotent requests only).  TAP SKIPs name the Debian package when nginx, PostgreSQL or
systemd-analyze is missing.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pgcluster
from acedtest import BUILDDIR, SRCDIR, Daemon, Response, done, fixture_body, free_port, ok, skip

# ---- the systemd template ---------------------------------------------------------------------------------
what = "systemd-analyze verify passes on the installed aced@8081.service"
root = tempfile.mkdtemp(prefix="aced-unit-")
r = subprocess.run(["make", "-C", BUILDDIR, "install", "DESTDIR=" + root], capture_output=True)
tmpl = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs if f == "aced@.service"]
sbin = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs if f == "aced" and "sbin" in dp]
nginx_conf = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs
              if f == "aced.conf" and dp.endswith(os.path.join("aced", "nginx"))]
ok(r.returncode == 0 and len(tmpl) == 1 and len(nginx_conf) == 1,
   "make install puts aced@.service in the unit folder and nginx/aced.conf under the package data", tmpl + nginx_conf)
if shutil.which("systemd-analyze") is None:
    skip(what, "systemd-analyze not found (Debian package systemd)")
elif tmpl and sbin:
    installed = open(tmpl[0]).read()
    ok("--port=%i" in installed and "@" not in re.sub(r"aced@|%i|@system-service|@privileged|@resources", "", installed),
       "the template runs one replica per port (%i) and has no @placeholder@ left")
    prefix_bin = re.search(r"^ExecStart=(\S+)", installed, re.M).group(1)
    unit = os.path.join(root, "aced@8081.service")
    with open(unit, "w") as f:
        f.write(installed.replace(prefix_bin, sbin[0]))
    mandirs = sorted({os.path.dirname(dp) for dp, _, fs in os.walk(root) for f in fs if f == "aced.8"})
    r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True,
                       env=dict(os.environ, MANPATH=":".join(mandirs)))
    out = (r.stdout + r.stderr).decode()
    ours = [line for line in out.splitlines() if "aced@" in line]
    ok(r.returncode == 0 and not ours, what, "exit status %d\n%s" % (r.returncode, out[-2000:]))
shutil.rmtree(root, ignore_errors=True)

# ---- nginx in front of two replicas -----------------------------------------------------------------------
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
if NGINX is None:
    skip("nginx in front of two replicas", "nginx not installed (Debian package nginx)")
    done()
pg = pgcluster.start_or_skip()
uri = pg.database("deploy")
reps = []
for _ in range(2):
    d = Daemon(args=["--workers=1", "--trusted-proxies=127.0.0.1", "--max-body-bytes=1048576"])
    d.db = uri
    reps.append(d.start())
A, B = reps

conf = open(os.path.join(SRCDIR, "etc", "nginx", "aced.conf")).read()
port = free_port()
conf = re.sub(r"server 127\.0\.0\.1:8081", "server 127.0.0.1:%d" % A.port, conf)
conf = re.sub(r"server 127\.0\.0\.1:8082", "server 127.0.0.1:%d" % B.port, conf)
conf = re.sub(r"listen 80;", "listen 127.0.0.1:%d;" % port, conf)
conf = re.sub(r"listen \[::\]:80;", "", conf)
conf = conf.replace("client_max_body_size 64m;", "client_max_body_size 1m;")  # = the replicas' max_body_bytes
ok(conf.count("127.0.0.1:%d" % A.port) == 1 and "listen 127.0.0.1:%d" % port in conf,
   "the shipped nginx configuration, only its ports (and body size) changed")
ngdir = tempfile.mkdtemp(prefix="aced-nginx-")
os.chmod(ngdir, 0o755)
with open(os.path.join(ngdir, "aced.conf"), "w") as f:
    f.write(conf)
with open(os.path.join(ngdir, "nginx.conf"), "w") as f:
    f.write("""worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
%(user)s
events { worker_connections 256; }
http {
    access_log %(d)s/access.log;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    include %(d)s/aced.conf;
}
""" % {"d": ngdir, "user": "user root;" if os.geteuid() == 0 else ""})
r = subprocess.run([NGINX, "-t", "-p", ngdir, "-c", os.path.join(ngdir, "nginx.conf")], capture_output=True)
ok(r.returncode == 0, "nginx -t accepts it", r.stderr.decode()[-1500:])
ng = subprocess.Popen([NGINX, "-p", ngdir, "-c", os.path.join(ngdir, "nginx.conf"), "-g", "daemon off;"],
                      stderr=subprocess.DEVNULL)


class Proxy(Daemon):
    """Requests through nginx (the Daemon helpers, at nginx's port)."""

    def __init__(self, p):
        self.port, self.token = p, None


P = Proxy(port)
t0 = time.time()
while time.time() - t0 < 10:
    try:
        if P.get("/healthz").status == 200:
            break
    except OSError:
        time.sleep(0.05)
ok(P.get("/readyz").status == 200, "aced answers through nginx")
r = P.post("/v1/models", fixture_body("mlp"))
ok(r.status == 201, "a registration through nginx: 201", r)
for _ in range(20):
    P.get("/v1/models/mlp")
time.sleep(1.5)  # access_log_flush_ms
seen = [d.read_log().count("GET /v1/models/mlp ") for d in (A, B)]
ok(all(n > 0 for n in seen), "requests reach both replicas (%s)" % seen)
big = b'{"name": "big", "x": "' + b"a" * (1100 * 1024) + b'"}'
r = P.request("POST", "/v1/models", raw=big)
ok(r.status == 413, "a body over max_body_bytes is refused by nginx (413)", r.status)

# One replica dies: GETs go on through the other, POSTs are not repeated.
B.proc.send_signal(signal.SIGKILL)
B.proc.wait()
gets = [P.get("/v1/models/mlp").status for _ in range(10)]
ok(gets == [200] * 10, "B SIGKILLed: every GET through nginx still answers 200 (retried on A)", gets)
att = {"output": "y0", "inputs": [[0.2, 0.5, 0.6, 0.9]]}
posts = [P.post("/v1/models/mlp/attributions", att).status for _ in range(6)]
ok(all(s in (200, 502) for s in posts) and 200 in posts,
   "POSTs are answered by A or fail with 502, never sent twice (%s)" % posts)
log = open(os.path.join(ngdir, "error.log")).read()
ok(not re.search(r"POST /v1/models/mlp/attributions.*next upstream", log),
   "nginx never passed a POST on to the next upstream")

ng.send_signal(signal.SIGTERM)
ng.wait(timeout=10)
ok(A.stop() == 0, "A stops cleanly")
shutil.rmtree(ngdir, ignore_errors=True)
done()
