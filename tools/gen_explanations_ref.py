#!/usr/bin/env python3
"""Generate tests/data/explanations_ref.json: reference explanations computed independently in
PyTorch float64 for tests/e2e/test_explanations.py.

For the four test models (tests/data/small_mlp.json: tanh, softplus, identity;
tests/data/sharp_classifier.json: tanh, softmax; tests/data/relu_sigmoid_mlp.json (written here):
relu, sigmoid; tests/data/log_softmax_mlp.json: tanh, softplus,
log_softmax), a few input rows in each feature's domain, the
first and last outputs, and every method of POST /v1/models/{name}/explanations:
  - gradient, gradient_x_input: torch.autograd on the network written out here layer by layer;
  - integrated_gradients: (x - b) * sum_j w_j grad f(b + t_j (x - b)), nodes and weights of each
    rule from numpy (numpy.polynomial.legendre.leggauss for Gauss-Legendre, not aced's Newton
    iteration), with the completeness gap sum(attr) - (f(x) - f(b));
  - ablation: f(x) - f(x with x_i = b_i), plain forward passes;
  - connection_weights: Olden's (W_L ... W_1)[o] as a numpy matrix product, and Garson's relative
    importance by his formula for one hidden layer (the classifier) or, for deeper networks, with
    the hidden-to-output weight replaced by the absolute path product (|W_L| ... |W_2|)[o, j].
Baselines: mean (the registered data.mean), zeros, domain_low and an explicit row.

Needs Debian's python3-torch and python3-numpy.  Usage:
    /usr/bin/python3 tools/gen_explanations_ref.py [tests/data/explanations_ref.json]
"""
import json
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
ACTS = {"tanh": torch.tanh, "identity": lambda z: z, "softplus": torch.nn.functional.softplus,
        "relu": torch.relu, "sigmoid": torch.sigmoid, "softmax": lambda z: torch.softmax(z, dim=-1),
        "log_softmax": lambda z: torch.log_softmax(z, dim=-1)}


def net(model):
    layers = [(torch.tensor(l["weights"]), torch.tensor(l["bias"]), ACTS[l["activation"]])
              for l in model["network"]["layers"]]

    def f(x):
        h = x
        for W, b, act in layers:
            h = act(h @ W.T + b)
        return h
    return f


def grad(f, x, o):
    x = torch.tensor(x, requires_grad=True)
    y = f(x)[o]
    (g,) = torch.autograd.grad(y, x)
    return g.detach().numpy()


def rule(name, n):
    if name == "gauss_legendre":
        t, w = np.polynomial.legendre.leggauss(n)
        return (t + 1) / 2, w / 2
    if name == "trapezoid":
        t = np.arange(n) / (n - 1)
        w = np.full(n, 1.0 / (n - 1))
        w[0] = w[-1] = 0.5 / (n - 1)
        return t, w
    shift = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[name]
    return (np.arange(n) + shift) / n, np.full(n, 1.0 / n)


def fval(f, x, o):
    with torch.no_grad():
        return float(f(torch.tensor(x))[o])


def cases_for(name, path):
    model = json.load(open(path))
    f = net(model)
    k = len(model["features"])
    lows = np.array([ft["low"] for ft in model["features"]])
    highs = np.array([ft["high"] for ft in model["features"]])
    rng = np.random.default_rng(20261201)
    rows = [list(lows + (highs - lows) * rng.random(k)) for _ in range(3)]
    baselines = {"mean": list(model["data"]["mean"]), "zeros": [0.0] * k, "domain_low": list(lows),
                 "given": list(lows + 0.25 * (highs - lows))}
    out = []
    for o in (0, len(model["outputs"]) - 1):
        for method in ("gradient", "gradient_x_input"):
            attrs = []
            for x in rows:
                g = grad(f, x, o)
                attrs.append(list(g * np.array(x)) if method == "gradient_x_input" else list(g))
            out.append({"method": method, "output": o, "inputs": rows, "attributions": attrs})
        for bname, b in baselines.items():
            b = np.array(b)
            for rname, steps in (("gauss_legendre", 64), ("gauss_legendre", 5), ("riemann_left", 16),
                                 ("riemann_right", 16), ("riemann_middle", 16), ("trapezoid", 16)):
                if bname != "mean" and (rname, steps) != ("gauss_legendre", 64):
                    continue
                t, w = rule(rname, steps)
                attrs, gaps = [], []
                for x in rows:
                    x = np.array(x)
                    acc = np.zeros(k)
                    for tj, wj in zip(t, w):
                        acc += wj * grad(f, list(b + tj * (x - b)), o)
                    a = (x - b) * acc
                    attrs.append(list(a))
                    gaps.append(float(a.sum() - (fval(f, list(x), o) - fval(f, list(b), o))))
                out.append({"method": "integrated_gradients", "output": o, "inputs": rows,
                            "baseline": list(b) if bname == "given" else bname, "baseline_row": list(b),
                            "rule": rname, "steps": steps, "attributions": attrs, "completeness_gap": gaps})
            attrs = []
            for x in rows:
                fx = fval(f, x, o)
                a = []
                for i in range(k):
                    xa = list(x)
                    xa[i] = b[i]
                    a.append(fx - fval(f, xa, o))
                attrs.append(a)
            out.append({"method": "ablation", "output": o, "inputs": rows,
                        "baseline": list(b) if bname == "given" else bname, "baseline_row": list(b),
                        "attributions": attrs})
        Ws = [np.array(l["weights"]) for l in model["network"]["layers"]]
        olden = Ws[0]
        for W in Ws[1:]:
            olden = W @ olden
        W1 = np.abs(Ws[0])
        if len(Ws) == 2:  # Garson (1991): one hidden layer, v the hidden-to-output weights
            v = np.abs(Ws[1][o])
            q = np.array([[W1[j, i] * v[j] / W1[j].sum() for j in range(W1.shape[0])] for i in range(k)])
            garson = q.sum(axis=1) / q.sum()
        else:
            a = np.abs(Ws[-1])
            for W in reversed(Ws[1:-1]):
                a = a @ np.abs(W)
            c = (W1 / W1.sum(axis=1, keepdims=True)).T @ a[o]
            garson = c / c.sum()
        out.append({"method": "connection_weights", "output": o, "attributions": [list(olden[o])],
                    "relative_importance": list(garson)})
    return {"model": name, "file": os.path.basename(path), "cases": out}


def make_relu_sigmoid(path):
    """tests/data/relu_sigmoid_mlp.json: a 5-8-6-2 network with relu hidden layers and a sigmoid
    output (the two activations the other test models lack), seeded, with the mean and covariance
    of 500 draws as its data; written here so the model and its references come from one script."""
    rng = np.random.default_rng(1505)
    dims = [5, 8, 6, 2]
    layers = []
    for i in range(3):
        layers.append({"weights": [[float(v) for v in r] for r in rng.normal(0, 0.8, (dims[i + 1], dims[i]))],
                       "bias": [float(v) for v in rng.normal(0, 0.3, dims[i + 1])],
                       "activation": "relu" if i < 2 else "sigmoid"})
    X = rng.uniform(-1, 1, (500, 5)) @ np.diag([1.0, 0.5, 2.0, 1.5, 0.8])
    model = {"description": "relu hidden layers, sigmoid outputs (tools/gen_explanations_ref.py)",
             "features": [{"name": "r%d" % i, "low": float(-abs(X[:, i]).max()), "high": float(abs(X[:, i]).max())}
                          for i in range(5)],
             "outputs": ["s0", "s1"],
             "network": {"type": "feedforward", "layers": layers},
             "data": {"mean": [float(v) for v in X.mean(axis=0)],
                      "covariance": [[float(v) for v in r] for r in np.cov(X.T)]}}
    with open(path, "w") as fh:
        json.dump(model, fh, indent=1)
        fh.write("\n")


def main():
    dest = sys.argv[1] if len(sys.argv) > 1 else os.path.join(DATA, "explanations_ref.json")
    make_relu_sigmoid(os.path.join(DATA, "relu_sigmoid_mlp.json"))
    ref = {"generator": "tools/gen_explanations_ref.py", "torch": torch.__version__,
           "models": [cases_for("mlp", os.path.join(DATA, "small_mlp.json")),
                      cases_for("sharp", os.path.join(DATA, "sharp_classifier.json")),
                      cases_for("logsm", os.path.join(DATA, "log_softmax_mlp.json")),
                      cases_for("relusig", os.path.join(DATA, "relu_sigmoid_mlp.json"))]}
    with open(dest, "w") as fh:
        json.dump(ref, fh, indent=1)
        fh.write("\n")
    print("wrote %s: %d cases" % (dest, sum(len(m["cases"]) for m in ref["models"])))


if __name__ == "__main__":
    main()
