#!/usr/bin/env python3
"""End to end: POST /v1/models with "network": {"type": "onnx", "model": base64} over real HTTP,
with real torch.onnx.export files (tests/data/onnx/, written with their references by
tools/gen_onnx_fixtures.py from Debian's python3-torch; this test needs no torch).

For every export (opsets 11 to 17, float32 and float64, every activation, MatMul + Add, Flatten,
two activations in a row, a hand-built Dropout/Gelu/Identity graph):
  - it registers, and the same weights registered as JSON (float32 widened to double) get the same
    digest: one model, so every estimator answers the same for both (checked on montecarlo);
  - its montecarlo expectations agree with the PyTorch module's own, float64, to 1e-10;
  - GET /v1/models/{name} says "source": "onnx" with the opset and producer, the JSON one "json",
    and that survives a restart.
Refusals: unsupported operators (422 unsupported_operator naming operator and node), branches,
two inputs, loops, external data (never opened), stray nodes, broken base64 (400 naming
network.model), bytes that are not a model, nesting past the limit, unknown fields; and
several clients registering ONNX models at once."""

import base64
import copy
import json
import os
import threading

from acedtest import DATA, Daemon, done, ok

ONNX = os.path.join(DATA, "onnx")
ref = json.load(open(os.path.join(ONNX, "ff_ref.json")))


def b64(name):
    with open(os.path.join(ONNX, name), "rb") as f:
        return base64.b64encode(f.read()).decode()


def body(c, name, onnx=True, outputs=True):
    b = {"name": name, "features": c["features"], "data": {"samples": c["samples"]}}
    if outputs:
        b["outputs"] = ["y%d" % i for i in range(c["n_outputs"])]
    b["network"] = {"type": "onnx", "model": b64(c["file"])} if onnx else c["network"]
    return b


d = Daemon().start()
worst = 0.0
for c in ref["cases"]:
    n = c["name"]
    r = d.post("/v1/models", body(c, n, outputs=False))
    ok(r.status == 201, "%s (%s, opset %d): the export registers" % (n, c["dtype"], c["opset"]), r)
    if r.status != 201:
        continue
    digest = r.json["digest"]
    r = d.post("/v1/models", body(c, n + "_json", onnx=False))
    ok(r.status == 201 and r.json["digest"] == digest,
       "%s: the same weights as JSON have the same digest (one model)" % n, r)
    md = d.get("/v1/models/" + n).json
    ok(md.get("source") == "onnx" and md.get("onnx", {}).get("opset") == c["opset"] and
       md["onnx"].get("producer", "").startswith("pytorch " if "handmade" not in n else "onnx.helper")
       and md["outputs"] == ["y%d" % i for i in range(c["n_outputs"])],
       "%s: GET says source onnx, opset %d, the producer; outputs default to y0.." % (n, c["opset"]),
       {k: md.get(k) for k in ("source", "onnx", "outputs")})
    mdj = d.get("/v1/models/%s_json" % n).json
    ok(mdj.get("source") == "json" and "onnx" not in mdj, "%s_json: GET says source json" % n)
    bad = []
    for case in c["reference"]:
        q = {"output": case["output"], "feature": case["feature"], "values": case["values"],
             "estimator": "montecarlo"}
        a = d.post("/v1/models/%s/interventions" % n, q)
        j = d.post("/v1/models/%s_json/interventions" % n, q)
        if a.status != 200 or j.status != 200:
            bad.append((a.status, a.json, j.status))
            continue
        for g, gj, w in zip(a.json["expectations"], j.json["expectations"], case["expectations"]):
            worst = max(worst, abs(g - w))
            if abs(g - w) > 1e-10 * max(1.0, abs(w)) or abs(g - gj) > 1e-12 * max(1.0, abs(gj)):
                bad.append((case["output"], g, gj, w))
    ok(not bad, "%s: montecarlo expectations = PyTorch's (1e-10) = the JSON model's (1e-12)" % n,
       bad[:3])
ok(worst < 1e-10, "worst difference from PyTorch float64 over all exports: %.2e" % worst)

# float32: the imported weights are exactly the float32 values widened (the digest above says so
# too); here directly on one of them, through the canonical weights the JSON body carries.
f32 = [c for c in ref["cases"] if c["dtype"] == "float32"]
ok(len(f32) >= 7 and all(abs(v - float(json.loads(json.dumps(v)))) == 0
                         for v in f32[0]["network"]["layers"][0]["weights"][0]),
   "%d float32 exports among the cases" % len(f32))

# The source survives a restart (it is in the model row, not the canonical body).
d.restart()
c0 = ref["cases"][0]
md = d.get("/v1/models/" + c0["name"]).json
ok(md.get("source") == "onnx" and md.get("onnx", {}).get("opset") == c0["opset"],
   "after a restart GET still says source onnx, opset %d" % c0["opset"], md.get("onnx"))
r = d.post("/v1/models", body(c0, c0["name"]))
ok(r.status == 200 and r.json["created"] is False and r.json["version"] == 1,
   "registering the same export again is idempotent (200, version 1)", r)

# ---- refusals ----
for name, want in sorted(ref["refusals"].items()):
    b = body(c0, "bad", outputs=False)
    b["network"]["model"] = b64(want["file"])
    r = d.post("/v1/models", b)
    msg = (r.json or {}).get("error", {}).get("message", "")
    ok(r.status == 422 and r.error_code() == want["code"] and r.error_field() == want["field"] and
       want["says"] in msg, "%s: 422 %s naming %s: %s" % (name, want["code"], want["field"], msg), r)
r = d.post("/v1/models", dict(body(c0, "bad"), network={"type": "onnx", "model": b64(ref["refusals"]["bad_clip"]["file"])}))
msg = r.json["error"]["message"]
ok("Clip" in msg and "node" in msg and "Gemm" in msg and "Relu" in msg,
   "unsupported_operator names the operator, the node and what is supported", msg)


def refused(model, status, code, says, what, extra=None):
    b = body(c0, "bad")
    b["network"] = {"type": "onnx", "model": model}
    if extra:
        b["network"].update(extra)
    r = d.post("/v1/models", b)
    msg = (r.json or {}).get("error", {}).get("message", "")
    ok(r.status == status and r.error_code() == code and says in msg, "%s: %d %s (%s)" % (what, status, code, msg), r)
    return r


refused("not base64!", 400, "bad_request", "offset 3", "a byte outside base64")
refused("QUJD=", 400, "bad_request", "padding", "bad padding")
refused("", 400, "bad_request", "empty", "an empty model")
refused(base64.b64encode(b"this is not protobuf at all").decode(), 422, "invalid_value",
        "not an ONNX model", "bytes that are not a model")
raw = base64.b64decode(b64(c0["file"]))
refused(base64.b64encode(raw[:len(raw) // 2]).decode(), 422, "invalid_value", "ONNX model",
        "a truncated export")
# ModelProto.graph(7) -> GraphProto.node(1) -> NodeProto.attribute(5) -> AttributeProto.g(6) -> ...
chain = b""
for _ in range(12):
    chain = b"\x32" + bytes([len(chain)]) + chain           # an AttributeProto whose g is chain
    chain = b"\x2a" + bytes([len(chain)]) + chain           # a NodeProto with that attribute
    chain = b"\x0a" + bytes([len(chain)]) + chain           # a GraphProto with that node
    if len(chain) > 120:
        break
model = b"\x3a" + bytes([len(chain)]) + chain               # ModelProto.graph
refused(base64.b64encode(model).decode(), 422, "limit_exceeded", "nest", "messages nested too deep")


def varint(n):
    out = b""
    while True:
        out += bytes([(n & 0x7f) | (0x80 if n > 0x7f else 0)])
        n >>= 7
        if not n:
            return out


def field(num, payload):  # a length-delimited protobuf field
    return varint(num << 3 | 2) + varint(len(payload)) + payload


OPSET13 = field(8, b"\x10\x0d")                            # ModelProto.opset_import {version: 13}
refused(base64.b64encode(OPSET13 + field(7, field(1, b"") * 1025)).decode(), 422, "limit_exceeded",
        "1025 nodes", "1025 nodes, past the limit (checked before the walk)")
huge = varint(1 << 3 | 0) + varint(1 << 40) + varint(2 << 3 | 0) + varint(1) + field(8, b"w")
refused(base64.b64encode(OPSET13 + field(7, field(5, huge))).decode(), 422, "limit_exceeded",
        "elements", "an initializer of 2^40 elements (refused before anything is allocated for it)")
refused(base64.b64encode(field(7, b"")).decode(), 422, "invalid_value", "opset",
        "a model without an opset of the ONNX domain")
r = refused(b64(c0["file"]), 400, "unknown_field", "unknown field", "an unknown field in the network",
            {"path": "/etc/passwd"})
b = body(c0, "bad")
b["network"] = {"type": "onnx"}
r = d.post("/v1/models", b)
ok(r.status == 400 and r.error_code() == "missing_field" and r.error_field() == "network.model",
   "no model: 400 missing_field network.model", r)
b["network"] = {"type": "onnx", "model": 12}
r = d.post("/v1/models", b)
ok(r.status == 400 and r.error_code() == "bad_type" and r.error_field() == "network.model",
   "a model that is not a string: 400 bad_type network.model", r)
b = body(c0, "bad")
b["features"] = b["features"][:2]
r = d.post("/v1/models", b)
ok(r.status == 422 and r.error_code() == "shape_mismatch", "features that do not match the graph's input: 422", r)
ok(d.alive(), "the daemon survived every refusal")

# ---- recurrent exports (GRU, LSTM, RNN) ----
# The importer writes issue #12's "recurrent" network (tests/unit/test_onnx.c checks it equals
# PyTorch's state_dict exactly), which #12's parser then registers.
rref = json.load(open(os.path.join(ONNX, "rnn_ref.json")))
for c in rref["cases"]:
    b = {"name": c["name"], "features": c["features"], "network": {"type": "onnx", "model": b64(c["file"])},
         "data": {"sequences": c["sequences"]}}
    r = d.post("/v1/models", b)
    ok(r.status == 201, "%s (%s, opset %d): the export registers" % (c["name"], c["dtype"], c["opset"]), r)
    if r.status != 201:
        continue
    j = d.post("/v1/models", {"name": c["name"] + "_json", "features": c["features"],
                              "outputs": ["y%d" % i for i in range(len(c["network"]["head"][-1]["bias"]))],
                              "sequence_length": c["sequence_length"], "network": c["network"],
                              "data": {"sequences": c["sequences"]}})
    ok(j.status == 201 and j.json["digest"] == r.json["digest"],
       "%s: PyTorch's state_dict registered as JSON has the same digest" % c["name"], j)
    for case in c["reference"]:
        q = {"output": case["output"], "feature": case["feature"], "timestep": case["timestep"],
             "values": case["values"], "estimator": "montecarlo"}
        a = d.post("/v1/models/%s/interventions" % c["name"], q)
        got = a.json.get("expectations") if a.status == 200 else None
        ok(got is not None and all(abs(g - w) <= 1e-10 for g, w in zip(got, case["expectations"])),
           "%s: E[y | do(x_0^%d = a)] = PyTorch's (1e-10)" % (c["name"], case["timestep"]), a)

# ---- several clients at once ----
results = []


def client(i):
    c = ref["cases"][i % len(ref["cases"])]
    r = d.post("/v1/models", body(c, "conc%d" % i))
    results.append((r.status, r.json and r.json.get("digest"), c["name"]))


threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
for t in threads:
    t.start()
for t in threads:
    t.join()
digests = {c["name"]: d.get("/v1/models/" + c["name"]).json["digest"] for c in ref["cases"][:12]}
ok(len(results) == 12 and all(s == 201 and digests[n] == g for s, g, n in results),
   "12 concurrent ONNX registrations: all 201 with the digests of the serial ones",
   [r for r in results if r[0] != 201][:3])
ok(d.alive(), "daemon alive")
d.stop()
done()
