#!/bin/sh
# bench/unscented.sh BENCHMARKS.md -- the `unscented` section: the gap of
# the unscented transform and of Eq. 4 (taylor) to Monte Carlo on the
# shared fixture and on trained classifiers (bench/bench_unscented.c),
# written with bench/section.py.  `make bench-unscented`.
set -eu
srcdir=${ACED_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${ACED_BUILDDIR:-$srcdir}
py=${PYTHON3:-python3}
out=${1:-$srcdir/BENCHMARKS.md}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/aced-bench-ut.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
data=$srcdir/tests/data
"$builddir/bench/bench_unscented" --num 100 "$data/small_mlp.json" "$data/sharp_classifier.json" \
  "$data/log_softmax_mlp.json" >"$tmp/table.md"
cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)
{
  echo "## The unscented transform against Monte Carlo (issue #15)"
  echo
  echo "\`make bench-unscented\` (bench/bench_unscented.c), $(date -u +%Y-%m-%d), $cpu, $(uname -sr),"
  echo "one thread. Every feature, 100 grid values over its domain, every output; the gap is"
  echo "max |estimate - montecarlo| over the grid in units of the output's spread (its standard"
  echo "deviation over the samples). Monte Carlo over the fixture's own samples is the reference; its"
  echo "largest standard error is given in the same unit (gaps below about twice it are noise)."
  echo "small_mlp is the shared fixture (identity outputs, unbounded); sharp_classifier is a trained"
  echo "4-8-3 softmax classifier with steep boundaries; log_softmax_mlp has log-probability outputs."
  echo "CPU time is the process's; the machine was shared with other sessions while this ran."
  echo
  cat "$tmp/table.md"
} >"$tmp/fragment.md"
"$py" "$srcdir/bench/section.py" "$out" unscented "$tmp/fragment.md"
cat "$tmp/fragment.md"
