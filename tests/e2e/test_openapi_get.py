#!/usr/bin/env python3
"""End to end: GET /openapi.yaml serves the API description (issue 10).

From the build tree the daemon serves the source tree's api/openapi.yaml, byte for byte, as
application/yaml, under the read scope.  A copy of the program outside the build tree looks for the
installed document ($(pkgdatadir)/openapi.yaml, compiled in): where it is missing the reply is 500
`internal` naming that path.  The installed case itself is checked by `make installcheck`
(tests/installcheck.sh, run by distcheck): the installed daemon serves the installed copy.
"""

import os
import re
import shutil
import subprocess

from acedtest import ACED, SRCDIR, Daemon, done, ok

SPEC = os.path.join(SRCDIR, "api", "openapi.yaml")
with open(SPEC, "rb") as f:
    spec = f.read()

d = Daemon().start()
r = d.get("/openapi.yaml")
ok(r.status == 200 and r.raw == spec, "GET /openapi.yaml serves api/openapi.yaml byte for byte (%d bytes)" % len(spec),
   "%d %d bytes %r" % (r.status, len(r.raw), r.raw[:200]))
ok(r.headers.get("Content-Type") == "application/yaml", "its Content-Type is application/yaml", r.headers)
r = d.request("POST", "/openapi.yaml", body={})
ok(r.status == 405 and r.headers.get("Allow") == "GET, HEAD", "POST /openapi.yaml -> 405, Allow: GET, HEAD", r)
d.cleanup()

# Read scope.
work = Daemon().workdir
tokfile = os.path.join(work, "tokens")


def hash_line(token, label, scopes):
    return subprocess.run([ACED, "--hash-token", label, scopes], input=token.encode(), capture_output=True,
                          check=True).stdout.decode()


READER, WRITER = "r" * 24 + "-reader", "w" * 24 + "-writer"
with open(tokfile, "w") as f:
    f.write(hash_line(READER, "reader", "read"))
    f.write(hash_line(WRITER, "writer", "write"))
d = Daemon(args=["--token-file=" + tokfile], workdir=work).start()
r = d.get("/openapi.yaml")
ok(r.status == 401 and r.error_code() == "unauthorized", "with a token file, no token -> 401", r)
r = d.get("/openapi.yaml", token=WRITER)
ok(r.status == 403 and r.error_code() == "forbidden", "a write-only token -> 403 (read scope)", r)
r = d.get("/openapi.yaml", token=READER)
ok(r.status == 200 and r.raw == spec, "a read token -> 200 and the document", r)
d.cleanup()

# Outside the build tree: the installed copy, at the compiled-in $(pkgdatadir) (make passes it to the
# tests as ACED_PKGDATADIR); 500 naming it when it is missing.
pkgdatadir = os.environ.get("ACED_PKGDATADIR")
elsewhere = Daemon().workdir
copy = os.path.join(elsewhere, "aced")
shutil.copy2(ACED, copy)
d = Daemon(workdir=elsewhere)
d.exe = copy
d.start()
r = d.get("/openapi.yaml")
installed = os.path.join(pkgdatadir, "openapi.yaml") if pkgdatadir else None
if installed and os.path.exists(installed):
    with open(installed, "rb") as f:
        ok(r.status == 200 and r.raw == f.read(), "a copy outside the build tree serves the installed %s" % installed, r)
else:
    msg = r.json["error"]["message"] if r.status == 500 and r.json else ""
    named = re.search(r"(/\S*/aced/openapi\.yaml)", msg)
    ok(r.status == 500 and r.error_code() == "internal" and named is not None
       and (installed is None or named.group(1) == installed),
       "a copy outside the build tree, nothing installed: 500 internal naming %s" % (installed or "$(pkgdatadir)/openapi.yaml"), r)
ok(d.get("/healthz").status == 200, "and it serves the rest")
d.cleanup()
done()
