#!/usr/bin/env python3
"""Register an ONNX model with aced: the .onnx file itself, base64 in the body.

From a training pipeline that already exports ONNX:

    from register_onnx import registration_body, post
    body = registration_body(open("model.onnx", "rb").read(), name="churn",
                             features=["tenure", "spend", "calls"], samples=x_train,
                             outputs=["p_churn"])        # optional: y0, y1, ... by default
    print(post(body))                                    # $ACED_URL, $ACED_TOKEN

aced reads the graph and registers the same network the JSON weights would give (same digest), and
GET /v1/models/{name} says "source": "onnx" with the opset and producer.  What imports: a chain of
Gemm (or MatMul + Add) and the activations aced has (Relu, LeakyRelu, Elu, Sigmoid, Tanh, Softplus,
GELU, Softmax, LogSoftmax), with Identity, Flatten and Dropout; torch.nn.GRU, LSTM and RNN with a
Linear head once issue #12's recurrent networks are in.  Anything else is refused with 422
unsupported_operator naming the node.

As a script:

    python3 examples/register_onnx.py                   # export a demo MLP with torch, register it
    python3 examples/register_onnx.py --dry-run         # print the body only
    python3 examples/register_onnx.py --onnx model.onnx --samples samples.json --name m
                                                        # an existing export (no torch needed);
                                                        # samples.json: [[x0, x1, ...], ...]

Only the standard library is needed to register a file; torch only to export the demo.
"""
import argparse
import base64
import io
import json
import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8080"


def registration_body(onnx_bytes, name, features, samples, outputs=None, domains=None,
                      description=None):
    """The body of POST /v1/models for an ONNX file.

    features: names, one per input of the graph; samples: rows of inputs (lists of numbers), used as
    the model's data; domains: (low, high) per feature, by default the samples' min and max."""
    rows = [[float(v) for v in row] for row in samples]
    if domains is None:
        domains = [(min(r[i] for r in rows), max(r[i] for r in rows)) for i in range(len(features))]
    body = {
        "name": name,
        "features": [{"name": f, "low": lo, "high": hi} for f, (lo, hi) in zip(features, domains)],
        "network": {"type": "onnx", "model": base64.b64encode(onnx_bytes).decode("ascii")},
        "data": {"samples": rows},
    }
    if outputs is not None:
        body["outputs"] = list(outputs)
    if description:
        body["description"] = description
    return body


def post(body, url=None, token=None, path="/v1/models", timeout=300):
    """POST (or GET, with body None) to aced; the decoded reply.  aced's refusals raise
    RuntimeError with the error code, status, field and message."""
    url = (url or os.environ.get("ACED_URL") or DEFAULT_URL).rstrip("/") + path
    token = token if token is not None else os.environ.get("ACED_TOKEN")
    data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            err = json.loads(raw)["error"]
        except (ValueError, KeyError, TypeError):
            raise RuntimeError("HTTP %d from something other than aced: %.200r" % (e.code, raw)) from None
        raise RuntimeError("aced refused the model: %s (%d) at %s: %s"
                           % (err.get("code"), e.code, err.get("field"), err.get("message"))) from None


def export_demo(opset=13):
    """A 4-16-3 classifier exported by torch.onnx.export (float32, dynamic batch axis), and 200
    random inputs in [0, 1]."""
    import torch
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3),
                              torch.nn.Softmax(dim=-1)).eval()
    f = io.BytesIO()
    torch.onnx.export(net, torch.zeros(1, 4), f, opset_version=opset, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    samples = torch.rand(200, 4, generator=torch.Generator().manual_seed(1)).tolist()
    return f.getvalue(), samples


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--onnx", metavar="FILE", help="an existing .onnx export (default: export a demo)")
    ap.add_argument("--samples", metavar="JSON", help="with --onnx: a JSON file of input rows")
    ap.add_argument("--features", help="comma-separated feature names (default: x0, x1, ...)")
    ap.add_argument("--outputs", help="comma-separated output names (default: aced's y0, y1, ...)")
    ap.add_argument("--name", default="onnx-demo", help="model name (default: onnx-demo)")
    ap.add_argument("--url", default=None, help="aced base URL (default: $ACED_URL or %s)" % DEFAULT_URL)
    ap.add_argument("--dry-run", action="store_true", help="print the body, send nothing")
    args = ap.parse_args(argv)
    if args.onnx:
        if not args.samples:
            ap.error("--onnx needs --samples (the model's data)")
        with open(args.onnx, "rb") as f:
            onnx_bytes = f.read()
        with open(args.samples) as f:
            samples = json.load(f)
    else:
        onnx_bytes, samples = export_demo()
    k = len(samples[0])
    features = args.features.split(",") if args.features else ["x%d" % i for i in range(k)]
    outputs = args.outputs.split(",") if args.outputs else None
    body = registration_body(onnx_bytes, args.name, features, samples, outputs=outputs)
    if args.dry_run:
        json.dump(body, sys.stdout)
        sys.stdout.write("\n")
        return 0
    reply = post(body, url=args.url)
    meta = post(None, url=args.url, path="/v1/models/" + reply["name"])
    print("%s version %d %s (%s) source %s %s" % (
        reply["name"], reply["version"], reply["digest"],
        "new version" if reply.get("created") else "already registered", meta.get("source"),
        json.dumps(meta.get("onnx"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
