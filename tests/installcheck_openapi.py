#!/usr/bin/env python3
"""make installcheck: the installed daemon serves the installed API description at GET /openapi.yaml.

Usage: installcheck_openapi.py SBINDIR PKGDATADIR (both as installed, DESTDIR included)."""

import os
import sys

import acedtest
from acedtest import Daemon, done, ok

sbindir, pkgdatadir = sys.argv[1], sys.argv[2]
installed = os.path.join(pkgdatadir, "openapi.yaml")
ok(os.path.isfile(installed), "make install put the API description at %s" % installed)
d = Daemon()
d.exe = os.path.join(sbindir, "aced")
d.start()
r = d.get("/openapi.yaml")
with open(installed, "rb") as f:
    ok(r.status == 200 and r.raw == f.read() and r.headers.get("Content-Type") == "application/yaml",
       "the installed %s serves it as application/yaml" % d.exe, r)
r = d.get("/ui/")
with open(os.path.join(pkgdatadir, "ui", "index.html"), "rb") as f:
    ok(r.status == 200 and r.raw == f.read(), "the installed daemon serves the installed web view at /ui/", r)
d.cleanup()
done()
