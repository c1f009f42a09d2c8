#!/usr/bin/env python3
"""End to end: clients/python/aced_client.py against the live daemon. Registration (a JSON file, a
body, the torch path through examples/register_torch.py, an ONNX file's body), interventions,
regressors (revalidated with their ETag: 304), attributions, explanations side by side, regressor
jobs followed with a progress callback, every query followed through its 202 when sync_wait_ms is 0,
errors raised with the server's status, code and field (a failed job's too, and a proxy's HTML page),
authentication, and the command line that the README shows."""

import base64
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import types

from acedtest import ACED, SRCDIR, Daemon, done, fixture_body, ok, skip

sys.path.insert(0, os.path.join(SRCDIR, "clients", "python"))
import aced_client  # noqa: E402
from aced_client import AcedError, Client  # noqa: E402

EXAMPLE = os.path.join(SRCDIR, "examples", "iris-demo.json")


class Recording(Client):
    """A client that remembers the status of every reply."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.statuses = []

    def request(self, method, path, body=None, headers=None):
        try:
            r = super().request(method, path, body, headers)
        except AcedError as e:
            self.statuses.append(e.status)
            raise
        self.statuses.append(r[0])
        return r


def raises(fn, status, code, field=None):
    try:
        fn()
    except AcedError as e:
        good = e.status == status and e.code == code and (field is None or e.field == field)
        return good, "%s %s %s: %s" % (e.status, e.code, e.field, e.message)
    return False, "no error raised"


d = Daemon().start()
c = Recording("http://127.0.0.1:%d" % d.port)

r = c.register_file(EXAMPLE)
ok(r["name"] == "iris-demo" and r["version"] == 1 and r["created"], "register_file: the example model registers", r)
r = c.register_file(EXAMPLE)
ok(r["created"] is False, "the same file again: already registered", r)
r = c.register(fixture_body("mlp"))
ok(r["name"] == "mlp" and r["created"], "register: a body", r)
ok(sorted(m["name"] for m in c.models()) == ["iris-demo", "mlp"], "models: both")
meta = c.model("mlp")
ok(meta["outputs"] == ["y0", "y1", "y2"] and len(meta["features"]) == 4, "model: metadata")

iv = c.interventions("mlp", "y1", "x2", [0.1, 0.5, 0.9])
direct = d.post("/v1/models/mlp/interventions", {"output": "y1", "feature": "x2", "values": [0.1, 0.5, 0.9]}).json
strip = lambda r: {k: v for k, v in r.items() if k != "meta"}
ok(strip(iv) == strip(direct) and iv["meta"]["estimator"] == direct["meta"]["estimator"],
   "interventions: the same reply as over plain HTTP", (iv, direct))

reg = c.regressor("mlp", "y0", "x1", num=30)
raw = d.get("/v1/models/mlp/regressors/y0/x1?num=30").json
ok(reg["curve"] == raw["curve"] and reg["coefficients"] == raw["coefficients"], "regressor: the same curve as over HTTP")
n = len(c.statuses)
again = c.regressor("mlp", "y0", "x1", num=30)
ok(c.statuses[n:] == [304] and again is reg, "regressor asked again: revalidated, 304, the kept reply", c.statuses[n:])
other = c.regressor("mlp", "y0", "x1", num=31)
ok(other["num"] == 31 and c.statuses[-1] == 200, "other parameters: a new reply")

seen = []
res = c.fit_regressors("mlp", outputs=["y2"], progress=lambda p, job: seen.append((p["done"], p["total"], job["state"])))
ok(res["regressors"] == 4 and res["computed"] + res["cached"] == 4, "fit_regressors: the job's result", res)
ok(seen and seen[-1][0] == seen[-1][1] == 4 and seen[-1][2] == "done"
   and all(a <= b for (a, _, _), (b, _, _) in zip(seen, seen[1:])),
   "the progress callback saw the job to its end, never going back (%d calls)" % len(seen), seen)

rows = [[0.1, 0.2, 0.3, 0.4], [0.9, 0.8, 0.7, 0.6]]
att = c.attributions("mlp", rows, output="y1")
ok(len(att["attributions"]) == 2 and len(att["attributions"][0]) == 4 and att["output"] == "y1", "attributions")
multi = c.attributions("mlp", rows, outputs=["y0", "y2"])
ok([b["output"] for b in multi["results"]] == ["y0", "y2"], "attributions for several outputs")
ex = c.explanations("mlp", rows, output="y1", methods=["gradient", "integrated_gradients"], steps=16)
ok([b["method"] for b in ex["explanations"]] == ["gradient", "integrated_gradients"]
   and ex["explanations"][1]["steps"] == 16, "explanations: methods side by side, extra fields passed", ex.get("meta"))
one = c.explanations("mlp", output="y0", method="connection_weights")
ok(one["method"] == "connection_weights" and len(one["attributions"]) == 1, "explanations: one method, no inputs")

# Errors: status, code and field as the server sent them.
good, why = raises(lambda: c.model("ghost"), 404, "model_not_found", "name")
ok(good, "an unknown model raises 404 model_not_found at name", why)
good, why = raises(lambda: c.attributions("mlp", [[0.1, 0.2]], output="y1"), 422, None)
ok("inputs" in why and "422" in why, "a short row raises 422 naming inputs", why)
good, why = raises(lambda: c.regressor("mlp", "y0", "nope"), 404, "unknown_feature", "feature")
ok(good, "an unknown feature raises 404 unknown_feature", why)
try:
    c.fit_regressors("mlp", outputs=["nope"])
    ok(False, "a failed job raises")
except AcedError as e:
    ok(e.status is None and e.code == "unknown_output" and e.field, "a failed job raises its error (code, field)",
       (e.status, e.code, e.field))

# ONNX: the body carries the file in base64 under network.model.
tmp = tempfile.mkdtemp(prefix="aced-client-")
onnx = os.path.join(tmp, "tiny.onnx")
with open(onnx, "wb") as f:
    f.write(b"\x08\x07\x12\x04test-not-a-real-graph")
body = aced_client.onnx_body(onnx, "tiny", [("a", 0, 1), {"name": "b", "low": 0, "high": 2}], ["y"],
                             data={"mean": [0.5, 1], "covariance": [[1, 0], [0, 1]]})
ok(body["network"]["type"] == "onnx" and base64.b64decode(body["network"]["model"]) == open(onnx, "rb").read()
   and body["features"][0] == {"name": "a", "low": 0, "high": 1}, "onnx_body: the file in base64, features as dicts")
try:
    r = c.register_file(onnx, features=[("a", 0, 1), ("b", 0, 2)], outputs=["y"],
                        data={"mean": [0.5, 1], "covariance": [[1, 0], [0, 1]]})
    ok(False, "a file that is not an ONNX graph is refused", r)
except AcedError as e:
    ok(e.status in (400, 422) and e.field.startswith("network"),
       "a file that is not an ONNX graph is refused naming network.* (%s %s %s)" % (e.status, e.code, e.field))

# The torch path: examples/register_torch.py's registration_body, then register.
stub = types.ModuleType("register_torch")
calls = []


def fake_body(net, **kw):
    calls.append(kw)
    b = fixture_body(kw["name"])
    return b


stub.registration_body = fake_body
real = sys.modules.get("register_torch")
sys.modules["register_torch"] = stub
r = c.register_torch(object(), "from-torch", ["x0", "x1", "x2", "x3"], ["y0", "y1", "y2"], samples=[[0] * 4],
                     max_samples=10)
ok(r["name"] == "from-torch" and calls and calls[0]["max_samples"] == 10 and calls[0]["features"][0] == "x0",
   "register_torch: register_torch.registration_body's body is registered, arguments passed on", calls)
del sys.modules["register_torch"]
try:
    import torch  # noqa: F401
    have_torch = True
except ImportError:
    have_torch = False
if have_torch:
    import torch
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    r = c.register_torch(net, "torchnet", ["a", "b"], ["y"], samples=torch.rand(50, 2))
    ok(r["name"] == "torchnet" and r["created"], "register_torch with a real torch.nn.Sequential", r)
else:
    skip("register_torch with a real torch.nn.Sequential", "torch is not installed (Debian's python3-torch)")

# Every query through its 202: sync_wait_ms = 0.
d.stop()
d0 = Daemon(args=["--sync_wait_ms=0"]).start()
c0 = Recording("http://127.0.0.1:%d" % d0.port, poll_interval=0.02)
c0.register(fixture_body("mlp"))
seen = []
reg0 = c0.regressor("mlp", "y1", "x3", progress=lambda p, job: seen.append(job["state"]))
ok(202 in c0.statuses and reg0 and reg0["feature"] == "x3" and seen and seen[-1] == "done",
   "sync_wait_ms=0: the regressor is the job's result, followed with progress", c0.statuses)
att0 = c0.attributions("mlp", rows, output="y1")
ok(att0["attributions"] and len(att0["attributions"]) == 2, "and attributions too")
d0.stop()

# Authentication: no token, 401 naming Authorization; with it, fine.
tokens = os.path.join(tmp, "tokens")
with open(tokens, "wb") as f:
    f.write(subprocess.run([ACED, "--hash-token", "client", "read,write"], input=b"client-test-token-0123456789",
                           capture_output=True, check=True).stdout)
da = Daemon(args=["--token_file=" + tokens]).start()
good, why = raises(lambda: Client("http://127.0.0.1:%d" % da.port, token="").models(), 401, "unauthorized",
                   "Authorization")
ok(good, "without a token: 401 unauthorized at Authorization", why)
ca = Client("http://127.0.0.1:%d" % da.port, token="client-test-token-0123456789")
ok(ca.register_file(EXAMPLE)["created"], "with the token: registers")

# The command line, as the README shows it.
env = dict(os.environ, ACED_URL="http://127.0.0.1:%d" % da.port, ACED_TOKEN="client-test-token-0123456789")
cli = os.path.join(SRCDIR, "clients", "python", "aced_client.py")
p = subprocess.run([sys.executable, cli, "register", EXAMPLE], capture_output=True, env=env, timeout=60)
ok(p.returncode == 0 and b"iris-demo version 1" in p.stdout, "CLI: register the example model", p.stdout + p.stderr)
p = subprocess.run([sys.executable, cli, "fit", "iris-demo", "--output", "virginica"], capture_output=True, env=env,
                   timeout=120)
ok(p.returncode == 0 and b"4/4" in p.stderr and json.loads(p.stdout)["regressors"] == 4, "CLI: fit with a progress bar",
   p.stdout + p.stderr)
p = subprocess.run([sys.executable, cli, "model", "nope"], capture_output=True, env=env, timeout=60)
ok(p.returncode == 1 and b"model_not_found" in p.stderr and b"at name" in p.stderr, "CLI: an error says code and field",
   p.stderr)
da.stop()


# A proxy's HTML error page is not taken for aced's error.
class Html(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        page = b"<html><head><title>413 Request Entity Too Large</title></head></html>"
        self.send_response(413)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *a):
        pass


class Busy(http.server.BaseHTTPRequestHandler):
    """503 with Retry-After twice, then aced's reply: the client retries."""
    n = 0

    def do_GET(self):
        Busy.n += 1
        if Busy.n <= 2:
            body, st, extra = b'{"error":{"code":"queue_full","message":"busy","field":""}}', 503, ("Retry-After", "0")
        else:
            body, st, extra = b'{"models":[]}', 200, ("X-Nothing", "1")
        self.send_response(st)
        self.send_header("Content-Type", "application/json")
        self.send_header(*extra)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


busy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
threading.Thread(target=busy.serve_forever, daemon=True).start()
ok(Client("http://127.0.0.1:%d" % busy.server_address[1]).models() == [] and Busy.n == 3,
   "a 503 with Retry-After is retried (twice here), then the reply is returned")
Busy.n = 0
good, why = raises(lambda: Client("http://127.0.0.1:%d" % busy.server_address[1], retries=1).models(), 503,
                   "queue_full")
ok(good and Busy.n == 2, "past its retries the 503 is raised with its code", why)
busy.shutdown()

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
threading.Thread(target=srv.serve_forever, daemon=True).start()
good, why = raises(lambda: Client("http://127.0.0.1:%d" % srv.server_address[1]).register({"name": "x"}), 413,
                   "http_413")
ok(good and "text/html" in why, "a proxy's 413 page raises http_413 saying it is not aced's", why)
srv.shutdown()
done()
