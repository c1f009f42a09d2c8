#!/usr/bin/env python3
"""The documents name source files that exist: every `src/...`, `include/...`, `tests/...`,
`tools/...` and `bench/...` path written in README.md, SECURITY.md, BENCHMARKS.md, doc/aced.8,
examples/README.md, tests/data/README.md and api/openapi.yaml is a file or folder of the tree
(globs like src/api/handler_*.c must match something); programs the build makes
(bench/bench_engine) may be in the build tree instead.  A restructuring that moves files without
the docs fails here."""

import glob
import os
import re

from acedtest import SRCDIR, done, ok

BUILDDIR = os.environ.get("ACED_BUILDDIR", SRCDIR)
# made by tools/setup (npm ci), not shipped: the docs may name it
GENERATED = {"tests/node_modules"}

DOCS = ["README.md", "SECURITY.md", "BENCHMARKS.md", "doc/aced.8", "examples/README.md",
        "tests/data/README.md", "api/openapi.yaml"]
PATH = re.compile(r"(?<![\w./-])((?:src|include|tests|tools|bench|etc|systemd|examples|fuzz)/[\w./*@-]*[\w*])")

for doc in DOCS:
    text = open(os.path.join(SRCDIR, doc), encoding="utf-8").read()
    missing = []
    for p in sorted(set(PATH.findall(text))):
        p = p.rstrip(".")
        roots = (SRCDIR, BUILDDIR)
        if p in GENERATED:
            found = True
        elif "*" in p:
            found = any(glob.glob(os.path.join(r, p)) for r in roots)
        else:
            found = any(os.path.exists(os.path.join(r, p)) for r in roots)
        if not found:
            missing.append(p)
    ok(not missing, "%s names only paths that exist" % doc, missing)
done()
