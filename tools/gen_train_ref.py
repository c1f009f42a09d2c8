#!/usr/bin/env python3
"""Generate tests/data/train_ref.json: PyTorch float64 references for aced's trainer
(src/engine/train.c), read by tests/unit/test_engine_train.c.

For each case: a small network, data X (n x k) and targets Y, the initial weights drawn by the
engine's rule (splitmix64, written out here in Python: W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
layer by layer, W row-major then b), one Fisher-Yates permutation of the rows per epoch from the
same generator seeded with the batch seed, batches of batch_size in that order (the last one short),
and torch.optim.Adam (betas 0.9, 0.999, eps 1e-8, weight_decay) on nn.MSELoss, nn.CrossEntropyLoss
with probability targets, or nn.BCELoss, all reduction "mean".  The reference holds the initial and
the final weights; aced must reproduce both (1e-10 after the few steps here).

Needs Debian's python3-torch.  Usage:
    /usr/bin/python3 tools/gen_train_ref.py [tests/data/train_ref.json]
"""
import json
import math
import os
import sys

import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "train_ref.json")
M64 = (1 << 64) - 1


class SplitMix:
    def __init__(self, seed):
        self.s = seed & M64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53

    def permutation(self, n):
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.next() % (i + 1)
            p[i], p[j] = p[j], p[i]
        return p


def init(sizes, seed):
    g = SplitMix(seed)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(n_in)
        W = [[(2 * g.uniform() - 1) * bound for _ in range(n_in)] for _ in range(n_out)]
        b = [(2 * g.uniform() - 1) * bound for _ in range(n_out)]
        layers.append((W, b))
    return layers


ACT = {"tanh": torch.tanh, "identity": lambda z: z, "relu": torch.relu, "sigmoid": torch.sigmoid,
       "softplus": torch.nn.functional.softplus}


def run(case):
    sizes, acts = case["sizes"], case["activations"]
    layers = init(sizes, case["init_seed"])
    Ws = [torch.tensor(W, requires_grad=True) for W, _ in layers]
    bs = [torch.tensor(b, requires_grad=True) for _, b in layers]
    X, Y = torch.tensor(case["X"]), torch.tensor(case["Y"])
    params = [p for pair in zip(Ws, bs) for p in pair]
    opt = torch.optim.Adam(params, lr=case["learning_rate"], weight_decay=case["weight_decay"],
                           foreach=False)
    g = SplitMix(case["batch_seed"])
    n, bsz = X.shape[0], case["batch_size"]
    for _ in range(case["epochs"]):
        perm = g.permutation(n)
        for b0 in range(0, n, bsz):
            idx = perm[b0:b0 + bsz]
            h = X[idx]
            for l, (W, b) in enumerate(zip(Ws, bs)):
                z = h @ W.T + b
                a = acts[l]
                if a == "softmax":
                    h = torch.softmax(z, -1)
                elif a == "log_softmax":
                    h = torch.log_softmax(z, -1)
                else:
                    h = ACT[a](z)
            y = Y[idx]
            if case["loss"] == "mse":
                loss = torch.nn.functional.mse_loss(h, y)
            elif acts[-1] == "sigmoid":
                loss = torch.nn.functional.binary_cross_entropy(h, y)
            else:  # the logits z, whichever softmax the last layer applies
                loss = torch.nn.functional.cross_entropy(z, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return ([[W, b] for W, b in layers],
            [[W.detach().tolist(), b.detach().tolist()] for W, b in zip(Ws, bs)])


def data(seed, n, k, m, kind):
    g = SplitMix(seed)
    X = [[4 * g.uniform() - 2 for _ in range(k)] for _ in range(n)]
    if kind == "regression":
        Y = [[math.sin(x[0]) + 0.5 * x[1] * x[-1] + 0.1 * j for j in range(m)] for x in X]
    elif kind == "binary":
        Y = [[1.0 if x[0] + x[1] > 0.3 * j else 0.0 for j in range(m)] for x in X]
    else:
        Y = []
        for x in X:
            c = 0 if x[0] < -0.5 else 1 if x[1] < 0.5 else 2
            Y.append([1.0 if j == c else 0.0 for j in range(m)])
    return X, Y


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    cases = []
    for name, sizes, acts, loss, kind, bsz, ep, lr, wd in (
            ("mse_tanh", [4, 7, 2], ["tanh", "identity"], "mse", "regression", 16, 3, 0.01, 0.0),
            ("mse_deep_decay", [5, 6, 4, 1], ["softplus", "tanh", "identity"], "mse", "regression", 8, 2,
             0.05, 0.01),
            ("ce_softmax", [4, 8, 3], ["tanh", "softmax"], "cross_entropy", "classes", 10, 3, 0.02, 0.001),
            ("ce_logits", [3, 5, 3], ["relu", "identity"], "cross_entropy", "classes", 64, 4, 0.01, 0.0),
            ("ce_log_softmax", [3, 5, 3], ["tanh", "log_softmax"], "cross_entropy", "classes", 7, 2, 0.01,
             0.0),
            ("bce_sigmoid", [4, 6, 2], ["tanh", "sigmoid"], "cross_entropy", "binary", 12, 3, 0.02, 0.0),
            ("mse_softmax", [4, 5, 3], ["tanh", "softmax"], "mse", "classes", 16, 2, 0.03, 0.0)):
        X, Y = data(len(cases) + 7, 50, sizes[0], sizes[-1], kind)
        case = {"name": name, "sizes": sizes, "activations": acts, "loss": loss, "batch_size": bsz,
                "epochs": ep, "learning_rate": lr, "weight_decay": wd, "init_seed": 100 + len(cases),
                "batch_seed": 200 + len(cases), "X": X, "Y": Y}
        case["initial"], case["final"] = run(case)
        cases.append(case)
    json.dump({"generator": "tools/gen_train_ref.py", "torch": torch.__version__, "cases": cases},
              open(out, "w"))
    print("wrote", out, len(cases), "cases")


if __name__ == "__main__":
    main()
