#!/usr/bin/env python3
"""End to end: what an operator behind a reverse proxy meets (issue 10, "Operators").

- trusted_proxies takes addresses and CIDR ranges (IPv4 and IPv6), checked by --check-config;
- base_path and a trusted proxy's X-Forwarded-Prefix prefix every URL aced writes (a 202's Location
  header and body), and every 202 carries Retry-After;
- HEAD is answered wherever GET is, as GET without a body, and 405's Allow lists it;
- a start logs nothing from libmicrohttpd about the order of its options;
- --hash-token refuses scopes the token file would refuse;
- /metrics has the process_* metrics and aced_build_info (checked with promtool when installed,
  and by a parser of the text format always).
"""

import os
import re
import shutil
import socket
import subprocess
import time

from acedtest import ACED, SRCDIR, Daemon, diag, done, fixture_body, ok, skip


def check_config(*flags):
    return subprocess.run([ACED, "--check-config"] + list(flags), capture_output=True)


# ---- trusted_proxies: CIDR ranges ----
for value in ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "127.0.0.0/8, ::1/128, 10.0.0.0/8",
              "192.168.1.7", "fd00::/8,172.16.0.0/12", "0.0.0.0/0", "::/0", "::ffff:10.0.0.0/104"):
    r = check_config("--trusted-proxies=" + value)
    ok(r.returncode == 0, "--check-config accepts trusted_proxies = %s" % value, r.stderr)
for value in ("10.0.0.0/33", "::1/129", "1.2.3.4/", "/8", "abc/8", "10.0.0.0/8x", "10.0.0.0/-1",
              "10.0.0.0/ 8", "10.0.0/8", "127.0.0.1/08000"):
    r = check_config("--trusted-proxies=" + value)
    ok(r.returncode == 2 and b"trusted_proxies" in r.stderr,
       "--check-config refuses trusted_proxies = %r, naming the key" % value, r.stderr)

# X-Forwarded-For is logged when the peer is in a trusted range, ignored otherwise.
for trusted, expect in (("127.0.0.0/8", True), ("127.0.0.0/31", True), ("10.0.0.0/8, 127.0.0.1/32", True),
                        ("10.0.0.0/8", False), ("127.0.0.2/32", False), ("::1/128", False)):
    d = Daemon(args=["--trusted-proxies=" + trusted]).start()
    d.get("/healthz", headers={"X-Forwarded-For": "203.0.113.5, 10.1.1.1"})
    d.stop()
    log = d.read_log()
    ok(("203.0.113.5 via 127.0.0.1" in log) == expect,
       "X-Forwarded-For %s from 127.0.0.1 when trusted_proxies = %s" % ("logged" if expect else "ignored", trusted),
       [l for l in log.splitlines() if "healthz" in l])
    d.cleanup()

# An IPv6 proxy in an IPv6 range.
try:
    s6 = socket.socket(socket.AF_INET6)
    s6.bind(("::1", 0))
    s6.close()
    have_v6 = True
except OSError:
    have_v6 = False
if have_v6:
    for trusted, expect in (("::1/128", True), ("::/64", True), ("fe80::/10", False)):
        d = Daemon(args=["--listen-address=::1", "--trusted-proxies=" + trusted])
        d.start(wait=False)
        line = ""
        for _ in range(200):
            try:
                c = socket.create_connection(("::1", d.port), timeout=5)
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 2001:db8::5\r\n"
                          b"Connection: close\r\n\r\n")
                line = c.recv(4096).split(b"\r\n")[0].decode()
                c.close()
                break
            except OSError:
                time.sleep(0.05)
        d.stop()
        log = d.read_log()
        ok(line.endswith("200 OK") and ("2001:db8::5 via ::1" in log) == expect,
           "IPv6: X-Forwarded-For %s from ::1 when trusted_proxies = %s" % ("logged" if expect else "ignored", trusted),
           [line] + [l for l in log.splitlines() if "healthz" in l])
        d.cleanup()
else:
    skip("IPv6 ranges in trusted_proxies", "no IPv6 loopback here")

# ---- base_path, X-Forwarded-Prefix, Retry-After ----
for value in ("/aced", "/ml/aced", "/a-b_c.d~e", "/%7Euser", ""):
    r = check_config("--base-path=" + value)
    ok(r.returncode == 0, "--check-config accepts base_path = %r" % value, r.stderr)
for value in ("aced", "/aced/", "/", "//evil.example", "/a//b", "/a/../b", "/a/./b", "/a b", '/a"b',
              "/a?b", "/a#b", "/a%zz", "/a\\b", "/" + "x" * 256):
    r = check_config("--base-path=" + value)
    ok(r.returncode == 2 and b"base_path" in r.stderr,
       "--check-config refuses base_path = %r, naming the key" % value[:40], r.stderr)
r = check_config("--base-path=/" + "x" * 255)
ok(r.returncode == 0, "base_path of 256 bytes (ACED_BASE_PATH_MAX) is accepted", r.stderr)

d = Daemon(args=["--base-path=/aced", "--trusted-proxies=127.0.0.0/8"]).start()
ok(d.post("/v1/models", fixture_body("m")).status == 201, "model registered")


def job_202(headers=None):
    return d.post("/v1/models/m/regressors", {"outputs": ["y0"], "features": ["x0"], "num": 20},
                  headers=headers)


r = job_202()
job = r.json["job"]["id"] if r.status == 202 else "?"
ok(r.status == 202 and r.json["location"] == "/aced/v1/jobs/" + job and
   r.headers.get("Location") == "/aced/v1/jobs/" + job,
   "base_path prefixes the 202's Location header and body location", (r, r.headers))
ok(r.headers.get("Retry-After") == "1", "a 202 carries Retry-After: 1", r.headers)
ok(d.wait_job(job).json["state"] == "done", "the job, polled without the prefix (the proxy strips it), is done")

r = job_202({"X-Forwarded-Prefix": "/proxy/ml"})
job = r.json["job"]["id"] if r.status == 202 else "?"
ok(r.status == 202 and r.json["location"] == "/proxy/ml/v1/jobs/" + job and
   r.headers.get("Location") == "/proxy/ml/v1/jobs/" + job,
   "a trusted proxy's X-Forwarded-Prefix replaces base_path", (r, r.headers))
r = job_202({"X-Forwarded-Prefix": ""})
job = r.json["job"]["id"] if r.status == 202 else "?"
ok(r.status == 202 and r.headers.get("Location") == "/v1/jobs/" + job,
   "an empty X-Forwarded-Prefix from a trusted proxy means mounted at the root", (r, r.headers))
for bad in ("//evil.example", "proxy", "/proxy/", "/a/../b", "/" + "p" * 300):
    r = job_202({"X-Forwarded-Prefix": bad})
    ok(r.status == 400 and r.error_field() == "X-Forwarded-Prefix" and r.error_code() == "bad_request",
       "an invalid X-Forwarded-Prefix %r from a trusted proxy is a 400 naming the header" % bad[:20], r)
r = d.get("/healthz", headers={"X-Forwarded-Prefix": "//evil.example"})
ok(r.status == 400 and r.error_field() == "X-Forwarded-Prefix", "...on every route, so a misconfigured proxy shows", r)
d.stop()
d.cleanup()

# Synchronous wait timed out: the 202 of that path is prefixed and carries Retry-After as well.
d = Daemon(args=["--base-path=/aced", "--sync-wait-ms=0", "--workers=1"]).start()
r = d.post("/v1/models", fixture_body("m"))
if r.status == 202:
    job = r.json["job"]["id"]
    ok(r.json["location"] == "/aced/v1/jobs/" + job and r.headers.get("Location") == "/aced/v1/jobs/" + job
       and r.headers.get("Retry-After") == "1",
       "a request that outwaits sync_wait_ms answers 202 with the prefixed location and Retry-After", r.headers)
    ok(d.wait_job(job).json["state"] == "done", "...and its job is done")
else:
    skip("202 of a timed-out synchronous wait", "the registration finished within 0 ms (%d)" % r.status)
# Not trusted: the header is ignored, base_path stays.
r = d.post("/v1/models/m/regressors", {"outputs": ["y0"], "features": ["x0"], "num": 20},
           headers={"X-Forwarded-Prefix": "/elsewhere"})
ok(r.status == 202 and r.headers.get("Location", "").startswith("/aced/v1/jobs/"),
   "X-Forwarded-Prefix from a peer not in trusted_proxies is ignored", r.headers)
r = d.get("/healthz", headers={"X-Forwarded-Prefix": "//evil.example"})
ok(r.status == 200, "...even an invalid one (it is not read at all)", r)
d.stop()
d.cleanup()

# ---- HEAD ----
d = Daemon().start()
ok(d.post("/v1/models", fixture_body("m")).status == 201, "model registered")
r = d.post("/v1/models/m/regressors", {"outputs": ["y0"], "features": ["x0"], "num": 20})
job = r.json["job"]["id"]
d.wait_job(job)
ok(d.request("PUT", "/v1/models/m/graph", {"edges": [["x0", "x1"]]}).status == 201, "a graph given to m")
gets = ["/healthz", "/readyz", "/metrics", "/openapi.yaml", "/v1/models", "/v1/models/m",
        "/v1/models/m/regressors/y0/x0?num=20", "/v1/jobs/" + job, "/v1/models/m/graph",
        "/ui", "/ui/", "/ui/app.js",
        "/v1/models/nosuch", "/v1/jobs/0123456789abcdef0123456789abcdef"]
# every GET route of the route table is in that list (a GET route added later without HEAD here fails)
get_routes = re.findall(r'\{"GET",\s*"([^"]+)"', open(os.path.join(SRCDIR, "src", "http", "routes.c")).read())
missed = [t for t in get_routes
          if not any(re.match("^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(t)) + "$", p.split("?")[0])
                     for p in gets)]
ok(len(get_routes) >= 10 and not missed, "HEAD is tried on every one of the %d GET routes of routes.c (missed: %s)"
   % (len(get_routes), ", ".join(missed) or "none"))
for path in gets:
    g = d.get(path)
    h = d.request("HEAD", path)
    # /metrics counts the GET itself, and a regressor's meta.elapsed_ms varies in length: those
    # two only need a Content-Length close to GET's body
    n = int(h.headers.get("Content-Length", "-1"))
    slack = 4096 if path == "/metrics" else 64 if "regressors" in path else 0
    same_length = n >= 0 and abs(n - len(g.raw)) <= slack
    ok(h.status == g.status and h.raw == b"" and same_length and
       h.headers.get("Content-Type") == g.headers.get("Content-Type"),
       "HEAD %s answers like GET (%d, %s), without a body" % (path, g.status, g.headers.get("Content-Type")),
       (h.status, h.headers, g.status, len(g.raw)))


def raw_exchange(data):
    c = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    c.sendall(data)
    out = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        out += chunk
    c.close()
    return out


# On the wire: HEAD then GET on one connection; nothing of a body may follow HEAD's headers.
out = raw_exchange(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
parts = out.split(b"\r\n\r\n")
ok(out.startswith(b"HTTP/1.1 200") and len(parts) >= 2 and parts[1].startswith(b"HTTP/1.1 200"),
   "on the wire, HEAD's headers are followed directly by the next reply (no body bytes)", out[:600])

r = d.request("PUT", "/v1/models/m")
ok(r.status == 405 and r.headers.get("Allow") == "GET, HEAD, DELETE" and r.error_field() == "method",
   "405 Allow lists HEAD where GET is allowed", r.headers)
r = d.request("HEAD", "/v1/models/m/attributions")
ok(r.status == 405 and r.headers.get("Allow") == "POST", "HEAD where only POST is allowed: 405, Allow: POST", r.headers)
r = d.request("PATCH", "/healthz")
ok(r.status == 405 and r.headers.get("Allow") == "GET, HEAD", "Allow of /healthz is GET, HEAD", r.headers)
m = d.get("/metrics").raw.decode()
ok('aced_http_requests_total{route="GET /healthz",status="200"}' in m,
   "HEAD requests are counted under their GET route in /metrics")
# the access log is written in batches, at most access_log_flush_ms (1 s) late
deadline = time.time() + 5
while "HEAD /v1/models/m 200" not in d.read_log() and time.time() < deadline:
    time.sleep(0.05)
ok("HEAD /v1/models/m 200" in d.read_log(), "the access log shows the HEAD method", d.read_log()[-800:])

# ---- libmicrohttpd's option order ----
log = d.read_log()
ok("not the first option" not in log and "mhd:" not in log,
   "a start logs no libmicrohttpd warning (MHD_OPTION_EXTERNAL_LOGGER first)",
   [l for l in log.splitlines() if "mhd" in l])

# ---- /metrics: process and build metrics ----
version = subprocess.run([ACED, "--version"], capture_output=True).stdout.decode().split()[-1]
t0 = time.time()
text = d.get("/metrics").raw.decode()


def parse_exposition(text):
    """The Prometheus text format, strictly: returns ({family: type}, {family: help}, samples, errors)."""
    types, helps, samples, errors = {}, {}, [], []
    name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
    sample_re = re.compile(r"^(%s)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\n]|\\.)*\",?)*\})? (\S+)$" % name_re)
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or parts[2] in helps:
                errors.append("%d: bad or repeated HELP: %s" % (n, line))
            else:
                helps[parts[2]] = parts[3]
        elif line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped") \
                    or parts[2] in types:
                errors.append("%d: bad or repeated TYPE: %s" % (n, line))
            else:
                types[parts[2]] = parts[3]
        elif line.startswith("#") or not line:
            continue
        else:
            m = sample_re.match(line)
            if not m:
                errors.append("%d: not a sample: %s" % (n, line))
                continue
            name = m.group(1)
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
            if family not in types:
                errors.append("%d: sample before its TYPE: %s" % (n, line))
            try:
                value = float(m.group(3))
            except ValueError:
                errors.append("%d: bad value: %s" % (n, line))
                continue
            samples.append((name, m.group(2) or "", value))
    return types, helps, samples, errors


types, helps, samples, errors = parse_exposition(text)
ok(not errors, "/metrics parses as the Prometheus text format", "\n".join(errors))
values = {(n + l): v for n, l, v in samples}
expect = {"process_cpu_seconds_total": "counter", "process_resident_memory_bytes": "gauge",
          "process_virtual_memory_bytes": "gauge", "process_open_fds": "gauge", "process_max_fds": "gauge",
          "process_start_time_seconds": "gauge", "aced_build_info": "gauge"}
for name, typ in expect.items():
    ok(types.get(name) == typ and helps.get(name), "%s is a %s with a HELP line" % (name, typ),
       (types.get(name), helps.get(name)))
pid = d.proc.pid
with open("/proc/%d/statm" % pid) as f:
    vsz, rss = (int(x) * os.sysconf("SC_PAGE_SIZE") for x in f.read().split()[:2])
ok(0.5 * rss < values.get("process_resident_memory_bytes", 0) < 2 * rss + (64 << 20),
   "process_resident_memory_bytes is the daemon's RSS (%d against %d)" % (values.get("process_resident_memory_bytes", 0), rss))
ok(values.get("process_virtual_memory_bytes", 0) >= values.get("process_resident_memory_bytes", 1),
   "process_virtual_memory_bytes is at least the resident size")
nfd = len(os.listdir("/proc/%d/fd" % pid))
ok(abs(values.get("process_open_fds", -99) - nfd) <= 3,
   "process_open_fds is the daemon's open descriptors (%s against %d)" % (values.get("process_open_fds"), nfd))
with open("/proc/%d/limits" % pid) as f:
    lim = [l.split()[3] for l in f if l.startswith("Max open files")][0]
ok(str(int(values.get("process_max_fds", -1))) == lim, "process_max_fds is RLIMIT_NOFILE (%s)" % lim)
start = values.get("process_start_time_seconds", 0)
ok(t0 - 120 < start <= t0 + 1, "process_start_time_seconds is when the daemon started (%.1f s ago)" % (t0 - start))
cpu0 = values.get("process_cpu_seconds_total", -1)
for _ in range(3):
    d.get("/v1/models/m/regressors/y1/x3?estimator=montecarlo&num=5000")
_, _, samples2, _ = parse_exposition(d.get("/metrics").raw.decode())
cpu1 = {(n + l): v for n, l, v in samples2}.get("process_cpu_seconds_total", -1)
ok(cpu0 >= 0 and cpu1 > cpu0, "process_cpu_seconds_total grows with work (%.4f -> %.4f)" % (cpu0, cpu1))
ok(values.get('aced_build_info{version="%s"}' % version) == 1.0,
   "aced_build_info{version=\"%s\"} 1 (the --version)" % version,
   [k for k in values if "build" in k])

promtool = shutil.which("promtool")
if promtool:
    r = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    ok(r.returncode == 0, "promtool check metrics accepts /metrics", r.stdout + r.stderr)
else:
    skip("promtool check metrics", "promtool not installed (Debian package prometheus)")
d.stop()
d.cleanup()

# ---- --hash-token scopes ----
TOKEN = b"0123456789abcdef-operator-token\n"
work = Daemon().workdir
for scopes in ("admin", "read,admin", "", "READ", "read write", "rw"):
    r = subprocess.run([ACED, "--hash-token", "ci", scopes], input=TOKEN, capture_output=True)
    ok(r.returncode == 2 and r.stdout == b"" and b"scopes" in r.stderr and b"read" in r.stderr,
       "--hash-token refuses scopes %r with exit status 2 and says which are valid" % scopes, r)
r = subprocess.run([ACED, "--hash-token", "my label", "read"], input=TOKEN, capture_output=True)
ok(r.returncode == 2 and r.stdout == b"" and b"label" in r.stderr, "--hash-token refuses a label with a blank", r)
r = subprocess.run([ACED, "--hash-token", "ci", "read", "extra"], input=TOKEN, capture_output=True)
ok(r.returncode == 2 and r.stdout == b"", "--hash-token refuses extra arguments", r)
for scopes in ("read", "write", "read,write", "write,read"):
    r = subprocess.run([ACED, "--hash-token", "ci", scopes], input=TOKEN, capture_output=True)
    tokfile = os.path.join(work, "tokens")
    with open(tokfile, "wb") as f:
        f.write(r.stdout)
    c = check_config("--token-file=" + tokfile)
    ok(r.returncode == 0 and c.returncode == 0,
       "--hash-token ci %s prints a line --check-config accepts" % scopes, (r, c.stderr))
shutil.rmtree(work, ignore_errors=True)
done()
