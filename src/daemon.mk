# src/daemon.mk -- the aced daemon: HTTP front end, handlers, jobs.
# Code shared with the unit tests and fuzzers lives in libaced_core.a.
libaced_core_a_SOURCES += \
	include/aced/config.h src/config.c \
	include/aced/log.h src/log.c \
	include/aced/auth.h src/auth.c \
	include/aced/metrics.h src/metrics.c \
	include/aced/jobs.h src/jobs.c \
	include/aced/compute.h src/compute.c \
	include/aced/http.h src/http.c \
	include/aced/handlers.h src/routes.c src/handler_common.c \
	src/handler_ops.c src/handler_models_post.c src/handler_models_get.c \
	src/handler_models_delete.c src/handler_interventions.c \
	src/handler_regressor_get.c src/handler_regressors_post.c \
	src/handler_attributions.c src/handler_jobs.c \
	include/aced/notify.h src/notify.c

sbin_PROGRAMS += aced
aced_SOURCES = src/main.c

# Configuration, unit file and man page.
dist_sysconf_aced_DATA = etc/aced.conf
sysconf_aceddir = $(sysconfdir)/aced
systemdsystemunit_DATA = systemd/aced.service
dist_man8_MANS = doc/aced.8
EXTRA_DIST += systemd/aced.service.in
CLEANFILES += systemd/aced.service
systemd/aced.service: $(srcdir)/systemd/aced.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	  $(srcdir)/systemd/aced.service.in > $@
