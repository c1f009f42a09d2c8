# src/store/store.mk -- persistence behind store.h: store_open picks the
# backend from the database URI; SQLite is the one built today.
libaced_core_a_SOURCES += \
	include/aced/store.h \
	src/store/store.c \
	src/store/sqlite.h \
	src/store/sqlite.c \
	src/store/sqlite_ops.c

check_PROGRAMS += tests/unit/test_store
TESTS += tests/unit/test_store
tests_unit_test_store_SOURCES = tests/unit/test_store.c tests/unit/tap.h
