#!/usr/bin/env python3
"""tools/ui_screenshot.py -- the README's screenshot of the web view (doc/ui.png): starts the built
aced on a free port, registers examples/iris-demo.json, opens /ui/ in Debian's headless chromium
(tests/e2e/cdp.py), waits for the plots and saves the page.  Run from the build tree:

    python3 tools/ui_screenshot.py [doc/ui.png]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from acedtest import SRCDIR, Daemon  # noqa: E402
from cdp import Browser  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRCDIR, "doc", "ui.png")
d = Daemon().start()
import json  # noqa: E402
r = d.post("/v1/models", json.load(open(os.path.join(SRCDIR, "examples", "iris-demo.json"))))
assert r.status == 201, r
b = Browser(width=1280, height=1040)
try:
    b.call("Page.enable")
    b.call("Emulation.setDeviceMetricsOverride", width=1280, height=1010, deviceScaleFactor=1, mobile=False)
    b.call("Page.navigate", url="http://127.0.0.1:%d/ui/?model=iris-demo&output=virginica" % d.port)
    assert b.wait_for("document.querySelector('#multiples.ready') !== null", 90), "no plots"
    b.evaluate("""(function () {
        document.getElementById('rows').value = 'sepal_length,sepal_width,petal_length,petal_width\\n0.2,0.7,0.9,0.8';
        document.querySelector('#methods input[value=integrated_gradients]').checked = true;
        document.getElementById('attribute').click(); return 1; })()""")
    assert b.wait_for("document.querySelectorAll('#attr-out svg.bars').length == 2", 30), "no attributions"
    print("%s: %d bytes" % (out, b.screenshot(out)))
finally:
    b.close()
    d.stop()
