# src/model/model.mk -- registration parsing, validation, canonical form.
libaced_core_a_SOURCES += \
	include/aced/model.h \
	src/model/model.c \
	src/model/canonical.c \
	src/model/describe.c \
	src/model/internal.h \
	src/model/transform.c \
	src/model/recurrent.c

check_PROGRAMS += tests/unit/test_model
TESTS += tests/unit/test_model
EXTRA_DIST += tests/data/models/good_tiny_linear.json
