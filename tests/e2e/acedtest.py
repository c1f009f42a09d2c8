"""acedtest -- helpers for aced's end-to-end tests (Python 3 standard library only).

Starts the real daemon on a free loopback port with its database in a temporary folder, talks to it
over real HTTP, and prints TAP so that automake's tap-driver can read the results.
"""

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SRCDIR = os.environ.get("ACED_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILDDIR = os.environ.get("ACED_BUILDDIR", SRCDIR)
DATA = os.path.join(SRCDIR, "tests", "data")
ACED = os.path.join(BUILDDIR, "aced")


def _sanitized():
    """Is the daemon an AddressSanitizer build?  Its quarantine keeps freed memory resident, so
    resident-memory figures say nothing there (LeakSanitizer checks leaks instead)."""
    try:
        out = subprocess.run(["ldd", ACED], capture_output=True, timeout=10).stdout
        return b"libasan" in out
    except (OSError, subprocess.SubprocessError):
        return False


SANITIZED = _sanitized()

_n = 0
_failed = 0


def ok(cond, what, detail=None):
    """One TAP line; returns cond so tests can branch on it."""
    global _n, _failed
    _n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (_n, what))
    if not cond:
        _failed += 1
        if detail is not None:
            for line in str(detail)[:2000].splitlines():
                print("#   " + line)
    sys.stdout.flush()
    return bool(cond)


def skip(what, reason):
    """One TAP line for a check that cannot run here, with the reason (`ok N - what # SKIP reason`)."""
    global _n
    _n += 1
    print("ok %d - %s # SKIP %s" % (_n, what, reason))
    sys.stdout.flush()


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line)
    sys.stdout.flush()


def done():
    print("1..%d" % _n)
    sys.stdout.flush()
    sys.exit(1 if _failed else 0)


def skip_all(reason):
    print("1..0 # SKIP %s" % reason)
    sys.exit(0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fixture(name="small_mlp.json"):
    """A file of tests/data (the reference fixture by default), parsed."""
    path = os.path.join(DATA, name)
    with open(path) as f:
        return json.load(f)


def fixture_body(name="mlp"):
    """The reference fixture as a registration body: a name added, reference removed."""
    body = fixture()
    body.pop("reference", None)
    body["name"] = name
    return body


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def error_code(self):
        try:
            return self.json["error"]["code"]
        except (TypeError, KeyError):
            return None

    def error_field(self):
        try:
            return self.json["error"]["field"]
        except (TypeError, KeyError):
            return None

    def __repr__(self):
        return "HTTP %d %s" % (self.status, self.raw[:600])


# ACED_TEST_BACKEND=postgresql: every Daemon gets a fresh database of one PostgreSQL cluster started
# for the test (tests/e2e/pgcluster.py) instead of an SQLite file; tests/e2e/test_pg_suites.py runs
# the crash, load and hostile suites so.
BACKEND = os.environ.get("ACED_TEST_BACKEND", "sqlite")
_pg = []


def pg_cluster():
    """The test's PostgreSQL cluster, started on first use (skip_all naming the package when absent)."""
    if not _pg:
        import pgcluster
        _pg.append(pgcluster.start_or_skip())
    return _pg[0]


class Daemon:
    """A running aced with its own state folder."""

    def __init__(self, args=(), workdir=None, env=None, token=None):
        self.workdir = workdir or tempfile.mkdtemp(prefix="aced-e2e-")
        self.port = free_port()
        self.db = os.path.join(self.workdir, "state", "aced.db")
        if BACKEND == "postgresql":
            self.db = pg_cluster().database("t_%s" % os.path.basename(self.workdir).replace("-", "_").lower())
        self.extra = list(args)
        self.token = token
        self.env = env
        self.exe = ACED  # the program to run
        self.proc = None
        self.log = os.path.join(self.workdir, "aced.log")
        atexit.register(self.kill)

    def start(self, wait=True):
        cmd = [self.exe, "--port=%d" % self.port, "--database=%s" % self.db] + self.extra
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=self.logf, env=self.env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("aced exited with %s; log:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                r = self.request("GET", "/readyz")
                if r.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("aced not ready; log:\n" + self.read_log())

    def read_log(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def request(self, method, path, body=None, headers=None, raw=None, timeout=60, token=None):
        h = {}
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = "Bearer " + tok
        data = None
        if raw is not None:
            data = raw
            h["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if headers:
            h.update(headers)
            for k in [k for k, v in h.items() if v is None]:
                del h[k]
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            return Response(r.status, dict(r.getheaders()), r.read())
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def wait_job(self, job_id, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.get("/v1/jobs/" + job_id)
            if r.status != 200 or r.json["state"] in ("done", "failed", "cancelled"):
                return r
            time.sleep(0.05)
        return r

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Send sig and wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.logf.close()
        self.proc = None
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.stop()
        self.port = free_port()
        return self.start()

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)
