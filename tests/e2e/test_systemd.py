#!/usr/bin/env python3
"""The installed systemd unit passes `systemd-analyze verify` (a TAP SKIP with the reason where the
tool is absent), keeps the hardening and notify settings the service relies on, and its ExecReload
reloads a running daemon on a system without procps (no kill binary)."""

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time

from acedtest import BUILDDIR, Daemon, done, ok, skip

unit_src = os.path.join(BUILDDIR, "systemd", "aced.service")
if not os.path.exists(unit_src):
    subprocess.run(["make", "-C", BUILDDIR, "systemd/aced.service"], check=True, capture_output=True)
text = open(unit_src).read()

for key in ("Type=notify", "ProtectSystem=strict", "StateDirectory=aced", "NoNewPrivileges=yes",
            "RestrictAddressFamilies=", "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes"):
    ok(key in text, "unit has %s" % key)
ok(re.search(r"^ExecStartPre=\S+/aced .*--check-config$", text, re.M) is not None, "ExecStartPre runs --check-config")

# Every program the unit runs besides aced must exist on a minimal Debian 12: /bin/kill (procps) does
# not; /bin/sh (dash, essential) does.
execs = re.findall(r"^Exec\w+=[-@:+!]*(\S+)", text, re.M)
others = sorted({e for e in execs if not e.endswith("/aced")})
ok(others == ["/bin/sh"], "the unit runs nothing but aced and /bin/sh (no procps)", others)

# ExecReload as systemd runs it: $MAINPID in the environment, and here no PATH at all, so that only
# the shell's built-in kill can send the signal.  The daemon logs the reload.
m = re.search(r"^ExecReload=(.*)$", text, re.M)
ok(m is not None, "the unit has an ExecReload", text)
if m:
    d = Daemon().start()
    pid = str(d.proc.pid)
    # systemd's own substitution: "$MAINPID" as a word, "${MAINPID}" anywhere.
    argv = [pid if w == "$MAINPID" else w.replace("${MAINPID}", pid) for w in shlex.split(m.group(1))]
    try:
        r = subprocess.run(argv, env={"MAINPID": pid, "PATH": "/nonexistent"},
                           capture_output=True, timeout=20)
        ok(r.returncode == 0, "ExecReload runs without a kill binary on PATH: %s" % argv,
           (r.stdout + r.stderr).decode())
        deadline = time.time() + 10
        while "reloaded:" not in d.read_log() and time.time() < deadline:
            time.sleep(0.05)
        ok("reloaded:" in d.read_log() and d.alive(), "ExecReload makes the running daemon reload",
           d.read_log()[-2000:])
    finally:
        d.stop()
        d.cleanup()

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
what = "systemd-analyze verify passes on the installed unit"
if shutil.which("systemd-analyze") is None:
    skip(what, "systemd-analyze not found (install systemd)")
elif not (units and sbin):
    ok(False, what, "nothing installed to verify")
else:
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
    # Any message about our unit is a finding (a missing executable, an unknown key, a bad value).
    ours = [line for line in out.splitlines() if "aced.service" in line]
    ok(r.returncode == 0 and not ours, what, "exit status %d\n%s" % (r.returncode, out[-2000:]))
shutil.rmtree(root, ignore_errors=True)
done()
