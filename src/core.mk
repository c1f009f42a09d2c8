# src/core.mk -- errors, model parsing/validation, shared by daemon and tests.
libaced_core_a_SOURCES += \
	include/aced/limits.h \
	include/aced/errors.h \
	include/aced/model.h \
	src/errors.c
