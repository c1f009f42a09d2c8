#!/usr/bin/env python3
"""Issue 11: cached attributions answered from the body's bytes (src/svc/quick.c).

An HTTP thread that answered a query from the cache answers the same query with other rows without
parsing the body into a tree.  Two daemons hold the same model and warm regressors: `fast` with the
quick path (the default), `slow` with quick_queries = 0, which parses every body in full.  Every
request goes to both, and the replies must be the same bytes (meta.elapsed_ms aside) and the same
status and headers:
- six query shapes (output by name and index, features by name and index, estimator, num, effect,
  whitespace, key order) with random rows (1 to 5 rows; integers, -0, exponents, 17-digit reals,
  whitespace inside the rows), and aced_quick_answers_total shows that fast took its quick path;
- after learning, rows the quick path must leave to the usual path (wrong count, strings, nesting,
  an overflowing number, no rows, 1001 rows, a value the regressor overflows at): the same error;
- 4 client threads with 4 shapes at once on 2 HTTP threads: every reply is its own body's;
- deleting and registering the model again (the regressors are gone): the quick path answers none.
"""

import json
import random
import re
import threading

from acedtest import Daemon, diag, done, fixture_body, ok

rnd = random.Random(1111)
fast = Daemon(args=["--http_threads=2"]).start()
slow = Daemon(args=["--http_threads=2", "--quick_queries=0"]).start()
for d in (fast, slow):
    r = d.post("/v1/models", fixture_body("m"))
    assert r.status in (200, 201), r

URL = "/v1/models/m/attributions"
SHAPES = [
    '{"output":"y1","inputs":%s}',
    '{"inputs":%s,"output":"y0","estimator":"taylor"}',
    '{ "output" : "y2" , "inputs" : %s , "num" : 100 }',
    '{"output":1,"inputs":%s,"features":["x2","x0"]}',
    '{"output":"y0","inputs":%s,"features":[3,1,2,0],"estimator":"taylor","num":100}',
    '{"output":"y1","inputs":%s,"effect":"direct","estimator":"montecarlo","num":50}',
]


def number():
    k = rnd.randrange(6)
    if k == 0:
        return str(rnd.randrange(-3, 4))
    if k == 1:
        return "%.17g" % rnd.uniform(-2, 2)
    if k == 2:
        return rnd.choice(["-0", "0", "-0.0", "1e-3", "0.5E+1", "2.5e-1", "-1E0"])
    if k == 3:
        return "%.3f" % rnd.uniform(-1, 1)
    if k == 4:
        return repr(rnd.uniform(-1, 1))
    return "%.12e" % rnd.uniform(-1, 1)


def rows(n=None):
    n = n or rnd.randrange(1, 6)
    sp = rnd.choice(["", " ", "\n  "])
    return "[" + ("," + sp).join("[" + (sp + "," + sp).join(number() for _ in range(4)) + "]" for _ in range(n)) + "]"


def norm(raw):
    return re.sub(rb'"elapsed_ms":[0-9.]+', b'"elapsed_ms":_', raw)


def same(a, b):
    keep = ("Content-Type", "Cache-Control", "X-Content-Type-Options")
    return (a.status == b.status and norm(a.raw) == norm(b.raw) and
            all(a.headers.get(h) == b.headers.get(h) for h in keep))


def warm(shape):
    """The shape's regressors fitted on both daemons (the first answers may be jobs)."""
    body = (shape % rows(1)).encode()
    for d in (fast, slow):
        for _ in range(200):
            r = d.post(URL, raw=body)
            if r.status == 200:
                break
            if r.status == 202:
                d.wait_job(r.json["job"]["id"] if "job" in r.json else r.json["id"])
        assert r.status == 200, (shape, r)


def quick_count(d):
    m = d.get("/metrics").raw.decode()
    g = re.search(r"^aced_quick_answers_total (\d+)$", m, re.M)
    return int(g.group(1)) if g else None


for s in SHAPES:
    warm(s)

# ---- the same replies, and the quick path taken
q0 = quick_count(fast)
n, bad = 0, []
for s in SHAPES:
    for i in range(40):
        body = (s % rows()).encode()
        a, b = fast.post(URL, raw=body), slow.post(URL, raw=body)
        n += 1
        if not (same(a, b) and a.status == 200):
            bad.append((body, a, b))
q1 = quick_count(fast)
ok(not bad, "%d queries of %d shapes with random rows: fast's reply is slow's, byte for byte" % (n, len(SHAPES)),
   bad[:2])
ok(q1 is not None and q1 - q0 >= n - 2 * len(SHAPES),
   "fast answered them from the body's bytes (%s of %d; each HTTP thread learns a shape once)" % (
       None if q1 is None else q1 - q0, n))
ok(quick_count(slow) == 0, "slow (quick_queries = 0) never did")

# ---- 30 shapes that differ only after the rows (feature lists), more than a thread's 16 slots:
# entries share a slot and their key's first part, so only the part after the rows tells them apart
import itertools
lists = [list(p) for k in (1, 2, 3) for p in itertools.permutations(["x0", "x1", "x2", "x3"], k)][:30]
many = ['{"inputs":%s,"output":"y1","features":' + json.dumps(f) + '}' for f in lists]
bad, n = [], 0
for rep in range(3):
    for s in many:
        body = (s % rows()).encode()
        a, b = fast.post(URL, raw=body), slow.post(URL, raw=body)
        n += 1
        if not (same(a, b) and a.status == 200):
            bad.append((body, a, b))
ok(not bad, "%d queries of %d shapes alike up to their rows: each answered as its own" % (n, len(many)), bad[:2])

# ---- rows the quick path leaves to the usual path: the same errors
s = SHAPES[0]
for d in (fast, slow):  # learnt on both threads
    for _ in range(4):
        d.post(URL, raw=(s % rows()).encode())
cases = {
    "three values": "[[1,2,3]]",
    "five values": "[[1,2,3,4,5]]",
    "a string": '[["a",1,2,3]]',
    "null": "[[null,1,2,3]]",
    "a sequence": "[[[1,2,3,4]]]",
    "no rows": "[]",
    "not an array": '"rows"',
    "an overflowing number": "[[1e400,1,2,3]]",
    "a leading zero": "[[01,1,2,3]]",
    "a trailing comma": "[[1,2,3,4],]",
    "1001 rows": "[" + ",".join(["[1,2,3,4]"] * 1001) + "]",
    "the regressor overflows": "[[1e300,0,0,0]]",
    "an integer past 64 bits": "[[99999999999999999999,0,0,0]]",
    "a huge exponent": "[[1e-400,0,0,0]]",
}
q0 = quick_count(fast)
bad = []
for what, v in cases.items():
    body = (s % v).encode()
    a, b = fast.post(URL, raw=body), slow.post(URL, raw=body)
    if not same(a, b):
        bad.append((what, a, b))
ok(not bad, "%d kinds of rows outside the quick path: the same status and body as the full parse" % len(cases),
   bad[:2])
diag("quick answers among them: %d (only the ones the full parse also answers 200)" % (quick_count(fast) - q0))
body = (s % "[[1e300,0,0,0]]").encode()
r = fast.post(URL, raw=body)
ok(r.status == 422 and r.error_code() == "not_finite" and r.error_field() == "inputs[0][0]",
   "an input the regressor overflows at: 422 not_finite naming inputs[0][0]", r)
body = (s % "[[1e-400,0,0,0]]").encode()
a = fast.post(URL, raw=body)
ok(a.status == 200 and a.json["attributions"][0][0] == slow.post(URL, raw=body).json["attributions"][0][0],
   "an underflowing number reads as 0, as jansson reads it")

# ---- four clients, four shapes, two HTTP threads: no reply is another body's
T, PER = 4, 60
got = [[] for _ in range(T)]


def client(t):
    shape = SHAPES[t]
    for _ in range(PER):
        body = (shape % rows()).encode()
        got[t].append((body, fast.post(URL, raw=body)))


threads = [threading.Thread(target=client, args=(t,)) for t in range(T)]
q0 = quick_count(fast)
for th in threads:
    th.start()
for th in threads:
    th.join()
q1 = quick_count(fast)
bad = [(body, a) for t in range(T) for body, a in got[t] if not same(a, slow.post(URL, raw=body))]
ok(not bad, "%d clients x %d queries at once: each reply is its own body's" % (T, PER), bad[:2])
ok(q1 - q0 >= T * PER - 2 * T, "and came from the quick path (%d of %d)" % (q1 - q0, T * PER))

# ---- the model deleted and registered again: the regressors are gone, no quick answer
s = SHAPES[1]
for _ in range(4):
    fast.post(URL, raw=(s % rows()).encode())
q0 = quick_count(fast)
ok(fast.delete("/v1/models/m").status in (200, 204), "model deleted")
ok(fast.post("/v1/models", fixture_body("m")).status in (200, 201), "and registered again")
# loaded again (its metadata: same digest, same prepared model), but no regressor fitted yet
ok(fast.get("/v1/models/m").status == 200, "the model described, so loaded again")
r = fast.post(URL, raw=(s % rows()).encode())
ok(quick_count(fast) == q0 and (r.status == 202 or (r.status == 200 and r.json["meta"]["cache"] != "hit")),
   "the next query is not answered from the old regressors (HTTP %d, cache %s)" % (
       r.status, r.json.get("meta", {}).get("cache") if r.json else None))

# ---- a new version under the same name (another digest): answered as the new model, not the old
s = SHAPES[0]
for _ in range(4):
    r = fast.post(URL, raw=(s % rows()).encode())
q0 = quick_count(fast)
changed = fixture_body("m")
changed["network"]["layers"][0]["bias"][0] += 0.5
ok(fast.post("/v1/models", changed).status == 201, "a changed model registered under the same name")
r = fast.post(URL, raw=(s % rows()).encode())
ok(quick_count(fast) == q0 and (r.status == 202 or (r.status == 200 and r.json["meta"]["cache"] != "hit")),
   "the next query is the new version's, not a quick answer from the old (HTTP %d)" % r.status)

ok(fast.stop() == 0 and slow.stop() == 0, "both stop cleanly")
done()
