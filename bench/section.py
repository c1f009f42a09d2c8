#!/usr/bin/env python3
"""section.py -- put one topic's benchmark section into BENCHMARKS.md.

    section.py BENCHMARKS.md NAME FRAGMENT.md

`make bench` (bench/report.py) writes the core figures; the benchmarks of
other topics (recurrent networks, ONNX import, structure learning, ...)
are run by their own targets and keep their text between the markers

    <!-- section:NAME -->  ...  <!-- end:NAME -->

This script replaces the text between the markers of NAME with the
fragment, or appends a new marked section at the end.  report.py keeps
every marked section when it rewrites the file, so one topic's run never
erases another's.  Standard library only.
"""
import re
import sys


def sections(text):
    """The marked sections of text, in order, as (name, whole block)."""
    pat = re.compile(r"<!-- section:([A-Za-z0-9_.-]+) -->.*?<!-- end:\1 -->\n?", re.S)
    return [(m.group(1), m.group(0)) for m in pat.finditer(text)]


def put(text, name, fragment):
    block = "<!-- section:%s -->\n%s\n<!-- end:%s -->\n" % (name, fragment.rstrip("\n"), name)
    pat = re.compile(r"<!-- section:%s -->.*?<!-- end:%s -->\n?" % (re.escape(name), re.escape(name)), re.S)
    if pat.search(text):
        return pat.sub(lambda m: block, text, count=1)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "\n" + block


def main():
    if len(sys.argv) != 4 or not re.fullmatch(r"[A-Za-z0-9_.-]+", sys.argv[2]):
        sys.stderr.write("usage: section.py BENCHMARKS.md NAME FRAGMENT.md\n")
        return 2
    path, name, frag = sys.argv[1:]
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Benchmarks\n"
    with open(frag) as f:
        fragment = f.read()
    with open(path, "w") as f:
        f.write(put(text, name, fragment))
    return 0


if __name__ == "__main__":
    sys.exit(main())
