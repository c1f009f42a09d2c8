#!/usr/bin/env python3
"""End to end: every aced.conf snippet in the documents is accepted by `aced --check-config` as
written, and the config file syntax takes trailing comments ("max_body_bytes = 67108864 # 64 MiB").

A snippet is a fenced block of a Markdown file, or an .EX/.EE block of the man page, in which some
line sets a key the daemon knows (`key = value`, keys from `aced --help`); the whole block must
then parse.  So must every snippet inside a sentence: a `key = value` code span of a Markdown file, a
quoted "key = value" on a .B/.BR/.RB line of the man page.  etc/aced.conf is checked as shipped and
with every documented default uncommented.
"""

import glob
import os
import re
import subprocess
import tempfile
import time

from acedtest import ACED, SRCDIR, diag, done, free_port, ok

help_text = subprocess.run([ACED, "--help"], capture_output=True, check=True).stdout.decode()
KEYS = set(re.findall(r"^\s+--(\w+)\s", help_text, re.M))
ok(len(KEYS) >= 15, "--help lists the config keys (%d)" % len(KEYS))
KEY_LINE = re.compile(r"^\s*(%s)\s*=" % "|".join(sorted(KEYS)), re.M)

tmp = tempfile.mkdtemp(prefix="aced-docs-")
# A real token file, given as a flag (flags win over the file): snippets name token files that exist
# only on a configured server, and --check-config loads the one it is given.
tokens = os.path.join(tmp, "tokens")
line = subprocess.run([ACED, "--hash-token", "docs", "read"], input=b"0123456789abcdef-docs-token\n",
                      capture_output=True, check=True).stdout
with open(tokens, "wb") as f:
    f.write(line)


def check(text, what):
    path = os.path.join(tmp, "snippet.conf")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([ACED, "--config=" + path, "--token-file=" + tokens, "--check-config"],
                       capture_output=True)
    ok(r.returncode == 0, "%s is accepted by aced --check-config" % what,
       r.stderr.decode() + "\n--- snippet:\n" + text)


def markdown_blocks(path):
    text = open(path, encoding="utf-8").read()
    for m in re.finditer(r"^(```|~~~)([^\n]*)\n(.*?)^\1\s*$", text, re.M | re.S):
        yield text[:m.start()].count("\n") + 2, m.group(3)


def roff_unescape(s):
    s = re.sub(r"\\\(dq", '"', s)
    s = re.sub(r"\\\(aq", "'", s)
    s = s.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "")
    return s


def man_blocks(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    block, start = None, 0
    for n, line in enumerate(lines, 1):
        if line.startswith(".EX"):
            block, start = [], n + 1
        elif line.startswith(".EE") and block is not None:
            yield start, roff_unescape("\n".join(block) + "\n")
            block = None
        elif block is not None:
            block.append(line)


docs = sorted(set(glob.glob(os.path.join(SRCDIR, "*.md")) + glob.glob(os.path.join(SRCDIR, "examples", "*.md")) +
                  glob.glob(os.path.join(SRCDIR, "doc", "*.md"))))
found = []
for path in docs:
    for lineno, block in markdown_blocks(path):
        if KEY_LINE.search(block):
            found.append(("%s:%d" % (os.path.relpath(path, SRCDIR), lineno), block))
for lineno, block in man_blocks(os.path.join(SRCDIR, "doc", "aced.8")):
    if KEY_LINE.search(block):
        found.append(("doc/aced.8:%d" % lineno, block))
names = [w for w, _ in found]
ok(any(w.startswith("SECURITY.md") for w in names) and any(w.startswith("doc/aced.8") for w in names),
   "config snippets found in SECURITY.md and doc/aced.8 (%s)" % ", ".join(names))
for what, block in found:
    check(block, "the aced.conf snippet at " + what)

# Snippets inside a sentence: `key = value` code spans of the Markdown files, and quoted
# "key = value" of the man page's .B/.BR/.RB lines.  Each must parse on its own line, except a value
# with '...' in it, which the text marks as an elision (a libpq URI's options).
INLINE_MD = re.compile(r"`((?:%s)\s*=[^`\n]*)`" % "|".join(sorted(KEYS)))
INLINE_MAN = re.compile(r'"((?:%s)\s*=[^"\n]*)"' % "|".join(sorted(KEYS)))
inline = []
for path in docs:
    for n, text_line in enumerate(open(path, encoding="utf-8"), 1):
        for m in INLINE_MD.finditer(text_line):
            inline.append(("%s:%d" % (os.path.relpath(path, SRCDIR), n), m.group(1)))
for n, text_line in enumerate(open(os.path.join(SRCDIR, "doc", "aced.8"), encoding="utf-8"), 1):
    if re.match(r"\.(B|BR|RB|IR|BI)\b", text_line):
        for m in INLINE_MAN.finditer(text_line):
            inline.append(("doc/aced.8:%d" % n, roff_unescape(m.group(1))))
ok(any(w.startswith("README.md") for w, _ in inline) and any(w.startswith("doc/aced.8") for w, _ in inline),
   "inline config snippets found in README.md and doc/aced.8 (%d)" % len(inline))
for what, snippet in inline:
    if "..." in snippet:
        diag("%s: %r elides part of its value: not checked" % (what, snippet))
        continue
    check(snippet + "\n", "the inline snippet %r at %s" % (snippet, what))

conf_path = os.path.join(SRCDIR, "etc", "aced.conf")
conf = open(conf_path, encoding="utf-8").read()
check(conf, "etc/aced.conf as shipped")
live = re.sub(r"^#\s*(\w+\s*=.*)$", lambda m: m.group(1) if m.group(1).split("=")[0].strip() in KEYS else m.group(0),
              conf, flags=re.M)
ok(len(KEY_LINE.findall(live)) == len(KEYS), "etc/aced.conf uncommented sets every key (%d)" % len(KEYS))
check(live, "etc/aced.conf with every documented default uncommented")

# ---- the syntax: trailing comments, and '#' that is part of a value ----
cf = os.path.join(tmp, "t.conf")


def run(text, *flags):
    with open(cf, "w") as f:
        f.write(text)
    return subprocess.run([ACED, "--config=" + cf, "--check-config"] + list(flags), capture_output=True)


for text in ("max_body_bytes = 67108864 # 64 MiB\n", "max_body_bytes = 67108864\t# tab before\n",
             "max_body_bytes = 67108864    #no blank after\n", "port = 8080 # a # b\n",
             'token_file = "" # none\n', "log_level = debug # be chatty\n",
             "trusted_proxies = 127.0.0.1, ::1 # proxies\n", "database = # empty value then comment\n"):
    r = run(text)
    expect_ok = not text.startswith("database")
    ok((r.returncode == 0) == expect_ok, "%r is %s" % (text.strip(), "accepted" if expect_ok else "refused"), r.stderr)
r = run("database = # empty value then comment\n")
ok(b"database: must not be empty" in r.stderr, "a value that is only a comment is empty", r.stderr)
r = run("max_body_bytes = 67108864 # 64 MiB\nworkers = 3 # three\n")
ok(r.returncode == 0, "several lines with trailing comments", r.stderr)
r = run("max_body_bytes = 64MiB # no\n")
ok(r.returncode == 2 and b"'64MiB' is not an integer" in r.stderr, "a bad value before a comment is still refused", r.stderr)

# '#' inside a word or inside quotes stays in the value: seen in the database path a daemon opens.
for text, expect in (("database = %s/db#1/aced.db\n", "db#1"), ('database = "%s/q #2/aced.db" # quoted\n', "q #2")):
    with open(cf, "w") as f:
        f.write(text % tmp)
    logp = os.path.join(tmp, "daemon.log")
    with open(logp, "wb") as logf:
        p = subprocess.Popen([ACED, "--config=" + cf, "--port=%d" % free_port()], stdout=logf, stderr=logf, cwd=tmp)
    out = b""
    try:
        for _ in range(200):
            out = open(logp, "rb").read()
            if b"listening" in out or p.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        p.terminate()
        p.wait(timeout=20)
    ok(os.path.isdir(os.path.join(tmp, expect)) and (os.path.join(tmp, expect) + "/aced.db").encode() in out,
       "'#' %s is part of the value (%s)" % ("inside a word" if "db#1" == expect else "inside quotes", expect), out)
done()
