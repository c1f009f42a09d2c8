#!/usr/bin/env python3
"""End to end: examples/register_torch.py (issue 10) against the real daemon -- a PyTorch network
with Flatten, Dropout and a LogSoftmax output, trained-style on scaled inputs (a fitted scikit-learn
StandardScaler and MinMaxScaler when scikit-learn is installed, stand-ins with the same attributes
otherwise), registered by the script and checked against PyTorch float64 in raw units: taylor with
the exact autograd Hessian of x -> net(scaler(x)) in eval mode, and montecarlo.  Then the script's
error reporting: aced's own JSON refusal is reported as aced's, a proxy's HTML 413 as a proxy's.

Needs PyTorch: when the running Python has none, the test re-runs itself with /usr/bin/python3
(Debian's python3-torch), or skips."""

import http.server
import os
import sys
import threading

try:
    import torch
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", "-B"] + sys.argv)
    torch = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from acedtest import SRCDIR, Daemon, done, ok, skip, skip_all  # noqa: E402

if torch is None:
    skip_all("PyTorch is not installed (Debian: apt-get install python3-torch)")
sys.path.insert(0, os.path.join(SRCDIR, "examples"))
import register_torch as rt  # noqa: E402
from torch import nn  # noqa: E402

try:
    from sklearn.preprocessing import MinMaxScaler, StandardScaler
except ImportError:
    StandardScaler = MinMaxScaler = None

torch.set_default_dtype(torch.float64)
g = torch.Generator().manual_seed(7)
k, n = 4, 250
raw = torch.tensor([13.0, 2.3, 750.0, 0.36]) + torch.tensor([0.8, 0.3, 300.0, 0.12]) * torch.randn(n, k, generator=g)
raw[:, 1] = raw[:, 1].abs() + 0.5


class FakeStandard:
    """StandardScaler's fitted attributes (population standard deviation)."""
    def __init__(self, X):
        self.mean_ = X.mean(0).numpy()
        self.scale_ = X.std(0, unbiased=False).numpy()

    def transform(self, X):
        return (X - torch.tensor(self.mean_)) / torch.tensor(self.scale_)


class FakeMinMax:
    """MinMaxScaler's fitted attributes: x * scale_ + min_ maps [data_min_, data_max_] to [0, 1]."""
    def __init__(self, X):
        lo, hi = X.min(0).values, X.max(0).values
        self.data_min_, self.data_max_, self.data_range_ = lo.numpy(), hi.numpy(), (hi - lo).numpy()
        self.scale_ = (1.0 / (hi - lo)).numpy()
        self.min_ = (-lo / (hi - lo)).numpy()

    def transform(self, X):
        return X * torch.tensor(self.scale_) + torch.tensor(self.min_)


scalers = []
if StandardScaler is not None:
    scalers += [("sklearn StandardScaler", StandardScaler().fit(raw.numpy())),
                ("sklearn MinMaxScaler", MinMaxScaler().fit(raw.numpy()))]
else:
    skip("a fitted scikit-learn scaler", "scikit-learn is not installed (Debian: python3-sklearn); "
         "stand-ins with the same fitted attributes are used")
scalers += [("StandardScaler-like", FakeStandard(raw)), ("MinMaxScaler-like", FakeMinMax(raw))]


def scaled(sc, X):
    """The scaler's own formula in torch (autograd must see it): StandardScaler (x - mean_) /
    scale_, MinMaxScaler x * scale_ + min_, from the fitted attributes."""
    if hasattr(sc, "min_"):
        return X * torch.tensor(sc.scale_) + torch.tensor(sc.min_)
    return (X - torch.tensor(sc.mean_)) / torch.tensor(sc.scale_)


for label, sc in scalers:
    ok((scaled(sc, raw) - torch.as_tensor(sc.transform(raw.numpy()) if hasattr(sc, "n_features_in_")
                                          else sc.transform(raw))).abs().max().item() < 1e-12,
       "%s: the reference's formula is the scaler's own transform" % label)


torch.manual_seed(3)
net = nn.Sequential(nn.Flatten(), nn.Linear(k, 9), nn.Tanh(), nn.Dropout(0.4),
                    nn.Sequential(nn.Linear(9, 6), nn.Softplus()), nn.Dropout(0.1),
                    nn.Linear(6, 3), nn.LogSoftmax(dim=1)).double().eval()
layers = rt.network_layers(net)
ok([L["activation"] for L in layers] == ["tanh", "softplus", "log_softmax"],
   "Flatten and Dropout are left out, LogSoftmax becomes log_softmax", [L["activation"] for L in layers])
for bad, what in ((nn.Sequential(nn.Linear(k, 3), nn.LogSoftmax(dim=0)), "LogSoftmax(dim=0)"),
                  (nn.Sequential(nn.Linear(k, 3), nn.LogSoftmax(dim=1), nn.Linear(3, 2)), "LogSoftmax not last"),
                  (nn.Sequential(nn.Flatten(0), nn.Linear(k, 3)), "Flatten(start_dim=0)"),
                  (nn.Sequential(nn.Linear(k, 3), nn.BatchNorm1d(3)), "BatchNorm1d")):
    try:
        rt.network_layers(bad)
        ok(False, "%s is refused" % what)
    except rt.UnsupportedModule as e:
        ok(True, "%s is refused: %s" % (what, str(e)[:90]))

d = Daemon().start()
url = "http://127.0.0.1:%d" % d.port
mu = raw.mean(0)
S = torch.cov(raw.T)
feats = ["alcohol", "malic_acid", "proline", "od280/od315"]
for label, sc in scalers:
    def f_raw(x):
        return net(scaled(sc, x.reshape(-1, k))).reshape(x.shape[:-1] + (3,))

    name = "torch-" + "".join(c for c in label if c.isalnum()).lower()
    body = rt.registration_body(net, name, feats, ["c0", "c1", "c2"], raw, scaler=sc, max_samples=n)
    tf = body.get("input_transform", {})
    ok(len(tf.get("shift", [])) == k and len(tf.get("scale", [])) == k, "%s: the body carries an input_transform" % label)
    reply = rt.post_model(body, url=url)
    ok(reply.get("created") is True, "%s: registered through post_model" % label, reply)
    worst = {"taylor": 0.0, "montecarlo": 0.0}
    for i in (0, 2, 3):
        alphas = [raw[:, i].min().item(), mu[i].item(), raw[:, i].max().item()]
        for o in (0, 2):
            for est in worst:
                r = d.post("/v1/models/%s/interventions" % name,
                           {"output": o, "feature": i, "values": alphas, "estimator": est})
                if r.status != 200:
                    ok(False, "%s interventions" % label, r)
                    continue
                for a, got in zip(alphas, r.json["expectations"]):
                    if est == "taylor":
                        x = mu.clone()
                        x[i] = a
                        Si = S.clone()
                        Si[i, :] = 0.0
                        Si[:, i] = 0.0
                        H = torch.autograd.functional.hessian(lambda v: f_raw(v)[o], x)
                        ref = (f_raw(x)[o] + 0.5 * torch.trace(H @ Si)).item()
                    else:
                        Xa = raw.clone()
                        Xa[:, i] = a
                        ref = f_raw(Xa)[:, o].mean().item()
                    worst[est] = max(worst[est], abs(got - ref))
    for est in worst:
        ok(worst[est] <= 1e-9, "%s: %s log-probabilities in raw units match PyTorch float64 to 1e-9 "
           "(max err %.2e)" % (label, est, worst[est]))

# The script's --scaler option: a pickled fitted scaler becomes the demo body's input_transform.
if StandardScaler is not None:
    import json
    import pickle
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        sc = StandardScaler().fit((raw[:, :4]).numpy())
        path = os.path.join(tmp, "scaler.pkl")
        with open(path, "wb") as fh:
            pickle.dump(sc, fh)
        p = subprocess.run([sys.executable, os.path.join(SRCDIR, "examples", "register_torch.py"), "--dry-run",
                            "--scaler", path], capture_output=True, timeout=120)
        body = json.loads(p.stdout) if p.returncode == 0 else {}
        tf = body.get("input_transform", {})
        ok(p.returncode == 0 and tf.get("shift") == [float(x) for x in sc.mean_]
           and tf.get("scale") == [float(x) for x in sc.scale_],
           "register_torch.py --dry-run --scaler scaler.pkl: input_transform = the scaler's mean_ and scale_",
           p.stderr.decode()[-500:])
        r = d.post("/v1/models", dict(body, name="cli-scaler"))
        ok(r.status == 201, "and aced takes that body", r)
else:
    skip("register_torch.py --scaler", "scikit-learn is not installed (Debian: python3-sklearn)")

# aced's own refusal is aced's; an HTML page from a proxy is not.
body = rt.registration_body(net, "bad name!", feats, ["c0", "c1", "c2"], raw)
try:
    rt.post_model(body, url=url)
    ok(False, "a bad name is refused")
except RuntimeError as e:
    ok(str(e).startswith("aced refused the model: bad_name (400) at name"), "aced's JSON error is reported as aced's", e)


class Proxy413(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        page = (b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
                b"<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
                b"</body>\r\n</html>\r\n")
        self.send_response(413)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *a):
        pass


class JsonNotAced(Proxy413):
    def do_POST(self):
        page = b'{"message": "upstream timed out"}'
        self.send_response(504)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)


for handler, status, what in ((Proxy413, 413, "an nginx 413 in HTML"), (JsonNotAced, 504, "a JSON 504 without \"error\"")):
    srv = http.server.HTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    body = rt.registration_body(net, "proxied", feats, ["c0", "c1", "c2"], raw)
    try:
        rt.post_model(body, url="http://127.0.0.1:%d" % srv.server_address[1])
        ok(False, "%s raises" % what)
    except RuntimeError as e:
        msg = str(e)
        ok(msg.startswith("HTTP %d from something other than aced" % status) and "aced refused" not in msg
           and (status != 413 or ("text/html" in msg and "client_max_body_size" in msg)),
           "%s is reported as not aced's refusal: %s" % (what, msg[:150]), msg)
    srv.shutdown()
    srv.server_close()

d.stop()
done()
