/*
 * http.h -- the HTTP front end as seen by handlers.
 *
 * src/http.c owns libmicrohttpd: the route table lookup, 404/405, the URL
 * cap, authentication, Content-Type and body size checks, body
 * accumulation and JSON parsing.  A handler receives a `struct request`
 * with the route's path arguments and, for routes that take a body, the
 * parsed JSON; it answers through the reply_* functions below and never
 * sees raw upload chunks.
 *
 * Slow work: a handler may call request_suspend() and hand the request to
 * a worker; the worker later calls request_complete() (any thread), which
 * resumes the connection and sends the stored reply.
 */
#ifndef ACED_HTTP_H
#define ACED_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdint.h>

#include "aced/clock.h"
#include "aced/config.h"
#include "aced/errors.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

struct store;
struct jobs;
struct svc;
struct request;

/* Everything a handler may need, built once in main.c. */
struct server {
  struct aced_config cfg;
  struct store *store;
  struct jobs *jobs;
  struct svc *svc; /* the services' context (aced/svc.h) */
  int64_t started_ms;
};

typedef MHD_RESULT (*handler_fn)(struct request *rq);
/* A route's quick path: may answer from the raw body (request_raw_body)
 * before it is parsed.  Returns 1 with *ret set when it answered, 0 when
 * the request is to take the usual way (parse, check, handler); it must
 * then have queued nothing, so that errors come out as they always do. */
typedef int (*quick_fn)(struct request *rq, MHD_RESULT *ret);

/* What a route takes as its request body.  The dispatcher checks the
 * Content-Type, caps the size, accumulates the chunks and (for JSON)
 * parses an object before the handler runs. */
enum route_body {
  BODY_NONE, /* none; anything sent is ignored */
  BODY_JSON, /* a JSON object (Content-Type: application/json) */
};

struct route {
  const char *method;    /* "GET", "POST", "DELETE" */
  const char *pattern;   /* "/v1/models/{name}"; {x} matches one segment */
  handler_fn handler;
  int scope;             /* AUTH_READ, AUTH_WRITE, or 0 for public */
  enum route_body body;  /* what body the route takes */
  long body_max;         /* its cap in bytes; 0: max_body_bytes.  The
                            configured max_body_bytes caps every route. */
  quick_fn quick;        /* BODY_JSON routes: tried first, or NULL */
};

/* The one route table (src/routes.c). */
extern const struct route aced_routes[];
extern const int aced_n_routes;

#define REQUEST_MAX_ARGS 4

/* Deepest nesting of [ and { outside JSON strings in s[0..n): bodies
 * deeper than ACED_JSON_DEPTH_MAX are refused before jansson sees them. */
int http_json_depth(const char *s, size_t n);

/* Percent-decode one path segment src[0..n) into dst (n + 1 bytes,
 * NUL-terminated), leaving %00 as it is; returns the decoded length.  The
 * path reaches the router with %2F and %25 still encoded (http_unescape),
 * so a segment may decode to a name holding '/'. */
size_t http_segment_decode(char *dst, const char *src, size_t n);

/* Find the route for method + url.  Returns its index into aced_routes,
 * -1 for no such path, -2 when the path exists under other methods (allow
 * then lists them).  Path arguments point into argbuf, which must hold
 * strlen(url) + 1 bytes (at most ACED_URL_MAX + 1; a longer URL is
 * matched as cut to ACED_URL_MAX); args must hold REQUEST_MAX_ARGS
 * entries, and those a route does not use are set to NULL.  Each argument
 * is its segment split on the raw '/' and then percent-decoded
 * (http_segment_decode): it may contain '/'. */
int http_route_find(const char *method, const char *url, char *argbuf,
                    const char **args, char *allow, size_t allowlen);

struct request {
  struct MHD_Connection *conn;
  struct server *srv;
  const struct route *route;
  int route_index;
  const char *arg[REQUEST_MAX_ARGS]; /* path arguments, in pattern order */
  json_t *body;                      /* parsed body (routes with BODY_JSON) */
  char who[64];                      /* token label, "-" without auth */
  int scopes;                        /* AUTH_READ | AUTH_WRITE granted */
  char client[80];                   /* use request_client() */
  int64_t start_us;
  void *hstate;                      /* handler-private state across resumes */
  void (*hstate_free)(void *);
  /* private to http.c */
  struct request_priv *priv;
};

/* The peer's address, or X-Forwarded-For's first entry when the peer is
 * one of trusted_proxies: for logs. */
const char *request_client(struct request *rq);

/* The prefix of every URL aced writes in its reply ("" or "/aced"): the
 * X-Forwarded-Prefix of a trusted proxy, else the base_path setting. */
const char *request_base_path(struct request *rq);

/* The body as sent (BODY_JSON routes; kept until the request ends), and
 * its length; NULL when there is none. */
const char *request_raw_body(const struct request *rq, size_t *len);

/* Query parameter or NULL. */
const char *request_query(struct request *rq, const char *name);
/* 0 when every query parameter is in `allowed` (NULL-terminated); else
 * -1 and *bad is the first unknown one. */
int request_query_check(struct request *rq, const char *const *allowed,
                        const char **bad);

/* Replies.  reply_json steals the reference to `j`. */
MHD_RESULT reply_json(struct request *rq, unsigned status, json_t *j);
/* A reply already written as JSON text (malloc'ed; taken over). */
MHD_RESULT reply_json_text(struct request *rq, unsigned status, char *text, size_t len);
MHD_RESULT reply_error(struct request *rq, enum aced_err e, const char *field,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
MHD_RESULT reply_aced_error(struct request *rq, const struct aced_error *err);
MHD_RESULT reply_text(struct request *rq, unsigned status, const char *ctype,
                      const char *text);

/* Caching.  A 200 of this request (and its 304) is sent with
 * Cache-Control: cache_control (a string literal; NULL: no-store, the
 * default of every reply) and ETag: etag (copied; NULL: none).  Any other
 * status is always no-store without an ETag. */
void request_set_caching(struct request *rq, const char *cache_control, const char *etag);
/* Does If-None-Match name etag (weak comparison; "*" is not honoured)? */
int request_etag_matches(struct request *rq, const char *etag);
/* 304 Not Modified, with the caching headers a 200 would have. */
MHD_RESULT reply_not_modified(struct request *rq);
/* A file's bytes (malloc'ed; taken over) as a 200, with a
 * Content-Security-Policy when csp is not NULL. */
MHD_RESULT reply_file(struct request *rq, const char *ctype, char *body, size_t len,
                      const char *csp);
/* 301 to location (relative or absolute). */
MHD_RESULT reply_redirect(struct request *rq, const char *location);

/* Asynchronous replies. */
void request_suspend(struct request *rq);
/* Thread-safe: store the reply (steals j) and resume the connection.
 * Extra header (may be NULL), e.g. "Retry-After". */
void request_complete(struct request *rq, unsigned status, json_t *j);

/* Start/stop the listener.  http_start returns NULL with a message. */
struct http;
struct http *http_start(struct server *srv, char *errbuf, size_t errlen);
/* Stop accepting new connections (SIGTERM, first step). */
void http_quiesce(struct http *h);
/* Wait (bounded) until every suspended request has sent its reply. */
void http_drain(struct http *h, int timeout_ms);
void http_stop(struct http *h);
/* Replace the token set (SIGHUP); NULL keeps auth off.  Takes ownership. */
struct auth;
void http_set_auth(struct auth *a);

#endif
