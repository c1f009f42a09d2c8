#!/usr/bin/env python3
"""Generate tests/data/onnx/: real ONNX exports and what aced must make of them, for
tests/e2e/test_onnx.py, the importer's fuzz seeds (fuzz/corpus/onnx/) and the benchmark.

Feedforward (ff_ref.json + ff_*.onnx): torch.nn.Sequential models of Linear and every activation
aced has, exported by torch.onnx.export (Debian's python3-torch) at every opset from 11 to 17, with
float32 and float64 weights and a dynamic batch axis; a MatMul + Add model, a Flatten of a
[batch, 2, 2] input, two activations in a row, and a graph built with onnx.helper for the operators
PyTorch leaves out of inference exports (Dropout, Identity, the Gelu operator of opset 20).  For
each: the same weights as aced's JSON network (weights [out][in], float32 widened to double), a
few samples, and E[y_o | do(x_0 = a)] over those samples computed by the PyTorch module itself in
float64 (the reference the importer is checked against, not the importer's own arithmetic).

Refusals (bad_*.onnx): an operator aced lacks (Hardtanh exports as Clip), a branch (a skip
connection), two inputs, a Loop, weights in external data, an unused node.

Recurrent (rnn_ref.json + rnn_*.onnx): torch.nn.GRU, LSTM and RNN (tanh and relu), batch_first or
not, with a Linear head on the last step or on every step, and their state_dicts: the importer's
conversion to issue #12's JSON form must give exactly PyTorch's own weights and gate order.

Needs Debian's python3-torch and python3-onnx.  Usage:
    /usr/bin/python3 tools/gen_onnx_fixtures.py [tests/data/onnx]
"""
import io
import json
import os
import sys
import tempfile

import onnx
import onnx.helper as oh
import onnx.numpy_helper
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "data", "onnx")
ACTS = {  # aced name -> PyTorch module
    "relu": torch.nn.ReLU, "leaky_relu": torch.nn.LeakyReLU, "elu": torch.nn.ELU,
    "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh, "softplus": torch.nn.Softplus,
    "gelu": torch.nn.GELU, "identity": torch.nn.Identity,
}
LAST = {"softmax": lambda: torch.nn.Softmax(dim=-1), "log_softmax": lambda: torch.nn.LogSoftmax(dim=1)}
VALUES = [-1.0, 0.0, 0.5, 1.5]


def export(model, example, opset, dynamic=True):
    f = io.BytesIO()
    kw = {"dynamic_axes": {"x": {0: "batch"}, "y": {0: "batch"}}} if dynamic else {}
    torch.onnx.export(model, example, f, opset_version=opset, input_names=["x"],
                      output_names=["y"], **kw)
    return f.getvalue()


def widened(t):
    return t.detach().to(torch.float64)


def json_network(model):
    """aced's JSON layers for a Sequential: a Linear opens a layer, an activation closes it; an
    activation with no open layer gets an identity layer; Flatten, Identity, Dropout are nothing."""
    layers = []
    for mod in model:
        if isinstance(mod, torch.nn.Linear):
            if layers and layers[-1]["activation"] is None:
                layers[-1]["activation"] = "identity"
            layers.append({"weights": widened(mod.weight).tolist(), "bias": widened(mod.bias).tolist(),
                           "activation": None})
            continue
        name = None
        for k, cls in ACTS.items():
            if type(mod) is cls and k != "identity":
                name = k
        if isinstance(mod, torch.nn.Softmax):
            name = "softmax"
        if isinstance(mod, torch.nn.LogSoftmax):
            name = "log_softmax"
        if name is None:
            continue
        if not layers or layers[-1]["activation"] is not None:
            n = layers[-1]["weights"].__len__() if layers else None
            layers.append({"weights": torch.eye(n, dtype=torch.float64).tolist(), "bias": [0.0] * n,
                           "activation": None})
        layers[-1]["activation"] = name
    if layers[-1]["activation"] is None:
        layers[-1]["activation"] = "identity"
    return {"type": "feedforward", "layers": layers}


def reference(f64, samples, n_out, shape=None):
    """E[y_o | do(x_0 = a)] over the samples, by the float64 module."""
    out = []
    with torch.no_grad():
        for o in sorted({0, n_out - 1}):
            exp = []
            for a in VALUES:
                x = samples.clone()
                x[:, 0] = a
                y = f64(x if shape is None else x.reshape(shape))
                exp.append(float(y[:, o].mean()))
            out.append({"output": o, "feature": 0, "values": VALUES, "expectations": exp})
    return out


def case(name, model, n_in, opset, dtype, in_shape=None, dynamic=True, note="", network=None):
    model = model.eval()
    model.to(dtype)
    example = torch.zeros(*(in_shape or (1, n_in)), dtype=dtype)
    data = export(model, example, opset, dynamic)
    with open(os.path.join(OUT, name + ".onnx"), "wb") as fh:
        fh.write(data)
    network = network(model) if network else json_network(model)
    f64 = model.to(torch.float64)  # the same weights, widened: the reference
    g = torch.Generator().manual_seed(7)
    samples = torch.rand(12, n_in, generator=g, dtype=torch.float64) * 2 - 1
    n_out = len(network["layers"][-1]["weights"])
    shape = (-1,) + tuple(in_shape[1:]) if in_shape else None
    return {"name": name, "file": name + ".onnx", "opset": opset,
            "dtype": "float32" if dtype == torch.float32 else "float64", "note": note,
            "features": [{"name": "f%d" % i, "low": -1.0, "high": 1.0} for i in range(n_in)],
            "n_outputs": n_out, "network": network, "samples": samples.tolist(),
            "reference": reference(f64, samples, n_out, shape)}


def mlp(act, n_in=3, hidden=5, n_out=2, last=None):
    mods = [torch.nn.Linear(n_in, hidden), ACTS[act](), torch.nn.Linear(hidden, hidden), ACTS[act](),
            torch.nn.Linear(hidden, n_out)]
    if last:
        mods.append(LAST[last]())
    return torch.nn.Sequential(*mods)


class MatMulAdd(torch.nn.Module):
    """x @ W + b written out: exports as MatMul and Add, not Gemm."""

    def __init__(self):
        super().__init__()
        self.W = torch.nn.Parameter(torch.randn(3, 4))
        self.b = torch.nn.Parameter(torch.randn(4))
        self.W2 = torch.nn.Parameter(torch.randn(4, 2))

    def forward(self, x):
        return torch.matmul(torch.tanh(torch.matmul(x, self.W) + self.b), self.W2)


def feedforward():
    cases = []
    acts = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "gelu"]
    lasts = [None, "softmax", "log_softmax"]
    k = 0
    for opset in range(11, 18):
        for dtype in (torch.float32, torch.float64):
            act, last = acts[k % len(acts)], lasts[k % len(lasts)]
            name = "ff_%s_%s_op%d_%s" % (act, last or "linear", opset,
                                         "f32" if dtype == torch.float32 else "f64")
            torch.manual_seed(k)
            cases.append(case(name, mlp(act, last=last), 3, opset, dtype))
            k += 1
    torch.manual_seed(100)
    mm = MatMulAdd()
    cases.append(case("ff_matmul_add_op13_f64", mm, 3, 13, torch.float64,
                      note="MatMul + Add, MatMul alone", network=lambda mm: {
                          "type": "feedforward", "layers": [
                              {"weights": widened(mm.W).T.tolist(), "bias": widened(mm.b).tolist(),
                               "activation": "tanh"},
                              {"weights": widened(mm.W2).T.tolist(), "bias": [0.0, 0.0],
                               "activation": "identity"}]}))
    torch.manual_seed(101)
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Dropout(0.5),
                               torch.nn.Identity(), torch.nn.Sigmoid(), torch.nn.Linear(3, 2))
    cases.append(case("ff_flatten_op15_f32", flat, 4, 15, torch.float32, in_shape=(1, 2, 2),
                      note="a [batch, 2, 2] input flattened"))
    torch.manual_seed(102)
    two = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LeakyReLU(), torch.nn.ELU(),
                              torch.nn.Linear(4, 2), torch.nn.Softmax(dim=-1))
    cases.append(case("ff_two_acts_op17_f64", two, 3, 17, torch.float64,
                      note="two activations in a row: the second gets an identity layer"))
    torch.manual_seed(103)
    cases.append(case("ff_fixed_batch_op12_f32", mlp("tanh"), 3, 12, torch.float32, dynamic=False,
                      note="no dynamic batch axis"))
    torch.manual_seed(104)
    cases.append(handmade())
    return cases


def handmade():
    """Dropout (inference), Identity and the Gelu operator, which torch 1.13 never exports."""
    torch.manual_seed(104)
    l1, l2 = torch.nn.Linear(3, 4).double(), torch.nn.Linear(4, 2).double()
    init = [onnx.numpy_helper.from_array(widened(t).numpy(), n) for n, t in
            [("W1", l1.weight), ("b1", l1.bias), ("W2", l2.weight), ("b2", l2.bias)]]
    nodes = [oh.make_node("Gemm", ["x", "W1", "b1"], ["h1"], transB=1, name="fc1"),
             oh.make_node("Dropout", ["h1"], ["h2"], name="drop"),
             oh.make_node("Gelu", ["h2"], ["h3"], name="gelu"),
             oh.make_node("Identity", ["h3"], ["h4"], name="id"),
             oh.make_node("Gemm", ["h4", "W2", "b2"], ["y"], transB=1, name="fc2")]
    g = oh.make_graph(nodes, "handmade",
                      [oh.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, ["batch", 3])],
                      [oh.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, ["batch", 2])], init)
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 20)], producer_name="onnx.helper")
    name = "ff_handmade_op20_f64"
    with open(os.path.join(OUT, name + ".onnx"), "wb") as fh:
        fh.write(m.SerializeToString())
    f64 = torch.nn.Sequential(l1, torch.nn.GELU(), l2)
    g = torch.Generator().manual_seed(7)
    samples = torch.rand(12, 3, generator=g, dtype=torch.float64) * 2 - 1
    return {"name": name, "file": name + ".onnx", "opset": 20, "dtype": "float64",
            "note": "built with onnx.helper: Dropout, Gelu, Identity",
            "features": [{"name": "f%d" % i, "low": -1.0, "high": 1.0} for i in range(3)],
            "n_outputs": 2, "network": json_network(f64), "samples": samples.tolist(),
            "reference": reference(f64, samples, 2)}


class Skip(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)) + x)


class TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(3, 2)

    def forward(self, x, z):
        return self.a(x) * z


def refusals():
    out = {}
    torch.manual_seed(200)

    def save(name, data, code, field, says):
        with open(os.path.join(OUT, name + ".onnx"), "wb") as fh:
            fh.write(data)
        out[name] = {"file": name + ".onnx", "code": code, "field": field, "says": says}

    save("bad_clip", export(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Hardtanh()),
                            torch.zeros(1, 3), 13), "unsupported_operator", "network.model", "Clip")
    save("bad_branch", export(Skip(), torch.zeros(1, 3), 13), "invalid_value", "network.model",
         "not a chain")
    f = io.BytesIO()
    torch.onnx.export(TwoInputs(), (torch.zeros(1, 3), torch.zeros(1, 2)), f, opset_version=13,
                      input_names=["x", "z"], output_names=["y"])
    save("bad_two_inputs", f.getvalue(), "invalid_value", "network.model", "2 inputs")
    body = oh.make_graph([oh.make_node("Identity", ["c"], ["c_out"])], "body",
                         [oh.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
                          oh.make_tensor_value_info("c", onnx.TensorProto.BOOL, [])],
                         [oh.make_tensor_value_info("c_out", onnx.TensorProto.BOOL, [])])
    W = onnx.numpy_helper.from_array(torch.ones(2, 3).numpy(), "W")
    g = oh.make_graph([oh.make_node("Gemm", ["x", "W"], ["h"], transB=1, name="fc"),
                       oh.make_node("Loop", ["", ""], [], body=body, name="loop"),
                       oh.make_node("Relu", ["h"], ["y"], name="relu")], "loop",
                      [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 3])],
                      [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 2])], [W])
    save("bad_loop", oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)]).SerializeToString(),
         "unsupported_operator", "network.model", "Loop")
    # Weights in a file beside the model: the .onnx names the file, aced must not open it.  Saved
    # into a temporary folder under a relative name, then (in memory only) renamed to point at
    # /etc/passwd: onnx.save_model appends the tensors to whatever file `location` names.
    m = onnx.load_from_string(export(torch.nn.Sequential(torch.nn.Linear(3, 2)), torch.zeros(1, 3), 13))
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.onnx")
        onnx.save_model(m, p, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="weights.bin", size_threshold=0)
        m = onnx.load(p, load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "/etc/passwd"
    data = m.SerializeToString()
    save("bad_external", data, "invalid_value", "network.model", "external")
    g = oh.make_graph([oh.make_node("Gemm", ["x", "W"], ["y"], transB=1, name="fc"),
                       oh.make_node("Relu", ["W"], ["unused"], name="stray")], "stray",
                      [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 3])],
                      [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 2])], [W])
    save("bad_stray_node", oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)]).SerializeToString(),
         "invalid_value", "network.model", "not on the chain")
    return out


class Seq(torch.nn.Module):
    """A recurrent cell stack and a Linear head on the last step or on every step, reading the last
    step as out[:, -1] / out[-1] or, with via_state, as the final state h_n[-1]."""

    def __init__(self, kind, batch_first, every, layers=1, via_state=False, act=None, relu=False):
        super().__init__()
        kw = {"nonlinearity": "relu"} if relu else {}
        self.rnn = getattr(torch.nn, kind)(2, 3, num_layers=layers, batch_first=batch_first, **kw)
        self.head = torch.nn.Linear(3, 2)
        self.bf, self.every, self.via_state, self.act = batch_first, every, via_state, act

    def forward(self, x):
        out, state = self.rnn(x)
        if self.every:
            h = out
        elif self.via_state:
            h = (state[0] if isinstance(state, tuple) else state)[-1]
        else:
            h = out[:, -1] if self.bf else out[-1]
        y = self.head(h)
        return torch.sigmoid(y) if self.act == "sigmoid" else y


T = 5


def rnn_case(name, kind, opset, dtype, batch_first, every, layers=1, via_state=False, act=None,
             relu=False):
    model = Seq(kind, batch_first, every, layers, via_state, act, relu).eval().to(dtype)
    shape = (1, T, 2) if batch_first else (T, 1, 2)
    f = io.BytesIO()
    torch.onnx.export(model, torch.zeros(*shape, dtype=dtype), f, opset_version=opset,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0 if batch_first else 1: "batch"}})
    with open(os.path.join(OUT, name + ".onnx"), "wb") as fh:
        fh.write(f.getvalue())
    sd = {k: widened(v) for k, v in model.state_dict().items()}
    cell = {"GRU": "gru", "LSTM": "lstm", "RNN": "rnn_relu" if relu else "rnn_tanh"}[kind]
    net = {"type": "recurrent", "cell": cell, "input_size": 2, "hidden_size": 3,
           "head": [{"weights": sd["head.weight"].tolist(), "bias": sd["head.bias"].tolist(),
                     "activation": act or "identity"}],
           "output_at": "every" if every else "last", "feedback": False}
    cells = [{"weight_ih": sd["rnn.weight_ih_l%d" % l].tolist(),
              "weight_hh": sd["rnn.weight_hh_l%d" % l].tolist(),
              "bias_ih": sd["rnn.bias_ih_l%d" % l].tolist(),
              "bias_hh": sd["rnn.bias_hh_l%d" % l].tolist()} for l in range(layers)]
    if layers == 1:
        net.update(cells[0])
    else:
        net["layers"] = cells
    # PyTorch's own forward, float64, on a few sequences (batch x T x 2), and E[y_0 | do(x_0^t = a)]
    # at the last step over those sequences: for the registration through issue #12's parser.
    f64 = model.to(torch.float64)
    g = torch.Generator().manual_seed(11)
    seqs = torch.rand(6, T, 2, generator=g, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        y = f64(seqs if batch_first else seqs.transpose(0, 1))
        if every and not batch_first:
            y = y.transpose(0, 1)
    ref = []
    with torch.no_grad():
        for t in (0, T - 1):
            exp = []
            for a in VALUES:
                x = seqs.clone()
                x[:, t, 0] = a
                yy = f64(x if batch_first else x.transpose(0, 1))
                if every:
                    yy = (yy if batch_first else yy.transpose(0, 1))[:, -1]
                exp.append(float(yy[:, 0].mean()))
            ref.append({"output": 0, "feature": 0, "timestep": t, "values": VALUES,
                        "expectations": exp})
    return {"name": name, "file": name + ".onnx", "opset": opset, "reference": ref,
            "dtype": "float32" if dtype == torch.float32 else "float64", "batch_first": batch_first,
            "features": [{"name": "u0", "low": -1.0, "high": 1.0}, {"name": "u1", "low": -1.0, "high": 1.0}],
            "sequence_length": T, "network": net, "sequences": seqs.tolist(), "forward": y.tolist()}


def recurrent():
    specs = [("rnn_gru_bf_last_op13_f32", "GRU", 13, torch.float32, True, False, {}),
             ("rnn_gru_every_op14_f64", "GRU", 14, torch.float64, False, True, {}),
             ("rnn_lstm_bf_every_op11_f32", "LSTM", 11, torch.float32, True, True, {}),
             ("rnn_lstm_last_op17_f64", "LSTM", 17, torch.float64, False, False, {}),
             ("rnn_tanh_bf_last_op12_f32", "RNN", 12, torch.float32, True, False, {}),
             ("rnn_relu_every_op15_f64", "RNN", 15, torch.float64, False, True, {"relu": True}),
             ("rnn_gru2_state_sigmoid_op14_f32", "GRU", 14, torch.float32, True, False,
              {"layers": 2, "via_state": True, "act": "sigmoid"}),
             ("rnn_lstm2_bf_last_op16_f64", "LSTM", 16, torch.float64, True, False, {"layers": 2}),
             ("rnn_lstm_state_op13_f32", "LSTM", 13, torch.float32, False, False, {"via_state": True})]
    cases = []
    for i, (name, kind, opset, dtype, bf, every, kw) in enumerate(specs):
        torch.manual_seed(300 + i)
        cases.append(rnn_case(name, kind, opset, dtype, bf, every, **kw))
    return cases


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    ff = feedforward()
    bad = refusals()
    meta = {"generator": "tools/gen_onnx_fixtures.py", "torch": torch.__version__,
            "onnx": onnx.__version__}
    with open(os.path.join(OUT, "ff_ref.json"), "w") as fh:
        json.dump(dict(meta, cases=ff, refusals=bad), fh, indent=None, separators=(",", ":"))
        fh.write("\n")
    rnn = recurrent()
    with open(os.path.join(OUT, "rnn_ref.json"), "w") as fh:
        json.dump(dict(meta, cases=rnn), fh, indent=None, separators=(",", ":"))
        fh.write("\n")
    print("wrote %d feedforward cases, %d refusals, %d recurrent cases to %s"
          % (len(ff), len(bad), len(rnn), OUT))


if __name__ == "__main__":
    main()
