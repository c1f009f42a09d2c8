# bench/bench.mk -- the benchmark suite (issue #4).  Nothing here is
# installed or linked into the daemon.
#
#   make bench         the full run (about ten minutes): writes BENCHMARKS.md
#   make bench-smoke   every part on tiny workloads, in seconds; it is also a
#                      TAP test in `make check` (bench/smoke.sh)
#
# The programs are check programs: `make check` builds them for the smoke
# test, `make bench` builds them on demand.
check_PROGRAMS += bench/bench_engine bench/mhd_fixed bench/bench_graph bench/bench_unscented
check_PROGRAMS += bench/bench_rnn_step

bench_bench_engine_SOURCES = bench/bench_engine.c bench/workload.c bench/workload.h
bench_bench_engine_LDADD = libaced_engine.a $(JANSSON_LIBS) $(LAPACKE_LIBS) $(BLAS_LIBS) $(LBFGS_LIBS) \
	-lm -lpthread

bench_bench_graph_SOURCES = bench/bench_graph.c
bench_bench_graph_LDADD = libaced_engine.a $(LAPACKE_LIBS) $(BLAS_LIBS) $(LBFGS_LIBS) -lm -lpthread

bench_bench_unscented_SOURCES = bench/bench_unscented.c
bench_bench_unscented_LDADD = $(bench_bench_engine_LDADD)

bench_bench_rnn_step_SOURCES = bench/bench_rnn_step.c
bench_bench_rnn_step_LDADD = $(bench_bench_engine_LDADD)

bench_mhd_fixed_SOURCES = bench/mhd_fixed.c
bench_mhd_fixed_LDADD = $(MHD_LIBS)

BENCH_DIST_FILES = bench/run bench/section.py bench/hosts.json bench/smoke.sh bench/http_bench.py \
	bench/peer_torch.py bench/report.py bench/attr.lua bench/onnx_bench.py bench/postgres.py \
	bench/ui_bench.py bench/graph_bench.py bench/graph_effect_cost.py bench/unscented.sh \
	bench/significance.py \
	bench/bench_recurrent.py bench/peer_recurrent.py bench/bench_rexplain.py bench/peer_rexplain.py \
	bench/ig_bench.py
EXTRA_DIST += $(BENCH_DIST_FILES) BENCHMARKS.md

TEST_EXTENSIONS += .sh
SH_LOG_DRIVER = $(LOG_DRIVER)
SH_LOG_COMPILER = $(SHELL)
TESTS += bench/smoke.sh

# numpy and scipy for the graph benchmark: Debian's, at /usr/bin/python3
TORCH_PYTHON_OR_SYSTEM = /usr/bin/python3
BENCH_ENV = ACED_SRCDIR='$(abs_top_srcdir)' ACED_BUILDDIR='$(abs_top_builddir)' \
	PYTHON3='$(PYTHON3)' CC='$(CC)' BENCH_CFLAGS='$(CFLAGS) $(AM_CFLAGS)'

bench: bench/bench_engine$(EXEEXT) bench/mhd_fixed$(EXEEXT) aced$(EXEEXT)
	$(BENCH_ENV) $(SHELL) $(srcdir)/bench/run $(srcdir)/BENCHMARKS.md

# The unscented transform's gap to Monte Carlo beside Eq. 4's (issue #15):
# its own section of BENCHMARKS.md (bench/section.py).
bench-unscented: bench/bench_unscented$(EXEEXT) aced$(EXEEXT)
	$(BENCH_ENV) $(SHELL) $(srcdir)/bench/unscented.sh $(srcdir)/BENCHMARKS.md

bench-smoke: bench/bench_engine$(EXEEXT) bench/mhd_fixed$(EXEEXT) aced$(EXEEXT)
	$(BENCH_ENV) $(SHELL) $(srcdir)/bench/smoke.sh

# The browser-facing HTTP features (issue #16): ETag/304 savings and CORS
# header cost; its section of BENCHMARKS.md only.  BENCH_UI_PEER=path/to/aced
# runs another build (main, say) side by side, named BENCH_UI_PEER_LABEL.
bench-ui: aced$(EXEEXT)
	$(BENCH_ENV) $(PYTHON3) $(srcdir)/bench/ui_bench.py --json bench-ui.json --fragment bench-ui.md \
	  $${BENCH_UI_PEER:+--peer $$BENCH_UI_PEER --peer-label "$${BENCH_UI_PEER_LABEL:-$$BENCH_UI_PEER}"}
	$(PYTHON3) $(srcdir)/bench/section.py $(srcdir)/BENCHMARKS.md ui bench-ui.md

# Structure learning (issue 14): aced's learner against the reference
# implementations of DAGMA and NOTEARS run side by side (bench/graph_bench.py;
# the peers' source folders from DAGMA_SRC and NOTEARS_SRC, skipped when
# unset).  Writes the `graph` section of BENCHMARKS.md.
bench-graph: bench/bench_graph$(EXEEXT) aced$(EXEEXT)
	mkdir -p bench-results
	$(BENCH_ENV) $(PYTHON3) $(srcdir)/bench/graph_effect_cost.py > bench-results/graph_cost.txt
	$(BENCH_ENV) $(TORCH_PYTHON_OR_SYSTEM) $(srcdir)/bench/graph_bench.py \
	  --extra bench-results/graph_cost.txt --out bench-results/graph.md && \
	$(PYTHON3) $(srcdir)/bench/section.py $(srcdir)/BENCHMARKS.md graph bench-results/graph.md

# Recurrent networks (issue #12): the LSTM regressors job against the PyTorch
# peer, written into its own section of BENCHMARKS.md (bench/section.py).
bench-recurrent: aced$(EXEEXT)
	@mkdir -p bench-results
	$(BENCH_ENV) $(PYTHON3) $(srcdir)/bench/bench_recurrent.py \
	  --fragment bench-results/recurrent.md --json bench-results/recurrent.json
	$(PYTHON3) $(srcdir)/bench/section.py $(srcdir)/BENCHMARKS.md recurrent bench-results/recurrent.md

# Explanations of recurrent models (issue #15): against the PyTorch peer,
# into their own section of BENCHMARKS.md.
bench-rexplain: aced$(EXEEXT)
	@mkdir -p bench-results
	$(BENCH_ENV) $(PYTHON3) $(srcdir)/bench/bench_rexplain.py \
	  --fragment bench-results/rexplain.md --json bench-results/rexplain.json
	$(PYTHON3) $(srcdir)/bench/section.py $(srcdir)/BENCHMARKS.md rexplain bench-results/rexplain.md
.PHONY: bench-rexplain

clean-local: clean-bench
clean-bench:
	rm -rf bench-results bench-ui.json bench-ui.md

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

# The PostgreSQL backend against SQLite (issue 17): its own section of
# BENCHMARKS.md, a few minutes (needs Debian's postgresql and wrk).
bench-postgres: aced$(EXEEXT)
	$(BENCH_ENV) $(PYTHON3) $(srcdir)/bench/postgres.py --fragment bench-postgres.md
	$(PYTHON3) $(srcdir)/bench/section.py $(srcdir)/BENCHMARKS.md postgres bench-postgres.md
	rm -f bench-postgres.md

.PHONY: bench bench-smoke bench-postgres clean-bench

.PHONY: bench bench-smoke bench-ui clean-bench

.PHONY: bench bench-smoke bench-graph clean-bench

.PHONY: bench bench-smoke bench-unscented clean-bench
.PHONY: bench bench-smoke bench-recurrent clean-bench

# Integrated gradients against PyTorch side by side (issue #15's 3x
# target): bench_engine's IG part and peer_torch.py's, pinned to one core
# and alternated for 5 rounds (bench/ig_bench.py); its own section of
# BENCHMARKS.md.
bench-igfast: bench/bench_engine$(EXEEXT)
	@mkdir -p bench-results
	$(BENCH_ENV) $(PYTHON3) $(srcdir)/bench/ig_bench.py \
	  --fragment bench-results/igfast.md --json bench-results/igfast.json
	$(PYTHON3) $(srcdir)/bench/section.py $(srcdir)/BENCHMARKS.md igfast bench-results/igfast.md
.PHONY: bench-igfast
