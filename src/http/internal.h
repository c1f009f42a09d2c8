/*
 * http/internal.h -- what the files of the HTTP front end share; nothing
 * outside src/http/ includes it.
 *
 *   server.c    listener lifecycle, connection tracking and the header
 *               watchdog, token reloads
 *   dispatch.c  the access handler: a small phase machine per request
 *   reply.c     every reply, synchronous or resumed
 *   routes.c    the route table and its matching
 *   cors.c      CORS headers and OPTIONS
 *   cache.c     caching (Cache-Control, ETag, 304) and the web view's replies
 */
#ifndef ACED_HTTP_INTERNAL_H
#define ACED_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "aced/http.h"
#include "aced/limits.h"

enum phase { PH_NEW, PH_BODY, PH_DISCARD, PH_SUSPENDED, PH_RESUMED, PH_DONE };

struct request_priv {
  enum phase phase;
  char *buf;
  size_t len, cap;
  size_t body_max;               /* the route's cap, or max_body_bytes if lower */
  unsigned status;               /* status of the reply queued */
  /* stored asynchronous reply */
  pthread_mutex_t lock;
  unsigned pending_status;
  json_t *pending;
  /* the request target as sent, measured by http_on_uri before
   * libmicrohttpd parses it */
  size_t target_len;             /* bytes, path and query */
  size_t n_params;               /* query parameters ('&'-separated) */
  char method[8];
  char url[160];                 /* for the access log, truncated */
  /* X-Forwarded-Prefix of a trusted proxy (request_base_path) */
  int has_prefix;
  char prefix[ACED_BASE_PATH_MAX + 1];
  /* caching of a 200 (or its 304), set by the handler (reply.c): NULL
   * and "" mean Cache-Control: no-store and no ETag */
  const char *cache_control;
  const char *csp;               /* Content-Security-Policy, or NULL */
  char etag[80];
  /* OPTIONS: the path's methods, for Allow and a CORS preflight (cors.c) */
  int preflight;
  char allow[80];
};

/* ---- header deadline ----
 * libmicrohttpd's connection timeout is an *idle* timeout: a client that
 * sends its request headers one byte a second never looks idle and would
 * hold its connection (and a connection_limit slot) for ever.  Every
 * connection is therefore tracked from accept (NOTIFY_CONNECTION); while
 * it has no request whose headers are complete, a watchdog thread shuts
 * the socket down once connection_timeout seconds have passed since the
 * connection opened or its last request ended.  A body upload gets the
 * same time and must then keep up an average of ACED_BODY_MIN_RATE.
 * libmicrohttpd then sees the end of the stream and closes the connection
 * itself.  A request being handled (or waiting for a worker) is not
 * touched. */
enum conn_state { CS_IDLE, CS_BODY, CS_BUSY };
struct conn_track {
  struct conn_track *prev, *next;    /* under track_lock */
  MHD_socket fd;
  /* Written only by the connection's own libmicrohttpd thread, read by the
   * watchdog without the lock (see conn_mark). */
  _Atomic int state;                 /* enum conn_state */
  _Atomic int_least64_t since_us;    /* state entered */
  _Atomic size_t body_bytes;         /* received in CS_BODY */
  int shut;           /* the watchdog already shut it down (its own) */
};

struct http {
  struct MHD_Daemon *d;
  struct server *srv;
  pthread_mutex_t track_lock;
  struct conn_track *tracked;
  pthread_t watchdog;
  int stop;
  pthread_cond_t stop_cv;
};

/* The token set (SIGHUP replaces it) and its lock (server.c). */
extern pthread_rwlock_t http_auth_lock;
extern struct auth *http_auth_current;
/* Whether http_auth_current is set: without tokens (loopback only) a
 * request skips the lock, a cache line both HTTP threads would otherwise
 * write on every request. */
extern atomic_int http_auth_on;
/* Requests suspended and not yet answered: shutdown waits for them. */
extern atomic_int http_n_suspended;

/* reply.c: every reply goes through http_queue_reply, which records the
 * status for the access log and the metrics. */
MHD_RESULT http_queue_reply(struct request *rq, unsigned status, const char *ctype,
                            const char *body, size_t len, enum MHD_ResponseMemoryMode mode,
                            const char *extra_name, const char *extra_value);
MHD_RESULT http_reply_json_h(struct request *rq, unsigned status, json_t *j,
                             const char *hname, const char *hvalue);

/* cors.c: the CORS headers of a reply (only called when cors_origins is
 * set): Vary: Origin, and for an allowed Origin the Access-Control-*
 * headers, those of a preflight when the request is one. */
void http_cors_headers(struct request *rq, struct MHD_Response *r);
/* cors.c: answer OPTIONS on a path that has routes (rq->priv->allow). */
MHD_RESULT http_reply_options(struct request *rq);

/* server.c: move a connection's tracking to `state` (see conn_track). */
void http_conn_mark(struct MHD_Connection *conn, enum conn_state state, size_t bytes,
                    int64_t now_us);

/* dispatch.c: libmicrohttpd's callbacks for requests. */
MHD_RESULT http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_data_size, void **con_cls);
void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                       enum MHD_RequestTerminationCode toe);
void *http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
size_t http_unescape(void *cls, struct MHD_Connection *c, char *s);

#endif
