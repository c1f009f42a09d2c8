#!/usr/bin/env python3
"""End to end over HTTP: CORS (cors_origins, preflight OPTIONS, Vary: Origin), caching (Cache-Control on
every reply, ETag and 304 on regressors and on the web view's files), and the web view's static files
(/ui redirect, media types, Content-Security-Policy, path traversal refused, the configurable folder
and chart library, the size limit), also with concurrent clients revalidating at once."""

import os
import tempfile
import threading

from acedtest import Daemon, done, fixture_body, ok

d = Daemon().start()
ok(d.post("/v1/models", fixture_body("mlp")).status == 201, "mlp registers")
REG = "/v1/models/mlp/regressors/y1/x2?num=30"

# ---- without cors_origins: no CORS header at all ----
r = d.get("/v1/models", headers={"Origin": "https://dash.example.org"})
ok(r.status == 200 and not any(k.lower().startswith("access-control") for k in r.headers) and "Vary" not in r.headers,
   "cors_origins empty: no CORS header, no Vary", r.headers)
r = d.request("OPTIONS", "/v1/models/mlp/attributions",
              headers={"Origin": "https://dash.example.org", "Access-Control-Request-Method": "POST"})
ok(r.status == 204 and r.headers.get("Allow") == "POST, OPTIONS" and "Access-Control-Allow-Origin" not in r.headers,
   "OPTIONS answers 204 with Allow, and no CORS header when none is configured", (r.status, r.headers))
r = d.request("OPTIONS", "/v1/nothing")
ok(r.status == 404 and r.error_code() == "not_found", "OPTIONS on a path without routes is 404", r)
r = d.request("OPTIONS", "/v1/models/mlp")
ok(r.status == 204 and r.headers.get("Allow") == "GET, HEAD, DELETE, OPTIONS", "OPTIONS lists every method of the path",
   r.headers)

# ---- caching: regressors ----
r1 = d.get(REG)
etag = r1.headers.get("ETag", "")
ok(r1.status == 200 and etag.startswith('W/"') and r1.headers.get("Cache-Control") == "private, no-cache",
   "a regressor has a weak ETag and Cache-Control: private, no-cache", r1.headers)
r2 = d.get(REG)
ok(r2.headers.get("ETag") == etag and r2.json["meta"]["cache"] == "hit", "the same regressor has the same ETag")
r3 = d.get(REG, headers={"If-None-Match": etag})
ok(r3.status == 304 and r3.raw == b"" and r3.headers.get("ETag") == etag
   and r3.headers.get("Cache-Control") == "private, no-cache", "If-None-Match with it: 304, no body, same ETag", r3)
r = d.get(REG, headers={"If-None-Match": 'W/"0000000000000000-0000000000000000", ' + etag[2:]})
ok(r.status == 304, "a list holding the tag (strong form too) is 304 (weak comparison)", r)
r = d.get(REG, headers={"If-None-Match": '"something-else"'})
ok(r.status == 200 and r.json["points"], "another tag: 200 with the body", r)
r = d.get("/v1/models/mlp/regressors/y1/x2?num=31")
ok(r.status == 200 and r.headers.get("ETag") not in (None, etag), "other parameters, another ETag")
r = d.get("/v1/models/mlp/regressors/y2/x2?num=30")
ok(r.headers.get("ETag") not in (None, etag), "another output, another ETag")
r = d.get("/v1/models/mlp/regressors/nope/x2", headers={"If-None-Match": "*"})
ok(r.status == 404 and r.error_field() == "output", "If-None-Match: * is not honoured: an unknown output is 404", r)
r = d.get("/v1/models/ghost/regressors/y1/x2", headers={"If-None-Match": etag})
ok(r.status == 404 and r.headers.get("Cache-Control") == "no-store" and "ETag" not in r.headers,
   "an error is no-store, without an ETag", r.headers)
# a new version of the model changes the tag
body = fixture_body("mlp")
body["description"] = "second version"
ok(d.post("/v1/models", body).status == 201, "mlp v2 registers")
r = d.get(REG, headers={"If-None-Match": etag})
ok(r.status == 200 and r.headers.get("ETag") != etag, "after a new version the old tag no longer matches", r.headers)
etag = r.headers.get("ETag")

# ---- Cache-Control everywhere else ----
for method, path, body in [("GET", "/v1/models", None), ("GET", "/v1/models/mlp", None), ("GET", "/healthz", None),
                           ("GET", "/metrics", None), ("GET", "/openapi.yaml", None),
                           ("POST", "/v1/models/mlp/attributions", {"output": "y0", "inputs": [[0.1, 0.2, 0.3, 0.4]]})]:
    r = d.request(method, path, body=body)
    ok(r.status == 200 and r.headers.get("Cache-Control") == "no-store" and "ETag" not in r.headers,
       "%s %s: Cache-Control: no-store" % (method, path), r.headers)

# ---- the web view's files ----
r = d.get("/ui")
ok(r.status == 301 and r.headers.get("Location") == "ui/", "/ui redirects to ui/ (relative: works under a prefix)",
   r.headers)
r = d.get("/ui/")
csp = r.headers.get("Content-Security-Policy", "")
ok(r.status == 200 and r.headers.get("Content-Type") == "text/html; charset=utf-8" and b"app.js" in r.raw,
   "/ui/ is the page", r.headers)
ok("script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
   and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, "with a strict Content-Security-Policy", csp)
ok(b"<script>" not in r.raw and b"style=" not in r.raw and b"onclick" not in r.raw and b"http://" not in r.raw
   and b'src="/' not in r.raw and b'href="/' not in r.raw, "no inline script or style, relative URLs only")
ui_etag = r.headers.get("ETag")
ok(r.headers.get("Cache-Control") == "no-cache" and ui_etag, "the page: Cache-Control: no-cache with an ETag",
   r.headers)
r = d.get("/ui/", headers={"If-None-Match": ui_etag})
ok(r.status == 304, "revalidated: 304", r)
for name, ctype in [("app.js", "text/javascript; charset=utf-8"), ("style.css", "text/css; charset=utf-8"),
                    ("index.html", "text/html; charset=utf-8")]:
    r = d.get("/ui/" + name)
    ok(r.status == 200 and r.headers.get("Content-Type") == ctype and r.headers.get("X-Content-Type-Options") == "nosniff",
       "/ui/%s is %s" % (name, ctype), r.headers)
r = d.get("/ui/d3.min.js")
if os.path.exists("/usr/share/javascript/d3/d3.min.js"):
    ok(r.status == 200 and b"d3" in r.raw[:2000], "/ui/d3.min.js is Debian's libjs-d3", r.headers)
else:
    ok(r.status == 404 and r.error_code() == "not_found", "/ui/d3.min.js without libjs-d3: 404", r)
r = d.request("HEAD", "/ui/app.js")
ok(r.status == 200 and r.raw == b"", "HEAD /ui/app.js", r)
for bad in ["..%2F..%2Fetc%2Fpasswd", "..%2Fapi%2Fopenapi.yaml", "%2Fetc%2Fpasswd", ".hidden.js", "..", "a%00.js",
            "app.js%2F", "x.exe", "Makefile", "%2e%2e%2fREADME.md"]:
    r = d.get("/ui/" + bad)
    ok(r.status == 404 and r.error_code() == "not_found" and r.error_field() == "file",
       "/ui/%s is refused (404 naming the file)" % bad, r)
r = d.get("/ui/a/b.js")
ok(r.status == 404, "no sub-folders", r)
r = d.post("/ui/", {"x": 1})
ok(r.status == 405, "POST /ui/ is 405", r)

# Concurrent clients revalidating the page and a regressor at once.
bad = []


def client():
    for _ in range(25):
        a = d.get("/ui/app.js", headers={"If-None-Match": "W/\"stale\""})
        b = d.get(REG, headers={"If-None-Match": etag})
        if a.status != 200 or b"loadModels" not in a.raw or b.status != 304:
            bad.append((a.status, b.status))


ts = [threading.Thread(target=client) for _ in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
ok(not bad and d.alive(), "8 concurrent clients x 25: every file whole, every revalidation 304", bad[:5])
d.stop()

# ---- cors_origins set ----
ui = tempfile.mkdtemp(prefix="aced-ui-")
with open(os.path.join(ui, "index.html"), "w") as f:
    f.write("<!doctype html><title>mine</title>")
with open(os.path.join(ui, "big.js"), "wb") as f:
    f.write(b"/" * (2 * 1024 * 1024 + 1))
os.symlink("/etc/hostname", os.path.join(ui, "link.js"))
lib = os.path.join(ui, "chart.js")
with open(lib, "w") as f:
    f.write("var d3 = {};")
dc = Daemon(args=["--cors_origins=https://dash.example.org, http://localhost:3000", "--ui_dir=" + ui,
                  "--ui_chart_library=" + lib]).start()
dc.post("/v1/models", fixture_body("mlp"))
O = {"Origin": "https://dash.example.org"}
r = dc.request("OPTIONS", "/v1/models/mlp/attributions",
               headers=dict(O, **{"Access-Control-Request-Method": "POST",
                                  "Access-Control-Request-Headers": "authorization, content-type"}))
h = r.headers
ok(r.status == 204 and h.get("Access-Control-Allow-Origin") == "https://dash.example.org"
   and h.get("Access-Control-Allow-Methods") == "POST, OPTIONS"
   and h.get("Access-Control-Allow-Headers") == "Authorization, Content-Type"
   and h.get("Access-Control-Max-Age") == "600" and h.get("Vary") == "Origin",
   "preflight from an allowed origin: methods, headers, max age, Vary: Origin", h)
r = dc.get(REG, headers=O)
ok(r.status == 200 and r.headers.get("Access-Control-Allow-Origin") == "https://dash.example.org"
   and "ETag" in r.headers.get("Access-Control-Expose-Headers", "") and r.headers.get("Vary") == "Origin",
   "a GET from it: Allow-Origin, ETag exposed, Vary", r.headers)
r = dc.post("/v1/models/mlp/attributions", {"output": "nope", "inputs": [[0, 0, 0, 0]]},
            headers={"Origin": "http://localhost:3000"})
ok(r.status in (404, 422) and r.headers.get("Access-Control-Allow-Origin") == "http://localhost:3000",
   "errors carry the CORS headers too (the page can read the field)", r.headers)
r = dc.get("/v1/models", headers={"Origin": "https://evil.example"})
ok(r.status == 200 and "Access-Control-Allow-Origin" not in r.headers and r.headers.get("Vary") == "Origin",
   "another origin: no Allow-Origin, still Vary: Origin", r.headers)
r = dc.request("OPTIONS", "/v1/models", headers={"Origin": "https://evil.example",
                                                  "Access-Control-Request-Method": "POST"})
ok(r.status == 204 and "Access-Control-Allow-Origin" not in r.headers, "its preflight gets no permission", r.headers)
r = dc.get("/v1/models")
ok(r.status == 200 and r.headers.get("Vary") == "Origin" and "Access-Control-Allow-Origin" not in r.headers,
   "no Origin (same-origin or curl): Vary only")
r = dc.get("/ui/")
ok(r.status == 200 and b"mine" in r.raw, "ui_dir: the page comes from the configured folder", r)
r = dc.get("/ui/d3.min.js")
ok(r.status == 200 and r.raw == b"var d3 = {};", "ui_chart_library: the configured file is ui/d3.min.js", r)
r = dc.get("/ui/app.js")
ok(r.status == 404, "a file not in ui_dir: 404", r)
r = dc.get("/ui/big.js")
ok(r.status == 500 and r.error_code() == "internal", "a file over ACED_UI_FILE_MAX: 500, not served", r)
r = dc.get("/ui/link.js")
ok(r.status == 404, "a symbolic link in ui_dir is not followed", r)
ok(dc.alive(), "aced still running")
dc.stop()

# cors_origins is checked at start-up
for bad in ["dash.example.org", "https://dash.example.org/path", "https://a b"]:
    db = Daemon(args=["--cors_origins=" + bad])
    db.start(wait=False)
    rc = db.proc.wait(timeout=10)
    ok(rc != 0 and "cors_origins" in db.read_log(), "cors_origins '%s' is refused at start" % bad, db.read_log()[-300:])
da = Daemon(args=["--cors_origins=*"]).start()
r = da.get("/v1/models", headers={"Origin": "https://anything.example"})
ok(r.headers.get("Access-Control-Allow-Origin") == "*", "cors_origins = *: Allow-Origin: *", r.headers)
da.stop()
done()
