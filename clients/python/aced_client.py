#!/usr/bin/env python3
"""aced_client -- a Python client for aced (standard library only).

Copy this one file anywhere Python 3.8+ runs; nothing else is needed (torch only to register a torch
model, through examples/register_torch.py's conversion).

    from aced_client import Client, AcedError
    aced = Client("http://127.0.0.1:8080", token=None)    # or $ACED_URL, $ACED_TOKEN
    aced.register_file("examples/iris-demo.json")           # a registration body (JSON) or an .onnx file
    reg = aced.regressor("iris-demo", "virginica", "petal_width")
    att = aced.attributions("iris-demo", [[0.2, 0.5, 0.6, 0.9]], output="virginica")
    exp = aced.explanations("iris-demo", [[0.2, 0.5, 0.6, 0.9]], output="virginica",
                            methods=["gradient", "integrated_gradients"])
    aced.fit_regressors("iris-demo", progress=lambda p, job: print(p["done"], "/", p["total"]))

Every query that aced answers with 202 (its job outlived sync_wait_ms, or a regressors set) is
followed to its end (a 503, aced's queue being full, is retried after its Retry-After, `retries`
times): `progress(progress, job)` is called with the job's {"done", "total"} on every
poll, and the job's result is returned.  A refusal raises AcedError with the server's `status`,
`code`, `message` and `field` (a failed job's error too); a reply that is not aced's JSON (a proxy's
HTML page) raises AcedError with code "http_<status>".

Regressors are revalidated: the client keeps the last reply of each regressor URL with its ETag and
sends If-None-Match; a 304 returns the kept reply without the server doing any work.

As a script:

    python3 aced_client.py register examples/iris-demo.json   # register the example model
    python3 aced_client.py models
    python3 aced_client.py fit iris-demo --output virginica     # fit its regressors, with progress
    python3 aced_client.py regressor iris-demo virginica petal_width
"""

import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8080"
__all__ = ["Client", "AcedError", "onnx_body"]


class AcedError(Exception):
    """aced refused a request (or a job failed): status, code, message, field as the server sent."""

    def __init__(self, status, code, message, field="", body=None):
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.body = body
        where = " at %s" % field if field else ""
        super().__init__("%s (%s)%s: %s" % (code, status if status is not None else "job", where, message))


def _enc(s):
    """One path segment: names may hold '/', which goes as %2F."""
    return urllib.parse.quote(str(s), safe="")


def onnx_body(path, name, features, outputs, data=None, description=None):
    """A registration body for an ONNX file: {"network": {"type": "onnx", "model": <base64>}}.

    features: a list of {"name", "low", "high"} (or (name, low, high) tuples); outputs: names;
    data: {"samples": [[...]]} and/or {"mean": [...], "covariance": [[...]]}."""
    with open(path, "rb") as f:
        model = base64.b64encode(f.read()).decode("ascii")
    feats = [f if isinstance(f, dict) else {"name": f[0], "low": f[1], "high": f[2]} for f in features]
    body = {"name": name, "features": feats, "outputs": list(outputs),
            "network": {"type": "onnx", "model": model}}
    if data is not None:
        body["data"] = data
    if description:
        body["description"] = description
    return body


class Client:
    def __init__(self, url=None, token=None, timeout=300, poll_interval=0.2, retries=5):
        self.url = (url or os.environ.get("ACED_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("ACED_TOKEN")
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.retries = retries  # a 503 (queue full) is retried after its Retry-After, this many times
        self._etags = {}  # regressor path -> (ETag, reply)

    # ---- HTTP ----

    def request(self, method, path, body=None, headers=None):
        """(status, parsed JSON or None, headers) of one request; raises AcedError for 4xx/5xx."""
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    status, raw, rh = r.status, r.read(), r.headers
            except urllib.error.HTTPError as e:
                status, raw, rh = e.code, e.read(), e.headers
            if status != 503 or attempt == self.retries:
                break
            try:
                wait = float(rh.get("Retry-After") or 1)
            except ValueError:
                wait = 1.0
            time.sleep(min(max(wait, 0.0), 30.0))
        if status == 304:
            return status, None, rh
        ctype = (rh.get("Content-Type") or "").split(";")[0].strip()
        parsed = None
        if ctype == "application/json" and raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        if status >= 400:
            err = parsed.get("error") if isinstance(parsed, dict) else None
            if isinstance(err, dict) and "code" in err:
                raise AcedError(status, err["code"], err.get("message", ""), err.get("field", ""), parsed)
            text = raw[:300].decode("utf-8", "replace")
            raise AcedError(status, "http_%d" % status,
                            "the reply is %s, not aced's JSON error (a proxy in front of aced?): %s"
                            % (ctype or "without a type", text))
        return status, parsed, rh

    def _query(self, method, path, body=None, progress=None, headers=None):
        status, reply, rh = self.request(method, path, body, headers)
        if status == 202:
            return self.wait(reply["job"], progress)
        return reply

    # ---- jobs ----

    def job(self, job_id):
        return self.request("GET", "/v1/jobs/" + _enc(job_id))[1]

    def cancel(self, job_id):
        return self.request("DELETE", "/v1/jobs/" + _enc(job_id))[1]

    def wait(self, job, progress=None, timeout=None):
        """Poll a job (its id or its object) until it ends; its result, or AcedError if it failed."""
        job_id = job["id"] if isinstance(job, dict) else job
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            j = self.job(job_id)
            if progress is not None:
                progress(j.get("progress", {"done": 0, "total": 0}), j)
            if j["state"] == "done":
                return j.get("result")
            if j["state"] in ("failed", "cancelled"):
                e = j.get("error") or {"code": j["state"], "message": "job %s" % j["state"], "field": ""}
                raise AcedError(None, e.get("code"), e.get("message", ""), e.get("field", ""), j)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("job %s still %s after %ss" % (job_id, j["state"], timeout))
            time.sleep(self.poll_interval)

    # ---- models ----

    def register(self, body, progress=None):
        """POST /v1/models with a registration body (a dict): the reply (name, version, digest, created)."""
        return self._query("POST", "/v1/models", body, progress)

    def register_file(self, path, name=None, **onnx):
        """A JSON registration body, or an .onnx file (then give features=, outputs=, data= as in
        onnx_body); name= overrides the body's name."""
        if path.endswith(".onnx"):
            return self.register(onnx_body(path, name or os.path.basename(path)[:-5], **onnx))
        with open(path) as f:
            body = json.load(f)
        if name:
            body["name"] = name
        return self.register(body)

    def register_torch(self, net, name, features, outputs, samples, **kw):
        """A torch.nn.Sequential, converted by examples/register_torch.py's registration_body (found
        beside this file's repository or on sys.path), then registered."""
        try:
            import register_torch
        except ImportError:
            here = os.path.dirname(os.path.abspath(__file__))
            sys.path.insert(0, os.path.join(here, "..", "..", "examples"))
            import register_torch
        body = register_torch.registration_body(net, name=name, features=features, outputs=outputs,
                                                samples=samples, **kw)
        return self.register(body)

    def models(self):
        return self.request("GET", "/v1/models")[1]["models"]

    def model(self, name):
        return self._query("GET", "/v1/models/" + _enc(name))

    def delete_model(self, name):
        return self.request("DELETE", "/v1/models/" + _enc(name))[1]

    # ---- queries ----

    @staticmethod
    def _params(body, params):
        for k in ("estimator", "num", "max_order", "epsilon"):
            if params.get(k) is not None:
                body[k] = params[k]
        return body

    def interventions(self, name, output, feature, values, progress=None, **params):
        """E[output | do(feature = v)] for each v."""
        body = self._params({"output": output, "feature": feature, "values": list(values)}, params)
        return self._query("POST", "/v1/models/%s/interventions" % _enc(name), body, progress)

    def regressor(self, name, output, feature, progress=None, **params):
        """The causal regressor of output on feature (revalidated with its ETag when asked again)."""
        q = {k: params[k] for k in ("estimator", "num", "max_order", "epsilon") if params.get(k) is not None}
        path = "/v1/models/%s/regressors/%s/%s" % (_enc(name), _enc(output), _enc(feature))
        if q:
            path += "?" + urllib.parse.urlencode(q)
        kept = self._etags.get(path)
        status, reply, rh = self.request("GET", path, headers={"If-None-Match": kept[0]} if kept else None)
        if status == 304:
            return kept[1]
        if status == 202:
            return self.wait(reply["job"], progress)
        if rh.get("ETag"):
            self._etags[path] = (rh.get("ETag"), reply)
        return reply

    def fit_regressors(self, name, outputs=None, features=None, progress=None, wait=True, **params):
        """Fit a set of regressors as a background job (all outputs x features by default): its result
        ({computed, cached, ...}) when wait, else the job."""
        body = self._params({}, params)
        if outputs is not None:
            body["outputs"] = list(outputs)
        if features is not None:
            body["features"] = list(features)
        status, reply, _ = self.request("POST", "/v1/models/%s/regressors" % _enc(name), body)
        return self.wait(reply["job"], progress) if wait else reply["job"]

    def attributions(self, name, inputs, output=None, outputs=None, features=None, progress=None, **params):
        """ACE of each feature for each input row (one output, or several with outputs=)."""
        body = self._params({"inputs": inputs}, params)
        if outputs is not None:
            body["outputs"] = list(outputs)
        else:
            body["output"] = output
        if features is not None:
            body["features"] = list(features)
        return self._query("POST", "/v1/models/%s/attributions" % _enc(name), body, progress)

    def explanations(self, name, inputs=None, output=None, method=None, methods=None, progress=None, **extra):
        """Gradient, gradient x input, integrated gradients, ablation, connection weights: one method,
        or several side by side (methods=[...]); extra: baseline, rule, steps."""
        body = {"output": output}
        if methods is not None:
            body["methods"] = list(methods)
        else:
            body["method"] = method
        if inputs is not None:
            body["inputs"] = inputs
        body.update({k: v for k, v in extra.items() if v is not None})
        return self._query("POST", "/v1/models/%s/explanations" % _enc(name), body, progress)


def _bar(p, job):
    done, total = p.get("done", 0), p.get("total", 0)
    width = 30
    fill = int(width * done / total) if total else 0
    sys.stderr.write("\r%-9s [%s%s] %d/%d" % (job.get("state", ""), "#" * fill, "." * (width - fill), done, total))
    sys.stderr.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(description="aced's command-line client")
    ap.add_argument("--url", help="aced's base URL (default $ACED_URL or %s)" % DEFAULT_URL)
    ap.add_argument("--token", help="bearer token (default $ACED_TOKEN)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("register", help="register a JSON registration body or an .onnx file")
    r.add_argument("file")
    r.add_argument("--name")
    sub.add_parser("models", help="list the models")
    m = sub.add_parser("model", help="a model's metadata")
    m.add_argument("name")
    f = sub.add_parser("fit", help="fit a model's regressors, showing the job's progress")
    f.add_argument("name")
    f.add_argument("--output", action="append")
    f.add_argument("--feature", action="append")
    g = sub.add_parser("regressor", help="one causal regressor")
    g.add_argument("name")
    g.add_argument("output")
    g.add_argument("feature")
    g.add_argument("--num", type=int)
    g.add_argument("--estimator")
    a = sub.add_parser("attributions", help="attributions of input rows (JSON [[...], ...])")
    a.add_argument("name")
    a.add_argument("output")
    a.add_argument("rows")
    args = ap.parse_args(argv)
    c = Client(args.url, args.token)
    try:
        if args.cmd == "register":
            out = c.register_file(args.file, name=args.name)
            print("%s version %s %s (%s)" % (out["name"], out["version"], out["digest"],
                                             "new version" if out.get("created") else "already registered"))
            return 0
        if args.cmd == "models":
            out = c.models()
        elif args.cmd == "model":
            out = c.model(args.name)
        elif args.cmd == "fit":
            out = c.fit_regressors(args.name, args.output, args.feature, progress=_bar)
            sys.stderr.write("\n")
        elif args.cmd == "regressor":
            out = c.regressor(args.name, args.output, args.feature, num=args.num, estimator=args.estimator)
        else:
            out = c.attributions(args.name, json.loads(args.rows), output=args.output)
        print(json.dumps(out, indent=1))
        return 0
    except AcedError as e:
        print("aced: %s" % e, file=sys.stderr)
        return 1
    except urllib.error.URLError as e:
        print("aced: cannot reach %s: %s" % (c.url, e.reason), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
