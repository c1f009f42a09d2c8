#!/usr/bin/env python3
"""peer_rexplain.py -- the PyTorch peer of bench/bench_rexplain.py: the explanations of an LSTM
(gradient, integrated gradients, ablation of its output at the last step) written the usual way
in PyTorch float64, one thread: autograd over a batch for the gradient, the straight-path points
of every row in one batch per row for integrated gradients (Gauss-Legendre nodes from numpy),
and for ablation one forward of a batch holding every (timestep, feature) copy of each row.

    /usr/bin/python3 bench/peer_rexplain.py MODEL.json WORK.json OUT.json

WORK.json: {"inputs": {"gradient": rows, "integrated_gradients": rows, "ablation": rows},
"steps": n, "baseline": sequence}.  OUT.json: per method the CPU seconds (resource.getrusage)
and wall seconds of the computation alone, and the attributions."""
import json
import resource
import sys
import time

import numpy
import torch

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    model = json.load(open(sys.argv[1]))
    work = json.load(open(sys.argv[2]))
    net = model["network"]
    I, H = net["input_size"], net["hidden_size"]
    lstm = torch.nn.LSTM(I, H, 1, batch_first=True)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(net["weight_ih"]))
        lstm.weight_hh_l0.copy_(torch.tensor(net["weight_hh"]))
        lstm.bias_ih_l0.copy_(torch.tensor(net["bias_ih"]))
        lstm.bias_hh_l0.copy_(torch.tensor(net["bias_hh"]))
    hd = net["head"][0]
    W, b = torch.tensor(hd["weights"]), torch.tensor(hd["bias"])

    def f(x):
        out, _ = lstm(x)
        return torch.sigmoid(out[:, -1, :] @ W.T + b)[:, 0]

    def grad(x):
        x = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(x).sum(), x)
        return g

    res = {"torch": torch.__version__}
    X = torch.tensor(work["inputs"]["gradient"])
    c0, w0 = cpu(), time.perf_counter()
    g = grad(X)
    res["gradient"] = {"cpu_s": cpu() - c0, "wall_s": time.perf_counter() - w0, "attributions": g.tolist()}

    X = torch.tensor(work["inputs"]["integrated_gradients"])
    base = torch.tensor(work["baseline"])
    n = work["steps"]
    t, w = numpy.polynomial.legendre.leggauss(n)
    t = torch.tensor((t + 1) / 2)
    w = torch.tensor(w / 2)
    c0, w0 = cpu(), time.perf_counter()
    out = []
    for x in X:
        P = base + t.view(-1, 1, 1) * (x - base)
        out.append((x - base) * (w.view(-1, 1, 1) * grad(P)).sum(0))
    res["integrated_gradients"] = {"cpu_s": cpu() - c0, "wall_s": time.perf_counter() - w0,
                                   "attributions": torch.stack(out).tolist()}

    X = torch.tensor(work["inputs"]["ablation"])
    T = X.shape[1]
    c0, w0 = cpu(), time.perf_counter()
    out = []
    with torch.no_grad():
        for x in X:
            C = x.repeat(T * I, 1, 1)
            for j in range(T * I):
                C[j, j // I, j % I] = base[j // I, j % I]
            out.append((f(x.unsqueeze(0)) - f(C)).view(T, I))
    res["ablation"] = {"cpu_s": cpu() - c0, "wall_s": time.perf_counter() - w0,
                       "attributions": torch.stack(out).tolist()}
    json.dump(res, open(sys.argv[3], "w"))


if __name__ == "__main__":
    main()
