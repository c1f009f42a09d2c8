#!/usr/bin/env python3
"""End to end: examples/register_onnx.py against the real daemon.  Without torch: an existing export
(tests/data/onnx/) registered from the command line and with registration_body()/post(), the same
digest both ways, GET says source onnx; aced's refusal reported with its code and field.  With torch
(Debian's python3-torch at /usr/bin/python3): the demo, exported by torch.onnx.export and registered."""

import json
import os
import subprocess
import sys
import tempfile

from acedtest import DATA, SRCDIR, Daemon, done, ok, skip

sys.path.insert(0, os.path.join(SRCDIR, "examples"))
import register_onnx as ro  # noqa: E402

ref = json.load(open(os.path.join(DATA, "onnx", "ff_ref.json")))
c = ref["cases"][0]
path = os.path.join(DATA, "onnx", c["file"])
d = Daemon().start()
url = "http://127.0.0.1:%d" % d.port
script = os.path.join(SRCDIR, "examples", "register_onnx.py")

with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    json.dump(c["samples"], f)
env = dict(os.environ, ACED_URL=url)
p = subprocess.run([sys.executable, script, "--onnx", path, "--samples", f.name, "--name", "cli"],
                   capture_output=True, text=True, env=env, timeout=60)
ok(p.returncode == 0 and "cli version 1" in p.stdout and "source onnx" in p.stdout and
   '"opset": %d' % c["opset"] in p.stdout, "the script registers an existing export", p.stdout + p.stderr)

cli = ro.post(None, url=url, path="/v1/models/cli")
same = ro.post(ro.registration_body(open(path, "rb").read(), "same", ["x0", "x1", "x2"], c["samples"]),
               url=url)
ok(same["created"] and same["digest"] == cli["digest"],
   "registration_body() + post() with the script's names: the same digest", same)
body = ro.registration_body(open(path, "rb").read(), "lib", ["a", "b", "c"], c["samples"],
                            outputs=["p", "q"])
reply = ro.post(body, url=url)
ok(reply["created"] and reply["digest"] != cli["digest"],
   "other feature and output names: another digest (names are part of the model)", reply)
md = ro.post(None, url=url, path="/v1/models/lib")
ok(md["source"] == "onnx" and md["outputs"] == ["p", "q"] and [f["name"] for f in md["features"]] == ["a", "b", "c"],
   "GET: source onnx, the names given", md.get("source"))

bad = ro.registration_body(open(os.path.join(DATA, "onnx", "bad_clip.onnx"), "rb").read(), "bad",
                           ["a", "b", "c"], c["samples"])
try:
    ro.post(bad, url=url)
    ok(False, "an unsupported operator is refused")
except RuntimeError as e:
    ok("unsupported_operator (422) at network.model" in str(e) and "Clip" in str(e),
       "aced's refusal is reported with its code, field and message: %s" % e)

torch_py = "/usr/bin/python3"
has_torch = os.path.exists(torch_py) and subprocess.run(
    [torch_py, "-c", "import torch.onnx"], capture_output=True).returncode == 0
if has_torch:
    p = subprocess.run([torch_py, script, "--name", "demo"], capture_output=True, text=True, env=env,
                       timeout=300)
    ok(p.returncode == 0 and "demo version 1" in p.stdout and "source onnx" in p.stdout,
       "the demo: a torch.onnx.export registered", p.stdout + p.stderr[-500:])
    md = ro.post(None, url=url, path="/v1/models/demo")
    ok(md["outputs"] == ["y0", "y1", "y2"] and md["onnx"]["producer"].startswith("pytorch"),
       "the demo's outputs default to y0..y2; producer %s" % md["onnx"]["producer"])
else:
    skip("the demo export", "PyTorch is not installed (Debian: apt-get install python3-torch)")
os.unlink(f.name)
d.stop()
done()
