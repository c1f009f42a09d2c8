# tests/tests.mk -- shared test support.
EXTRA_DIST += tests/unit/tap.h
