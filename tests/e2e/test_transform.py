#!/usr/bin/env python3
"""End to end: a registration's input transform (x_model = (x_raw - shift) / scale, issue 10) checked
against an independent PyTorch float64 reference over real HTTP.

A tanh network is trained-on-scaled-inputs style: it takes standardised inputs, while the feature
domains, samples, mean and covariance are in raw units (features of very different magnitudes).  With
torch, in raw units throughout: f_raw(x) = net((x - shift) / scale); E[y | do(x_i = a)] by Eq. 4 with
the exact autograd Hessian of f_raw, and by Eq. 2 over the raw samples.  aced must agree to 1e-9
(relative to the output scale).  Also: the model with the transform equals the same model with the
transform folded into its first layer by hand (same expectations, different digests), the metadata
reports the transform, and bad transforms are refused naming the field.

Needs PyTorch: when the running Python has none, the test re-runs itself with /usr/bin/python3 (Debian's
python3-torch), or skips."""

import os
import sys

try:
    import torch
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", "-B"] + sys.argv)
    torch = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from acedtest import Daemon, done, ok, skip_all  # noqa: E402

if torch is None:
    skip_all("PyTorch is not installed (Debian: apt-get install python3-torch)")

torch.set_default_dtype(torch.float64)
g = torch.Generator().manual_seed(20261201)
k, h, m, n = 4, 7, 3, 300

# raw features: a length in mm, a ratio, a count in thousands, a temperature in K
raw_mean = torch.tensor([120.0, 0.35, 4200.0, 290.0])
raw_sd = torch.tensor([15.0, 0.05, 900.0, 6.0])
mix = torch.eye(k) + 0.3 * torch.randn(k, k, generator=g)
Z = torch.randn(n, k, generator=g) @ mix.T
X = raw_mean + raw_sd * (Z - Z.mean(0)) / Z.std(0)
# StandardScaler: mean_ and scale_ (population standard deviation)
shift = X.mean(0)
scale = X.std(0, unbiased=False)

W1, b1 = 0.8 * torch.randn(h, k, generator=g), 0.3 * torch.randn(h, generator=g)
W2, b2 = 0.8 * torch.randn(m, h, generator=g), 0.3 * torch.randn(m, generator=g)


def net(z):
    return torch.tanh(torch.tanh(z @ W1.T + b1) @ W2.T + b2)


def f_raw(x):
    return net((x - shift) / scale)


mu = X.mean(0)
S = torch.cov(X.T)  # divisor n - 1, as aced computes it
lows, highs = X.min(0).values, X.max(0).values


def taylor_ref(i, o, a):
    mu_a = mu.clone()
    mu_a[i] = a
    Si = S.clone()
    Si[i, :] = 0.0
    Si[:, i] = 0.0
    H = torch.autograd.functional.hessian(lambda x: f_raw(x)[o], mu_a)
    return (f_raw(mu_a)[o] + 0.5 * torch.trace(H @ Si)).item()


def mc_ref(i, o, a):
    Xa = X.clone()
    Xa[:, i] = a
    return f_raw(Xa)[:, o].mean().item()


def L(x):
    return x.tolist()


features = [{"name": "length_mm", "low": lows[0].item(), "high": highs[0].item()},
            {"name": "ratio", "low": lows[1].item(), "high": highs[1].item()},
            {"name": "count_k", "low": lows[2].item(), "high": highs[2].item()},
            {"name": "temp_K", "low": lows[3].item(), "high": highs[3].item()}]
outputs = ["a", "b", "c"]
layers = [{"weights": L(W1), "bias": L(b1), "activation": "tanh"},
          {"weights": L(W2), "bias": L(b2), "activation": "tanh"}]
body = {"name": "scaled", "features": features, "outputs": outputs,
        "network": {"type": "feedforward", "layers": layers},
        "input_transform": {"shift": L(shift), "scale": L(scale)},
        "data": {"samples": L(X)}}

d = Daemon().start()
r = d.post("/v1/models", body)
ok(r.status == 201, "a model with an input transform registers", r)
r = d.get("/v1/models/scaled")
tf = (r.json or {}).get("input_transform", {})
ok(r.status == 200 and tf.get("shift") == L(shift) and tf.get("scale") == L(scale),
   "the metadata reports the transform as given", r)

worst = {"taylor": 0.0, "montecarlo": 0.0}
for i in range(k):
    alphas = [lows[i].item() + (highs[i].item() - lows[i].item()) * j / 6 for j in range(7)]
    for o in range(m):
        for est, ref in (("taylor", taylor_ref), ("montecarlo", mc_ref)):
            r = d.post("/v1/models/scaled/interventions",
                       {"output": outputs[o], "feature": features[i]["name"], "values": alphas,
                        "estimator": est})
            if r.status != 200:
                ok(False, "interventions %s %d/%d" % (est, o, i), r)
                continue
            for a, got in zip(alphas, r.json["expectations"]):
                worst[est] = max(worst[est], abs(got - ref(i, o, a)))
for est in worst:
    ok(worst[est] <= 1e-9, "%s in raw units matches PyTorch float64 on f((x - shift) / scale) to 1e-9 "
       "(max err %.2e)" % (est, worst[est]))

# Without the transform the same weights give other numbers: the transform is not ignored.
plain = dict(body, name="plain")
del plain["input_transform"]
r = d.post("/v1/models", plain)
ok(r.status == 201, "the same model without a transform registers", r)
q = {"output": "a", "feature": "count_k", "values": [4000.0], "estimator": "taylor"}
r1 = d.post("/v1/models/scaled/interventions", q)
r2 = d.post("/v1/models/plain/interventions", q)
ok(r1.status == r2.status == 200 and abs(r1.json["expectations"][0] - r2.json["expectations"][0]) > 1e-3,
   "the transform changes the expectations (it is applied, not ignored)", (r1, r2))

# Property: the transform folded into layer 0 by hand gives the same model.
W1f = W1 / scale
b1f = b1 - W1 @ (shift / scale)
folded = dict(plain, name="folded")
folded["network"] = {"type": "feedforward",
                     "layers": [{"weights": L(W1f), "bias": L(b1f), "activation": "tanh"}, layers[1]]}
r = d.post("/v1/models", folded)
ok(r.status == 201, "the hand-folded model registers", r)
worst = 0.0
for feat in ("length_mm", "ratio", "count_k", "temp_K"):
    i = [f["name"] for f in features].index(feat)
    vals = [lows[i].item(), mu[i].item(), highs[i].item()]
    for o in outputs:
        for est in ("taylor", "montecarlo"):
            q = {"output": o, "feature": feat, "values": vals, "estimator": est}
            r1 = d.post("/v1/models/scaled/interventions", q)
            r2 = d.post("/v1/models/folded/interventions", q)
            if r1.status != 200 or r2.status != 200:
                ok(False, "interventions on scaled/folded", (r1, r2))
                continue
            worst = max(worst, max(abs(x - y) for x, y in zip(r1.json["expectations"], r2.json["expectations"])))
ok(worst <= 1e-12, "with a transform = the same network with the transform folded by hand (max diff %.2e)" % worst)
r1 = d.get("/v1/models/scaled")
r2 = d.get("/v1/models/folded")
ok(r1.json["digest"] != r2.json["digest"], "the digests differ (the canonical form keeps the transform as given)")

# Regressors and attributions work in raw units: the curve spans the raw domain.
r = d.get("/v1/models/scaled/regressors/a/count_k?num=50&estimator=montecarlo")
ok(r.status == 200 and abs(r.json["domain"][0] - lows[2].item()) < 1e-9 and abs(r.json["domain"][1] - highs[2].item()) < 1e-9,
   "the regressor's domain is the raw one", r)

# An identity transform given explicitly computes like none (digest differs: it was given).
ident = dict(plain, name="ident", input_transform={"scale": [1, 1, 1, 1]})
r = d.post("/v1/models", ident)
ok(r.status == 201, "scale alone (shift defaults to 0) registers", r)
q = {"output": "b", "feature": "ratio", "values": [0.3, 0.4], "estimator": "taylor"}
r1 = d.post("/v1/models/ident/interventions", q)
r2 = d.post("/v1/models/plain/interventions", q)
ok(r1.status == 200 and r1.json["expectations"] == r2.json["expectations"], "an identity transform changes nothing",
   (r1, r2))

# Refusals name the field.
bad = [({"scale": [1, 1, 1]}, 422, "input_transform.scale"),
       ({"shift": [0, 0, 0, 0, 0]}, 422, "input_transform.shift"),
       ({"scale": [1, 0, 1, 1]}, 422, "input_transform.scale[1]"),
       ({"scale": [1, 1e-320, 1, 1]}, 422, "input_transform.scale[1]"),
       ({"scale": [1, "x", 1, 1]}, 400, "input_transform.scale[1]"),
       ({"scale": 2}, 400, "input_transform.scale"),
       ({}, 400, "input_transform.scale"),
       ({"mean": [0, 0, 0, 0]}, 400, "input_transform.mean"),
       ([1, 2], 400, "input_transform")]
for tf, status, field in bad:
    b = dict(plain, name="bad", input_transform=tf)
    r = d.post("/v1/models", b)
    ok(r.status == status and r.error_field() == field,
       "input_transform %s: %d naming %s" % (str(tf)[:40], status, field), r)

d.stop()
done()
