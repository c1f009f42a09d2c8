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

BENCH_DIST_FILES = bench/run bench/section.py bench/smoke.sh bench/http_bench.py bench/peer_torch.py \
	bench/report.py bench/attr.lua bench/bench_recurrent.py bench/peer_recurrent.py
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

# Recurrent networks (issue #12): the LSTM regressors job against the PyTorch
# peer, written into its own section of BENCHMARKS.md (bench/section.py).
bench-recurrent: aced$(EXEEXT)
	@mkdir -p bench-results
	$(BENCH_ENV) $(PYTHON3) $(srcdir)/bench/bench_recurrent.py \
	  --fragment bench-results/recurrent.md --json bench-results/recurrent.json
	$(PYTHON3) $(srcdir)/bench/section.py $(srcdir)/BENCHMARKS.md recurrent bench-results/recurrent.md

clean-local: clean-bench
clean-bench:
	rm -rf bench-results

.PHONY: bench bench-smoke bench-recurrent clean-bench
