#!/usr/bin/env python3
"""Generate tests/data/unscented_ref.json: the unscented transform of E[y | do(x_i = a)] computed
independently in PyTorch float64 for tests/e2e/test_unscented.py.

For each test model (tests/data/small_mlp.json, sharp_classifier.json, log_softmax_mlp.json), every
feature i and five values a across its domain:
  - the factor: torch.linalg.eigh of the registered data.covariance (made exactly symmetric as aced
    does), L = V sqrt(lambda) over the eigenvalues above 1e-12 of the largest, r columns;
  - the interventional factor L_i: L with row i zeroed; the mean mu_a: data.mean with entry i = a;
  - kappa = max(0, 3 - r); sigma points mu_a and mu_a +- sqrt(r + kappa) L_i[:, q] in INPUT space
    (aced moves the first pre-activation instead), weights kappa / (r + kappa) and
    1 / (2 (r + kappa));
  - E = the weighted sum of the network's outputs at the sigma points, every output.
The eigenvectors' signs do not matter (the points come in +- pairs); the fixtures' eigenvalues are
distinct, so the factor is determined.

Needs Debian's python3-torch.  Usage:
    /usr/bin/python3 tools/gen_unscented_ref.py [tests/data/unscented_ref.json]
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_explanations_ref import DATA, net  # noqa: E402  (the same network, written out in torch)


def factor(cov):
    S = torch.tensor(cov)
    S = (S + S.T) / 2
    lam, V = torch.linalg.eigh(S)
    keep = lam > 1e-12 * lam.max()
    return V[:, keep] * torch.sqrt(lam[keep])


def unscented(f, mean, L, i, a):
    Li = L.clone()
    Li[i, :] = 0
    r = Li.shape[1]
    kappa = max(0.0, 3.0 - r)
    c = (r + kappa) ** 0.5
    mu = torch.tensor(mean)
    mu[i] = a
    pts = torch.cat([mu[None, :], mu[None, :] + c * Li.T, mu[None, :] - c * Li.T])
    w = torch.full((2 * r + 1,), 0.5 / (r + kappa))
    w[0] = kappa / (r + kappa)
    return (w[:, None] * f(pts)).sum(0)


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(DATA, "unscented_ref.json")
    models = []
    for name, fixture in (("mlp", "small_mlp.json"), ("sharp", "sharp_classifier.json"),
                          ("logsm", "log_softmax_mlp.json")):
        m = json.load(open(os.path.join(DATA, fixture)))
        f = net(m)
        L = factor(m["data"]["covariance"])
        cases = []
        for i, ft in enumerate(m["features"]):
            vals = [ft["low"] + (ft["high"] - ft["low"]) * t for t in (0.0, 0.2, 0.5, 0.8, 1.0)]
            E = [unscented(f, m["data"]["mean"], L, i, a).tolist() for a in vals]
            cases.append({"feature": i, "values": vals, "expectations": E})
        models.append({"model": name, "fixture": fixture, "rank": L.shape[1], "cases": cases})
    json.dump({"generator": "tools/gen_unscented_ref.py", "models": models}, open(out_path, "w"),
              indent=1)
    print("wrote", out_path)


if __name__ == "__main__":
    main()
