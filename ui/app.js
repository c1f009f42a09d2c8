/* aced web view: models, causal regressors as small multiples, attributions.
 * Plain script, no build step; d3 (Debian's libjs-d3, served as d3.min.js) draws.
 * Every URL is relative to the page (ui/), so aced works under a proxy's path prefix.
 * The page reads only; a token typed in is kept in this tab's sessionStorage. */
"use strict";

var api = "../v1/";           // relative: /prefix/ui/ -> /prefix/v1/
var TOKEN_KEY = "aced-token";
var state = { model: null, meta: null, output: null, regressors: {}, gen: 0 };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, text) {
  var e = document.createElement(tag);
  if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function status(msg, isError) {
  $("status").textContent = msg || "";
  $("status").className = isError ? "error" : "";
}

/* ---- the API ---- */

function ApiError(status, body) {
  var e = (body && body.error) || {};
  this.status = status;
  this.code = e.code || "http_" + status;
  this.field = e.field || "";
  this.message = (e.message || "HTTP " + status) + (e.field ? " (field " + e.field + ")" : "");
}

function request(method, path, body) {
  var headers = {};
  var token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  var init = { method: method, headers: headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(api + path, init).then(function (r) {
    return r.text().then(function (t) {
      var j = null;
      try { j = t ? JSON.parse(t) : null; } catch (e) { j = null; }
      if (r.status === 401) askToken(j && j.error ? j.error.message : "a token is needed");
      if (r.status >= 400) throw new ApiError(r.status, j);
      return { status: r.status, json: j };
    });
  });
}

function enc(s) { return encodeURIComponent(s); }

/* A job (a 202's {"job": {...}, "location"}): poll it until it ends, reporting progress;
 * resolves with its result. */
function followJob(reply, onProgress) {
  var job = reply.job || reply;
  return new Promise(function (resolve, reject) {
    function poll() {
      request("GET", "jobs/" + enc(job.id)).then(function (r) {
        var j = r.json;
        if (onProgress) onProgress(j.progress || { done: 0, total: 0 }, j.state);
        if (j.state === "done") return resolve(j.result);
        if (j.state === "failed" || j.state === "cancelled")
          return reject(new ApiError(422, { error: j.error || { code: j.state, message: "job " + j.state } }));
        setTimeout(poll, 250);
      }, reject);
    }
    poll();
  });
}

/* A synchronous query that may answer 202 with its job. */
function query(method, path, body) {
  return request(method, path, body).then(function (r) {
    return r.status === 202 ? followJob(r.json) : r.json;
  });
}

/* ---- token ---- */

function askToken(msg) {
  $("token-form").hidden = false;
  $("token-msg").textContent = msg || "";
}

function initToken() {
  $("token-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var t = $("token").value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    $("token-form").hidden = true;
    loadModels();
  });
}

/* ---- models ---- */

function loadModels() {
  status("loading models...");
  return request("GET", "models").then(function (r) {
    var list = (r.json && r.json.models) || [];
    var tbody = $("model-list").querySelector("tbody");
    tbody.textContent = "";
    list.forEach(function (m) {
      var tr = el("tr", { "data-model": m.name });
      [m.name, m.version, m.n_features !== undefined ? m.n_features : (m.features || []).length,
       m.n_outputs !== undefined ? m.n_outputs : (m.outputs || []).length, m.created_at || ""].forEach(function (v) {
        tr.appendChild(el("td", null, v));
      });
      tr.addEventListener("click", function () { selectModel(m.name); });
      tbody.appendChild(tr);
    });
    status(list.length ? "" : "no models registered yet (README: one command registers the example model)");
    var want = new URLSearchParams(location.search).get("model") || (list.length ? list[0].name : null);
    if (want) return selectModel(want);
  }).catch(function (e) { status(e.message, true); });
}

function selectModel(name) {
  state.model = name;
  Array.prototype.forEach.call($("model-list").querySelectorAll("tbody tr"), function (tr) {
    tr.classList.toggle("selected", tr.getAttribute("data-model") === name);
  });
  return request("GET", "models/" + enc(name)).then(function (r) {
    state.meta = r.json;
    showMeta(r.json);
    var sel = $("output");
    sel.textContent = "";
    r.json.outputs.forEach(function (o) { sel.appendChild(el("option", { value: o }, o)); });
    $("effects").hidden = false;
    $("attributions").hidden = false;
    var want = new URLSearchParams(location.search).get("output");
    sel.value = want && r.json.outputs.indexOf(want) >= 0 ? want : r.json.outputs[0];
    // recurrent models: the effects are of x_i at one step (default the last)
    var ts = $("timestep"), T = r.json.sequence_length || 0;
    ts.textContent = "";
    for (var t = 0; t < T; t++) ts.appendChild(el("option", { value: String(t) }, String(t)));
    ts.value = String(T - 1);
    $("timestep-label").hidden = !(T > 0);
    return showEffects();
  }).catch(function (e) { status(e.message, true); });
}

/* The timestep of a recurrent model's effects as a query parameter ("" otherwise). */
function stepQuery(meta) {
  return meta && meta.sequence_length ? "&timestep=" + enc($("timestep").value) : "";
}

function isRecurrent(meta) {
  return !!(meta && (meta.lag || (meta.network && meta.network.type === "recurrent")));
}

function showMeta(m) {
  var box = $("model-meta");
  box.textContent = "";
  box.hidden = false;
  var details = el("details");
  details.appendChild(el("summary", null, m.name + " v" + m.version + ": " + m.features.length + " features, " +
    m.outputs.length + " outputs" + (m.description ? " \u2014 " + m.description : "")));
  box.appendChild(details);
  box = details;
  var dl = el("dl");
  function row(k, v) { dl.appendChild(el("dt", null, k)); dl.appendChild(el("dd", null, v)); }
  row("model", m.name + " v" + m.version);
  if (m.description) row("description", m.description);
  row("digest", m.digest);
  if (m.network) row("network", m.network.type + (m.network.layers ? ", " + m.network.layers.map(function (l) {
    return l.units + " " + l.activation; }).join(" / ") : ""));
  if (m.lag !== undefined) row("lag", m.lag);
  if (m.data) row("data", (m.data.n_samples || 0) + " samples, moments " + (m.data.moments || ""));
  if (m.graph) row("graph", JSON.stringify(m.graph));
  if (m.prepared) row("prepared", JSON.stringify(m.prepared));
  row("outputs", m.outputs.join(", "));
  box.appendChild(dl);
  var t = el("table", { id: "feature-table" });
  var head = el("tr");
  ["feature", "low", "high", ""].forEach(function (h) { head.appendChild(el("th", null, h)); });
  t.appendChild(head);
  m.features.forEach(function (f) {
    var tr = el("tr");
    [f.name, f.low, f.high, f.constant ? "constant" : ""].forEach(function (v) { tr.appendChild(el("td", null, v)); });
    t.appendChild(tr);
  });
  box.appendChild(t);
}

/* ---- effects: small multiples ---- */

function showEffects() {
  var output = $("output").value;
  var meta = state.meta;
  var gen = ++state.gen;      // a newer choice makes older replies stale
  state.output = output;
  state.regressors = {};
  $("large").hidden = true;
  var box = $("multiples");
  box.textContent = "";
  box.classList.remove("ready");
  var features = meta.features.filter(function (f) { return !f.constant; }).map(function (f) { return f.name; });
  features.forEach(function (f) {
    var div = el("div", { "class": "plot pending", "data-feature": f });
    div.appendChild(el("h3", null, f));
    div.addEventListener("click", function () { showLarge(f); });
    box.appendChild(div);
  });
  var prog = $("progress");
  prog.hidden = false;
  $("progress-bar").value = 0;
  $("progress-text").textContent = "fitting the regressors...";
  status("");
  // Missing regressors are fitted by one background job; those cached count as done.
  var estimator = $("estimator").value;
  return request("POST", "models/" + enc(meta.name) + "/regressors", { outputs: [output], features: features, estimator: estimator })
    .then(function (r) {
      return followJob(r.json, function (p, st) {
        if (gen !== state.gen) return;
        $("progress-bar").max = p.total || 1;
        $("progress-bar").value = p.done;
        $("progress-text").textContent = st + ": " + p.done + " of " + p.total + " regressors";
      });
    })
    .then(function (res) {
      if (gen !== state.gen) return;
      $("progress-text").textContent = res.computed + " fitted now, " + res.cached + " from the cache";
      return Promise.all(features.map(function (f) {
        return query("GET", "models/" + enc(meta.name) + "/regressors/" + enc(output) + "/" + enc(f) +
                     "?estimator=" + enc(estimator) + stepQuery(meta))
          .then(function (reg) {
            if (gen !== state.gen) return;
            state.regressors[f] = reg;
            drawSmall(f, reg);
          }, function (e) {
            var d = box.querySelector('[data-feature="' + CSS.escape(f) + '"]');
            if (d) d.appendChild(el("p", { "class": "error" }, e.message));
          });
      }));
    })
    .then(function () { if (gen === state.gen) box.classList.add("ready"); })
    .catch(function (e) { status(e.message, true); $("progress-text").textContent = "failed"; });
}

function warningsOf(reg) {
  var w = (reg.warnings || []).slice();
  ((reg.meta && reg.meta.warnings) || []).forEach(function (x) { if (w.indexOf(x) < 0) w.push(x); });
  return w;
}

/* One regressor: band (mean +- 2 std), mean, baseline, the domain as the x axis. */
function drawRegressor(container, reg, width, height, ticks) {
  var m = { top: 6, right: 8, bottom: 22, left: 44 };
  var w = width - m.left - m.right, h = height - m.top - m.bottom;
  var curve = reg.curve || [];
  var lo = d3.min(curve, function (p) { return p.mean - 2 * p.std; });
  var hi = d3.max(curve, function (p) { return p.mean + 2 * p.std; });
  lo = Math.min(lo, reg.baseline); hi = Math.max(hi, reg.baseline);
  if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }
  var x = d3.scale.linear().domain(reg.domain).range([0, w]);
  var y = d3.scale.linear().domain([lo, hi]).range([h, 0]).nice();
  var svg = d3.select(container).append("svg")
    .attr("width", width).attr("height", height)
    .attr("role", "img").attr("aria-label", "E[" + reg.output + " | do(" + reg.feature + " = a)] over [" +
      reg.domain.join(", ") + "], " + reg.estimator)
    .attr("data-feature", reg.feature).attr("data-output", reg.output);
  var g = svg.append("g").attr("transform", "translate(" + m.left + "," + m.top + ")");
  var area = d3.svg.area()
    .x(function (p) { return x(p.x); })
    .y0(function (p) { return y(p.mean - 2 * p.std); })
    .y1(function (p) { return y(p.mean + 2 * p.std); });
  var line = d3.svg.line().x(function (p) { return x(p.x); }).y(function (p) { return y(p.mean); });
  g.append("path").datum(curve).attr("class", "band").attr("d", area);
  g.append("line").attr("class", "baseline")
    .attr("x1", 0).attr("x2", w).attr("y1", y(reg.baseline)).attr("y2", y(reg.baseline));
  g.append("path").datum(curve).attr("class", "mean").attr("d", line);
  if (ticks > 4)  // the large view: the Phase I evaluations the regressor was fitted to
    g.selectAll("circle.point").data(reg.points || []).enter().append("circle").attr("class", "point")
      .attr("cx", function (p) { return x(p.x); }).attr("cy", function (p) { return y(p.expectation); }).attr("r", 2.5);
  g.append("g").attr("class", "axis x").attr("transform", "translate(0," + h + ")")
    .call(d3.svg.axis().scale(x).orient("bottom").ticks(ticks));
  g.append("g").attr("class", "axis y").call(d3.svg.axis().scale(y).orient("left").ticks(ticks));
  return svg;
}

function drawSmall(f, reg) {
  var div = $("multiples").querySelector('[data-feature="' + CSS.escape(f) + '"]');
  if (!div) return;
  div.classList.remove("pending");
  var h3 = div.querySelector("h3");
  var w = warningsOf(reg);
  h3.appendChild(el("span", { "class": "est" }, reg.estimator));
  if (w.length) h3.appendChild(el("span", { "class": "warn", title: w.join("\n") }, "\u26a0 " + w.length));
  drawRegressor(div, reg, 260, 170, 4);
}

function showLarge(f) {
  var reg = state.regressors[f];
  if (!reg) return;
  $("large").hidden = false;
  var box = $("large-plot");
  box.textContent = "";
  box.appendChild(el("h3", null, state.output + " | do(" + f + ")"));
  drawRegressor(box, reg, Math.min(900, window.innerWidth * 0.8), 420, 8);
  var dl = $("large-meta");
  dl.textContent = "";
  function row(k, v) { dl.appendChild(el("dt", null, k)); dl.appendChild(el("dd", null, v)); }
  row("estimator", reg.estimator + " (asked: " + reg.estimator_requested + "; " + (reg.estimator_reason || "") + ")");
  row("cache", reg.meta ? reg.meta.cache : "");
  row("elapsed", reg.meta ? reg.meta.elapsed_ms + " ms" : "");
  row("order", reg.order + " (of at most " + reg.max_order + ", " + reg.basis + " basis)");
  row("baseline", reg.baseline);
  row("domain", "[" + reg.domain.join(", ") + "]");
  if (reg.diagnostic) row("diagnostic", JSON.stringify(reg.diagnostic));
  var w = warningsOf(reg);
  var dd = el("dd");
  var ul = el("ul", { "class": "warnings" });
  if (!w.length) dd.textContent = "none";
  w.forEach(function (s) { ul.appendChild(el("li", null, s)); });
  if (w.length) dd.appendChild(ul);
  dl.appendChild(el("dt", null, "warnings"));
  dl.appendChild(dd);
}

/* ---- attributions ---- */

/* Rows from CSV (optional header of feature names) or JSON ([[...]] or {"inputs": ...}). */
function parseRows(text, featureNames) {
  text = text.trim();
  if (!text) throw new Error("no input rows");
  if (text[0] === "[" || text[0] === "{") {
    var j = JSON.parse(text);
    if (!Array.isArray(j)) j = j.inputs;
    if (!Array.isArray(j)) throw new Error("JSON rows: expected [[...], ...] or {\"inputs\": [[...]]}");
    return Array.isArray(j[0]) ? j : [j];
  }
  var lines = text.split(/\r?\n/).filter(function (l) { return l.trim() !== ""; });
  var cells = lines.map(function (l) { return l.split(/[,;\t]/).map(function (c) { return c.trim(); }); });
  var order = null;
  if (cells[0].some(function (c) { return isNaN(Number(c)); })) {
    var head = cells.shift();
    order = featureNames.map(function (n) {
      var i = head.indexOf(n);
      if (i < 0) throw new Error("CSV header has no column '" + n + "'");
      return i;
    });
  }
  return cells.map(function (r, k) {
    var vals = order ? order.map(function (i) { return r[i]; }) : r;
    return vals.map(function (c, i) {
      var v = Number(c);
      if (c === "" || c === undefined || !isFinite(v)) throw new Error("row " + (k + 1) + ", column " + (i + 1) + ": not a number");
      return v;
    });
  });
}

function barChart(container, title, features, values) {
  var div = el("div", { "class": "attr-chart" });
  div.appendChild(el("h4", null, title));
  container.appendChild(div);
  var bh = 16, m = { top: 4, right: 10, bottom: 20, left: 110 }, w = 260;
  var h = features.length * bh;
  var mx = d3.max(values, function (v) { return Math.abs(v); }) || 1;
  var x = d3.scale.linear().domain([-mx, mx]).range([0, w]).nice();
  var y = d3.scale.ordinal().domain(features).rangeRoundBands([0, h], 0.15);
  var svg = d3.select(div).append("svg").attr("class", "bars")
    .attr("width", w + m.left + m.right).attr("height", h + m.top + m.bottom);
  var g = svg.append("g").attr("transform", "translate(" + m.left + "," + m.top + ")");
  g.selectAll("rect").data(values).enter().append("rect")
    .attr("class", function (v) { return "bar " + (v >= 0 ? "pos" : "neg"); })
    .attr("x", function (v) { return x(Math.min(0, v)); })
    .attr("width", function (v) { return Math.abs(x(v) - x(0)); })
    .attr("y", function (v, i) { return y(features[i]); })
    .attr("height", y.rangeBand())
    .append("title").text(function (v, i) { return features[i] + ": " + v; });
  g.append("g").attr("class", "axis x").attr("transform", "translate(0," + h + ")")
    .call(d3.svg.axis().scale(x).orient("bottom").ticks(4));
  g.append("g").attr("class", "axis y").call(d3.svg.axis().scale(y).orient("left"));
}

/* Recurrent models: one row's attributions as timesteps x features (a row of rows). */
function heatMap(container, title, features, matrix) {
  var div = el("div", { "class": "attr-chart" });
  div.appendChild(el("h4", null, title));
  container.appendChild(div);
  var cell = 18, m = { top: 4, right: 10, bottom: 20, left: 110 };
  var steps = matrix.length;
  var mx = d3.max(matrix, function (r) { return d3.max(r, function (v) { return Math.abs(v); }); }) || 1;
  var color = d3.scale.linear().domain([-mx, 0, mx]).range(["#2166ac", "#f7f7f7", "#b2182b"]);
  var x = d3.scale.ordinal().domain(d3.range(steps)).rangeBands([0, steps * cell]);
  var y = d3.scale.ordinal().domain(features).rangeBands([0, features.length * cell]);
  var svg = d3.select(div).append("svg").attr("class", "heatmap")
    .attr("width", steps * cell + m.left + m.right).attr("height", features.length * cell + m.top + m.bottom);
  var g = svg.append("g").attr("transform", "translate(" + m.left + "," + m.top + ")");
  matrix.forEach(function (r, t) {
    g.selectAll("rect.t" + t).data(r).enter().append("rect").attr("class", "cell t" + t)
      .attr("x", x(t)).attr("y", function (v, i) { return y(features[i]); })
      .attr("width", x.rangeBand()).attr("height", y.rangeBand())
      .attr("fill", function (v) { return color(v); })
      .append("title").text(function (v, i) { return "t=" + t + " " + features[i] + ": " + v; });
  });
  g.append("g").attr("class", "axis x").attr("transform", "translate(0," + features.length * cell + ")")
    .call(d3.svg.axis().scale(x).orient("bottom"));
  g.append("g").attr("class", "axis y").call(d3.svg.axis().scale(y).orient("left"));
}

function chart(container, title, features, row) {
  if (Array.isArray(row[0])) heatMap(container, title, features, row);
  else barChart(container, title, features, row);
}

function attribute() {
  var meta = state.meta, out = $("attr-out");
  out.textContent = "";
  var rows;
  try { rows = parseRows($("rows").value, meta.features.map(function (f) { return f.name; })); }
  catch (e) { out.appendChild(el("p", { "class": "error" }, e.message)); return Promise.resolve(); }
  var methods = Array.prototype.filter.call($("methods").querySelectorAll("input"), function (c) { return c.checked; })
    .map(function (c) { return c.value; });
  var output = $("output").value;
  var base = "models/" + enc(meta.name) + "/";
  var jobs = [];
  if (methods.indexOf("ace") >= 0)
    jobs.push(query("POST", base + "attributions", { output: output, inputs: rows, estimator: $("estimator").value }).then(function (r) {
      return [{ method: "causal (ACE)", features: r.features, attributions: r.attributions, meta: r.meta }];
    }));
  var others = methods.filter(function (m) { return m !== "ace"; });
  // every method offered here takes recurrent models too (rows x T x features); connection
  // weights, which do not, are not offered by the page
  if (others.length)
    jobs.push(query("POST", base + "explanations", { methods: others, output: output, inputs: rows }).then(function (r) {
      return r.explanations;
    }));
  status("attributing " + rows.length + " row(s)...");
  return Promise.all(jobs).then(function (blocks) {
    blocks = [].concat.apply([], blocks);
    rows.forEach(function (row, i) {
      var line = el("div", { "class": "attr-row", "data-row": i });
      line.appendChild(el("h4", null, "row " + (i + 1)));
      blocks.forEach(function (b) {
        chart(line, b.method + (isRecurrent(meta) ? " (timesteps x features)" : ""), b.features, b.attributions[i]);
      });
      out.appendChild(line);
    });
    status("");
  }).catch(function (e) { out.appendChild(el("p", { "class": "error" }, e.message)); status(""); });
}

function init() {
  initToken();
  $("output").addEventListener("change", showEffects);
  $("estimator").addEventListener("change", showEffects);
  $("timestep").addEventListener("change", showEffects);
  document.addEventListener("keydown", function (ev) { if (ev.key === "Escape") $("large").hidden = true; });
  $("large-close").addEventListener("click", function () { $("large").hidden = true; });
  $("attribute").addEventListener("click", attribute);
  $("rows-file").addEventListener("change", function (ev) {
    var f = ev.target.files[0];
    if (f) f.text().then(function (t) { $("rows").value = t; });
  });
  if (typeof d3 === "undefined") {
    status("the chart library (ui/d3.min.js) did not load: install Debian's libjs-d3 or set ui_chart_library", true);
    return;
  }
  loadModels();
}

document.addEventListener("DOMContentLoaded", init);
