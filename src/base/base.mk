# src/base/base.mk -- below everything: clock, errors, logging, metrics,
# configuration, the hot-path JSON writer, systemd notification.
libaced_core_a_SOURCES += \
	include/aced/limits.h \
	include/aced/clock.h src/base/clock.c \
	include/aced/errors.h src/base/errors.c \
	include/aced/log.h src/base/log.c \
	include/aced/metrics.h src/base/metrics.c \
	include/aced/config.h src/base/config.c \
	include/aced/jsonw.h src/base/jsonw.c \
	include/aced/jsonr.h src/base/jsonr.c \
	include/aced/notify.h src/base/notify.c

# The hot-path JSON writer, checked against jansson.
check_PROGRAMS += tests/unit/test_jsonw
TESTS += tests/unit/test_jsonw

# The quick body reader, checked against jansson.
check_PROGRAMS += tests/unit/test_jsonr
TESTS += tests/unit/test_jsonr

# trusted_proxies ranges and URL prefixes.
check_PROGRAMS += tests/unit/test_config
TESTS += tests/unit/test_config
