# src/jobs/jobs.mk -- the worker pool: queue, single flight, waiters,
# cancellation.  It knows no job kind (struct job_ops).
libaced_core_a_SOURCES += \
	include/aced/jobs.h \
	src/jobs/pool.c

# The pool with test kinds, and the services' kinds through it.
check_PROGRAMS += tests/unit/test_jobs
TESTS += tests/unit/test_jobs
tests_unit_test_jobs_SOURCES = tests/unit/test_jobs.c tests/unit/tap.h
