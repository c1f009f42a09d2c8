#!/usr/bin/env python3
"""End to end: configuration file, flags overriding it, --check-config, and etc/aced.conf documenting
exactly the keys the daemon knows, each with its real default."""

import os
import re
import subprocess
import tempfile

from acedtest import ACED, SRCDIR, Daemon, done, ok

help_text = subprocess.run([ACED, "--help"], capture_output=True, check=True).stdout.decode()
keys = dict(re.findall(r"^\s+--(\w+)\s+.*\(default: \"(.*)\"\)$", help_text, re.M))
ok(len(keys) >= 15, "--help lists the config keys (%d)" % len(keys))
for k in ("listen_address", "port", "database", "workers", "max_body_bytes", "connection_limit",
          "connection_timeout", "token_file", "log_level"):
    ok(k in keys, "key %s exists" % k)

conf = open(os.path.join(SRCDIR, "etc", "aced.conf")).read()
documented = dict(re.findall(r"^#\s*(\w+)\s*=\s*(.*?)\s*$", conf, re.M))
ok(set(documented) == set(keys), "etc/aced.conf documents exactly the daemon's keys",
   "missing: %s extra: %s" % (set(keys) - set(documented), set(documented) - set(keys)))
for k, v in keys.items():
    if k in documented:
        ok(documented[k].strip('"') == v, "etc/aced.conf default of %s is %r" % (k, v), documented[k])

r = subprocess.run([ACED, "--config=" + os.path.join(SRCDIR, "etc", "aced.conf"), "--check-config"], capture_output=True)
ok(r.returncode == 0, "the shipped aced.conf validates", r.stderr)

tmp = tempfile.mkdtemp()
cf = os.path.join(tmp, "aced.conf")
with open(cf, "w") as f:
    f.write("# test\nworkers = 3\nlog_level = debug\nport = 1\n")
r = subprocess.run([ACED, "--config=" + cf, "--check-config"], capture_output=True)
ok(r.returncode == 0, "a config file with a few keys validates", r.stderr)
for text, what in (("workers = lots\n", "non-integer"), ("workers = 0\n", "below minimum"),
                   ("colour = blue\n", "unknown key"), ("just words\n", "no '='"),
                   ("log_level = loud\n", "bad log level")):
    with open(cf, "w") as f:
        f.write(text)
    r = subprocess.run([ACED, "--config=" + cf, "--check-config"], capture_output=True)
    ok(r.returncode != 0 and b"aced.conf:1" in r.stderr, "config error (%s) names file and line" % what, r.stderr)
r = subprocess.run([ACED, "--workers=0", "--check-config"], capture_output=True)
ok(r.returncode != 0 and b"workers" in r.stderr, "a bad flag is rejected", r.stderr)
r = subprocess.run([ACED, "--no-such-key=1"], capture_output=True)
ok(r.returncode != 0 and b"unknown key" in r.stderr, "an unknown flag is rejected", r.stderr)

# Flags override the file.
with open(cf, "w") as f:
    f.write("port = 1\nlog_level = error\n")
d = Daemon(args=["--config=" + cf])  # Daemon adds --port/--database after --config: flags win
d.start()
ok(d.get("/healthz").status == 200, "flags override the config file (port)")
ok(d.stop() == 0, "clean shutdown")
d.cleanup()

# X-Forwarded-For is logged only when the peer is a configured proxy.
for trusted, expect in (("127.0.0.1", True), ("10.0.0.1", False)):
    d = Daemon(args=["--trusted-proxies=" + trusted]).start()
    d.get("/healthz", headers={"X-Forwarded-For": "203.0.113.5, 10.1.1.1"})
    d.get("/healthz", headers={"X-Forwarded-For": "1.2.3.4<script>"})
    d.stop()
    log = d.read_log()
    ok(("203.0.113.5 via 127.0.0.1" in log) == expect,
       "X-Forwarded-For %s when the proxy list is %s" % ("logged" if expect else "ignored", trusted),
       [l for l in log.splitlines() if "healthz" in l])
    ok("<script>" not in log, "only address characters from X-Forwarded-For reach the log")
    d.cleanup()
done()
