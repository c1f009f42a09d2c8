# src/daemon.mk -- the aced daemon: HTTP front end, handlers, jobs.
sbin_PROGRAMS += aced
aced_SOURCES = src/main.c
