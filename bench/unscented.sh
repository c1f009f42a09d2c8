#!/bin/sh
# bench/unscented.sh BENCHMARKS.md -- the `unscented` section (issue #15):
# the gap of the unscented transform and of Eq. 4 (taylor) to Monte Carlo
# on the shared fixture and on trained classifiers (bench/bench_unscented.c),
# and the time of a 999-permutation randomization test
# (bench/significance.py), written with bench/section.py.
# `make bench-unscented`.
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
ACED_BUILDDIR=$builddir "$py" "$srcdir/bench/significance.py" >"$tmp/significance.md"
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
  echo
  echo "### The randomization test: 999 permutations"
  echo
  echo "\`bench/significance.py\` (run by the same target): POST .../significance on a 10-16-1 tanh network"
  echo "registered with 500 samples and targets, training mse, 50 epochs, batch 32 (800 Adam steps per"
  echo "retraining), statistic connection_weights, 1 + 999 retrainings; the daemon's CPU time is read from"
  echo "/proc. Wall time is longer than CPU time because the machine's 2 cores were shared with other"
  echo "sessions during the run."
  echo
  cat "$tmp/significance.md"
} >"$tmp/fragment.md"
"$py" "$srcdir/bench/section.py" "$out" unscented "$tmp/fragment.md"
cat "$tmp/fragment.md"
