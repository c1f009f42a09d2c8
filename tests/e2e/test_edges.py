#!/usr/bin/env python3
"""End to end: the edges of the request head (issue 10).

aced's own limits on the request target (ACED_URL_MAX bytes, ACED_QUERY_PARAMS_MAX parameters) and the
headers (ACED_HEADERS_MAX lines, ACED_HEADER_BYTES_MAX bytes) must bite before libmicrohttpd's, whose
fallbacks answer in HTML or, for a long query, not at all.  For the default connection pool and the
smallest one the configuration accepts, each limit is checked at its value (served), one past it (a JSON
error naming it) and far past it (still aced's JSON, within the pool); then what a client sees past both
(libmicrohttpd's own 414 or 431, HTML, connection closed at once) and where that starts, measured.
An HTTP/1.1 request without Host, or with two, is refused with 400 (RFC 9112, 3.2).
"""

import json
import os
import re
import socket
import time

from acedtest import SRCDIR, Daemon, diag, done, ok


def limit(name):
    with open(os.path.join(SRCDIR, "include", "aced", "limits.h")) as f:
        m = re.search(r"#define %s (\d+)" % name, f.read())
    return int(m.group(1))


URL_MAX = limit("ACED_URL_MAX")
PARAMS_MAX = limit("ACED_QUERY_PARAMS_MAX")
HEADERS_MAX = limit("ACED_HEADERS_MAX")
HEADER_BYTES_MAX = limit("ACED_HEADER_BYTES_MAX")


def exchange(port, data, timeout=5):
    """Send data, read until the server closes; (reply bytes, seconds, closed by the server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    t0 = time.time()
    out = b""
    closed = False
    try:
        s.sendall(data)
        while True:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            out += b
    except socket.timeout:
        pass
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    finally:
        s.close()
    return out, time.time() - t0, closed


class Reply:
    def __init__(self, out):
        head, _, self.body = out.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0]) if lines else None
        self.status = int(m.group(1)) if m else 0
        self.headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            self.headers[k.strip().lower().decode()] = v.strip().decode("latin-1")
        try:
            self.json = json.loads(self.body)
        except ValueError:
            self.json = None

    def error(self):
        try:
            return self.json["error"]["code"], self.json["error"]["field"]
        except (TypeError, KeyError):
            return None, None

    def __repr__(self):
        return "%d %r %r" % (self.status, self.headers.get("content-type"), self.body[:300])


def head(target=b"/healthz", headers=(), version=b"HTTP/1.1", host=True):
    """A GET request; with Host and Connection: close first, then `headers` (name, value) pairs."""
    h = b"GET %s %s\r\n" % (target, version)
    if host:
        h += b"Host: x\r\n"
    h += b"Connection: close\r\n"
    for k, v in headers:
        h += b"%s: %s\r\n" % (k, v)
    return h + b"\r\n"


BASE_HEADERS = [(b"Host", b"x"), (b"Connection", b"close")]


def base_bytes():
    return sum(len(k) + len(v) + 4 for k, v in BASE_HEADERS)


def target_of(n_bytes, n_params=0):
    """/healthz?... of exactly n_bytes with n_params parameters (padding in the last value)."""
    t = b"/healthz"
    if n_params:
        t += b"?" + b"&".join(b"p%d=1" % i for i in range(n_params))
        pad = n_bytes - len(t)
        assert pad >= 0, (n_bytes, n_params)
        t += b"x" * pad
    else:
        t += b"?a=" + b"x" * (n_bytes - len(t) - 3)
    assert len(t) == n_bytes
    return t


def headers_of(n_lines, n_bytes):
    """n_lines extra headers whose total with the base headers is n_bytes (name: value CRLF)."""
    extra = n_lines - len(BASE_HEADERS)
    budget = n_bytes - base_bytes()
    hs = []
    for i in range(extra):
        name = b"X-H%d" % i
        hs.append([name, b"v"])
    used = sum(len(k) + len(v) + 4 for k, v in hs)
    assert used <= budget, (n_lines, n_bytes)
    if hs:
        hs[-1][1] += b"v" * (budget - used)
    return [tuple(x) for x in hs]


def is_json(r, status, code, field):
    return (r.status == status and r.headers.get("content-type") == "application/json"
            and r.error() == (code, field))


def json_first(port, data):
    """Does aced (not libmicrohttpd) answer this request?"""
    out, secs, closed = exchange(port, data)
    r = Reply(out)
    return r.status != 0 and r.json is not None


def first_failing(port, make, lo, hi):
    """Smallest n in (lo, hi] for which make(n) is no longer answered in JSON (hi+1 if none)."""
    if json_first(port, make(hi)):
        return hi + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if json_first(port, make(mid)):
            lo = mid
        else:
            hi = mid
    return hi


for pool in (32768, 16384):
    d = Daemon(args=["--connection-memory=%d" % pool, "--connection-timeout=10"]).start()
    P = d.port
    tag = "pool %d:" % pool

    # Everything at its limit at once: served.
    t = target_of(URL_MAX, PARAMS_MAX)
    hs = headers_of(HEADERS_MAX, HEADER_BYTES_MAX)
    data = b"GET %s HTTP/1.1\r\n" % t + b"".join(b"%s: %s\r\n" % kv for kv in BASE_HEADERS + hs) + b"\r\n"
    r = Reply(exchange(P, data)[0])
    ok(r.status == 200 and r.json == {"status": "ok"},
       "%s a %d-byte target with %d parameters and %d headers of %d bytes is served"
       % (tag, URL_MAX, PARAMS_MAX, HEADERS_MAX, HEADER_BYTES_MAX), r)

    # One past each limit: aced's JSON error naming it.
    r = Reply(exchange(P, head(target_of(URL_MAX + 1)))[0])
    ok(is_json(r, 414, "uri_too_long", "url"), "%s a %d-byte target -> 414 uri_too_long field url" % (tag, URL_MAX + 1), r)
    r = Reply(exchange(P, head(target_of(200, PARAMS_MAX + 1)))[0])
    ok(is_json(r, 414, "uri_too_long", "query"),
       "%s %d query parameters -> 414 uri_too_long field query" % (tag, PARAMS_MAX + 1), r)
    r = Reply(exchange(P, head(headers=headers_of(HEADERS_MAX + 1, 2000)))[0])
    ok(is_json(r, 431, "header_fields_too_large", "headers"),
       "%s %d header lines -> 431 header_fields_too_large field headers" % (tag, HEADERS_MAX + 1), r)
    r = Reply(exchange(P, head(headers=headers_of(3, HEADER_BYTES_MAX + 1)))[0])
    ok(is_json(r, 431, "header_fields_too_large", "headers"),
       "%s headers of %d bytes -> 431 header_fields_too_large field headers" % (tag, HEADER_BYTES_MAX + 1), r)

    # Far past aced's limits but inside the pool: still aced's JSON, at once.  Before the URI callback
    # cut the query, 500 parameters got no reply until connection_timeout.
    for n in (500, 1000, 2000):
        t = b"/healthz?" + b"&".join(b"p=%d" % i for i in range(n))
        if len(t) > pool // 2:
            continue
        out, secs, closed = exchange(P, head(t))
        r = Reply(out)
        ok(is_json(r, 414, "uri_too_long", "url") and secs < 2,
           "%s %d parameters (%d bytes) -> JSON 414 in %.2f s" % (tag, n, len(t), secs), r)
    t = b"/healthz?" + b"&".join(b"p%d" % i for i in range(PARAMS_MAX * 4))
    if len(t) <= URL_MAX:
        r = Reply(exchange(P, head(t))[0])
        ok(is_json(r, 414, "uri_too_long", "query"), "%s %d short parameters in %d bytes -> JSON 414 field query"
           % (tag, PARAMS_MAX * 4, len(t)), r)
    far_lines = 150  # about twice the limit, under the smallest pool's 200
    r = Reply(exchange(P, head(headers=headers_of(far_lines, far_lines * 12)))[0])
    ok(is_json(r, 431, "header_fields_too_large", "headers"), "%s %d header lines -> JSON 431" % (tag, far_lines), r)
    far_bytes = HEADER_BYTES_MAX * 3 // 2
    r = Reply(exchange(P, head(headers=headers_of(3, far_bytes)))[0])
    ok(is_json(r, 431, "header_fields_too_large", "headers"), "%s headers of %d bytes -> JSON 431" % (tag, far_bytes), r)
    r = Reply(exchange(P, head(target_of(pool // 2)))[0])
    ok(is_json(r, 414, "uri_too_long", "url"), "%s a %d-byte target -> JSON 414" % (tag, pool // 2), r)

    # Where libmicrohttpd's own answers start (the figures for limits.h and the README).
    url_fb = first_failing(P, lambda n: head(target_of(n)), URL_MAX, 4 * pool)
    hb_fb = first_failing(P, lambda n: head(headers=headers_of(3, n)), HEADER_BYTES_MAX, 4 * pool)
    hn_fb = first_failing(P, lambda n: head(headers=headers_of(n, n * 16)), HEADERS_MAX, pool // 8)
    diag("%s libmicrohttpd answers itself from a %d-byte target, %d header bytes, %d header lines"
         % (tag, url_fb, hb_fb, hn_fb))
    ok(url_fb > 8 * URL_MAX and hb_fb > 1.5 * HEADER_BYTES_MAX and hn_fb > 3 * HEADERS_MAX,
       "%s aced's limits sit well inside the pool: fallbacks at %d target bytes (limit %d), %d header bytes "
       "(limit %d), %d header lines (limit %d)" % (tag, url_fb, URL_MAX, hb_fb, HEADER_BYTES_MAX, hn_fb, HEADERS_MAX))

    # Past both: libmicrohttpd's own reply, HTML, and the connection closed at once; aced stays up.
    for what, data, status in (("a %d-byte target" % (2 * pool), head(target_of(2 * pool)), 414),
                               ("headers of %d bytes" % (2 * pool), head(headers=headers_of(3, 2 * pool)), 431),
                               ("%d header lines" % pool, head(headers=headers_of(pool // 8, pool // 8 * 16)), 431)):
        out, secs, closed = exchange(P, data)
        r = Reply(out)
        ok(r.status == status and closed and secs < 2,
           "%s past both limits, %s: libmicrohttpd's %d (HTML, %s), connection closed in %.2f s"
           % (tag, what, status, r.headers.get("content-type", "no content type"), secs), r)
    # The known gap (limits.h): libmicrohttpd parses cookies into its pool itself, so a Cookie header
    # of a few hundred cookies, inside aced's header limits, gets its 431 (at once, no stall).
    n_cookies = pool // 64
    cookie = b"; ".join(b"c%d=1" % i for i in range(n_cookies))
    if len(cookie) + 12 + base_bytes() <= HEADER_BYTES_MAX:
        out, secs, closed = exchange(P, head(headers=[(b"Cookie", cookie)]))
        r = Reply(out)
        ok(r.status == 431 and closed and secs < 2,
           "%s known gap: %d cookies (a %d-byte header, inside aced's limits) get libmicrohttpd's 431 at once"
           % (tag, n_cookies, len(cookie)), r)
    ok(d.get("/healthz").status == 200, "%s aced is up after the edges" % tag)

    # Host (RFC 9112, 3.2).
    if pool == 32768:
        r = Reply(exchange(P, head(host=False))[0])
        ok(is_json(r, 400, "bad_request", "Host"), "an HTTP/1.1 request without Host -> 400 field Host", r)
        r = Reply(exchange(P, head(headers=[(b"Host", b"y")]))[0])
        ok(is_json(r, 400, "bad_request", "Host"), "an HTTP/1.1 request with two Host headers -> 400 field Host", r)
        r = Reply(exchange(P, head(version=b"HTTP/1.0", host=False))[0])
        ok(r.status == 200 and r.json == {"status": "ok"}, "an HTTP/1.0 request without Host is served", r)
        r = Reply(exchange(P, head(target=b"/v1/models", host=True))[0])
        ok(r.status == 200 and r.json is not None, "an HTTP/1.1 request with Host is served", r)
    d.cleanup()

done()
