#!/usr/bin/env python3
"""test_openapi.py -- api/openapi.yaml documents exactly the routes of
src/http/routes.c, and every error code of include/aced/errors.h.

Standard library only: the YAML is read with a small indentation-based
reader that understands just the `paths:` block (path keys one level in,
HTTP methods one level below them), which is all this test needs.

Prints TAP.  Locates the source tree with $ACED_SRCDIR (default: two levels
above this script).
"""
import os
import re
import sys

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def srcdir():
    d = os.environ.get("ACED_SRCDIR")
    if d:
        return d
    return os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def strip_c_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def routes_from_c(path):
    """(METHOD, pattern) pairs of the aced_routes[] table."""
    text = strip_c_comments(open(path, encoding="utf-8").read())
    m = re.search(r"aced_routes\s*\[\s*\]\s*=\s*\{(.*?)\n\s*\}\s*;", text, re.S)
    if not m:
        raise ValueError("no aced_routes[] table in %s" % path)
    rows = re.findall(r'\{\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*,', m.group(1))
    if not rows:
        raise ValueError("aced_routes[] in %s has no rows" % path)
    return rows


def error_codes_from_h(path):
    """Code strings of ACED_ERROR_LIST: X(NAME, "code", status, "hint")."""
    text = open(path, encoding="utf-8").read()
    codes = re.findall(r'X\(\s*ACED_[A-Z_]+\s*,\s*"([a-z_]+)"\s*,\s*(\d{3})', text)
    if not codes:
        raise ValueError("no ACED_ERROR_LIST entries in %s" % path)
    return codes


def _unquote(key):
    key = key.strip()
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
        return key[1:-1]
    return key


def paths_from_yaml(path):
    """(METHOD, path) pairs under the top-level `paths:` mapping."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out = []
    in_paths = False
    path_indent = None
    method_indent = None
    current = None
    in_block_scalar = None  # indentation of the line that opened a | or > scalar
    for raw in lines:
        line = raw.rstrip()
        stripped = line.lstrip(" ")
        if stripped == "" or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        if in_block_scalar is not None:
            if indent > in_block_scalar:
                continue
            in_block_scalar = None
        if indent == 0:
            in_paths = stripped.split("#")[0].strip() == "paths:"
            path_indent = method_indent = current = None
            continue
        if not in_paths:
            continue
        m = re.match(r"""^("[^"]*"|'[^']*'|[^:#\s][^:#]*?)\s*:(\s|$)(.*)$""", stripped)
        value = m.group(3).strip() if m else ""
        if value.startswith("|") or value.startswith(">"):
            in_block_scalar = indent
        if m is None:
            continue
        key = _unquote(m.group(1))
        if path_indent is None:
            path_indent = indent
        if indent == path_indent:
            current = key if key.startswith("/") else None
            method_indent = None
            continue
        if current is None or indent < path_indent:
            continue
        if method_indent is None and indent > path_indent:
            method_indent = indent
        if indent == method_indent and key.lower() in METHODS:
            out.append((key.upper(), current))
    return out


def main():
    root = srcdir()
    results = []

    def check(ok, name, diag=None):
        results.append(ok)
        print("%s %d - %s" % ("ok" if ok else "not ok", len(results), name))
        if not ok and diag:
            for d in diag:
                print("#   %s" % d)

    routes_c = os.path.join(root, "src", "http", "routes.c")
    errors_h = os.path.join(root, "include", "aced", "errors.h")
    yaml_path = os.path.join(root, "api", "openapi.yaml")
    try:
        routes = routes_from_c(routes_c)
        codes = error_codes_from_h(errors_h)
        documented = paths_from_yaml(yaml_path)
        yaml_text = open(yaml_path, encoding="utf-8").read()
    except (OSError, ValueError) as e:
        print("not ok 1 - read sources: %s" % e)
        print("1..1")
        return 1

    check(yaml_text.lstrip().startswith("openapi: 3.0.3"), "api/openapi.yaml declares openapi: 3.0.3")
    check(len(routes) > 0, "src/http/routes.c has %d routes" % len(routes))
    check(len(documented) > 0, "api/openapi.yaml documents %d operations" % len(documented))

    dup = sorted({r for r in routes if routes.count(r) > 1})
    check(not dup, "src/http/routes.c lists each (method, path) once", ["%s %s" % r for r in dup])
    dup = sorted({r for r in documented if documented.count(r) > 1})
    check(not dup, "api/openapi.yaml lists each (method, path) once", ["%s %s" % r for r in dup])

    doc_set = set(documented)
    for method, pattern in routes:
        check((method, pattern) in doc_set, "route %s %s is documented in api/openapi.yaml" % (method, pattern))
    route_set = set(routes)
    for method, pattern in documented:
        if method == "OPTIONS":  # answered by the dispatcher on every path that has routes
            check(any(p == pattern for _, p in routes), "documented OPTIONS %s is a path with routes" % pattern)
            continue
        check((method, pattern) in route_set, "documented %s %s is a route in src/http/routes.c" % (method, pattern))

    # Error codes: each must appear as a word in the yaml (the ErrorCode enum).
    enum_block = re.search(r"\n    ErrorCode:\n(.*?)(?=\n    \S)", yaml_text, re.S)
    enum_items = set(re.findall(r"^\s+- ([a-z_]+)\s*$", enum_block.group(1), re.M)) if enum_block else set()
    check(bool(enum_block), "api/openapi.yaml has components/schemas/ErrorCode")
    for code, status in codes:
        if code == "ok":
            continue  # the registry's no-error entry; never sent
        check(code in enum_items, "error code %s (%s) is in the ErrorCode enum" % (code, status))
    registry = {c for c, _ in codes}
    extra = sorted(enum_items - registry)
    check(not extra, "ErrorCode enum has no code missing from errors.h", extra)

    # Every status of the registry that the yaml claims is produced should be
    # a documented response somewhere (429 is registered but not produced).
    statuses = set(re.findall(r'^\s+"(\d{3})":', yaml_text, re.M))
    for code, status in codes:
        if code in ("ok", "too_many_requests"):
            continue
        if status in ("404", "405") and code in ("not_found", "method_not_allowed"):
            continue  # answered by the router for paths/methods not in the table
        check(status in statuses, "status %s of %s appears among documented responses" % (status, code))

    # Spec-driven tools (issue 10).  Path parameters carry an example (dredd
    # fills paths from them); every parameter block is the lines from
    # "- name:" or a components/parameters entry to the next one.
    blocks = re.split(r"\n\s*- name: |\n    [A-Za-z]+:\n      name: ", yaml_text)
    path_params = [b for b in blocks if re.search(r"^\s+in: path\s*$", b.split("\n- ")[0], re.M)]
    no_example = [b.split("\n")[0] for b in path_params if not re.search(r"^\s+example: \S", b, re.M)]
    check(len(path_params) >= 4 and not no_example,
          "every path parameter (%d) has an example" % len(path_params), no_example)
    # Authentication is optional in the document (it depends on token_file):
    # every operation with bearerAuth also lists the empty requirement.
    ops_auth = re.findall(r"\n      security:\n((?:        - .*\n)+)", yaml_text)
    mandatory = [o for o in ops_auth if "bearerAuth" in o and "- {}" not in o]
    check(ops_auth and not mandatory,
          "no operation makes the bearer token mandatory (%d security lists)" % len(ops_auth), mandatory)
    # The request-head refusals (414, 431, 400 Host) can answer any route.
    ops = re.findall(r"\n      responses:\n((?:        .*\n|\n)+)", yaml_text)
    missing = [i for i, o in enumerate(ops) if not all('"%s":' % s in o for s in ("400", "414", "431"))]
    check(len(ops) == len(documented) and not missing,
          "every operation (%d) documents 400, 414 and 431" % len(ops), missing)

    # A job's "kind" is one of the job kinds of the kind table (SVC_KINDS in include/aced/svc.h),
    # all of them: a kind added to the table without the spec's enum fails here.
    svc_h = open(os.path.join(root, "include", "aced", "svc.h")).read()
    table = re.search(r"#define SVC_KINDS\(X\)(.*?)\n\n", svc_h, re.S)
    kinds = re.findall(r"\bX\((\w+)\)", table.group(1)) if table else []
    job = re.search(r"\n    Job:\n(.*?)(?=\n    \S)", yaml_text, re.S)
    kind_enum = re.search(r"\n        kind:\n(?:          .*\n)*?          enum: \[([^\]]*)\]", job.group(1) + "\n") \
        if job else None
    documented_kinds = [k.strip() for k in kind_enum.group(1).split(",")] if kind_enum else []
    check(len(kinds) >= 10 and sorted(kinds) == sorted(documented_kinds),
          "the Job schema's kind enum is exactly the %d kinds of SVC_KINDS" % len(kinds),
          ["SVC_KINDS: %s" % ", ".join(kinds), "spec: %s" % ", ".join(documented_kinds)])

    print("1..%d" % len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
