#!/usr/bin/env python3
"""The layering rules of README's layout section, checked on the sources: dependencies run one way,
down (http -> api -> svc -> jobs, model, store, engine; base below all).  Each rule is checked for
every #include of every file of its folder, so a new include that breaks one fails here."""

import os
import re

from acedtest import SRCDIR, done, ok

# folder -> the headers (by their include path) its files may include.
BASE = {"aced/clock.h", "aced/errors.h", "aced/log.h", "aced/metrics.h", "aced/config.h",
        "aced/jsonw.h", "aced/jsonr.h", "aced/notify.h", "aced/limits.h"}
RULES = {
    # the engine: limits only (plus its own internal header); no HTTP, JSON or SQL
    "src/engine": ({"aced/limits.h", "aced/engine.h", "engine/internal.h"},
                   {"jansson.h", "sqlite3.h", "libpq-fe.h", "microhttpd.h"}),
    "src/base": (BASE, {"sqlite3.h", "libpq-fe.h", "microhttpd.h"}),
    "src/store": (BASE | {"aced/store.h", "store/sqlite.h", "store/pg.h", "store/latest.h"},
                  {"jansson.h", "microhttpd.h"}),
    "src/jobs": (BASE | {"aced/jobs.h"}, {"sqlite3.h", "libpq-fe.h", "microhttpd.h"}),
    "src/model": (BASE | {"aced/model.h", "aced/engine.h", "model/internal.h", "model/onnx.h",
                          "onnx/onnx.pb-c.h"}, {"sqlite3.h", "libpq-fe.h", "microhttpd.h"}),
    "src/svc": (BASE | {"aced/svc.h", "svc/internal.h", "aced/jobs.h", "aced/model.h",
                        "aced/store.h", "aced/engine.h"}, {"sqlite3.h", "libpq-fe.h", "microhttpd.h"}),
    # handlers: the services through svc.h, the pool through jobs.h; a model's row and DELETE reach
    # the store's interface (store.h), never a backend, the engine or the services' internals
    "src/api": (BASE | {"api/api.h", "api/spec.h", "aced/svc.h", "aced/jobs.h", "aced/handlers.h",
                        "aced/http.h", "aced/auth.h", "aced/model.h", "aced/store.h"},
                {"sqlite3.h", "libpq-fe.h", "aced/engine.h", "svc/internal.h", "store/sqlite.h",
                 "store/pg.h"}),
}
# headers whose own includes must follow the same rules
HEADERS = {"aced/engine.h": "src/engine", "aced/store.h": "src/store", "aced/jobs.h": "src/jobs",
           "aced/svc.h": "src/svc", "aced/model.h": "src/model"}
# The engine's <...> includes: the C library and POSIX, BLAS/LAPACK, and liblbfgs (the optimizer of
# structure learning, learn.c).  Anything else (jansson, sqlite3, libpq, libmicrohttpd, ...) fails.
ENGINE_ANGLE = {"assert.h", "ctype.h", "errno.h", "float.h", "limits.h", "math.h", "pthread.h",
                "stdatomic.h", "stdbool.h", "stddef.h", "stdint.h", "stdio.h", "stdlib.h", "string.h",
                "time.h", "unistd.h", "cblas.h", "lapacke.h", "lbfgs.h"}


def includes(path):
    out = []
    for line in open(path, encoding="utf-8"):
        m = re.match(r'\s*#\s*include\s*([<"])([^>"]+)[>"]', line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def check(label, path, allowed, forbidden, angle=None):
    """Every "..." include of path is in allowed, none is in forbidden, and when angle is given
    every <...> include is in it."""
    bad = []
    for kind, name in includes(path):
        if name == "config.h":
            continue
        if kind == '"' and name not in allowed:
            bad.append(name)
        if name in forbidden:
            bad.append(name)
        if kind == "<" and angle is not None and name not in angle:
            bad.append("<%s>" % name)
    ok(not bad, "%s: %s includes only what its layer may (%s)" % (label, os.path.relpath(path, SRCDIR),
                                                                ", ".join(bad) or "ok"))


n = 0
for folder, (allowed, forbidden) in sorted(RULES.items()):
    root = os.path.join(SRCDIR, folder)
    for name in sorted(os.listdir(root)):
        # test_load.h loads JSON fixtures for the engine's tests and benchmark; the engine never includes it
        if name.endswith((".c", ".h")) and name != "test_load.h":
            check(folder, os.path.join(root, name), allowed, forbidden,
                  ENGINE_ANGLE if folder == "src/engine" else None)
            n += 1
for header, folder in sorted(HEADERS.items()):
    allowed, forbidden = RULES[folder]
    check(header, os.path.join(SRCDIR, "include", header), allowed, forbidden,
          ENGINE_ANGLE if folder == "src/engine" else None)
ok(n > 30, "the rules saw %d source files" % n)

# the pool names no job kind, and no service names an HTTP header or type
pool = open(os.path.join(SRCDIR, "src/jobs/pool.c"), encoding="utf-8").read()
ok(not re.search(r"svc_kind_|regressor|attribution|intervention", pool),
   "src/jobs/pool.c names no job kind")
# adding a job kind is its file in src/svc, its SVC_KINDS row and the handler that submits it: nothing
# the handlers share (api/common.c) nor the HTTP layer names a kind
for rel in ["src/api/common.c", "src/api/api.h"] + sorted(
        "src/http/" + f for f in os.listdir(os.path.join(SRCDIR, "src/http")) if f.endswith((".c", ".h"))):
    text = open(os.path.join(SRCDIR, rel), encoding="utf-8").read()
    ok(not re.search(r"svc_kind_\w", text), "%s names no job kind" % rel)
for name in sorted(f for f in os.listdir(os.path.join(SRCDIR, "src/svc")) if f.endswith((".c", ".h"))):
    text = open(os.path.join(SRCDIR, "src/svc", name), encoding="utf-8").read()
    ok(not re.search(r"\bMHD_|struct request\b|struct server\b|reply_json", text),
       "src/svc/%s uses nothing of the HTTP layer" % name)

# the rules checked here are the ones README's layout section states
readme = open(os.path.join(SRCDIR, "README.md"), encoding="utf-8").read()
layout = readme[readme.find("## Layout"):]
for rule in ("`engine` includes only `limits.h`", "`store` knows only `base`", "`jobs` knows only `base`",
             "`svc` never includes the HTTP headers", "`api` talks to the services through"):
    ok(rule in layout, "README's layout section states: %s" % rule)

# a fresh clone tests itself: no test, benchmark, tool or source names the shared folder developers
# keep beside the clone (.ci/run names it only to prove it is absent)
outside = []
for top in ("src", "include", "tests", "bench", "fuzz", "tools", "examples", "clients", "ui", ".ci"):
    for dirpath, dirs, files in os.walk(os.path.join(SRCDIR, top)):
        dirs[:] = [d for d in dirs if d not in ("node_modules", ".deps", ".libs", "__pycache__")]
        for f in files:
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, SRCDIR)
            if rel in (".ci/run", "tests/e2e/test_layers.py") or \
               not f.endswith((".c", ".h", ".py", ".sh", ".mk", ".js", ".lua", ".md", ".json", "")):
                continue
            try:
                text = open(p, encoding="utf-8").read()
            except (UnicodeDecodeError, OSError):
                continue
            if re.search(r"\.\./shared\b|/work/shared|ACED_SHARED|\bshared/fixtures", text):
                outside.append(rel)
ok(not outside, "nothing under src, tests, bench, tools, ... names the shared folder beside the clone: %s"
   % (", ".join(outside) or "none"))

# no C file over 1,000 lines: the daemon's sources and headers, and the C of the tests, benchmarks,
# fuzz targets and tools too (generated and third-party folders are not ours)
big = []
n_c = 0
for top in ("src", "include", "tests", "bench", "fuzz", "tools"):
    for dirpath, dirs, files in os.walk(os.path.join(SRCDIR, top)):
        dirs[:] = [d for d in dirs if d not in ("node_modules", ".deps", ".libs")]
        for f in files:
            if f.endswith((".c", ".h")):
                p = os.path.join(dirpath, f)
                n_c += 1
                lines = sum(1 for _ in open(p, encoding="utf-8"))
                if lines > 1000:
                    big.append("%s (%d)" % (os.path.relpath(p, SRCDIR), lines))
ok(n_c > 100, "the line count saw %d C files under src, include, tests, bench, fuzz and tools" % n_c)
ok(not big, "no C file is over 1,000 lines: %s" % (", ".join(big) or "none"))
done()
