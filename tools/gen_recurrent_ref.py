#!/usr/bin/env python3
"""Generate tests/data/recurrent_ref.json: recurrent models (one registration body each, in the
JSON contract of issue #12) with reference numbers computed independently in PyTorch float64.

For each case a torch.nn.GRU / LSTM / RNN (tanh, relu) with random weights is built, its
state_dict() written out one to one as "weight_ih", "weight_hh", "bias_ih", "bias_hh" (or
"layers" when stacked), a head of torch.nn.Linear layers, and n random training sequences.
The references:
  - forward: the outputs of every sequence, teacher forced (torch's own cell implementation);
  - montecarlo: E[y | do(x_i^t = a)] and its standard error (sd with ddof 1 / sqrt(n)), by a
    full forward of every sequence per alpha ("the obvious way").  With feedback the sequence is
    re-simulated step by step from t as written in Algorithm 2 (inputs before t from the data,
    x^t with x_i^t = a, x^(u+1) = head(h^u));
  - taylor: Eq. 4, f(mu) + 1/2 trace(H S), with H from torch.autograd.functional.hessian of
    the teacher-forced unrolled network at mu.  Without feedback mu is the data mean with
    mu_j = a and S the data covariance (ddof 1) with row and column j zeroed; with feedback mu
    and S are the mean and covariance of the re-simulated sequences (mu_j = a).
  - lag (Proposition 3): for each sequence g_k = max |d y^(T-1) / d x^(T-1-k)| over outputs and
    features from torch.autograd.functional.jacobian, tau_x the largest k with g_k above 1e-6 of
    the sequence's largest g; per_timestep the mean of g_k, tau the mean of tau_x.
Flattened index j = t * input_size + i; outputs at every step are y[s * O + o].

It also writes tests/data/recurrent_synthetic.json: the paper's synthetic task (App. A.6.1, length
10 here): x^0..x^2 ~ N(+1, 0.2) for class 1 or N(-1, 0.2) for class 0, the rest N(0, 0.2); a GRU
(input 1, hidden 4, sigmoid head) trained on it with Adam in float64, registered with 200 of its
sequences.  tests/e2e/test_recurrent.py checks that the effects are large at steps 0..2 and near
zero after.

Needs Debian's python3-torch.  Usage:
    /usr/bin/python3 tools/gen_recurrent_ref.py [tests/data/recurrent_ref.json]
"""
import json
import os
import sys

import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "recurrent_ref.json")
ACTS = {"tanh": torch.tanh, "identity": lambda z: z, "sigmoid": torch.sigmoid,
        "softmax": lambda z: torch.softmax(z, dim=-1), "relu": torch.relu,
        "log_softmax": lambda z: torch.log_softmax(z, dim=-1)}

CASES = [
    # name, cell, input_size, hidden, layers, T, head [(out, act)], output_at, feedback, n
    ("gru_last", "gru", 2, 3, 1, 5, [(2, "tanh"), (1, "sigmoid")], "last", False, 12),
    ("lstm_every_stacked", "lstm", 2, 3, 2, 4, [(3, "softmax")], "every", False, 11),
    ("rnn_tanh_feedback", "rnn_tanh", 2, 4, 1, 5, [(2, "identity")], "last", True, 10),
    ("rnn_relu_every_feedback", "rnn_relu", 1, 3, 2, 6, [(1, "identity")], "every", True, 9),
    ("gru_feedback_stacked", "gru", 2, 3, 2, 4, [(2, "tanh")], "every", True, 10),
    ("lstm_feedback", "lstm", 1, 2, 1, 5, [(3, "tanh"), (1, "identity")], "last", True, 12),
    ("rnn_tanh_log_softmax", "rnn_tanh", 3, 2, 1, 3, [(2, "log_softmax")], "last", False, 14),
]


def module(cell, i, h, layers):
    if cell == "gru":
        return torch.nn.GRU(i, h, layers, batch_first=True)
    if cell == "lstm":
        return torch.nn.LSTM(i, h, layers, batch_first=True)
    return torch.nn.RNN(i, h, layers, nonlinearity=cell[4:], batch_first=True)


def tolist(t):
    return t.detach().tolist()


class Net:
    def __init__(self, cell, I, H, layers, T, head, every):
        self.rnn = module(cell, I, H, layers)
        self.head = []
        n_in = H
        for out, act in head:
            lin = torch.nn.Linear(n_in, out)
            self.head.append((lin, act))
            n_in = out
        self.I, self.T, self.every = I, T, every
        self.O = n_in

    def apply_head(self, h):
        for lin, act in self.head:
            h = ACTS[act](lin(h))
        return h

    def forced(self, x):
        """x: n x T x I -> n x n_out (teacher forced)."""
        out, _ = self.rnn(x)
        y = self.apply_head(out)  # n x T x O
        return y.reshape(x.shape[0], -1) if self.every else y[:, -1, :]

    def simulate(self, x, t, i, a, feedback):
        """Algorithm 2 for every sequence: returns (outputs n x n_out, inputs n x T x I)."""
        n = x.shape[0]
        x = x.clone()
        x[:, t, i] = a
        hx = None
        ys = []
        cur = x[:, 0:1, :]
        for u in range(self.T):
            if u <= t or not feedback:
                cur = x[:, u:u + 1, :]
            else:
                x[:, u, :] = cur[:, 0, :]
            out, hx = self.rnn(cur, hx)
            y = self.apply_head(out)  # n x 1 x O
            ys.append(y[:, 0, :])
            cur = y
        Y = torch.stack(ys, 1)
        return (Y.reshape(n, -1) if self.every else Y[:, -1, :]), x

    def body(self, name, cell, layers, head, every, feedback, X):
        sd = self.rnn.state_dict()
        net = {"type": "recurrent", "cell": cell, "input_size": self.I,
               "hidden_size": self.rnn.hidden_size}
        per = [{k: tolist(sd[f"{k}_l{l}"]) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
               for l in range(layers)]
        if layers == 1:
            net.update(per[0])
        else:
            net["layers"] = per
        net["head"] = [{"weights": tolist(lin.weight), "bias": tolist(lin.bias), "activation": act}
                       for lin, act in self.head]
        net["output_at"] = "every" if every else "last"
        net["feedback"] = feedback
        return {"name": name, "features": [{"name": f"x{i}", "low": -2, "high": 2}
                                            for i in range(self.I)],
                "outputs": [f"y{o}" for o in range(self.O)], "sequence_length": self.T,
                "network": net, "data": {"sequences": tolist(X)}}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    torch.manual_seed(20261201)
    cases = []
    for name, cell, I, H, layers, T, head, output_at, feedback, n in CASES:
        every = output_at == "every"
        net = Net(cell, I, H, layers, T, head, every)
        with torch.no_grad():
            # larger weights than the default init so that the second-order term matters
            for p in net.rnn.parameters():
                p.mul_(2.0)
        X = torch.randn(n, T, I) * 0.8
        K = T * I
        with torch.no_grad():
            fwd = net.forced(X)
        queries = []
        for (t, i) in [(T - 2, I - 1), (1, 0)]:
            j = t * I + i
            alphas = [-1.5, 0.25, 1.75]
            mc, se, tay = [], [], []
            for a in alphas:
                with torch.no_grad():
                    Y, Xs = net.simulate(X, t, i, a, feedback)
                mc.append(tolist(Y.mean(0)))
                se.append(tolist(Y.std(0, unbiased=True) / n ** 0.5))
                if feedback:
                    F = Xs.reshape(n, K)
                    mu = F.mean(0)
                    C = torch.cov(F.T, correction=1)
                else:
                    F = X.reshape(n, K)
                    mu = F.mean(0)
                    C = torch.cov(F.T, correction=1)
                    C[j, :] = 0.0
                    C[:, j] = 0.0
                mu = mu.clone()
                mu[j] = a

                def f(v):
                    return net.forced(v.reshape(1, T, I))[0]
                y0 = f(mu).detach()
                row = []
                for o in range(y0.shape[0]):
                    Hm = torch.autograd.functional.hessian(lambda v: f(v)[o], mu)
                    row.append(float(y0[o] + 0.5 * (Hm * C).sum()))
                tay.append(row)
            queries.append({"feature": i, "timestep": t, "alphas": alphas, "montecarlo": mc,
                            "stderr": se, "taylor": tay})
        per, tau = torch.zeros(T), 0.0
        for s in range(n):
            def last(v):
                y = net.forced(v.reshape(1, T, I))[0]
                return y[-net.O:]
            J = torch.autograd.functional.jacobian(last, X[s].reshape(K)).reshape(net.O, T, I)
            g = torch.stack([J[:, T - 1 - k, :].abs().max() for k in range(T)])
            per += g / n
            tau += max(k for k in range(T) if g[k] > 1e-6 * g.max()) / n
        cases.append({"model": net.body(name, cell, layers, head, every, feedback, X),
                      "forward": tolist(fwd), "queries": queries,
                      "lag": {"per_timestep": tolist(per), "tau": tau}})
    with open(out, "w") as fh:
        json.dump({"generator": "tools/gen_recurrent_ref.py", "torch": torch.__version__,
                   "cases": cases}, fh, indent=None)
        fh.write("\n")


def synthetic(out):
    """App. A.6.1 with a fixed length T = 10 (the registration has one sequence_length)."""
    torch.manual_seed(7)
    T, n = 10, 2000
    cls = (torch.rand(n) < 0.5).double()
    sd = 0.2 ** 0.5  # N(mu, 0.2): variance 0.2
    X = torch.randn(n, T, 1) * sd
    X[:, :3, 0] += (2 * cls - 1).unsqueeze(1)
    net = Net("gru", 1, 4, 1, T, [(1, "sigmoid")], False)
    params = list(net.rnn.parameters()) + [p for lin, _ in net.head for p in lin.parameters()]
    opt = torch.optim.Adam(params, lr=0.03)
    for it in range(400):
        opt.zero_grad()
        y = net.forced(X)[:, 0]
        loss = torch.nn.functional.binary_cross_entropy(y, cls)
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = float(((net.forced(X)[:, 0] > 0.5).double() == cls).double().mean())
    body = net.body("synthetic", "gru", 1, [(1, "sigmoid")], False, False, X[:200])
    body["features"] = [{"name": "x", "low": -2, "high": 2}]
    body["outputs"] = ["p_class1"]
    with open(out, "w") as fh:
        json.dump({"generator": "tools/gen_recurrent_ref.py", "accuracy": acc, "model": body}, fh)
        fh.write("\n")
    print("synthetic task: training accuracy %.4f" % acc)


if __name__ == "__main__":
    main()
    synthetic(os.path.join(os.path.dirname(sys.argv[1] if len(sys.argv) > 1 else OUT),
                           "recurrent_synthetic.json"))
