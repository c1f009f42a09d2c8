#!/usr/bin/env python3
"""register_gru.py -- register a recurrent PyTorch model (torch.nn.GRU, LSTM or RNN with a
feedforward head) with aced, from a training script.

Copy this file (and register_torch.py, whose head conversion and posting it uses) into a training
pipeline.  It needs the standard library and torch only.

    from register_gru import recurrent_body
    from register_torch import post_model
    body = recurrent_body(rnn, head, name="seq", features=["x"], outputs=["p_class1"],
                          sequences=x_train,         # N x T x input_size tensor (batch_first)
                          domains=[(-2, 2)],         # default: min/max of the sequences
                          output_at="last",          # or "every" (a head on every step)
                          feedback=False)            # True: the head's output is the next input
    reply = post_model(body)   # $ACED_URL (default http://127.0.0.1:8080), $ACED_TOKEN

`rnn` is a torch.nn.GRU, torch.nn.LSTM or torch.nn.RNN (tanh or relu) built with batch_first=True,
unidirectional, without projections (proj_size 0) and without dropout at inference; its
state_dict() maps one to one onto aced's "weight_ih", "weight_hh", "bias_ih", "bias_hh" (PyTorch's
layout and gate order: GRU r, z, n; LSTM i, f, g, o), one entry of "layers" per stacked layer.
`head` is what register_torch.py accepts: an nn.Sequential of nn.Linear layers and activations,
applied to the top layer's hidden state.

Run as a script for the demo: a GRU trained on the paper's synthetic task (Chattopadhyay et al.
2019, App. A.6.1: x^0..x^2 carry the class, the rest is noise), registered, and asked for the
effect of each timestep on the class probability:

    python3 register_gru.py --dry-run > seq.json      # print the body only
    python3 register_gru.py                           # train, post, query
"""
import argparse
import json
import os
import sys
import urllib.request

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from register_torch import UnsupportedModule, network_layers, post_model  # noqa: E402

CELLS = {nn.GRU: "gru", nn.LSTM: "lstm"}


def cell_name(rnn):
    if isinstance(rnn, nn.RNN):
        return "rnn_" + rnn.nonlinearity
    for cls, name in CELLS.items():
        if isinstance(rnn, cls):
            return name
    raise UnsupportedModule("not a torch.nn.GRU, LSTM or RNN: %s" % type(rnn).__name__)


def recurrent_body(rnn, head, name, features, outputs, sequences, domains=None, output_at="last",
                   feedback=False, max_sequences=2000, seed=0):
    """The POST /v1/models body of issue #12 for a recurrent module and its head."""
    cell = cell_name(rnn)
    if rnn.bidirectional or getattr(rnn, "proj_size", 0) or not rnn.batch_first:
        raise UnsupportedModule("aced takes unidirectional, batch_first recurrent modules without projections")
    sd = {k: v.detach().to(torch.float64) for k, v in rnn.state_dict().items()}
    layers = []
    for l in range(rnn.num_layers):
        layer = {"weight_ih": sd["weight_ih_l%d" % l].tolist(), "weight_hh": sd["weight_hh_l%d" % l].tolist()}
        if rnn.bias:
            layer["bias_ih"] = sd["bias_ih_l%d" % l].tolist()
            layer["bias_hh"] = sd["bias_hh_l%d" % l].tolist()
        layers.append(layer)
    x = sequences.detach().to(torch.float64)
    if x.dim() != 3 or x.shape[2] != rnn.input_size or x.shape[2] != len(features):
        raise ValueError("sequences must be N x T x input_size (%d)" % rnn.input_size)
    if x.shape[0] > max_sequences:
        g = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(x.shape[0], generator=g)[:max_sequences]]
    if domains is None:
        flat = x.reshape(-1, x.shape[2])
        domains = list(zip(flat.min(0).values.tolist(), flat.max(0).values.tolist()))
    network = {"type": "recurrent", "cell": cell, "input_size": rnn.input_size,
               "hidden_size": rnn.hidden_size, "layers": layers, "head": network_layers(head),
               "output_at": output_at, "feedback": feedback}
    return {"name": name,
            "features": [{"name": f, "low": lo, "high": hi} for f, (lo, hi) in zip(features, domains)],
            "outputs": list(outputs), "sequence_length": int(x.shape[1]), "network": network,
            "data": {"sequences": x.tolist()}}


def synthetic_task(n=2000, T=10, seed=0):
    """App. A.6.1 at a fixed length: class 1 has x^0..x^2 ~ N(1, 0.2), class 0 N(-1, 0.2), the
    rest N(0, 0.2)."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=g) < 0.5).to(torch.float64)
    x = torch.randn(n, T, 1, generator=g, dtype=torch.float64) * 0.2 ** 0.5
    x[:, :3, 0] += (2 * y - 1).unsqueeze(1)
    return x, y


def train_demo(epochs=300):
    torch.manual_seed(1)
    x, y = synthetic_task()
    rnn = nn.GRU(1, 4, batch_first=True).double()
    head = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid()).double()
    opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=0.03)
    for _ in range(epochs):
        opt.zero_grad()
        h, _ = rnn(x)
        loss = nn.functional.binary_cross_entropy(head(h[:, -1, :])[:, 0], y)
        loss.backward()
        opt.step()
    return rnn, head, x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="print the body, post nothing")
    ap.add_argument("--name", default="synthetic_gru")
    ap.add_argument("--url", default=os.environ.get("ACED_URL", "http://127.0.0.1:8080"))
    a = ap.parse_args(argv)
    rnn, head, x = train_demo()
    body = recurrent_body(rnn, head, a.name, ["x"], ["p_class1"], x[:500], domains=[(-2.0, 2.0)])
    if a.dry_run:
        json.dump(body, sys.stdout)
        return 0
    reply = post_model(body, url=a.url)
    print("registered %s v%d %s" % (reply["name"], reply["version"], reply["digest"]))
    token = os.environ.get("ACED_TOKEN")
    for t in range(body["sequence_length"]):
        req = json.dumps({"output": 0, "feature": "x", "timestep": t, "values": [-1.0, 1.0],
                          "estimator": "montecarlo"}).encode()
        r = urllib.request.Request(a.url.rstrip("/") + "/v1/models/%s/interventions" % a.name, req,
                                   {"Content-Type": "application/json"})
        if token:
            r.add_header("Authorization", "Bearer " + token)
        e = json.load(urllib.request.urlopen(r, timeout=300))["expectations"]
        print("step %2d: E[p | do(x=+1)] - E[p | do(x=-1)] = %+.4f" % (t, e[1] - e[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
