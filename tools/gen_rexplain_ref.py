#!/usr/bin/env python3
"""Generate tests/data/rexplain_ref.json: references for POST .../explanations on recurrent models
(gradient, gradient_x_input, integrated_gradients, ablation), computed independently in PyTorch
float64.

The models are the registration bodies of tests/data/recurrent_ref.json (every cell type, stacked
or not, with and without feedback, output_at last and every).  Each body's weights are loaded into
a torch.nn.GRU / LSTM / RNN and torch.nn.Linear head, and:
  - without feedback, y is the teacher-forced network (torch's own cells), the gradient comes from
    torch.autograd.grad;
  - with feedback, the attribution of (t, i) is of F_t: the sequence as given up to step t, then
    each input the head's output at the step before (Algorithm 2, as the interventions run it),
    y at output_timestep; its gradient with respect to x^t by autograd through that loop.
  - integrated gradients: (x - b) * sum_j w_j dF/dx(b + t_j (x - b)), with the nodes and weights of
    each rule written out here (Gauss-Legendre from numpy's leggauss mapped to [0, 1]); the
    completeness gap sum(attr) - (f(x) - f(b)) with f teacher forced;
  - ablation: F_t(x) - F_t(x with x_i^t = b_i^t).
Flattened index j = t * input_size + i; outputs at every step y[s * O + o].

Needs Debian's python3-torch.  Usage:
    /usr/bin/python3 tools/gen_rexplain_ref.py [tests/data/rexplain_ref.json]
"""
import json
import os
import sys

import numpy
import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "tests", "data", "recurrent_ref.json")
OUT = os.path.join(HERE, "..", "tests", "data", "rexplain_ref.json")
ACTS = {"tanh": torch.tanh, "identity": lambda z: z, "sigmoid": torch.sigmoid,
        "softmax": lambda z: torch.softmax(z, dim=-1), "relu": torch.relu,
        "log_softmax": lambda z: torch.log_softmax(z, dim=-1)}
RULES = ["gauss_legendre", "riemann_left", "riemann_right", "riemann_middle", "trapezoid"]


def nodes(rule, n):
    if rule == "gauss_legendre":
        x, w = numpy.polynomial.legendre.leggauss(n)
        return [(float(a) + 1) / 2 for a in x], [float(b) / 2 for b in w]
    if rule == "trapezoid":
        return ([j / (n - 1) for j in range(n)],
                [(0.5 if j in (0, n - 1) else 1.0) / (n - 1) for j in range(n)])
    shift = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]
    return [(j + shift) / n for j in range(n)], [1.0 / n] * n


class Model:
    def __init__(self, body):
        net = body["network"]
        self.I, self.H, self.T = net["input_size"], net["hidden_size"], body["sequence_length"]
        layers = net.get("layers") or [{k: net[k] for k in
                                        ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}]
        cell = net["cell"]
        n = len(layers)
        if cell == "gru":
            self.rnn = torch.nn.GRU(self.I, self.H, n, batch_first=True)
        elif cell == "lstm":
            self.rnn = torch.nn.LSTM(self.I, self.H, n, batch_first=True)
        else:
            self.rnn = torch.nn.RNN(self.I, self.H, n, nonlinearity=cell[4:], batch_first=True)
        sd = {f"{k}_l{l}": torch.tensor(layers[l][k]) for l in range(n)
              for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        self.rnn.load_state_dict(sd)
        self.head = [(torch.tensor(h["weights"]), torch.tensor(h["bias"]), h["activation"])
                     for h in net["head"]]
        self.every = net["output_at"] == "every"
        self.feedback = net["feedback"]
        self.O = len(self.head[-1][1])
        self.X = torch.tensor(body["data"]["sequences"])

    def apply_head(self, h):
        for W, b, act in self.head:
            h = ACTS[act](h @ W.T + b)
        return h

    def forced(self, x, s_out, o):
        """x: T x I -> y at step s_out, output o (teacher forced)."""
        out, _ = self.rnn(x.unsqueeze(0))
        return self.apply_head(out[0, s_out])[o]

    def fed(self, x, t, s_out, o):
        """F_t: inputs up to t as given, then fed back from the head; y at s_out."""
        hx, cur = None, None
        for u in range(s_out + 1):
            inp = x[u] if u <= t else cur
            out, hx = self.rnn(inp.view(1, 1, -1), hx)
            cur = self.apply_head(out[0, 0])
        return cur[o]

    def func(self, t, s_out, o):
        if self.feedback:
            return lambda x: self.fed(x, t, s_out, o)
        return lambda x: self.forced(x, s_out, o)

    def grad(self, x, s_out, o):
        """T x I: dF_t / dx^t at every t (zero after s_out)."""
        g = torch.zeros(self.T, self.I)
        if not self.feedback:
            v = x.clone().requires_grad_(True)
            (gv,) = torch.autograd.grad(self.forced(v, s_out, o), v)
            g[:s_out + 1] = gv[:s_out + 1]
            return g
        for t in range(s_out + 1):
            v = x.clone().requires_grad_(True)
            (gv,) = torch.autograd.grad(self.fed(v, t, s_out, o), v)
            g[t] = gv[t]
        return g

    def ablation(self, x, b, s_out, o):
        a = torch.zeros(self.T, self.I)
        with torch.no_grad():
            for t in range(s_out + 1):
                f = self.func(t, s_out, o)
                fx = f(x)
                for i in range(self.I):
                    xa = x.clone()
                    xa[t, i] = b[t, i]
                    a[t, i] = fx - f(xa)
        return a


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    src = json.load(open(SRC))
    torch.manual_seed(20261202)
    cases = []
    for c in src["cases"]:
        body = c["model"]
        m = Model(body)
        T, I = m.T, m.I
        s_out = T - 2 if m.every else T - 1
        o = m.O - 1
        inputs = torch.cat([m.X[:2], torch.randn(1, T, I) * 0.9])
        baselines = {"mean": m.X.reshape(len(m.X), -1).mean(0).reshape(T, I),
                     "zeros": torch.zeros(T, I),
                     "domain_low": torch.full((T, I), float(body["features"][0]["low"])),
                     "given": torch.randn(T, I) * 0.5}
        grads = torch.stack([m.grad(x, s_out, o) for x in inputs])
        with torch.no_grad():
            f_end = lambda v: m.forced(v, s_out, o)
        requests = []
        steps = 6
        for bname, b in baselines.items():
            for rule in (RULES if bname == "mean" else ["gauss_legendre"]):
                ts, ws = nodes(rule, steps)
                ig, gap, abl = [], [], []
                for x in inputs:
                    acc = torch.zeros(T, I)
                    for tj, wj in zip(ts, ws):
                        acc += wj * m.grad(b + tj * (x - b), s_out, o)
                    a = (x - b) * acc
                    ig.append(a.tolist())
                    with torch.no_grad():
                        gap.append(float(a.sum() - (f_end(x) - f_end(b))))
                    abl.append(m.ablation(x, b, s_out, o).tolist())
                req = {"baseline": bname if bname != "given" else b.tolist(), "rule": rule,
                       "steps": steps, "integrated_gradients": ig, "completeness_gap": gap}
                if rule == "gauss_legendre":
                    req["ablation"] = abl
                    req["baseline_row"] = b.tolist()
                requests.append(req)
        # completeness within the quadrature error: Gauss-Legendre with 64 nodes
        ts, ws = nodes("gauss_legendre", 64)
        b = baselines["mean"]
        gap64 = []
        for x in inputs:
            acc = torch.zeros(T, I)
            for tj, wj in zip(ts, ws):
                acc += wj * m.grad(b + tj * (x - b), s_out, o)
            with torch.no_grad():
                gap64.append(float(((x - b) * acc).sum() - (f_end(x) - f_end(b))))
        cases.append({"name": body["name"], "model": body, "output": f"y{o}",
                      "output_timestep": s_out if m.every else None,
                      "inputs": inputs.tolist(), "gradient": grads.tolist(),
                      "gradient_x_input": (grads * inputs).tolist(), "requests": requests,
                      "gap_gauss_legendre_64": gap64})
    with open(out, "w") as fh:
        json.dump({"generator": "tools/gen_rexplain_ref.py", "torch": torch.__version__,
                   "source": "tests/data/recurrent_ref.json", "cases": cases}, fh)
        fh.write("\n")


if __name__ == "__main__":
    main()
