#!/usr/bin/env python3
"""peer_recurrent.py -- the PyTorch peer of bench/bench_recurrent.py: E[y | do(x_i^t = a)] for
(feature, timestep) pairs written "the obvious way": for every alpha, set x[:, t, i] = a in a copy
of the stored sequences and run a full forward of every sequence through torch.nn.LSTM (float64,
one thread), then the head, then the mean.

    /usr/bin/python3 bench/peer_recurrent.py MODEL.json PAIRS.json OUT.json

PAIRS.json: {"pairs": [[feature, timestep], ...], "alphas": [...]}.  OUT.json: CPU seconds
(resource.getrusage) and wall seconds of the loops alone, and the expectations, per pair."""
import json
import os
import resource
import sys
import time

# One thread everywhere, also inside the BLAS torch links (OpenBLAS on Debian, whose own threads
# torch.set_num_threads does not govern: without this the peer's CPU time exceeded its wall time),
# set before it loads, as bench/peer_torch.py does.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import torch  # noqa: E402

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)


def main():
    model = json.load(open(sys.argv[1]))
    job = json.load(open(sys.argv[2]))
    net = model["network"]
    I, H = net["input_size"], net["hidden_size"]
    lstm = torch.nn.LSTM(I, H, 1, batch_first=True)
    layer = net["layers"][0] if "layers" in net else net
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(layer["weight_ih"]))
        lstm.weight_hh_l0.copy_(torch.tensor(layer["weight_hh"]))
        lstm.bias_ih_l0.copy_(torch.tensor(layer["bias_ih"]))
        lstm.bias_hh_l0.copy_(torch.tensor(layer["bias_hh"]))
    head = net["head"][0]
    W, b = torch.tensor(head["weights"]), torch.tensor(head["bias"])
    X = torch.tensor(model["data"]["sequences"])
    alphas = job["alphas"]
    out = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.perf_counter()
    with torch.no_grad():
        for f, t in job["pairs"]:
            E = []
            for a in alphas:
                x = X.clone()
                x[:, t, f] = a
                h, _ = lstm(x)
                y = torch.sigmoid(h[:, -1, :] @ W.T + b)
                E.append(float(y[:, 0].mean()))
            out.append(E)
    w1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    json.dump({"cpu_s": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime), "wall_s": w1 - w0,
               "expectations": out, "torch": torch.__version__}, open(sys.argv[3], "w"))


if __name__ == "__main__":
    main()
