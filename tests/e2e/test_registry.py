#!/usr/bin/env python3
"""End to end: model registry over real HTTP -- registration, idempotency, versioning, listing,
metadata, deletion, persistence across a clean restart and across kill -9, and the operational
endpoints (/healthz, /readyz, /metrics)."""

import copy
import signal

from acedtest import Daemon, diag, done, fixture_body, ok

d = Daemon().start()
body = fixture_body("mlp")

r = d.get("/healthz")
ok(r.status == 200 and r.json == {"status": "ok"}, "GET /healthz answers ok", r)
r = d.get("/readyz")
ok(r.status == 200 and r.json["status"] == "ready", "GET /readyz answers ready", r)

r = d.post("/v1/models", body)
ok(r.status == 201, "the shared fixture registers (201)", r)
v1 = r.json or {}
ok(v1.get("name") == "mlp" and v1.get("version") == 1, "first registration is version 1", r)
ok(str(v1.get("digest", "")).startswith("sha256:") and len(v1["digest"]) == 71, "digest is sha256:<64 hex>", r)

r = d.post("/v1/models", body)
ok(r.status == 200 and r.json["version"] == 1 and r.json["digest"] == v1["digest"],
   "identical content again answers 200 with the existing version", r)

# The same numbers spelled as integers where they are integral give the same content.
body_int = copy.deepcopy(body)
body_int["features"][0]["low"] = 0
body_int["features"][0]["high"] = 1
r = d.post("/v1/models", body_int)
ok(r.status == 200 and r.json["digest"] == v1["digest"], "1 and 1.0 are the same content", r)

body2 = copy.deepcopy(body)
body2["network"]["layers"][0]["bias"][0] += 0.5
r = d.post("/v1/models", body2)
ok(r.status == 201 and r.json["version"] == 2 and r.json["digest"] != v1["digest"],
   "different content under the same name creates version 2", r)
v2 = r.json

# Re-sending version 1's content answers with version 1, not a third version.
r = d.post("/v1/models", body)
ok(r.status == 200 and r.json["version"] == 1, "content of an older version answers with that version", r)

other = copy.deepcopy(body)
other["name"] = "other.model_v-2"
r = d.post("/v1/models", other)
ok(r.status == 201 and r.json["version"] == 1, "a second name registers", r)

r = d.get("/v1/models")
names = [m["name"] for m in (r.json or {}).get("models", [])]
ok(r.status == 200 and names == ["mlp", "other.model_v-2"], "GET /v1/models lists both, by name", r)
mlp = [m for m in r.json["models"] if m["name"] == "mlp"][0]
ok(mlp["version"] == 2 and mlp["n_features"] == 4 and mlp["n_outputs"] == 3 and mlp["n_samples"] == 200,
   "the list shows the latest version and its shape", mlp)

r = d.get("/v1/models/mlp")
md = r.json or {}
ok(r.status == 200 and md.get("version") == 2 and md.get("digest") == v2["digest"], "GET /v1/models/mlp: latest version", r)
ok([f["name"] for f in md.get("features", [])] == ["x0", "x1", "x2", "x3"] and md.get("outputs") == ["y0", "y1", "y2"],
   "metadata has features and outputs", md)
ok('"weights"' not in r.raw.decode() and '"samples"' not in r.raw.decode(), "metadata carries no weights and no samples")
ok([v["version"] for v in md.get("versions", [])] == [1, 2], "metadata lists the versions", md.get("versions"))

r = d.get("/v1/models/other.model_v-2")
ok(r.status == 200 and r.json["name"] == "other.model_v-2" and r.json["version"] == 1 and
   [v["version"] for v in r.json["versions"]] == [1],
   "a name sharing content with another shows its own name, version and versions", r)

r = d.get("/v1/models/nope")
ok(r.status == 404 and r.error_code() == "model_not_found" and r.error_field() == "name", "unknown model: 404 naming the field", r)

# Clean restart: everything is still there.
rc = d.stop()
ok(rc == 0, "SIGTERM exits 0", rc)
d.start()
r = d.get("/v1/models/mlp")
ok(r.status == 200 and r.json["version"] == 2 and r.json["digest"] == v2["digest"], "models survive a restart", r)

# kill -9 right after a 201: the model must be there after the restart.
body3 = copy.deepcopy(body)
body3["name"] = "acked"
r = d.post("/v1/models", body3)
ok(r.status == 201, "registered just before kill -9", r)
acked = r.json or {}
# Same content as mlp version 1 under another name: the same digest.
ok(acked.get("digest") == v1["digest"] and acked.get("version") == 1, "its digest is that of the content", r)
d.stop(sig=signal.SIGKILL)
d.start()
r = d.get("/v1/models/acked")
after = r.json or {}
ok(r.status == 200 and after.get("version") == 1 and after.get("digest") == acked.get("digest") and
   after.get("versions") == [{"version": 1, "digest": acked.get("digest"), "created_at": acked.get("created_at")}],
   "a 201-acknowledged model survives kill -9 with the digest and time it was acknowledged with",
   "before: %s\nafter: %r" % (acked, r))

r = d.delete("/v1/models/mlp")
ok(r.status == 200 and r.json["deleted_versions"] == 2, "DELETE removes both versions", r)
r = d.get("/v1/models/mlp")
ok(r.status == 404, "deleted model is gone", r)
r = d.delete("/v1/models/mlp")
ok(r.status == 404 and r.error_code() == "model_not_found", "deleting again: 404", r)
r = d.post("/v1/models", body)
ok(r.status == 201 and r.json["version"] == 1, "a deleted name starts again at version 1", r)

r = d.get("/metrics")
text = r.raw.decode()
ok(r.status == 200 and r.headers.get("Content-Type", "").startswith("text/plain"), "GET /metrics is Prometheus text", r.headers)
ok('aced_http_requests_total{route="POST /v1/models",status="201"}' in text, "metrics count requests by route and status")
ok('aced_http_request_duration_seconds_bucket{route="POST /v1/models",le="+Inf"}' in text, "metrics have a latency histogram")
ok("aced_models_registered 3" in text, "metrics count registered models", [l for l in text.splitlines() if "models" in l])
for name in ("aced_cache_requests_total", "aced_queue_depth", "aced_jobs_finished_total"):
    ok(name in text, "metrics expose %s" % name)

ok(d.alive(), "daemon still up")
ok(d.stop() == 0, "clean shutdown")
diag("log tail:\n" + "\n".join(d.read_log().splitlines()[-5:]))
d.cleanup()
done()
