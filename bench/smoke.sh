#!/bin/sh
# bench/smoke.sh -- keeps the benchmarks working: every part of `make bench`
# on tiny workloads, in seconds, printing TAP.  Needs neither PyTorch nor
# wrk (the torch peer runs when /usr/bin/python3 has torch, else is
# skipped).  Run by `make check` and `make bench-smoke`.
set -u
srcdir=${ACED_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${ACED_BUILDDIR:-$srcdir}
fixture=$srcdir/tests/data/small_mlp.json
py=${PYTHON3:-python3}
torch_py=${TORCH_PYTHON:-/usr/bin/python3}
if [ ! -f "$fixture" ]; then
  echo "not ok 1 - the reference fixture $fixture exists"
  echo "1..1"
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/aced-bench-smoke.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
n=0
ok() { # ok STATUS DESCRIPTION
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}
skip() {
  n=$((n + 1))
  echo "ok $n - $1 # SKIP $2"
}
show() { # the tail of a log as TAP comments
  sed -e 's/^/# /' "$1" | tail -n 15
}

"$builddir/bench/bench_engine" --smoke --fixture "$fixture" \
  --json "$tmp/engine.json" --dump "$tmp/model.bin" >"$tmp/engine.log" 2>&1
rc=$?
ok $rc "bench_engine --smoke runs and its sanity checks pass (fixture to 1e-10, finite values, finite differences near taylor)"
[ $rc -eq 0 ] || show "$tmp/engine.log"

$py - "$tmp/engine.json" >"$tmp/check.log" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
f = d["full"]
assert f["taylor_seconds_per_eval"] > 0 and f["floor_seconds_per_eval"] > 0, f
assert f["floor_interleaved_seconds_per_eval"] > 0 and f["floor_interleaved_cpu_seconds_per_eval"] > 0, f
assert len(d["lowrank"]) == 3 and all(r["max_abs_err_vs_full"] is not None for r in d["lowrank"]), d["lowrank"]
assert d["finite_difference"]["seconds_per_eval"] > 0
assert len(d["check"]) == 9 and all(len(c["taylor"]) == d["workload"]["dims"][-1] for c in d["check"])
EOF
rc=$?
ok $rc "bench_engine writes every figure the report needs"
[ $rc -eq 0 ] || show "$tmp/check.log"

if $torch_py -c 'import torch' 2>/dev/null; then
  $torch_py "$srcdir/bench/peer_torch.py" "$tmp/model.bin" --json "$tmp/torch.json" \
    --a5-features 1 --a5-alphas 2 --exact-pairs 2 >"$tmp/torch.log" 2>&1
  rc=$?
  # the fast A.5 variant is the same scheme: its values agree with the plain one
  [ $rc -ne 0 ] || $py -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d["a5_fast"]["max_abs_diff_vs_a5"] < 1e-4 else 1)' "$tmp/torch.json" || rc=1
  ok $rc "peer_torch.py reads the dump and runs A.5 (both ways, agreeing) and the exact Hessian"
  [ $rc -eq 0 ] || show "$tmp/torch.log"
else
  skip "peer_torch.py" "PyTorch not available for $torch_py"
fi

$py "$srcdir/bench/http_bench.py" --smoke --builddir "$builddir" --fixture "$fixture" \
  --json "$tmp/http.json" >"$tmp/http.log" 2>&1
rc=$?
ok $rc "http_bench.py --smoke: aced and mhd_fixed answer, models register, the job completes"
[ $rc -eq 0 ] || show "$tmp/http.log"

$py - "$tmp/http.json" >"$tmp/hcheck.log" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for key, threads in (("cached", 2), ("cached_1thread", 1)):
    c = d[key]
    assert c["threads"] == threads, c
    assert c["aced"]["rps"] > 0 and c["mhd"]["rps"] > 0 and c["aced"]["non_2xx"] == 0, c
assert d["big"]["status"] in (200, 201) and d["big"]["first_query_status"] == 200, d["big"]
assert d["mnist_job"]["state"] == "done", d["mnist_job"]
assert all(r > 0 for r in d["mnist_job"]["taylor_reference_cpu_seconds"]), d["mnist_job"]
assert all(r > 0 for r in d["mnist_moments_job"]["taylor_reference_cpu_seconds"]), d["mnist_moments_job"]
assert d["mnist_moments_job"]["state"] == "done", d["mnist_moments_job"]
assert d["k4096"]["status"] in (200, 201) and d["k4096"]["first_query_status"] == 200, d["k4096"]
EOF
rc=$?
ok $rc "http_bench.py: cached answers are all 200, registration, job and queries succeed"
[ $rc -eq 0 ] || show "$tmp/hcheck.log"

$py "$srcdir/bench/ui_bench.py" --smoke --builddir "$builddir" --srcdir "$srcdir" \
  --json "$tmp/ui.json" --fragment "$tmp/ui.md" >"$tmp/ui.log" 2>&1 && grep -q 'If-None-Match: 304' "$tmp/ui.md"
rc=$?
ok $rc "ui_bench.py --smoke: regressor 200 and 304, attributions with and without CORS, a web view file"
[ $rc -eq 0 ] || show "$tmp/ui.log"

# structure learning (issue 14): aced's learner on d = 10; the peers too when
# DAGMA_SRC / NOTEARS_SRC name their source folders (bench/graph_bench.py)
if [ -x "$builddir/bench/bench_graph" ] && $torch_py -c 'import numpy' 2>/dev/null; then
  ACED_BUILDDIR="$builddir" $torch_py "$srcdir/bench/graph_bench.py" --smoke \
    --out "$tmp/graph.md" >"$tmp/graph.log" 2>&1 && grep -q '| aced dagma |' "$tmp/graph.md"
  rc=$?
  ok $rc "graph_bench.py --smoke: the learner runs and its SHD/TPR/FPR table is written"
  [ $rc -eq 0 ] || show "$tmp/graph.log"
else
  skip "graph_bench.py --smoke" "numpy not available for $torch_py (or bench_graph not built)"
fi

# recurrent networks (issue #12): CPU per sequence-step of the fused LSTM pass
# against the general one, which must agree
OPENBLAS_NUM_THREADS=1 "$builddir/bench/bench_rnn_step" --smoke >"$tmp/rnn_step.log" 2>&1
rc=$?
ok $rc "bench_rnn_step --smoke runs, the fused and general Monte Carlo passes agree to 1e-13"
[ $rc -eq 0 ] || show "$tmp/rnn_step.log"

# recurrent networks (issue #12): the LSTM job and, with torch, its peer
$py "$srcdir/bench/bench_recurrent.py" --smoke --json "$tmp/recurrent.json" \
  --fragment "$tmp/recurrent.md" >"$tmp/recurrent.log" 2>&1 &&
  $py "$srcdir/bench/section.py" "$tmp/sections.md" recurrent "$tmp/recurrent.md" >>"$tmp/recurrent.log" 2>&1 &&
  grep -q '<!-- section:recurrent -->' "$tmp/sections.md"
rc=$?
ok $rc "bench_recurrent.py --smoke: the regressors jobs complete (and agree with the torch peer when it runs), section.py writes the section"
[ $rc -eq 0 ] || show "$tmp/recurrent.log"

# explanations of recurrent models (issue #15): and, with torch, their peer
$py "$srcdir/bench/bench_rexplain.py" --smoke --json "$tmp/rexplain.json" \
  --fragment "$tmp/rexplain.md" >"$tmp/rexplain.log" 2>&1 &&
  $py "$srcdir/bench/section.py" "$tmp/sections.md" rexplain "$tmp/rexplain.md" >>"$tmp/rexplain.log" 2>&1 &&
  grep -q '<!-- section:rexplain -->' "$tmp/sections.md"
rc=$?
ok $rc "bench_rexplain.py --smoke: gradient, integrated gradients and ablation answer (and agree with the torch peer when it runs), section.py writes the section"
[ $rc -eq 0 ] || show "$tmp/rexplain.log"

torch_arg=""
[ -f "$tmp/torch.json" ] && torch_arg="--torch $tmp/torch.json"
# shellcheck disable=SC2086
cp "$srcdir/bench/hosts.json" "$tmp/hosts.json" && chmod u+w "$tmp/hosts.json"
$py "$srcdir/bench/report.py" --engine "$tmp/engine.json" $torch_arg --http "$tmp/http.json" \
  --hosts "$tmp/hosts.json" --out "$tmp/BENCHMARKS.md" >"$tmp/report.log" 2>&1 &&
  grep -q '^## Targets' "$tmp/BENCHMARKS.md" && grep -q '^## On each kind of host' "$tmp/BENCHMARKS.md" &&
  grep -q 'Intel Xeon' "$tmp/BENCHMARKS.md" && [ "$(grep -c '"kind"' "$tmp/hosts.json")" -gt \
  "$(grep -c '"kind"' "$srcdir/bench/hosts.json")" ]
rc=$?
ok $rc "report.py renders the report with its targets table and a column per kind of host (the others kept)"
[ $rc -eq 0 ] || show "$tmp/report.log"

$py "$srcdir/bench/onnx_bench.py" --smoke --builddir "$builddir" >"$tmp/onnx.log" 2>&1 &&
  grep -q '^ok 1' "$tmp/onnx.log"
rc=$?
ok $rc "onnx_bench.py --smoke: an ONNX body and the JSON body of the same weights, one digest"
[ $rc -eq 0 ] || show "$tmp/onnx.log"

# The PostgreSQL backend against SQLite (make bench-postgres), seconds-long.
ACED_SRCDIR=$srcdir ACED_BUILDDIR=$builddir $py "$srcdir/bench/postgres.py" --smoke \
  --fragment "$tmp/postgres.md" >"$tmp/postgres.log" 2>&1
rc=$?
if [ $rc -eq 77 ]; then
  skip "postgres.py --smoke" "$(tail -n 1 "$tmp/postgres.log")"
else
  [ $rc -eq 0 ] && grep -q 'PostgreSQL / SQLite' "$tmp/postgres.md"
  rc=$?
  ok $rc "postgres.py --smoke: both backends serve cached answers, jobs run on 1 and 2 replicas, claims run"
  [ $rc -eq 0 ] || show "$tmp/postgres.log"
fi

"$builddir/bench/bench_unscented" --num 5 "$fixture" "$srcdir/tests/data/sharp_classifier.json" \
  >"$tmp/ut.log" 2>&1 && grep -q '^| sharp_classifier.json' "$tmp/ut.log"
rc=$?
ok $rc "bench_unscented --num 5: gaps to montecarlo, unscented values inside the output's range"
[ $rc -eq 0 ] || show "$tmp/ut.log"

ACED_BUILDDIR=$builddir $py "$srcdir/bench/significance.py" --smoke >"$tmp/sig.log" 2>&1 &&
  grep -q 'the same with two workers: yes' "$tmp/sig.log"
rc=$?
ok $rc "significance.py --smoke: the randomization test job runs, the same with one and two workers"
[ $rc -eq 0 ] || show "$tmp/sig.log"

ACED_BUILDDIR=$builddir $py "$srcdir/bench/ig_bench.py" --smoke --fragment "$tmp/ig.md" >"$tmp/ig.log" 2>&1 &&
  grep -q 'Integrated gradients, side by side' "$tmp/ig.md" && $py "$srcdir/bench/section.py" "$tmp/ig_bm.md" igfast "$tmp/ig.md" &&
  grep -q '<!-- end:igfast -->' "$tmp/ig_bm.md"
rc=$?
ok $rc "ig_bench.py --smoke: integrated gradients beside the PyTorch peer (when it runs), section.py writes the section"
[ $rc -eq 0 ] || show "$tmp/ig.log"

echo "1..$n"
