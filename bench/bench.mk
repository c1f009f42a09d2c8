# bench/bench.mk -- the benchmark suite (issue #4).  Nothing here is
# installed or linked into the daemon.
#
#   make bench         the full run (about ten minutes): writes BENCHMARKS.md
#   make bench-smoke   every part on tiny workloads, in seconds; it is also a
#                      TAP test in `make check` (bench/smoke.sh)
#
# The programs are check programs: `make check` builds them for the smoke
# test, `make bench` builds them on demand.
check_PROGRAMS += bench/bench_engine bench/mhd_fixed

bench_bench_engine_SOURCES = bench/bench_engine.c
bench_bench_engine_LDADD = libaced_engine.a $(JANSSON_LIBS) $(LAPACKE_LIBS) $(BLAS_LIBS) \
	-lm -lpthread

bench_mhd_fixed_SOURCES = bench/mhd_fixed.c
bench_mhd_fixed_LDADD = $(MHD_LIBS)

BENCH_DIST_FILES = bench/run bench/section.py bench/hosts.json bench/smoke.sh bench/http_bench.py bench/peer_torch.py \
	bench/report.py bench/attr.lua bench/onnx_bench.py
EXTRA_DIST += $(BENCH_DIST_FILES) BENCHMARKS.md

TEST_EXTENSIONS += .sh
SH_LOG_DRIVER = $(LOG_DRIVER)
SH_LOG_COMPILER = $(SHELL)
TESTS += bench/smoke.sh

BENCH_ENV = ACED_SRCDIR='$(abs_top_srcdir)' ACED_BUILDDIR='$(abs_top_builddir)' \
	PYTHON3='$(PYTHON3)' CC='$(CC)' BENCH_CFLAGS='$(CFLAGS) $(AM_CFLAGS)'

bench: bench/bench_engine$(EXEEXT) bench/mhd_fixed$(EXEEXT) aced$(EXEEXT)
	$(BENCH_ENV) $(SHELL) $(srcdir)/bench/run $(srcdir)/BENCHMARKS.md

bench-smoke: bench/bench_engine$(EXEEXT) bench/mhd_fixed$(EXEEXT) aced$(EXEEXT)
	$(BENCH_ENV) $(SHELL) $(srcdir)/bench/smoke.sh

clean-local: clean-bench
clean-bench:
	rm -rf bench-results

.PHONY: bench bench-smoke clean-bench

# ONNX import against the JSON registration of the same weights (issue
# #13): exports with PyTorch (Debian's python3-torch at /usr/bin/python3),
# writes the `onnx` section of BENCHMARKS.md.  bench/smoke.sh runs it on
# the committed small exports, without PyTorch.
check_PROGRAMS += bench/bench_onnx
bench_bench_onnx_SOURCES = bench/bench_onnx.c
BENCH_TORCH_PY = /usr/bin/python3
bench-onnx: bench/bench_onnx$(EXEEXT)
	$(BENCH_TORCH_PY) $(srcdir)/bench/onnx_bench.py --builddir . --benchmarks $(srcdir)/BENCHMARKS.md
.PHONY: bench-onnx
