#!/usr/bin/env python3
"""End to end: one truth about where aced is installed.

- `make install DESTDIR=...` with this build's configuration puts the daemon, aced.conf, the unit and
  the man page where configure's directories say, and the installed unit runs the installed daemon
  with the installed aced.conf;
- with README's layout (`--prefix=/usr --sysconfdir=/etc`) they land at /usr/sbin/aced,
  /etc/aced/aced.conf and /usr/share/man/man8/aced.8, the paths the documents use;
- README, SECURITY.md, doc/aced.8 and etc/aced.conf name aced.conf and the daemon by those paths (the
  /usr/local ones only where they say "default prefix"), and the man page's examples call the port
  they start aced on.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile

from acedtest import BUILDDIR, SRCDIR, done, ok, skip, skip_all

makefile = os.path.join(BUILDDIR, "Makefile")
if not os.path.exists(makefile) or shutil.which("make") is None:
    skip_all("no configured build tree with a Makefile")

# configure's directories, as the Makefile has them ("sysconfdir = ${prefix}/etc")
raw = dict(re.findall(r"^([a-zA-Z_]+) = (.*)$", open(makefile).read(), re.M))


def expand(value, over=None):
    over = over or {}
    for _ in range(10):
        value = re.sub(r"\$[{(]([a-zA-Z_]+)[})]", lambda m: over.get(m.group(1), raw.get(m.group(1), "")), value)
    return value


def dirs(over=None):
    return {k: expand("$(%s)" % k, over) for k in ("prefix", "sbindir", "sysconfdir", "mandir", "systemdsystemunitdir")}


env = dict(os.environ)
for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
    env.pop(k, None)
tmp = tempfile.mkdtemp(prefix="aced-install-")


def install(dest, *assignments):
    return subprocess.run(["make", "-s", "-C", BUILDDIR, "install", "DESTDIR=" + dest] + list(assignments),
                          capture_output=True, env=env, timeout=300)


# ---- this build's layout ----
d = dirs()
dest = os.path.join(tmp, "default")
r = install(dest)
ok(r.returncode == 0, "make install DESTDIR=... succeeds (prefix %s)" % d["prefix"], r.stderr.decode()[-2000:])
daemon = d["sbindir"] + "/aced"
conf = d["sysconfdir"] + "/aced/aced.conf"
unit = d["systemdsystemunitdir"] + "/aced.service"
man = d["mandir"] + "/man8/aced.8"
for path in (daemon, conf, unit, man):
    ok(os.path.isfile(dest + path), "installed %s" % path)
ok(os.access(dest + daemon, os.X_OK), "the installed daemon is executable")
# the web view's files, where the installed daemon looks for them (handler_ui_get.c)
uidir = expand("$(pkgdatadir)/ui") if "pkgdatadir" in raw else expand("$(datadir)/aced/ui")
for name in ("index.html", "app.js", "style.css"):
    ok(os.path.isfile(os.path.join(dest + uidir, name)) and
       open(os.path.join(dest + uidir, name), "rb").read() == open(os.path.join(SRCDIR, "ui", name), "rb").read(),
       "installed the web view's %s in %s" % (name, uidir))
if os.path.isfile(dest + conf) and os.path.isfile(dest + unit):
    unit_text = open(dest + unit).read()
    execs = re.findall(r"^(ExecStart(?:Pre)?)=(\S+)(.*)$", unit_text, re.M)
    ok(len(execs) == 2, "the unit has ExecStartPre and ExecStart", execs)
    for key, program, args in execs:
        ok(program == daemon, "%s runs the installed daemon %s" % (key, daemon), program)
        m = re.search(r"--config=(\S+)", args)
        ok(m is not None and m.group(1) == conf, "%s reads the installed %s" % (key, conf), args)
    ok(open(dest + conf).read() == open(os.path.join(SRCDIR, "etc", "aced.conf")).read(),
       "the installed aced.conf is etc/aced.conf")

# ---- README's layout ----
readme = open(os.path.join(SRCDIR, "README.md"), encoding="utf-8").read()
m = re.search(r"tools/setup ((?:--\S+ ?)+)&& sudo make install", readme)
ok(m is not None, "README gives the install command with its configure arguments", None)
args = dict(a[2:].split("=", 1) for a in (m.group(1).split() if m else []))
ok(args.get("prefix") == "/usr" and args.get("sysconfdir") == "/etc", "README's layout is --prefix=/usr --sysconfdir=/etc", args)
dest2 = os.path.join(tmp, "readme")
r = install(dest2, *("%s=%s" % kv for kv in args.items()))
ok(r.returncode == 0, "make install with README's directories succeeds", r.stderr.decode()[-2000:])
d2 = dirs(args)
for path in ("/usr/sbin/aced", "/etc/aced/aced.conf", "/usr/share/man/man8/aced.8"):
    ok(os.path.isfile(dest2 + path), "README's layout installs %s" % path,
       sorted(p[len(dest2):] for p in glob.glob(dest2 + "/**", recursive=True) if os.path.isfile(p)))
ok(d2["systemdsystemunitdir"] == "/usr/lib/systemd/system", "README's layout puts the unit in /usr/lib/systemd/system",
   d2["systemdsystemunitdir"])
for path in ("/usr/sbin/aced", "/etc/aced/aced.conf", "/usr/lib/systemd/system/aced.service"):
    ok(path in readme, "README names %s" % path)

# ---- the documents agree ----
docs = {name: open(os.path.join(SRCDIR, name), encoding="utf-8").read()
        for name in ("README.md", "SECURITY.md", "doc/aced.8", "etc/aced.conf")}
for name, text in docs.items():
    text = text.replace("\\-", "-").replace("\\&", "")
    for n, line in enumerate(text.split("\n"), 1):
        for path in re.findall(r"(?<![\w$/@.-])((?:/[\w.-]+)+/aced/aced\.conf|(?:/[\w.-]+)+/sbin/aced)\b", line):
            if path.startswith("/usr/local/"):
                # only where the text says it is the default prefix (in this line or the paragraph's start)
                para = text[:text.find(line)].rsplit("\n\n", 1)[-1] + line
                ok("default prefix" in para, "%s:%d names %s as configure's default prefix" % (name, n, path), line)
            else:
                ok(path in ("/etc/aced/aced.conf", "/usr/sbin/aced"),
                   "%s:%d names %s, README's layout" % (name, n, path), line)

man = docs["doc/aced.8"]
files = man[man.find(".SH FILES"):man.find(".SH", man.find(".SH FILES") + 4)]
ok(".I /etc/aced/aced.conf" in files and "sysconfdir" in files, "aced(8) FILES names /etc/aced/aced.conf and $(sysconfdir)")
examples = man[man.find(".SH EXAMPLES"):man.find(".SH", man.find(".SH EXAMPLES") + 4)].replace("\\-", "-")
started = re.findall(r"--port=(\d+)", examples) or ["8080"]
called = re.findall(r"http://127\.0\.0\.1:(\d+)", examples)
ok(called and set(called) == set(started), "aced(8) EXAMPLES call the port they start aced on (%s, %s)" % (started, called))
ok(set(re.findall(r"http://127\.0\.0\.1:(\d+)", readme)) == {"8080"}, "README's examples call the default port 8080")
shutil.rmtree(tmp, ignore_errors=True)
done()
