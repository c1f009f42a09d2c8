#!/usr/bin/env python3
"""The web view (GET /ui/) in a real browser: Debian's chromium, headless, driven over its DevTools
protocol (tests/e2e/cdp.py).  Registers two models, opens the page, waits for the plots, checks the DOM
(one plot per feature, each with its band, mean and baseline; the warnings of the sharp classifier
shown, and in the large view), the progress bar of the regressors job, attributions as bar charts with
the explanations side by side, no console error (a Content-Security-Policy violation is one), the
token prompt when aced has a token file, and the page behind a reverse proxy under a path prefix.
Saves screenshots as test artifacts (ACED_BUILDDIR/test-artifacts/).  Skipped, naming the package,
where chromium is not installed."""

import http.client
import http.server
import json
import os
import subprocess
import threading
import time

from acedtest import ACED, BUILDDIR, Daemon, diag, done, fixture, fixture_body, ok, skip_all
from cdp import Browser, chromium_path

if chromium_path() is None:
    skip_all("Debian package chromium is not installed (tools/setup installs it)")

ART = os.path.join(BUILDDIR, "test-artifacts")
os.makedirs(ART, exist_ok=True)

d = Daemon().start()
ok(d.post("/v1/models", fixture_body("mlp")).status == 201, "mlp registers")
sharp = fixture("sharp_classifier.json")
sharp.pop("reference", None)
sharp["name"] = "sharp"
ok(d.post("/v1/models", sharp).status == 201, "sharp registers")
nfeat = len([f for f in sharp["features"] if not f.get("low") == f.get("high")])

b = Browser()
try:
    b.call("Runtime.enable")
    b.call("Log.enable")
    b.call("Page.enable")

    def console_errors():
        out = []
        for e in b.events:
            if e["method"] == "Runtime.exceptionThrown":
                out.append(e["params"]["exceptionDetails"].get("text", "") + " " +
                           json.dumps(e["params"]["exceptionDetails"].get("exception", {}).get("description", "")))
            elif (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
                  and e["params"]["entry"].get("source") != "network"):  # the 422s asked for above
                out.append(e["params"]["entry"]["text"])
            elif e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error":
                out.append(json.dumps(e["params"]["args"])[:300])
        return out

    base = "http://127.0.0.1:%d" % d.port
    b.call("Page.navigate", url=base + "/ui/?model=sharp&output=virginica")
    ready = b.wait_for("document.querySelector('#multiples.ready') !== null", 90)
    ok(ready, "the small multiples are drawn", b.evaluate("document.getElementById('status').textContent"))
    plots = b.evaluate("document.querySelectorAll('#multiples .plot').length")
    svgs = b.evaluate("document.querySelectorAll('#multiples .plot svg').length")
    ok(plots == nfeat and svgs == nfeat, "one plot per feature (%d features): %s plots, %s charts" % (nfeat, plots, svgs))
    bands = b.evaluate("""Array.prototype.map.call(document.querySelectorAll('#multiples .plot svg'), function (s) {
        var band = s.querySelector('path.band'), mean = s.querySelector('path.mean'), base = s.querySelector('line.baseline');
        return [band ? band.getAttribute('d').length : 0, band ? band.getBBox().height : 0,
                mean ? mean.getAttribute('d').length : 0, base ? 1 : 0]; })""")
    ok(bands and all(x[0] > 100 and x[1] > 0 and x[2] > 100 and x[3] == 1 for x in bands),
       "each plot has its band (a filled area of non-zero height), mean and baseline", bands)
    feats = b.evaluate("Array.prototype.map.call(document.querySelectorAll('#multiples svg'), function (s) { return s.getAttribute('data-feature'); })")
    ok(feats == [f["name"] for f in sharp["features"]], "the plots are the model's features, in order", feats)
    warns = b.evaluate("document.querySelectorAll('#multiples .plot .warn').length")
    ok(warns == nfeat, "the sharp classifier's warnings are shown on every plot (%s)" % warns)
    prog = b.evaluate("[document.getElementById('progress-bar').value, document.getElementById('progress-bar').max, document.getElementById('progress-text').textContent]")
    ok(prog and prog[0] == prog[1] == nfeat and "fitted now" in prog[2], "the regressors job's progress bar is full", prog)
    meta = b.evaluate("document.getElementById('model-meta').textContent")
    ok(meta and "sepal_length" in meta and "virginica" in meta, "the model's metadata is shown")
    rows = b.evaluate("document.querySelectorAll('#model-list tbody tr').length")
    ok(rows == 2, "the model list has both models (%s)" % rows)
    n = b.screenshot(os.path.join(ART, "ui-multiples.png"))
    ok(n > 10000, "screenshot of the small multiples saved (%d bytes)" % n)

    # The large view: estimator, cache state and warnings from meta.
    b.evaluate("document.querySelector('#multiples .plot[data-feature=\"petal_width\"]').click(), 1")
    large = b.wait_for("!document.getElementById('large').hidden && document.getElementById('large-meta').textContent", 10)
    ok(large and "montecarlo" in large and "cache" in large, "the large view names the estimator and the cache state", large)
    lw = b.evaluate("document.querySelectorAll('#large-meta .warnings li').length")
    ok(lw >= 1, "the large view lists the warnings (%s)" % lw)
    ok(b.evaluate("document.querySelector('#large-plot svg path.band') !== null"), "the large view draws the band")
    b.screenshot(os.path.join(ART, "ui-large.png"))
    b.evaluate("document.getElementById('large-close').click(), 1")

    # Attributions: CSV with a header, causal and gradient side by side.
    b.evaluate("""(function () {
        document.getElementById('rows').value = 'petal_width,petal_length,sepal_width,sepal_length\\n0.9,0.8,0.2,0.3\\n0.1,0.2,0.5,0.5';
        document.querySelector('#methods input[value=gradient]').checked = true;
        document.getElementById('attribute').click(); return 1; })()""")
    charts = b.wait_for("document.querySelectorAll('#attr-out .attr-row svg.bars').length", 30)
    ok(charts == 4, "attributions: two rows, causal and gradient side by side (%s charts)" % charts)
    bars = b.evaluate("document.querySelectorAll('#attr-out svg.bars rect.bar').length")
    ok(bars == 4 * nfeat, "one bar per feature in each chart (%s)" % bars)
    b.evaluate("document.getElementById('rows').value = '1,2'; document.getElementById('attribute').click(), 1")
    err = b.wait_for("document.querySelector('#attr-out .error') && document.querySelector('#attr-out .error').textContent", 10)
    ok(err and "inputs" in err, "a refused row shows the server's error with its field", err)

    # Uploading a file fills the rows (DevTools sets the file input as a user would).
    up = os.path.join(ART, "rows.json")
    with open(up, "w") as f:
        json.dump({"inputs": [[0.5, 0.5, 0.5, 0.5]]}, f)
    node = b.call("DOM.querySelector", nodeId=b.call("DOM.getDocument")["root"]["nodeId"], selector="#rows-file")
    b.call("DOM.setFileInputFiles", files=[up], nodeId=node["nodeId"])
    got = b.wait_for("document.getElementById('rows').value.indexOf('inputs') >= 0 && document.getElementById('rows').value", 10)
    ok(got and json.loads(got) == {"inputs": [[0.5, 0.5, 0.5, 0.5]]}, "an uploaded JSON file fills the rows", got)
    b.evaluate("document.getElementById('attribute').click(), 1")
    charts = b.wait_for("document.querySelectorAll('#attr-out .attr-row').length == 1 && "
                        "document.querySelectorAll('#attr-out svg.bars').length", 30)
    ok(charts == 2, "and is attributed: one row, two methods (%s)" % charts)

    # The page's own functions, in the page: row parsing and the recurrent heat map.
    parsed = b.evaluate("""JSON.stringify([
        parseRows('b,a\\n2,1\\n4,3', ['a', 'b']),
        parseRows('1;2\\n3\\t4', ['a', 'b']),
        parseRows('{"inputs": [[1, 2]]}', ['a', 'b']),
        parseRows('[[[1, 2], [3, 4]]]', ['a', 'b']),
        parseRows('[5, 6]', ['a', 'b'])])""")
    ok(parsed == json.dumps([[[1, 2], [3, 4]], [[1, 2], [3, 4]], [[1, 2]], [[[1, 2], [3, 4]]], [[5, 6]]],
                            separators=(",", ":")),
       "parseRows: CSV with a header in another order, ; and tab separators, JSON forms, sequences", parsed)
    errs_rows = b.evaluate("""[['1,2\\n3,x', ['a', 'b']], ['a,c\\n1,2', ['a', 'b']], ['', ['a']]].map(function (c) {
        try { parseRows(c[0], c[1]); return 'parsed'; } catch (e) { return e.message; } })""")
    ok(errs_rows and "row 2, column 2: not a number" in errs_rows[0] and "no column 'b'" in errs_rows[1] and "no input rows" in errs_rows[2],
       "parseRows: bad cells, a header without a feature, nothing: errors saying where", errs_rows)
    cells = b.evaluate("""(function () { var d = document.createElement('div'); document.body.appendChild(d);
        chart(d, 'recurrent', ['u', 'v', 'w', 'z'], [[0.1, -0.2, 0, 0.3], [0, 0, 0.5, -0.5], [1, 0, 0, 0]]);
        var r = d.querySelectorAll('svg.heatmap rect.cell'), f = [];
        for (var i = 0; i < r.length; i++) f.push(r[i].getAttribute('fill'));
        d.remove(); return [r.length, f[0], f[8], f[1]]; })()""")
    ok(cells and cells[0] == 12 and cells[2] != cells[3], "a row of timesteps x features is drawn as a heat map "
       "(3 x 4 cells, colour by sign and size)", cells)

    # Another output: the plots are redrawn for it (regressors from the same job API).
    b.evaluate("var s = document.getElementById('output'); s.value = 'setosa'; s.dispatchEvent(new Event('change')), 1")
    again = b.wait_for("document.querySelector('#multiples.ready') && document.querySelector('#multiples svg').getAttribute('data-output')", 60)
    ok(again == "setosa", "changing the output redraws the plots", again)
    b.evaluate("var s = document.getElementById('estimator'); s.value = 'taylor'; s.dispatchEvent(new Event('change')), 1")
    est = b.wait_for("document.querySelector('#multiples.ready') && Array.prototype.map.call("
                     "document.querySelectorAll('#multiples .plot .est'), function (e) { return e.textContent; })", 60)
    ok(est == ["taylor"] * nfeat, "estimator taylor asked: every plot says taylor (%s)" % est)
    ok(b.evaluate("document.querySelectorAll('#multiples .plot .warn').length") == nfeat,
       "and warns that Eq. 4 is unreliable on the sharp classifier")
    ok(b.evaluate("document.getElementById('token-form').hidden") is True, "auth off on loopback: no token prompt")
    # A recurrent model: a timestep to choose (default the last), one plot per per-step feature,
    # each the regressor at that step.
    gru = [c["model"] for c in fixture("recurrent_ref.json")["cases"] if c["model"]["name"] == "gru_last"][0]
    ok(d.post("/v1/models", gru).status == 201, "a GRU registers")
    b.call("Page.navigate", url=base + "/ui/?model=gru_last")
    rdy = b.wait_for("document.querySelector('#multiples.ready') !== null && "
                     "document.querySelectorAll('#multiples .plot svg').length", 90)
    steps = b.evaluate("[document.getElementById('timestep-label').hidden, "
                       "document.getElementById('timestep').options.length, document.getElementById('timestep').value]")
    ok(rdy == len(gru["features"]) and steps == [False, gru["sequence_length"], str(gru["sequence_length"] - 1)],
       "recurrent: a plot per feature (%s) and a timestep choice defaulting to the last (%s)" % (rdy, steps))
    b.evaluate("var s = document.getElementById('timestep'); s.value = '1'; s.dispatchEvent(new Event('change')), 1")
    ok(b.wait_for("document.querySelector('#multiples.ready') !== null && "
                  "document.querySelectorAll('#multiples .plot svg').length == %d && "
                  "document.querySelectorAll('#multiples .plot .error').length == 0" % len(gru["features"]), 90),
       "another timestep: its regressors are fitted and drawn", b.evaluate("document.getElementById('status').textContent"))
    # its attributions: one sequence in, a timesteps x features heat map per method out (ACE and
    # integrated gradients), no error
    seq = json.dumps({"inputs": [gru["data"]["sequences"][0]]})
    b.evaluate("Array.prototype.forEach.call(document.querySelectorAll('#methods input'), function (c) {"
               " c.checked = c.value === 'ace' || c.value === 'integrated_gradients'; });"
               "document.getElementById('rows').value = %s; document.getElementById('attribute').click(), 1"
               % json.dumps(seq))
    want = 2 * gru["sequence_length"] * len(gru["features"])
    cells = b.wait_for("document.querySelectorAll('#attr-out svg.heatmap rect').length >= %d && "
                       "document.querySelectorAll('#attr-out svg.heatmap rect').length" % want, 60)
    errs = b.evaluate("document.querySelectorAll('#attr-out .error, #attr-out .note').length")
    ok(cells == want and errs == 0,
       "recurrent attributions: two %s-cell heat maps (ACE, integrated gradients; T x features), "
       "no error or note" % (want // 2), (cells, errs))
    b.call("Page.navigate", url=base + "/ui/?model=mlp")
    ok(b.wait_for("document.querySelector('#multiples.ready') !== null", 60), "the mlp's plots are drawn")
    ok(b.evaluate("document.getElementById('timestep-label').hidden") is True, "a feedforward model: no timestep")
    # Opened again, the browser revalidates what it kept: 304s from aced for the files and regressors.
    b.call("Network.enable")
    b.events.clear()
    b.call("Page.navigate", url=base + "/ui/?model=mlp")
    ok(b.wait_for("document.querySelector('#multiples.ready') !== null", 60), "the mlp's plots are drawn again")
    b.evaluate("1")
    seen = {}
    for e in b.events:
        if e["method"] == "Network.responseReceived":
            resp = e["params"]["response"]
            seen[resp["url"].split("?")[0].rsplit("/", 2)[-2:][-1]] = resp["status"]
    ok(seen.get("app.js") == 304 and seen.get("style.css") == 304,
       "opened again: the browser revalidates the page's files, aced answers 304", seen)
    # fetch() reports the cached 200 to the page; aced's access log shows what it answered
    time.sleep(1.5)  # access_log_flush_ms
    lines = [l for l in d.read_log().splitlines() if "/v1/models/mlp/regressors/y0/" in l]
    n304 = len([l for l in lines if " 304 " in l])
    ok(n304 == 4, "and the regressors: 4 answered 304 (If-None-Match from the browser's cache)", lines[-8:])
    b.call("Network.disable")
    b.screenshot(os.path.join(ART, "ui.png"))
    errs = console_errors()
    ok(not errs, "no console error and no Content-Security-Policy violation", errs)
    # The policy holds in the browser: an inline script added to the page does not run, and says so.
    ran = b.evaluate("(function () { var s = document.createElement('script'); s.textContent = 'window.pwned = 1';"
                     " document.body.appendChild(s); return window.pwned === 1; })()")
    b.evaluate("1")  # let the violation report arrive
    blocked = [e for e in console_errors() if "Content Security Policy" in e]
    ok(ran is False and blocked, "an inline script is refused by the Content-Security-Policy", (ran, console_errors()))
finally:
    b.close()
d.stop()

# With a token file: the page asks for a token, keeps it for the tab, and then shows the models.
token = "ui-test-token-0123456789abcdef"
tf = os.path.join(d.workdir, "tokens")
line = subprocess.run([ACED, "--hash-token", "viewer", "read"], input=token.encode(), capture_output=True,
                      check=True).stdout.decode()
with open(tf, "w") as f:
    f.write(line)
da = Daemon(args=["--token_file=" + tf], token=token).start()
da.post("/v1/models", fixture_body("mlp"), token=None)  # needs write: refused, so register below
wr = "ui-writer-token-0123456789abcdef"
line2 = subprocess.run([ACED, "--hash-token", "pipeline", "read,write"], input=wr.encode(), capture_output=True,
                       check=True).stdout.decode()
with open(tf, "a") as f:
    f.write(line2)
da.stop()
da.start()
ok(da.post("/v1/models", fixture_body("mlp"), token=wr).status == 201, "auth: mlp registers with the write token")
b = Browser()
try:
    b.call("Page.enable")
    b.call("Page.navigate", url="http://127.0.0.1:%d/ui/" % da.port)
    shown = b.wait_for("!document.getElementById('token-form').hidden", 20)
    ok(shown, "auth: the page asks for a token")
    ok(b.evaluate("document.querySelectorAll('#multiples .plot').length") == 0, "auth: nothing is shown without it")
    b.evaluate("document.getElementById('token').value = %s; document.querySelector('#token-form button').click(), 1"
               % json.dumps(token))
    ok(b.wait_for("document.querySelector('#multiples.ready') !== null", 60), "auth: with the token the plots are drawn")
    ok(b.evaluate("sessionStorage.getItem('aced-token')") == token, "auth: the token is kept in sessionStorage")
finally:
    b.close()
da.stop()

# Behind a reverse proxy under /aced (it strips the prefix and sends X-Forwarded-Prefix).
dp = Daemon(args=["--trusted_proxies=127.0.0.1"]).start()
dp.post("/v1/models", fixture_body("mlp"))


class Proxy(http.server.BaseHTTPRequestHandler):
    def forward(self):
        if not self.path.startswith("/aced/"):
            self.send_error(404)
            return
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        h = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        h["X-Forwarded-Prefix"] = "/aced"
        c = http.client.HTTPConnection("127.0.0.1", dp.port, timeout=60)
        c.request(self.command, self.path[len("/aced"):], body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.proxied.append(self.path)

    do_GET = do_POST = do_DELETE = forward
    proxied = []

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
threading.Thread(target=srv.serve_forever, daemon=True).start()
b = Browser()
try:
    b.call("Page.enable")
    b.call("Page.navigate", url="http://127.0.0.1:%d/aced/ui/" % srv.server_address[1])
    ok(b.wait_for("document.querySelector('#multiples.ready') !== null", 60),
       "under a path prefix: the page and its data load through the proxy")
    outside = [p for p in Proxy.proxied if not p.startswith("/aced/")]
    ok(not outside and any(p.startswith("/aced/v1/jobs/") for p in Proxy.proxied),
       "under a path prefix: every request stays under /aced/", Proxy.proxied[:20])
finally:
    b.close()
    srv.shutdown()
dp.stop()
diag("screenshots in " + ART)
done()
