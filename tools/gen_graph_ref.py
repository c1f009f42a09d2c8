#!/usr/bin/env python3
"""Generate tests/data/scm_mlp.json: a structural causal model among three inputs, an MLP trained
on it, and reference total/direct effects computed independently in PyTorch float64, for
tests/e2e/test_graph.py (issue 14).

The SCM (linear, Gaussian noise):
    w = e_w,                      e_w ~ N(0, 1)
    z = 0.8 w + e_z,              e_z ~ N(0, 0.6^2)
    x = 1.2 w + 0.6 z + e_x,      e_x ~ N(0, 0.5^2)
    y = w + 0.5 z - 2 x + 0.3 tanh(2 w) + e_y,   e_y ~ N(0, 0.1^2)
and an MLP 3 -> 16 (tanh) -> 1 (identity) trained on 4000 draws (Adam, float64).  The direct
effect of w on the network rises with w (d y / d w > 0 with z, x held); its total effect falls
(through x: 1 + 0.5 * 0.8 - 2 * (1.2 + 0.6 * 0.8) < 0).

References, all with the registered samples (n = 1000 fresh draws) unless said otherwise:
  - direct_mc: mean over the samples of f(x with w = a): aced's montecarlo, exactly;
  - total_mc: the structural equations fitted by least squares (torch.linalg.lstsq with an
    intercept, on the samples), each sample's residuals kept, do(w = a) re-generating z then x from
    the fitted equations plus the residuals; mean of f over them: aced's montecarlo total, exactly;
  - total_taylor: f(mu') + 1/2 trace(H(mu') S') with mu', S' the mean and covariance (divisor
    n - 1) of the re-generated inputs, H by torch.autograd.functional.hessian: aced's taylor total;
  - truth: E[f | do(w = a)] from the TRUE SCM by Monte Carlo over 400,000 fresh noise draws (its
    standard error is listed), and the sampling spread of aced's estimator itself: the standard
    deviation, over 300 replicate data sets of n = 1000 from the true SCM, of total_mc computed on
    each.  The test accepts aced's total when |aced - truth| <= 4 sqrt(sd_estimator^2 + se_truth^2).

Needs Debian's python3-torch.  Usage: /usr/bin/python3 tools/gen_graph_ref.py [out.json]
"""
import json
import os
import sys

import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "data", "scm_mlp.json")
NAMES = ["w", "z", "x"]
EDGES = [["w", "z"], ["w", "x"], ["z", "x"]]
ALPHAS = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]


def draw(g, n):
    w = torch.randn(n, generator=g)
    z = 0.8 * w + 0.6 * torch.randn(n, generator=g)
    x = 1.2 * w + 0.6 * z + 0.5 * torch.randn(n, generator=g)
    return torch.stack([w, z, x], 1)


def target(X, g):
    w, z, x = X[:, 0], X[:, 1], X[:, 2]
    return w + 0.5 * z - 2 * x + 0.3 * torch.tanh(2 * w) + 0.1 * torch.randn(len(w), generator=g)


def train(g):
    X = draw(g, 4000)
    y = target(X, g)
    torch.manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(3000):
        opt.zero_grad()
        loss = ((net(X)[:, 0] - y) ** 2).mean()
        loss.backward()
        opt.step()
    return net, float(loss)


def fit_scm(S):
    """Least squares with an intercept for z ~ w and x ~ w + z; residuals per sample."""
    n = S.shape[0]
    one = torch.ones(n, 1)
    Az = torch.cat([one, S[:, :1]], 1)
    bz = torch.linalg.lstsq(Az, S[:, 1:2]).solution[:, 0]
    Ax = torch.cat([one, S[:, :2]], 1)
    bx = torch.linalg.lstsq(Ax, S[:, 2:3]).solution[:, 0]
    rz = S[:, 1] - Az @ bz
    rx = S[:, 2] - Ax @ bx
    return bz, bx, rz, rx


def regenerate(S, fit, a):
    bz, bx, rz, rx = fit
    w = torch.full((S.shape[0],), a)
    z = bz[0] + bz[1] * w + rz
    x = bx[0] + bx[1] * w + bx[2] * z + rx
    return torch.stack([w, z, x], 1)


def main():
    g = torch.Generator().manual_seed(20261201)
    net, loss = train(g)
    f = lambda X: net(X)[:, 0]
    S = draw(g, 1000)
    with torch.no_grad():
        fit = fit_scm(S)
        direct = []
        total = []
        for a in ALPHAS:
            D = S.clone()
            D[:, 0] = a
            direct.append(float(f(D).mean()))
            total.append(float(f(regenerate(S, fit, a)).mean()))
    taylor = []
    for a in ALPHAS:
        R = regenerate(S, fit, a).detach()
        mu = R.mean(0)
        C = torch.cov(R.T)  # divisor n - 1
        H = torch.autograd.functional.hessian(lambda v: net(v[None, :])[0, 0], mu)
        with torch.no_grad():
            taylor.append(float(f(mu[None, :])[0] + 0.5 * torch.trace(H @ C)))
    with torch.no_grad():
        truth, se_truth = [], []
        gt = torch.Generator().manual_seed(99)
        for a in ALPHAS:
            n = 400000
            w = torch.full((n,), a)
            z = 0.8 * w + 0.6 * torch.randn(n, generator=gt)
            x = 1.2 * w + 0.6 * z + 0.5 * torch.randn(n, generator=gt)
            v = f(torch.stack([w, z, x], 1))
            truth.append(float(v.mean()))
            se_truth.append(float(v.std() / n ** 0.5))
        reps = []
        gr = torch.Generator().manual_seed(5)
        for _ in range(300):
            Sr = draw(gr, 1000)
            fr = fit_scm(Sr)
            reps.append([float(f(regenerate(Sr, fr, a)).mean()) for a in ALPHAS])
        reps = torch.tensor(reps)
        sd_est = [float(v) for v in reps.std(0)]
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    body = {
        "description": "w -> z, w -> x, z -> x, linear Gaussian SCM; MLP trained on it "
                       "(tools/gen_graph_ref.py)",
        "features": [{"name": nm, "low": float(S[:, i].min()), "high": float(S[:, i].max())}
                     for i, nm in enumerate(NAMES)],
        "outputs": ["y"],
        "network": {"type": "feedforward", "layers": [
            {"weights": lin[0].weight.tolist(), "bias": lin[0].bias.tolist(), "activation": "tanh"},
            {"weights": lin[1].weight.tolist(), "bias": lin[1].bias.tolist(),
             "activation": "identity"}]},
        "data": {"samples": S.tolist()},
    }
    ref = {"alphas": ALPHAS, "edges": EDGES, "train_mse": loss,
           "weights": {"w->z": float(fit[0][1]), "w->x": float(fit[1][1]), "z->x": float(fit[1][2])},
           "direct_mc": direct, "total_mc": total, "total_taylor": taylor, "truth": truth,
           "se_truth": se_truth, "sd_estimator": sd_est}
    with open(OUT, "w") as fh:
        json.dump({"model": body, "reference": ref}, fh)
        fh.write("\n")
    print("train mse %.4f; direct %s; total %s; truth %s" % (
        loss, [round(v, 3) for v in direct], [round(v, 3) for v in total],
        [round(v, 3) for v in truth]))


if __name__ == "__main__":
    main()
