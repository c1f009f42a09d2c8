# src/http/http.mk -- the libmicrohttpd front end: server lifecycle,
# dispatch, replies, authentication and the one route table.
libaced_core_a_SOURCES += \
	include/aced/http.h \
	include/aced/auth.h \
	src/http/auth.c \
	src/http/internal.h \
	src/http/server.c \
	src/http/dispatch.c \
	src/http/reply.c \
	src/http/cors.c \
	src/http/cache.c \
	src/http/routes.c
