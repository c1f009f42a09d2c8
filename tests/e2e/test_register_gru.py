#!/usr/bin/env python3
"""End to end: examples/register_gru.py (issue #12) against the real daemon -- torch.nn.GRU, LSTM
(two layers) and RNN (relu, without biases) modules with a feedforward head, turned into
registration bodies by the example and registered; aced's montecarlo expectations at a timestep
agree with the same modules run in PyTorch float64 with that input set, per sequence, then
averaged.  Then the example's demo (a GRU trained on the paper's synthetic task) as a dry run.

Needs PyTorch: when the running Python has none, the test re-runs itself with /usr/bin/python3
(Debian's python3-torch), or skips."""

import json
import os
import subprocess
import sys

try:
    import torch
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", "-B"] + sys.argv)
    torch = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from acedtest import SRCDIR, Daemon, done, ok, skip_all  # noqa: E402

if torch is None:
    skip_all("PyTorch is not installed (Debian: apt-get install python3-torch)")
sys.path.insert(0, os.path.join(SRCDIR, "examples"))
import register_gru as rg  # noqa: E402
from torch import nn  # noqa: E402

torch.set_default_dtype(torch.float64)
torch.manual_seed(3)
d = Daemon().start()
T, n = 6, 30
cases = [("gru", nn.GRU(2, 5, batch_first=True), nn.Sequential(nn.Linear(5, 2), nn.Softmax(dim=-1))),
         ("lstm2", nn.LSTM(2, 4, num_layers=2, batch_first=True), nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))),
         ("relu_nobias", nn.RNN(2, 3, nonlinearity="relu", bias=False, batch_first=True), nn.Sequential(nn.Linear(3, 1)))]
for name, rnn, head in cases:
    x = torch.randn(n, T, 2)
    n_out = [m for m in head if isinstance(m, nn.Linear)][-1].out_features
    body = rg.recurrent_body(rnn, head, name, ["a", "b"], ["y%d" % o for o in range(n_out)], x)
    r = d.post("/v1/models", body)
    ok(r.status == 201, "%s: the example's body registers" % name, r)
    t, i, alphas = 2, 1, [-1.0, 0.5]
    r = d.post("/v1/models/%s/interventions" % name, {"output": 0, "feature": i, "timestep": t, "values": alphas,
                                                     "estimator": "montecarlo"})
    want = []
    with torch.no_grad():
        for a in alphas:
            xa = x.clone()
            xa[:, t, i] = a
            h, _ = rnn(xa)
            want.append(float(head(h[:, -1, :])[:, 0].mean()))
    got = r.json.get("expectations") if r.status == 200 else None
    ok(got is not None and max(abs(g - w) for g, w in zip(got, want)) <= 1e-10,
       "%s: montecarlo at (feature %d, step %d) agrees with the PyTorch module" % (name, i, t), (got, want))
try:
    rg.recurrent_body(nn.GRU(2, 3, bidirectional=True, batch_first=True), nn.Sequential(nn.Linear(6, 1)),
                      "bi", ["a", "b"], ["y"], torch.randn(4, 3, 2))
    ok(False, "a bidirectional GRU is refused")
except rg.UnsupportedModule:
    ok(True, "a bidirectional GRU is refused")
out = subprocess.run([sys.executable, os.path.join(SRCDIR, "examples", "register_gru.py"), "--dry-run"],
                     capture_output=True, timeout=600)
body = json.loads(out.stdout) if out.returncode == 0 else {}
ok(body.get("network", {}).get("cell") == "gru" and body.get("sequence_length") == 10,
   "the demo trains a GRU on the synthetic task and prints its body", out.stderr[-500:])
r = d.post("/v1/models", body)
ok(r.status == 201, "and the body registers", r)
done()
