#!/usr/bin/env python3
"""Issue 17: the existing crash, load and hostile suites run against the PostgreSQL backend too.

Each suite runs as it is, with ACED_TEST_BACKEND=postgresql (acedtest.py then gives every daemon a fresh
database of a PostgreSQL cluster started for it, and test_crash.py reads the rows with psql instead of
copying an SQLite file); their TAP lines are relayed here, prefixed with the suite's name.
"""

import os
import re
import subprocess
import sys

import pgcluster
from acedtest import diag, done, ok, skip, skip_all

if not pgcluster.built_with_libpq():
    skip_all("aced built without libpq (Debian package libpq-dev)")
if subprocess.run([pgcluster.SCRIPT, "bindir"], capture_output=True).returncode != 0:
    skip_all("PostgreSQL server not installed (Debian package postgresql)")

HERE = os.path.dirname(os.path.abspath(__file__))
env = dict(os.environ, ACED_TEST_BACKEND="postgresql")
for suite in ("test_crash.py", "test_load.py", "test_hostile.py"):
    p = subprocess.run([sys.executable, "-B", os.path.join(HERE, suite)], env=env, cwd=HERE,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
    n = 0
    for line in p.stdout.splitlines():
        m = re.match(r"^(not )?ok \d+ - (.*?)(?: # SKIP (.*))?$", line)
        if m:
            n += 1
            if m.group(3):
                skip("%s: %s" % (suite, m.group(2)), m.group(3))
            else:
                ok(not m.group(1), "%s: %s" % (suite, m.group(2)))
        elif line.startswith("#"):
            diag("%s: %s" % (suite, line[1:].strip()))
        elif line.startswith("1..0 # SKIP"):
            skip(suite, line.split("SKIP", 1)[1].strip())
            n += 1
    ok(p.returncode == 0 and n > 0, "%s on PostgreSQL: %d checks, exit status %d" % (suite, n, p.returncode),
       p.stdout[-1500:] if p.returncode else None)
done()
