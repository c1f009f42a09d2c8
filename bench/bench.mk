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
	bench/report.py bench/attr.lua bench/ui_bench.py
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

# The browser-facing HTTP features (issue #16): ETag/304 savings and CORS
# header cost; its section of BENCHMARKS.md only.  BENCH_UI_PEER=path/to/aced
# runs another build (main, say) side by side, named BENCH_UI_PEER_LABEL.
bench-ui: aced$(EXEEXT)
	$(BENCH_ENV) $(PYTHON3) $(srcdir)/bench/ui_bench.py --json bench-ui.json --fragment bench-ui.md \
	  $${BENCH_UI_PEER:+--peer $$BENCH_UI_PEER --peer-label "$${BENCH_UI_PEER_LABEL:-$$BENCH_UI_PEER}"}
	$(PYTHON3) $(srcdir)/bench/section.py $(srcdir)/BENCHMARKS.md ui bench-ui.md

clean-local: clean-bench
clean-bench:
	rm -rf bench-results bench-ui.json bench-ui.md

.PHONY: bench bench-smoke bench-ui clean-bench
