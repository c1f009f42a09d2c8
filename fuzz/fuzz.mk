# fuzz/fuzz.mk -- libFuzzer targets, their seed corpora, and the replay of
# those corpora in `make check`.
#
#   fuzz/fuzz_<name>.c      LLVMFuzzerTestOneInput() for one parser
#   fuzz/corpus/<name>/     seeds and minimized finds, replayed by make check
#   fuzz/replay_<name>      (check) every corpus file through the target once
#   fuzz/fuzz_<name>        (--enable-fuzzing, CC=clang) the libFuzzer binary
#
#   make check                      replays the corpora (any compiler)
#   make fuzz [FUZZ_SECONDS=60]     fuzzes each target in turn
#   make fuzz FUZZ_TARGETS=model    ... or only some of them
#
# New inputs go to fuzz/work/<name>/ in the build tree, crashes to
# fuzz/artifacts/; copy the few worth keeping (minimized: -minimize_crash=1
# or -merge=1) into fuzz/corpus/<name>/ so that every build replays them.

FUZZ_NAMES = model query router regressor_decode config auth onnx
FUZZ_SECONDS = 60
FUZZ_TARGETS = $(FUZZ_NAMES)
# Extra libFuzzer flags, e.g. FUZZ_FLAGS='-jobs=2 -workers=2'.
FUZZ_FLAGS =

EXTRA_DIST += fuzz/corpus fuzz/dict fuzz/lsan.supp fuzz/README

# ---- replay in make check (every build, any compiler) ----
FUZZ_REPLAY = fuzz/replay_model fuzz/replay_query fuzz/replay_router \
	fuzz/replay_regressor_decode fuzz/replay_config fuzz/replay_auth \
	fuzz/replay_onnx
check_PROGRAMS += $(FUZZ_REPLAY)
TESTS += $(FUZZ_REPLAY)

fuzz_replay_model_SOURCES = fuzz/replay.c fuzz/fuzz_model.c fuzz/fuzz.h
fuzz_replay_model_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"model"'
fuzz_replay_query_SOURCES = fuzz/replay.c fuzz/fuzz_query.c fuzz/fuzz.h
fuzz_replay_query_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"query"'
fuzz_replay_router_SOURCES = fuzz/replay.c fuzz/fuzz_router.c fuzz/fuzz.h
fuzz_replay_router_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"router"'
fuzz_replay_regressor_decode_SOURCES = fuzz/replay.c fuzz/fuzz_regressor_decode.c fuzz/fuzz.h
fuzz_replay_regressor_decode_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"regressor_decode"'
fuzz_replay_config_SOURCES = fuzz/replay.c fuzz/fuzz_config.c fuzz/fuzz.h
fuzz_replay_config_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"config"'
fuzz_replay_auth_SOURCES = fuzz/replay.c fuzz/fuzz_auth.c fuzz/fuzz.h
fuzz_replay_auth_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"auth"'
fuzz_replay_onnx_SOURCES = fuzz/replay.c fuzz/fuzz_onnx.c fuzz/fuzz.h
fuzz_replay_onnx_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_CORPUS='"onnx"'

# ---- libFuzzer binaries (./configure --enable-fuzzing CC=clang) ----
if FUZZING
FUZZ_PROGS = fuzz/fuzz_model fuzz/fuzz_query fuzz/fuzz_router \
	fuzz/fuzz_regressor_decode fuzz/fuzz_config fuzz/fuzz_auth fuzz/fuzz_onnx
noinst_PROGRAMS += $(FUZZ_PROGS)
fuzz_fuzz_model_SOURCES = fuzz/fuzz_model.c fuzz/fuzz.h
fuzz_fuzz_model_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_query_SOURCES = fuzz/fuzz_query.c fuzz/fuzz.h
fuzz_fuzz_query_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_router_SOURCES = fuzz/fuzz_router.c fuzz/fuzz.h
fuzz_fuzz_router_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_regressor_decode_SOURCES = fuzz/fuzz_regressor_decode.c fuzz/fuzz.h
fuzz_fuzz_regressor_decode_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_config_SOURCES = fuzz/fuzz_config.c fuzz/fuzz.h
fuzz_fuzz_config_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_auth_SOURCES = fuzz/fuzz_auth.c fuzz/fuzz.h
fuzz_fuzz_auth_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
fuzz_fuzz_onnx_SOURCES = fuzz/fuzz_onnx.c fuzz/fuzz.h
fuzz_fuzz_onnx_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)

# One target after the other, FUZZ_SECONDS each.  The seed folder comes
# second so libFuzzer writes new inputs to the build tree, never to the
# sources.  A target that crashes does not stop the others; the make fails
# at the end, naming them (reproducers are in fuzz/artifacts/).
fuzz: $(FUZZ_PROGS)
	@$(MKDIR_P) fuzz/artifacts; failed=; \
	for t in $(FUZZ_TARGETS); do \
	  $(MKDIR_P) fuzz/work/$$t; \
	  echo "fuzz: fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  LSAN_OPTIONS="suppressions=$(abs_top_srcdir)/fuzz/lsan.supp:print_suppressions=0$${LSAN_OPTIONS:+:$$LSAN_OPTIONS}" \
	  ./fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 \
	    -dict=$(srcdir)/fuzz/dict/$$t.dict \
	    -artifact_prefix=fuzz/artifacts/$$t- $(FUZZ_FLAGS) \
	    fuzz/work/$$t $(srcdir)/fuzz/corpus/$$t || failed="$$failed $$t"; \
	done; \
	if test -n "$$failed"; then \
	  echo "fuzz: FAILED:$$failed (see fuzz/artifacts/)" >&2; exit 1; \
	fi
else
fuzz:
	@echo "make fuzz: configure with --enable-fuzzing CC=clang first" >&2; exit 1
endif
.PHONY: fuzz

clean-local: clean-local-fuzz
clean-local-fuzz:
	-rm -rf fuzz/work fuzz/artifacts
.PHONY: clean-local-fuzz
