#!/usr/bin/env python3
"""The installed systemd unit passes `systemd-analyze verify` (skipped where systemd is absent), and
keeps the hardening and notify settings the service relies on."""

import os
import re
import shutil
import subprocess
import tempfile

from acedtest import BUILDDIR, done, ok, skip_all

unit_src = os.path.join(BUILDDIR, "systemd", "aced.service")
if not os.path.exists(unit_src):
    subprocess.run(["make", "-C", BUILDDIR, "systemd/aced.service"], check=True, capture_output=True)
text = open(unit_src).read()

for key in ("Type=notify", "ProtectSystem=strict", "StateDirectory=aced", "NoNewPrivileges=yes",
            "RestrictAddressFamilies=", "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes",
            "ExecReload=/bin/kill -HUP $MAINPID"):
    ok(key in text, "unit has %s" % key)
ok(re.search(r"^ExecStartPre=\S+/aced .*--check-config$", text, re.M) is not None, "ExecStartPre runs --check-config")

if shutil.which("systemd-analyze") is None:
    print("# systemd-analyze not found: skipping verify")
    done()

# Install into a scratch root, point the unit at the installed binary, verify.
root = tempfile.mkdtemp(prefix="aced-unit-")
r = subprocess.run(["make", "-C", BUILDDIR, "install", "DESTDIR=" + root], capture_output=True)
ok(r.returncode == 0, "make install into a scratch root", r.stderr.decode()[-2000:])
units = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs if f == "aced.service"]
ok(len(units) == 1, "the unit is installed", units)
sbin = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs if f == "aced" and "sbin" in dp]
ok(len(sbin) == 1, "the daemon is installed in sbin", sbin)
ok(any(f == "aced.8" for _, _, fs in os.walk(root) for f in fs), "the man page is installed")
ok(any(f == "aced.conf" for _, _, fs in os.walk(root) for f in fs), "the config is installed")
if units and sbin:
    installed = open(units[0]).read()
    prefix_bin = re.search(r"^ExecStart=(\S+)", installed, re.M).group(1)
    unit = os.path.join(root, "aced.service")
    with open(unit, "w") as f:
        f.write(installed.replace(prefix_bin, sbin[0]))
    # verify also checks Documentation=man:aced(8): look in the scratch root.
    mandirs = sorted({os.path.dirname(dp) for dp, _, fs in os.walk(root) for f in fs if f == "aced.8"})
    env = dict(os.environ, MANPATH=":".join(mandirs))
    r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, env=env)
    out = (r.stdout + r.stderr).decode()
    # verify also complains about unrelated units of the build host when it has no running systemd;
    # only lines about our unit count.
    ours = [l for l in out.splitlines() if "aced.service" in l]
    ok(r.returncode == 0 or not ours, "systemd-analyze verify passes on the installed unit", out[-2000:])
shutil.rmtree(root, ignore_errors=True)
done()
