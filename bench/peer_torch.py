#!/usr/bin/python3
"""peer_torch.py -- the PyTorch peers of aced's taylor estimator, on bench_engine's workload.

Reads the network and covariance that `bench_engine --dump FILE` wrote and runs, in float64 on one
thread (torch.set_num_threads(1)):

  * the paper's Appendix A.5 scheme: eigendecomposition of the interventional covariance S_i (once per
    feature, shared by every alpha), v_r = sqrt(lambda_r) e_r, then one batched forward pass over
    mu_a, mu_a + eps v_r, mu_a - eps v_r (eps = 1e-6 as in the paper) and
    E = f(mu_a) + 1/2 sum_r (f(mu_a + eps v_r) + f(mu_a - eps v_r) - 2 f(mu_a)) / eps^2;
  * Eq. 4 with the exact Hessian: torch.autograd.functional.hessian of one output at mu_a, then
    E = f(mu_a) + 1/2 trace(H S_i), for each of the outputs.

Prints human lines and writes --json FILE: time per (feature, alpha) for all outputs, and the values
of both at bench_engine's check pairs, so bench/run can report agreement with aced's taylor.

Usage: /usr/bin/python3 bench/peer_torch.py DUMP --json OUT [--a5-features N] [--a5-alphas N]
       [--exact-pairs N]
Run it with Debian's python3-torch (/usr/bin/python3).  Benchmark code: not part of the daemon.
"""

import argparse
import json
import os
import struct
import sys
import time

# One thread everywhere, also inside the BLAS torch links (OpenBLAS on Debian), set before it loads.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def load_dump(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"ACEDBNC1":
        sys.exit("peer_torch: %s is not a bench_engine dump" % path)
    (hl,) = struct.unpack("<I", raw[8:12])
    head = json.loads(raw[12:12 + hl].decode())
    off = 12 + hl
    arr = np.frombuffer(raw, dtype="<f8", offset=off)
    pos = 0
    dims = head["dims"]
    layers = []
    for l in range(len(dims) - 1):
        n_in, n_out = dims[l], dims[l + 1]
        W = arr[pos:pos + n_out * n_in].reshape(n_out, n_in)
        pos += n_out * n_in
        b = arr[pos:pos + n_out]
        pos += n_out
        layers.append((torch.tensor(W.copy()), torch.tensor(b.copy()), head["activations"][l]))
    k = dims[0]
    mean = torch.tensor(arr[pos:pos + k].copy())
    pos += k
    cov = torch.tensor(arr[pos:pos + k * k].reshape(k, k).copy())
    pos += k * k
    if pos != arr.size:
        sys.exit("peer_torch: dump has %d trailing values" % (arr.size - pos))
    return head, layers, mean, cov


ACTS = {
    "identity": lambda z: z,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softplus": torch.nn.functional.softplus,
    "elu": torch.nn.functional.elu,
    "gelu": torch.nn.functional.gelu,
    "leaky_relu": torch.nn.functional.leaky_relu,
    "softmax": lambda z: torch.softmax(z, dim=-1),
}


def make_forward(layers):
    def f(x):  # x: B x k -> B x n_out
        h = x
        for W, b, act in layers:
            h = ACTS[act](h @ W.T + b)
        return h
    return f


def interventional(mean, cov, i, a):
    mu = mean.clone()
    mu[i] = a
    S = cov.clone()
    S[i, :] = 0
    S[:, i] = 0
    return mu, S


def a5_factor(S):
    """The paper's V: v_r = sqrt(lambda_r) e_r as columns (negative round-off eigenvalues clamped)."""
    lam, e = torch.linalg.eigh(S)
    return e * torch.sqrt(torch.clamp(lam, min=0.0))


def a5_values(f, mu, V, eps):
    """Appendix A.5: one batched forward pass over mu, mu + eps v_r, mu - eps v_r."""
    Vt = V.T
    X = torch.cat([mu[None, :], mu[None, :] + eps * Vt, mu[None, :] - eps * Vt], dim=0)
    Y = f(X)
    r = Vt.shape[0]
    f0 = Y[0]
    d2 = (Y[1:1 + r] + Y[1 + r:] - 2 * f0).sum(dim=0) / (eps * eps)
    return f0 + 0.5 * d2


def a5_fast_prepare(layers, V, eps):
    """The fastest obvious A.5 in PyTorch: the first layer is linear in the input, so W1 (eps V) is
    computed once per feature (charged to its grid like the eigendecomposition) and each alpha needs
    only W1 mu_a + b and the layers after the first for the 2r + 1 rows."""
    W1 = layers[0][0]
    return eps * (V.T @ W1.T)  # r x n1


def a5_fast_values(layers, mu, D, eps):
    W1, b1, act1 = layers[0]
    z0 = W1 @ mu + b1
    Z = torch.cat([z0[None, :], z0[None, :] + D, z0[None, :] - D], dim=0)
    h = ACTS[act1](Z)
    for W, b, act in layers[1:]:
        h = ACTS[act](h @ W.T + b)
    r = D.shape[0]
    f0 = h[0]
    d2 = (h[1:1 + r] + h[1 + r:] - 2 * f0).sum(dim=0) / (eps * eps)
    return f0 + 0.5 * d2


def exact_values(f, mu, S, n_out, vectorize):
    """Eq. 4 with the exact Hessian of each output (autograd), trace with S_i."""
    f0 = f(mu[None, :])[0].detach()
    out = torch.empty(n_out, dtype=torch.float64)
    sec = torch.empty(n_out, dtype=torch.float64)
    for o in range(n_out):
        H = torch.autograd.functional.hessian(lambda x: f(x[None, :])[0, o], mu, vectorize=vectorize)
        sec[o] = 0.5 * (H * S).sum()
        out[o] = f0[o] + sec[o]
    return out, sec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--json")
    ap.add_argument("--a5-features", type=int, default=3, help="features timed for A.5")
    ap.add_argument("--a5-alphas", type=int, default=10, help="alphas per feature timed for A.5")
    ap.add_argument("--exact-pairs", type=int, default=9, help="check pairs run with the exact Hessian")
    ap.add_argument("--no-vectorize", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    head, layers, mean, cov = load_dump(args.dump)
    f = make_forward(layers)
    dims = head["dims"]
    n_out = dims[-1]
    eps = head["epsilon"]
    n_alpha = head["n_alpha"]
    res = {"torch_version": torch.__version__, "threads": torch.get_num_threads(), "dims": dims,
           "epsilon": eps, "vectorize": not args.no_vectorize,
           "build": [w.strip() for w in torch.__config__.show().replace("\n", ",").split(",")
                     if w.strip().startswith(("BLAS_INFO", "LAPACK_INFO"))]}

    # ---- A.5 timing: eigh once per feature, then one batched pass per alpha ----
    feats = head["time_features"]
    nf = min(args.a5_features, len(feats))
    tf = [feats[int((i + 0.5) * len(feats) / nf)] for i in range(nf)]
    grid = np.linspace(0.0, 1.0, n_alpha)
    al = [float(grid[int((j + 0.5) * n_alpha / args.a5_alphas)]) for j in range(args.a5_alphas)]
    t_eigh = t_fwd = c_eigh = c_fwd = 0.0
    with torch.no_grad():
        _, S = interventional(mean, cov, tf[0], 0.5)  # warm-up
        a5_values(f, mean, a5_factor(S), eps)
        for i in tf:
            t0, c0 = time.perf_counter(), time.process_time()
            _, S = interventional(mean, cov, i, 0.0)
            V = a5_factor(S)
            t_eigh += time.perf_counter() - t0
            c_eigh += time.process_time() - c0
            for a in al:
                t0, c0 = time.perf_counter(), time.process_time()
                mu, _ = interventional(mean, cov, i, a)
                a5_values(f, mu, V, eps)
                t_fwd += time.perf_counter() - t0
                c_fwd += time.process_time() - c0
    # ---- the same with the first layer's directions computed once per feature ----
    tq_prep = tq_fwd = cq_prep = cq_fwd = 0.0
    fast_gap = 0.0
    with torch.no_grad():
        for i in tf:
            t0, c0 = time.perf_counter(), time.process_time()
            _, S = interventional(mean, cov, i, 0.0)
            D = a5_fast_prepare(layers, a5_factor(S), eps)
            tq_prep += time.perf_counter() - t0
            cq_prep += time.process_time() - c0
            for a in al:
                t0, c0 = time.perf_counter(), time.process_time()
                mu, _ = interventional(mean, cov, i, a)
                v = a5_fast_values(layers, mu, D, eps)
                tq_fwd += time.perf_counter() - t0
                cq_fwd += time.process_time() - c0
        # the two are the same scheme; at eps = 1e-6 both lose about as much as the second-order term
        # to cancellation (differently), so they are compared at eps = 1e-4, where neither does
        mu, S = interventional(mean, cov, tf[0], al[0])
        V = a5_factor(S)
        fast_gap = float((a5_values(f, mu, V, 1e-4) - a5_fast_values(layers, mu, a5_fast_prepare(layers, V, 1e-4), 1e-4))
                         .abs().max())
    res["a5_fast"] = {"features": nf, "alphas": len(al),
                      "prepare_seconds_per_feature": tq_prep / nf,
                      "forward_seconds_per_alpha": tq_fwd / (nf * len(al)),
                      "seconds_per_eval": tq_fwd / (nf * len(al)) + tq_prep / nf / n_alpha,
                      "cpu_seconds_per_eval": cq_fwd / (nf * len(al)) + cq_prep / nf / n_alpha,
                      "max_abs_diff_vs_a5": fast_gap}
    eigh_per_feature = t_eigh / nf
    fwd_per_alpha = t_fwd / (nf * len(al))
    res["a5"] = {"features": nf, "alphas": len(al), "eigh_seconds_per_feature": eigh_per_feature,
                 "forward_seconds_per_alpha": fwd_per_alpha,
                 # the eigendecomposition shared by the n_alpha values of a regressor grid
                 "seconds_per_eval": fwd_per_alpha + eigh_per_feature / n_alpha,
                 "cpu_seconds_per_eval": (c_fwd / (nf * len(al)) + c_eigh / nf / n_alpha),
                 "amortized_over_alphas": n_alpha}
    print("A.5: %.2f ms per (feature, alpha), all %d outputs (forward %.2f ms + eigh %.1f ms / %d alphas)"
          % (1e3 * res["a5"]["seconds_per_eval"], n_out, 1e3 * fwd_per_alpha, 1e3 * eigh_per_feature, n_alpha))
    print("A.5, first layer once per feature: %.2f ms per (feature, alpha) (rest of the network %.2f ms + "
          "eigh and W1 V %.1f ms / %d alphas); values agree with the plain script to %.2g at eps 1e-4"
          % (1e3 * res["a5_fast"]["seconds_per_eval"], 1e3 * res["a5_fast"]["forward_seconds_per_alpha"],
             1e3 * res["a5_fast"]["prepare_seconds_per_feature"], n_alpha, fast_gap))
    sys.stdout.flush()

    # ---- values at the check pairs: A.5 and the exact Hessian ----
    vec = not args.no_vectorize
    pairs = [(i, a) for i in head["check_features"] for a in head["check_alphas"]]
    checks = []
    t_exact = c_exact = 0.0
    n_exact = 0
    for idx, (i, a) in enumerate(pairs):
        mu, S = interventional(mean, cov, i, a)
        with torch.no_grad():
            V = a5_factor(S)
            ea5 = a5_values(f, mu, V, eps)
            ea5_4 = a5_values(f, mu, V, 1e-4)
        row = {"feature": i, "alpha": a, "a5": ea5.tolist(), "a5_eps_1e-4": ea5_4.tolist()}
        if idx < args.exact_pairs:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                ex, sec = exact_values(f, mu, S, n_out, vec)
            except RuntimeError as e:  # vectorized hessian unsupported: fall back once
                if not vec:
                    raise
                print("peer_torch: vectorized hessian failed (%s); looping" % e)
                vec = False
                res["vectorize"] = False
                t0, c0 = time.perf_counter(), time.process_time()
                ex, sec = exact_values(f, mu, S, n_out, vec)
            t_exact += time.perf_counter() - t0
            c_exact += time.process_time() - c0
            n_exact += 1
            row["exact"] = ex.tolist()
            row["exact_second"] = sec.tolist()
        checks.append(row)
    res["check"] = checks
    if n_exact:
        res["exact"] = {"pairs": n_exact, "seconds_per_eval": t_exact / n_exact,
                        "cpu_seconds_per_eval": c_exact / n_exact,
                        "seconds_per_hessian": t_exact / (n_exact * n_out)}
        print("exact Hessian: %.1f ms per (feature, alpha), all %d outputs (%.1f ms per Hessian, vectorize=%s)"
              % (1e3 * t_exact / n_exact, n_out, 1e3 * t_exact / (n_exact * n_out), res["vectorize"]))
    # ---- integrated gradients: the rows bench_engine timed, baseline zeros, output 0 ----
    if head.get("ig_rows"):
        rows, steps = head["ig_rows"], head["ig_steps"]
        k = dims[0]
        r = torch.arange(rows, dtype=torch.float64)[:, None]
        p = torch.arange(k, dtype=torch.float64)[None, :]
        X = mean[None, :] + 0.5 * torch.sqrt(torch.diagonal(cov))[None, :] * torch.sin(0.37 * r + 0.11 * p)
        t, w = np.polynomial.legendre.leggauss(steps)
        t = torch.tensor((t + 1) / 2)
        w = torch.tensor(w / 2)

        def ig(Xb):  # the plain computation: autograd at every point of every path
            P = (t[None, :, None] * Xb[:, None, :]).reshape(-1, k).requires_grad_(True)
            f(P)[:, 0].sum().backward()
            G = P.grad.reshape(Xb.shape[0], steps, k)
            return Xb * (w[None, :, None] * G).sum(dim=1)
        ig(X[:4])  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        A = torch.cat([ig(X[i:i + 16]) for i in range(0, rows, 16)])
        res["integrated_gradients"] = {"rows": rows, "steps": steps, "seconds": time.perf_counter() - t0,
                                       "cpu_seconds": time.process_time() - c0,
                                       "first_rows": A[:2].tolist()}
        print("integrated gradients: %d rows x %d steps in %.3f s" % (rows, steps, res["integrated_gradients"]["seconds"]))
    if args.json:
        with open(args.json, "w") as fp:
            json.dump(res, fp, indent=1)


if __name__ == "__main__":
    main()
