#!/usr/bin/env python3
"""Recompute the reference values of tests/data/small_mlp.json with PyTorch in float64.

The fixture holds a 4-6-5-3 feedforward network, 200 data samples with their mean and covariance, and
`reference.taylor` / `reference.montecarlo`: for every (output, feature), 11 evenly spaced `alpha` over
the feature's [low, high] and E[y | do(x_i = alpha)]

  taylor      (paper Eq. 4)  f(mu_a) + 1/2 trace(H(mu_a) S_i), H the exact autograd Hessian of the
                             output w.r.t. the input, mu_a = data.mean with entry i set to alpha,
                             S_i = data.covariance with row i and column i zeroed;
  montecarlo  (paper Eq. 2)  the mean over data.samples of f(x_n with x_n[i] = alpha).

This script is independent of aced's engine (no forward-mode tangents, no eigendecomposition): it is
the check the C engine is measured against (tests/unit/test_engine_fixture.c, to 1e-10).

  tools/gen_small_mlp.py [--check] [--tol T] [PATH]

PATH defaults to tests/data/small_mlp.json beside this script.  Without --check it rewrites the
`reference` block in place (same layout: json indent 1, no trailing newline; the network, data and
alphas are left as they are).  With --check it writes nothing, prints the largest difference per
estimator, and exits 1 if any exceeds --tol (default 1e-12) or the data mean / covariance do not
match the samples.  Needs PyTorch (Debian: apt-get install python3-torch).
"""
import argparse
import json
import os
import sys

try:
    import torch
except ImportError:  # pragma: no cover
    sys.exit("gen_small_mlp.py: needs PyTorch (Debian: apt-get install python3-torch, then run it "
             "with /usr/bin/python3)")

torch.set_default_dtype(torch.float64)
N_ALPHA = 11


def activation(name):
    """The activation by its registration name, twice differentiable where aced's engine is
    (softplus without torch's linear threshold; relu'' = 0, relu'(0) = 0 as autograd has it)."""
    F = torch.nn.functional
    table = {
        "identity": lambda z: z,
        "relu": torch.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
        "elu": lambda z: F.elu(z, 1.0),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softplus": lambda z: torch.logaddexp(z, torch.zeros_like(z)),
        "gelu": lambda z: F.gelu(z),  # exact (erf) form
        "softmax": lambda z: torch.softmax(z, dim=-1),
        "log_softmax": lambda z: torch.log_softmax(z, dim=-1),
    }
    if name not in table:
        sys.exit("gen_small_mlp.py: unknown activation %r" % name)
    return table[name]


def network(fx):
    layers = [(torch.tensor(L["weights"]), torch.tensor(L["bias"]), activation(L["activation"]))
              for L in fx["network"]["layers"]]

    def f(x):  # x: (..., k) -> (..., m); weights are [out][in]
        for W, b, act in layers:
            x = act(x @ W.T + b)
        return x
    return f


def grid(low, high):
    """11 evenly spaced values, numpy.linspace style: low + j * step, the last one exactly high."""
    step = (high - low) / (N_ALPHA - 1)
    return [low + j * step for j in range(N_ALPHA - 1)] + [high]


def taylor(f, mu, S, i, o, alphas):
    Si = S.clone()
    Si[i, :] = 0.0
    Si[:, i] = 0.0
    out = []
    for a in alphas:
        x = mu.clone()
        x[i] = a
        H = torch.autograd.functional.hessian(lambda v: f(v)[o], x)
        out.append(float(f(x)[o] + 0.5 * torch.trace(H @ Si)))
    return out


def montecarlo(f, X, i, o, alphas):
    out = []
    for a in alphas:
        Xa = X.clone()
        Xa[:, i] = a
        out.append(float(f(Xa)[:, o].mean()))
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=os.path.join(here, "..", "tests", "data", "small_mlp.json"))
    ap.add_argument("--check", action="store_true", help="compare with the file, write nothing")
    ap.add_argument("--tol", type=float, default=1e-12, help="largest difference --check accepts")
    args = ap.parse_args()

    with open(args.path) as fh:
        fx = json.load(fh)
    feats = [ft["name"] for ft in fx["features"]]
    outs = list(fx["outputs"])
    f = network(fx)
    X = torch.tensor(fx["data"]["samples"])
    mu = torch.tensor(fx["data"]["mean"])
    S = torch.tensor(fx["data"]["covariance"])
    bad = False

    # The moments the taylor reference uses must be those of the samples (covariance divisor n - 1).
    dmu = float((X.mean(0) - mu).abs().max())
    dS = float((torch.cov(X.T, correction=1) - S).abs().max())
    print("data.mean vs samples: max diff %.3g; data.covariance vs samples: max diff %.3g" % (dmu, dS))
    if args.check and max(dmu, dS) > args.tol:
        bad = True

    old = fx.get("reference", {})
    new = {}
    for est in ("taylor", "montecarlo"):
        # Keep the file's order of (output, feature) pairs and its alphas; a file without a
        # reference gets every pair, output-major, on the 11-point grid.
        entries = old.get(est) or [{"output": o, "feature": ft, "alpha": grid(d["low"], d["high"])}
                                   for o in outs for ft, d in zip(feats, fx["features"])]
        worst, worst_alpha, n = 0.0, 0.0, 0
        new[est] = []
        for e in entries:
            o, i = outs.index(e["output"]), feats.index(e["feature"])
            d = fx["features"][i]
            alphas = e["alpha"]
            want_grid = grid(d["low"], d["high"])
            worst_alpha = max(worst_alpha, max(abs(a - b) for a, b in zip(alphas, want_grid)))
            if len(alphas) != N_ALPHA:
                worst_alpha = float("inf")
            vals = (taylor(f, mu, S, i, o, alphas) if est == "taylor" else montecarlo(f, X, i, o, alphas))
            if "expectation" in e:
                for v, w in zip(vals, e["expectation"]):
                    worst = max(worst, abs(v - w))
                    n += 1
            new[est].append({"output": e["output"], "feature": e["feature"], "alpha": alphas,
                             "expectation": vals})
        print("%-10s %3d values: max |recomputed - file| = %.3g; alpha grid off by %.3g"
              % (est, n, worst, worst_alpha))
        if args.check and (n == 0 or not worst <= args.tol or not worst_alpha <= args.tol):
            bad = True

    if args.check:
        print("check: %s (tolerance %g)" % ("FAILED" if bad else "ok", args.tol))
        return 1 if bad else 0
    fx["reference"] = new
    tmp = args.path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(json.dumps(fx, indent=1))
    os.replace(tmp, args.path)
    print("wrote %s" % args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
