#!/usr/bin/env python3
"""End to end: every malformed request gets its 4xx JSON error naming the field, and the daemon stays
up and keeps its data."""

import copy
import json
import socket

from acedtest import Daemon, done, fixture_body, ok

d = Daemon(args=["--max-body-bytes=1048576"]).start()
good = fixture_body("good")
r = d.post("/v1/models", good)
ok(r.status == 201, "baseline model registers", r)


def expect(resp, status, code, field, what):
    ok(resp.status == status and resp.error_code() == code and resp.error_field() == field,
       "%s -> %d %s field=%r" % (what, status, code, field), resp)
    ok(resp.headers.get("Content-Type") == "application/json", what + ": JSON error body", resp.headers)


def mutated(fn, name="bad"):
    b = copy.deepcopy(good)
    b["name"] = name
    fn(b)
    return b


# ---- transport-level errors ----
expect(d.get("/nowhere"), 404, "not_found", "url", "unknown path")
r = d.request("PUT", "/v1/models")
expect(r, 405, "method_not_allowed", "method", "PUT on /v1/models")
ok("GET" in r.headers.get("Allow", "") and "POST" in r.headers.get("Allow", ""), "405 carries Allow", r.headers)
expect(d.post("/v1/models", raw=b'{"name": "x", '), 400, "bad_json", "", "truncated JSON")
expect(d.post("/v1/models", raw=b'{"name": "x" "y"}'), 400, "bad_json", "", "invalid JSON")
expect(d.post("/v1/models", raw=b'{"name": "a", "name": "b"}'), 400, "bad_json", "", "duplicate keys")
expect(d.post("/v1/models", raw=b'{"name": "\xff\xfe"}'), 400, "bad_json", "", "invalid UTF-8")
expect(d.post("/v1/models", raw=b"[" * 200 + b"]" * 200), 400, "bad_json", "", "deep nesting")
expect(d.post("/v1/models", raw=b"[1, 2]"), 400, "bad_type", "", "body not an object")
expect(d.post("/v1/models", raw=b""), 400, "bad_json", "", "empty body")
expect(d.post("/v1/models", raw=b'{"x": 1e999}'), 400, "bad_json", "", "number overflowing a double")
expect(d.request("POST", "/v1/models", raw=b"{}", headers={"Content-Type": "text/plain"}), 415,
       "unsupported_media_type", "Content-Type", "wrong content type")
expect(d.request("POST", "/v1/models", raw=b"{}", headers={"Content-Type": None}), 415,
       "unsupported_media_type", "Content-Type", "no content type")


def raw_exchange(data, timeout=10):
    s = socket.create_connection(("127.0.0.1", d.port))
    s.settimeout(timeout)
    try:
        s.sendall(data)
    except OSError:
        pass  # the server may answer and close before everything is sent
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and out.split(b"\r\n\r\n", 1)[1].count(b"}") >= 2:
                break
    except OSError:
        pass
    s.close()
    return out.decode("latin-1")


# Chunked upload without Content-Length: the cap applies while reading.
chunk = b"x" * 65536
body = b'{"name": "big", "description": "' + chunk * 20 + b'"}'
msg = b"POST /v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
for i in range(0, len(body), 65536):
    piece = body[i:i + 65536]
    msg += b"%x\r\n" % len(piece) + piece + b"\r\n"
msg += b"0\r\n\r\n"
out = raw_exchange(msg)
ok(out.startswith("HTTP/1.1 413") and '"code":"payload_too_large"' in out and '"field":"body"' in out,
   "chunked body over max_body_bytes -> 413 payload_too_large field=body", out[:300])

# A declared length over the cap is refused before the body is sent.
s = socket.create_connection(("127.0.0.1", d.port))
s.sendall(b"POST /v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: 99999999999\r\n\r\n")
s.settimeout(10)
head = s.recv(4096).decode("latin-1")
s.close()
ok(head.startswith("HTTP/1.1 413"), "huge Content-Length answered 413 before any body", head[:200])

# ---- registration validation ----
expect(d.post("/v1/models", mutated(lambda b: b.update(extra=1))), 400, "unknown_field", "extra", "unknown top-level field")
expect(d.post("/v1/models", mutated(lambda b: b["network"]["layers"][0].update(dropout=0.1))), 400,
       "unknown_field", "network.layers[0].dropout", "unknown nested field")
expect(d.post("/v1/models", mutated(lambda b: b.pop("features"))), 400, "missing_field", "features", "missing features")
expect(d.post("/v1/models", mutated(lambda b: b.pop("name"))), 400, "missing_field", "name", "missing name")
for bad in ["../etc", "a b", "x" * 65, "x'; drop table models; --", "", "name/with/slash"]:
    expect(d.post("/v1/models", mutated(lambda b: None, name=bad)), 400, "bad_name", "name", "bad name %r" % bad[:20])
expect(d.post("/v1/models", mutated(lambda b: b["features"][1].update(low="0"))), 400, "bad_type",
       "features[1].low", "string where a number belongs")
expect(d.post("/v1/models", mutated(lambda b: b["features"][2].update(low=2.0))), 422, "invalid_value",
       "features[2].low", "low >= high")


def ragged(b):
    b["network"]["layers"][1]["weights"][2] = b["network"]["layers"][1]["weights"][2][:-1]


expect(d.post("/v1/models", mutated(ragged)), 422, "shape_mismatch", "network.layers[1].weights[2]", "ragged weights")
expect(d.post("/v1/models", mutated(lambda b: b["network"]["layers"][0]["bias"].pop())), 422, "shape_mismatch",
       "network.layers[0].bias", "bias length")
expect(d.post("/v1/models", mutated(lambda b: b["outputs"].pop())), 422, "shape_mismatch", "network.layers[2].weights",
       "output count differs from the network")
expect(d.post("/v1/models", mutated(lambda b: b["network"]["layers"][0].update(activation="swish"))), 422,
       "invalid_value", "network.layers[0].activation", "unknown activation")
expect(d.post("/v1/models", mutated(lambda b: b["network"]["layers"][0].update(activation="softmax"))), 422,
       "invalid_value", "network.layers[0].activation", "softmax before the last layer")


def not_psd(b):
    b["data"] = {"mean": [0.5] * 4, "covariance": [[1, 2, 0, 0], [2, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}


expect(d.post("/v1/models", mutated(not_psd)), 422, "not_psd", "data.covariance", "non-PSD covariance")


def asym(b):
    b["data"] = {"mean": [0.5] * 4, "covariance": [[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}


r = d.post("/v1/models", mutated(asym))
ok(r.status == 422 and r.error_code() == "not_psd" and r.error_field().startswith("data.covariance"),
   "asymmetric covariance -> 422 not_psd", r)
expect(d.post("/v1/models", mutated(lambda b: b["data"]["samples"][3].append(0.5))), 422, "shape_mismatch",
       "data.samples[3]", "sample row of the wrong length")
r = d.post("/v1/models", mutated(lambda b: b["network"].update(layers=[b["network"]["layers"][0]] * 40)))
ok(r.status == 422 and r.error_code() == "limit_exceeded", "too many layers -> 422 limit_exceeded", r)

# ---- queries ----
expect(d.post("/v1/models/nope/interventions", {"output": 0, "feature": 0, "values": [0.5]}), 404,
       "model_not_found", "name", "interventions on an unknown model")
expect(d.post("/v1/models/good/interventions", {"output": 0, "feature": 0, "values": []}), 422,
       "limit_exceeded", "values", "empty values")
expect(d.post("/v1/models/good/interventions", {"output": 0, "feature": 0, "values": [0.1, "x"]}), 400,
       "bad_type", "values[1]", "non-number value")
expect(d.post("/v1/models/good/interventions", {"output": "nope", "feature": 0, "values": [0.5]}), 404,
       "unknown_output", "output", "unknown output name")
expect(d.post("/v1/models/good/interventions", {"output": 0, "feature": 17, "values": [0.5]}), 404,
       "unknown_feature", "feature", "feature index out of range")
expect(d.post("/v1/models/good/interventions", {"output": 0, "feature": 0, "values": [0.5], "estimator": "magic"}),
       422, "invalid_value", "estimator", "unknown estimator")
expect(d.post("/v1/models/good/interventions", {"output": 0, "feature": 0, "values": [0.5], "colour": 1}),
       400, "unknown_field", "colour", "unknown query field")
expect(d.get("/v1/models/good/regressors/y0/x0?num=1"), 400, "bad_parameter", "num", "num below the minimum")
expect(d.get("/v1/models/good/regressors/y0/x0?num=abc"), 400, "bad_parameter", "num", "num not a number")
expect(d.get("/v1/models/good/regressors/y0/x0?bogus=1"), 400, "bad_parameter", "bogus", "unknown query parameter")
expect(d.get("/v1/models/good/regressors/y9/x0"), 404, "unknown_output", "output", "regressor: unknown output")
expect(d.get("/v1/models/good/regressors/y0/x9"), 404, "unknown_feature", "feature", "regressor: unknown feature")
expect(d.post("/v1/models/good/attributions", {"output": 0, "inputs": [[0.1, 0.2]]}), 422, "shape_mismatch",
       "inputs", "attribution row of the wrong length")
expect(d.post("/v1/models/good/attributions", {"output": 0}), 400, "missing_field", "inputs", "attributions without inputs")
expect(d.post("/v1/models/good/regressors", {"features": ["x0"], "colour": 1}), 400, "unknown_field", "colour",
       "regressors job with an unknown field (checked before the 202)")
expect(d.post("/v1/models/good/regressors", {"features": "x0"}), 400, "bad_type", "features",
       "regressors job with features not an array")
expect(d.post("/v1/models/good/regressors", {"num": 1}), 422, "invalid_value", "num",
       "regressors job with num below the minimum")
expect(d.get("/v1/jobs/doesnotexist"), 404, "job_not_found", "id", "unknown job")
expect(d.delete("/v1/models/bad%20name"), 400, "bad_name", "name", "DELETE with a bad name")

# ---- nothing was lost or corrupted ----
ok(d.alive(), "daemon survived every malformed request")
r = d.get("/v1/models")
ok(r.status == 200 and [m["name"] for m in r.json["models"]] == ["good"], "only the valid model is registered", r)
r = d.post("/v1/models", good)
ok(r.status == 200 and r.json["version"] == 1, "the valid model is unchanged", r)
ok(d.stop() == 0, "clean shutdown")
d.cleanup()
done()
