# src/daemon.mk -- the aced program and what it installs.  Its code lives
# in libaced_core.a (shared with the unit tests and fuzzers).
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

# Several replicas on one host (PostgreSQL backend): the unit template and
# an nginx configuration for the proxy in front of them.
systemdsystemunit_DATA += systemd/aced@.service
EXTRA_DIST += systemd/aced@.service.in
CLEANFILES += systemd/aced@.service
nginxexampledir = $(pkgdatadir)/nginx
dist_nginxexample_DATA = etc/nginx/aced.conf
systemd/aced@.service: $(srcdir)/systemd/aced@.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	  -e 's|@pkgdatadir[@]|$(pkgdatadir)|g' $(srcdir)/systemd/aced@.service.in > $@
