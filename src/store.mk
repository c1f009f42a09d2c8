# src/store.mk -- persistence (SQLite backend) and its tests.
libaced_core_a_SOURCES += \
	include/aced/store.h \
	src/store_sqlite.c

check_PROGRAMS += tests/unit/test_store
TESTS += tests/unit/test_store
tests_unit_test_store_SOURCES = tests/unit/test_store.c tests/unit/tap.h
