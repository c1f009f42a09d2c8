# src/svc/svc.mk -- the services: one file per job kind (the kind table
# is SVC_KINDS in include/aced/svc.h) and what they share.
libaced_core_a_SOURCES += \
	include/aced/svc.h \
	src/svc/internal.h \
	src/svc/kinds.c \
	src/svc/prepared.c \
	src/svc/params.c \
	src/svc/phase1.c \
	src/svc/fit.c \
	src/svc/regcache.c \
	src/svc/resolve.c \
	src/svc/journal.c \
	src/svc/split.c \
	src/svc/register.c \
	src/svc/metadata.c \
	src/svc/interventions.c \
	src/svc/regressor.c \
	src/svc/attributions.c \
	src/svc/quick.c \
	src/svc/regressors.c \
	src/svc/explanations.c \
	src/svc/effect.c \
	src/svc/graph.c \
	src/svc/graph_get.c \
	src/svc/graph_put.c \
	src/svc/significance.c
