# src/store/store.mk -- persistence behind store.h: store_open picks the
# backend from the database URI: SQLite always, PostgreSQL when configure
# found libpq (HAVE_LIBPQ).
libaced_core_a_SOURCES += \
	include/aced/store.h \
	src/store/store.c \
	src/store/latest.h \
	src/store/latest.c \
	src/store/sqlite.h \
	src/store/sqlite.c \
	src/store/sqlite_ops.c
if HAVE_LIBPQ
libaced_core_a_SOURCES += \
	src/store/pg.h \
	src/store/pg.c \
	src/store/pg_ops.c \
	src/store/pg_jobs.c \
	src/store/pg_tasks.c
endif
AM_CPPFLAGS += $(PQ_CFLAGS)
LDADD += $(PQ_LIBS)

check_PROGRAMS += tests/unit/test_store tests/unit/test_store_durability
TESTS += tests/unit/test_store tests/unit/test_store_durability
tests_unit_test_store_SOURCES = tests/unit/test_store.c tests/unit/storetest.h tests/unit/tap.h \
	tests/unit/pgtest.h
tests_unit_test_store_durability_SOURCES = tests/unit/test_store_durability.c tests/unit/storetest.h \
	tests/unit/tap.h tests/unit/pgtest.h
