# src/core.mk -- errors, model parsing/validation, shared by daemon and tests.
libaced_core_a_SOURCES += \
	include/aced/limits.h \
	include/aced/errors.h \
	include/aced/model.h \
	src/errors.c

# Model parsing and validation (model.h).
libaced_core_a_SOURCES += src/model.c
check_PROGRAMS += tests/unit/test_model
TESTS += tests/unit/test_model
EXTRA_DIST += tests/data/models/good_tiny_linear.json

# The hot-path JSON writer (jsonw.h), checked against jansson.
libaced_core_a_SOURCES += include/aced/jsonw.h src/jsonw.c
check_PROGRAMS += tests/unit/test_jsonw
TESTS += tests/unit/test_jsonw
