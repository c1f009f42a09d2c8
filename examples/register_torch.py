#!/usr/bin/env python3
"""register_torch.py -- register a PyTorch model with aced.

Copy this file into a training pipeline.  It needs the standard library
and torch only.

    from register_torch import registration_body, post_model
    body = registration_body(net, name="iris",
                             features=["sepal_length", "sepal_width",
                                       "petal_length", "petal_width"],
                             outputs=["setosa", "versicolor", "virginica"],
                             samples=x_train,          # N x k tensor
                             domains=[(4.3, 7.9), (2.0, 4.4), (1.0, 6.9), (0.1, 2.5)],
                             scaler=scaler)            # optional fitted StandardScaler/MinMaxScaler
    reply = post_model(body)   # $ACED_URL (default http://127.0.0.1:8080), $ACED_TOKEN
    print(reply["name"], reply["version"], reply["digest"])

`net` must be a torch.nn.Sequential of nn.Linear layers, each followed by at
most one supported activation:

    nn.ReLU, nn.LeakyReLU (negative_slope 0.01), nn.ELU (alpha 1),
    nn.Sigmoid, nn.Tanh, nn.Softplus (beta 1), nn.GELU (approximate='none'),
    nn.Identity, nn.Softmax and nn.LogSoftmax (last module only, dim=-1 or 1)

nn.Dropout (an identity at inference) and nn.Flatten (an identity on the
N x k inputs aced takes) may appear anywhere and are left out.  A Linear
with no activation after it gets "identity".  Anything else (BatchNorm,
Conv, custom modules, ...) raises UnsupportedModule: fold or remove it
before registering.

Inputs scaled before the network (scikit-learn StandardScaler or
MinMaxScaler, fitted): pass the scaler as `scaler=`; samples and domains
stay in raw units and the body gets aced's "input_transform", so every
effect aced reports is in raw units.  scikit-learn itself is not imported:
any object with StandardScaler's mean_/scale_ or MinMaxScaler's
min_/scale_ works.

Run it as a script for a demo (a tiny Iris-like net with random weights):

    python3 register_torch.py --dry-run > model.json     # print the body only
    python3 register_torch.py                            # post it
"""
import argparse
import json
import math
import os
import sys
import urllib.error
import urllib.request

import torch
from torch import nn

DEFAULT_URL = "http://127.0.0.1:8080"


class UnsupportedModule(ValueError):
    """The network cannot be expressed as an aced registration body."""


def _activation_name(mod, index, is_last):
    """aced's name for an activation module, or None if `mod` is not one."""
    where = "module %d (%s)" % (index, type(mod).__name__)
    if isinstance(mod, nn.Identity):
        return "identity"
    if isinstance(mod, nn.ReLU):
        return "relu"
    if isinstance(mod, nn.LeakyReLU):
        if mod.negative_slope != 0.01:
            raise UnsupportedModule("%s: aced supports negative_slope=0.01 only, not %g"
                                    % (where, mod.negative_slope))
        return "leaky_relu"
    if isinstance(mod, nn.ELU):
        if mod.alpha != 1.0:
            raise UnsupportedModule("%s: aced supports alpha=1 only, not %g" % (where, mod.alpha))
        return "elu"
    if isinstance(mod, nn.Sigmoid):
        return "sigmoid"
    if isinstance(mod, nn.Tanh):
        return "tanh"
    if isinstance(mod, nn.Softplus):
        if mod.beta != 1:
            raise UnsupportedModule("%s: aced supports beta=1 only, not %g" % (where, mod.beta))
        return "softplus"
    if isinstance(mod, nn.GELU):
        approx = getattr(mod, "approximate", "none")
        if approx != "none":
            raise UnsupportedModule("%s: aced supports the exact GELU (approximate='none'), not %r"
                                    % (where, approx))
        return "gelu"
    if isinstance(mod, (nn.Softmax, nn.LogSoftmax)):
        name = "softmax" if isinstance(mod, nn.Softmax) else "log_softmax"
        if mod.dim not in (-1, 1):
            raise UnsupportedModule("%s: %s must be over the last dimension (dim=-1 or 1), "
                                    "not dim=%r" % (where, name, mod.dim))
        if not is_last:
            raise UnsupportedModule("%s: %s is only supported as the last module" % (where, name))
        return name
    return None


def _is_inference_identity(mod):
    """Modules that compute nothing on aced's inputs (N x k rows) at inference: Dropout (any p,
    an identity in eval mode) and Flatten (of an N x k batch, with the default start_dim=1)."""
    if isinstance(mod, (nn.Dropout, nn.AlphaDropout, nn.FeatureAlphaDropout)):
        return True
    if isinstance(mod, nn.Flatten):
        if mod.start_dim not in (1, -1) or mod.end_dim != -1:
            raise UnsupportedModule("nn.Flatten(start_dim=%d, end_dim=%d) is not an identity on "
                                    "N x k inputs: aced needs the default Flatten()"
                                    % (mod.start_dim, mod.end_dim))
        return True
    return False


def _flatten(seq):
    for mod in seq:
        if isinstance(mod, nn.Sequential):
            yield from _flatten(mod)
        else:
            yield mod


def _matrix(t, what):
    rows = t.detach().to("cpu", torch.float64).tolist()
    for r in (rows if t.dim() == 2 else [rows]):
        for x in r:
            if not math.isfinite(x):
                raise ValueError("%s contains a non-finite value (%r)" % (what, x))
    return rows


def network_layers(net):
    """The `network.layers` list of the registration body for `net`."""
    if not isinstance(net, nn.Sequential):
        raise UnsupportedModule("expected a torch.nn.Sequential, got %s" % type(net).__name__)
    # (index in the flattened Sequential, module), Dropout and Flatten left out
    mods = [(i, mod) for i, mod in enumerate(_flatten(net)) if not _is_inference_identity(mod)]
    if not mods:
        raise UnsupportedModule("the Sequential is empty (or holds only Dropout/Flatten)")
    layers = []
    pending = None  # the last Linear's layer, still without an activation
    for pos, (i, mod) in enumerate(mods):
        if isinstance(mod, nn.Linear):
            if pending is not None:
                pending["activation"] = "identity"
                layers.append(pending)
            w = _matrix(mod.weight, "module %d weight" % i)  # [out][in], aced's layout
            if mod.bias is not None:
                b = _matrix(mod.bias, "module %d bias" % i)
            else:
                b = [0.0] * mod.out_features
            pending = {"weights": w, "bias": b}
            continue
        act = _activation_name(mod, i, pos == len(mods) - 1)
        if act is None:
            raise UnsupportedModule(
                "module %d (%s) is not supported: use nn.Linear layers, each followed by at most "
                "one of ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softplus, GELU, Identity, Softmax, "
                "LogSoftmax (Dropout and Flatten are left out; fold normalisation into the Linear "
                "weights, or pass an input scaler as scaler=)"
                % (i, type(mod).__name__))
        if pending is None:
            raise UnsupportedModule("module %d (%s) does not follow an nn.Linear: every "
                                    "activation must come right after a Linear, and a Linear "
                                    "takes at most one activation" % (i, type(mod).__name__))
        pending["activation"] = act
        layers.append(pending)
        pending = None
    if pending is not None:
        pending["activation"] = "identity"
        layers.append(pending)
    return layers


def input_transform(scaler, k):
    """aced's "input_transform" ({"shift": [...], "scale": [...]}, x_model = (x - shift) / scale)
    for a fitted scikit-learn scaler, read by duck typing (scikit-learn is not imported):

      StandardScaler  x_model = (x - mean_) / scale_        shift = mean_, scale = scale_
                      (with_mean=False: mean_ is None, shift 0; with_std=False: scale_ None, 1)
      MinMaxScaler    x_model = x * scale_ + min_           shift = -min_ / scale_, scale = 1 / scale_
    """
    def vec(v, what):
        out = [float(x) for x in (v.tolist() if hasattr(v, "tolist") else v)]
        if len(out) != k:
            raise ValueError("the scaler's %s has %d entries for %d features" % (what, len(out), k))
        if not all(math.isfinite(x) for x in out):
            raise ValueError("the scaler's %s has a non-finite entry" % what)
        return out

    if hasattr(scaler, "min_") and hasattr(scaler, "data_range_"):  # MinMaxScaler
        sc, mn = vec(scaler.scale_, "scale_"), vec(scaler.min_, "min_")
        if any(s == 0.0 for s in sc):
            raise ValueError("the MinMaxScaler has a zero scale_")
        return {"shift": [-m / s for m, s in zip(mn, sc)], "scale": [1.0 / s for s in sc]}
    if hasattr(scaler, "mean_") or hasattr(scaler, "scale_"):  # StandardScaler
        mean = getattr(scaler, "mean_", None)
        scale = getattr(scaler, "scale_", None)
        tf = {"shift": vec(mean, "mean_") if mean is not None else [0.0] * k,
              "scale": vec(scale, "scale_") if scale is not None else [1.0] * k}
        if any(s == 0.0 for s in tf["scale"]):
            raise ValueError("the scaler has a zero scale_")
        return tf
    raise ValueError("unsupported scaler %s: pass a fitted StandardScaler or MinMaxScaler"
                     % type(scaler).__name__)


def registration_body(net, name, features, outputs, samples, domains=None,
                      max_samples=1000, description=None, seed=0, scaler=None):
    """Build the POST /v1/models body.

    features     k feature names, in the network's input order
    outputs      m output names, in the network's output order
    samples      tensor (or nested list) of training inputs, N x k, in raw
                 units (before any scaler); at most `max_samples` rows are
                 kept (a seeded random subsample)
    domains      k (low, high) pairs in raw units; default: each feature's
                 min and max over `samples` (low == high: a constant
                 feature, which aced accepts and skips in all-feature jobs)
    scaler       a fitted scikit-learn StandardScaler or MinMaxScaler that
                 the network's inputs went through: sent as the body's
                 "input_transform", so aced works in raw units
    """
    layers = network_layers(net)
    k, m = len(features), len(outputs)
    n_in = len(layers[0]["weights"][0])
    n_out = len(layers[-1]["weights"])
    if n_in != k:
        raise ValueError("the first Linear takes %d inputs but %d feature names were given" % (n_in, k))
    if n_out != m:
        raise ValueError("the last Linear has %d outputs but %d output names were given" % (n_out, m))

    x = torch.as_tensor(samples).detach().to("cpu", torch.float64)
    if x.dim() != 2 or x.shape[1] != k:
        raise ValueError("samples must be N x %d, got shape %s" % (k, tuple(x.shape)))
    if x.shape[0] < 2:
        raise ValueError("aced needs at least 2 samples, got %d" % x.shape[0])
    if not torch.isfinite(x).all():
        raise ValueError("samples contain non-finite values")
    if domains is None:
        lo, hi = x.min(dim=0).values.tolist(), x.max(dim=0).values.tolist()
        domains = list(zip(lo, hi))
    if len(domains) != k:
        raise ValueError("%d domains given for %d features" % (len(domains), k))
    for f, (lo, hi) in zip(features, domains):
        if not (float(lo) <= float(hi)):
            raise ValueError("feature %r: domain low (%g) must not be above high (%g)" % (f, lo, hi))
    if x.shape[0] > max_samples:
        g = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(x.shape[0], generator=g)[:max_samples]]

    body = {
        "name": name,
        "features": [{"name": f, "low": float(lo), "high": float(hi)}
                     for f, (lo, hi) in zip(features, domains)],
        "outputs": list(outputs),
        "network": {"type": "feedforward", "layers": layers},
        "data": {"samples": x.tolist()},
    }
    if scaler is not None:
        body["input_transform"] = input_transform(scaler, k)
    if description:
        body["description"] = description
    return body


def post_model(body, url=None, token=None, timeout=300):
    """POST the body to $ACED_URL/v1/models; return the decoded reply.

    201: new version; 200: identical content already registered; 202: the
    server is still validating (the reply then holds the job to poll).
    Error replies raise RuntimeError with aced's error code and field.  A
    reply that is not aced's (not JSON with an "error": a reverse proxy's
    HTML 413 or 502, say) raises RuntimeError saying that something other
    than aced answered, with its status and content type.
    """
    url = (url or os.environ.get("ACED_URL") or DEFAULT_URL).rstrip("/") + "/v1/models"
    token = token if token is not None else os.environ.get("ACED_TOKEN")
    data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise RuntimeError(refusal_message(e.code, e.headers.get("Content-Type", ""),
                                           e.read())) from None


def refusal_message(status, content_type, raw):
    """What to tell the user about an error reply: aced's own (JSON with an "error" object) says
    what aced refused; anything else came from something in between (a proxy's HTML 413, a load
    balancer's 502) and is reported as such, never as aced's refusal."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    err = None
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            err = json.loads(text).get("error")
        except (ValueError, AttributeError):
            err = None
    if isinstance(err, dict) and "code" in err and "message" in err:
        return "aced refused the model: %s (%s)%s: %s" % (
            err["code"], status, " at " + err["field"] if err.get("field") else "", err["message"])
    hint = ""
    if status == 413:
        hint = (" (the body is larger than a proxy in front of aced allows: raise its limit, "
                "e.g. nginx client_max_body_size, or send fewer samples)")
    snippet = " ".join(text.split())[:200]
    return ("HTTP %d from something other than aced (a reverse proxy?): the reply is %s, not "
            "aced's JSON error%s: %s" % (status, content_type or "without a Content-Type", hint,
                                          snippet))


def demo_model(seed=0):
    """A tiny Iris-like classifier with random weights and random inputs in [0, 1]."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(4, 16), nn.Tanh(),
        nn.Linear(16, 16), nn.ReLU(),
        nn.Linear(16, 3), nn.Softmax(dim=-1),
    ).double()
    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    outputs = ["setosa", "versicolor", "virginica"]
    x_train = torch.rand(500, 4, dtype=torch.float64)
    return net, features, outputs, x_train


def main(argv=None):
    ap = argparse.ArgumentParser(description="Register a demo PyTorch model with aced.")
    ap.add_argument("--name", default="iris-demo", help="model name (default: iris-demo)")
    ap.add_argument("--max-samples", type=int, default=200,
                    help="rows of training inputs sent (default: 200)")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the registration body instead of posting it")
    ap.add_argument("--url", default=None, help="aced base URL (default: $ACED_URL or %s)" % DEFAULT_URL)
    ap.add_argument("--scaler", default=None, metavar="PICKLE",
                    help="a pickled fitted scikit-learn StandardScaler/MinMaxScaler the demo "
                         "network's inputs go through (sent as input_transform; the demo's "
                         "samples are then scaled back to raw units)")
    args = ap.parse_args(argv)

    net, features, outputs, x_train = demo_model()
    domains = [(0.0, 1.0)] * len(features)
    scaler = None
    if args.scaler:
        import pickle
        with open(args.scaler, "rb") as fh:
            scaler = pickle.load(fh)  # only load pickles you made: pickle runs code
        tf = input_transform(scaler, len(features))
        shift = torch.tensor(tf["shift"], dtype=torch.float64)
        scale = torch.tensor(tf["scale"], dtype=torch.float64)
        x_train = x_train * scale + shift  # the demo's model-space inputs, in raw units
        domains = [(float(a), float(b)) for a, b in zip(x_train.min(0).values, x_train.max(0).values)]
    body = registration_body(net, args.name, features, outputs, x_train,
                             domains=domains, max_samples=args.max_samples,
                             description="register_torch.py demo: random weights", scaler=scaler)
    if args.dry_run:
        json.dump(body, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    reply = post_model(body, url=args.url)
    if "job" in reply:
        print("accepted, still validating: poll %s" % reply.get("location"))
        return 0
    print("%s version %d %s (%s)" % (reply["name"], reply["version"], reply["digest"],
                                     "new version" if reply.get("created") else "already registered"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
