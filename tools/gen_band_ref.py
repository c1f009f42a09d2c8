#!/usr/bin/env python3
"""Generate tests/data/band_ref.json for tests/e2e/test_band.py: a known input distribution, a small
smooth network, the true interventional expectations E[y | do(x_i = a)] on each feature's curve
points, and R independent sets of samples drawn from that distribution.

- inputs x in R^3, Gaussian with mean MU and covariance S (below);
- network 3-6-1: tanh hidden layer, sigmoid output (smooth, bounded);
- truth: do(x_i = a) leaves the other two inputs N(MU_-i, S_-i,-i) (inputs do not cause each
  other), so E[y | do(x_i = a)] is a 2-D Gaussian integral, computed by tensor Gauss-Hermite
  quadrature (numpy.polynomial.hermite_e.hermegauss, 80 x 80 nodes, through the Cholesky factor):
  exact to rounding for this smooth integrand (checked against 120 x 120 nodes);
- the points: the 101 curve points aced reports ([low, high] evenly spaced) of each feature;
- R = 24 sets of N = 200 samples each (numpy default_rng seeds 1000 + r).

Needs python3-numpy (Debian's /usr/bin/python3).  Usage:
    /usr/bin/python3 tools/gen_band_ref.py [tests/data/band_ref.json]
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "band_ref.json")
MU = np.array([0.2, -0.1, 0.4])
A = np.array([[0.8, 0.0, 0.0], [0.3, 0.6, 0.0], [-0.2, 0.25, 0.7]])
S = A @ A.T
LOW, HIGH = -2.0, 2.0
R, N, CURVE = 24, 200, 101

rng = np.random.default_rng(15)
W1 = rng.uniform(-1.2, 1.2, (6, 3))
b1 = rng.uniform(-0.5, 0.5, 6)
W2 = rng.uniform(-1.5, 1.5, (1, 6))
b2 = rng.uniform(-0.3, 0.3, 1)


def f(X):
    h = np.tanh(X @ W1.T + b1)
    return 1.0 / (1.0 + np.exp(-(h @ W2.T + b2)))


def truth(i, a, nodes):
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / np.sqrt(2 * np.pi)
    rest = [j for j in range(3) if j != i]
    Lc = np.linalg.cholesky(S[np.ix_(rest, rest)])
    Z = np.stack(np.meshgrid(z, z, indexing="ij"), -1).reshape(-1, 2)
    Wt = np.outer(w, w).reshape(-1)
    X = np.empty((Z.shape[0], 3))
    X[:, rest] = MU[rest] + Z @ Lc.T
    X[:, i] = a
    return float(Wt @ f(X)[:, 0])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    xs = [LOW + (HIGH - LOW) * c / (CURVE - 1) for c in range(CURVE)]
    tr, worst = [], 0.0
    for i in range(3):
        row = [truth(i, a, 80) for a in xs]
        worst = max(worst, max(abs(u - truth(i, a, 120)) for u, a in zip(row, xs)))
        tr.append(row)
    assert worst < 1e-12, worst
    sets = [np.round(np.random.default_rng(1000 + r).multivariate_normal(MU, S, N), 8).tolist()
            for r in range(R)]
    model = {"features": [{"name": "x%d" % i, "low": LOW, "high": HIGH} for i in range(3)],
             "outputs": ["p"],
             "network": {"type": "feedforward", "layers": [
                 {"weights": W1.tolist(), "bias": b1.tolist(), "activation": "tanh"},
                 {"weights": W2.tolist(), "bias": b2.tolist(), "activation": "sigmoid"}]}}
    json.dump({"generator": "tools/gen_band_ref.py", "model": model, "mean": MU.tolist(),
               "covariance": S.tolist(), "curve_x": xs, "truth": tr, "sample_sets": sets,
               "quadrature_check": worst}, open(out, "w"))
    print("wrote", out, "quadrature check", worst)


if __name__ == "__main__":
    main()
