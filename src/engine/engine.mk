# src/engine/engine.mk -- the numerical engine and its tests.
libaced_engine_a_SOURCES += \
	include/aced/engine.h \
	src/engine/internal.h \
	src/engine/activation.c \
	src/engine/prepare.c \
	src/engine/taylor.c \
	src/engine/estimators.c \
	src/engine/unscented.c \
	src/engine/diagnose.c \
	src/engine/regressor.c \
	src/engine/gradient.c \
	src/engine/scm.c \
	src/engine/learn.c \
	src/engine/train.c \
	src/engine/recurrent.c \
	src/engine/recurrent_est.c \
	src/engine/recurrent_lag.c \
	src/engine/recurrent_grad.c \
	src/engine/recurrent_mc.c \
	src/engine/vmath.c

check_PROGRAMS += tests/unit/test_engine_fixture tests/unit/test_engine_cases \
	tests/unit/test_engine_regressor tests/unit/test_engine_sharp tests/unit/test_engine_gradient \
	tests/unit/test_engine_ig tests/unit/test_engine_learn tests/unit/test_engine_train tests/unit/test_engine_recurrent \
	tests/unit/test_engine_rnn_fused
TESTS += tests/unit/test_engine_fixture tests/unit/test_engine_cases \
	tests/unit/test_engine_regressor tests/unit/test_engine_sharp tests/unit/test_engine_gradient \
	tests/unit/test_engine_ig tests/unit/test_engine_learn tests/unit/test_engine_train tests/unit/test_engine_recurrent \
	tests/unit/test_engine_rnn_fused
EXTRA_DIST += tests/data/sharp_classifier.json tools/gen_sharp_classifier.py \
	src/engine/test_load.h
# Explanations: references from PyTorch and the script that writes them.
EXTRA_DIST += tests/data/explanations_ref.json tools/gen_explanations_ref.py \
	tests/data/relu_sigmoid_mlp.json
# ... and for recurrent models (from the models of recurrent_ref.json).
EXTRA_DIST += tests/data/rexplain_ref.json tools/gen_rexplain_ref.py
# The trainer: PyTorch references and the script that writes them.
EXTRA_DIST += tests/data/train_ref.json tools/gen_train_ref.py
# Recurrent networks: references from PyTorch and the script that writes them.
EXTRA_DIST += tests/data/recurrent_ref.json tests/data/recurrent_synthetic.json \
	tools/gen_recurrent_ref.py
