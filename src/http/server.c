/*
 * http.c -- libmicrohttpd front end: listener, dispatcher, replies.
 *
 * DESIGN
 * The access handler is a small phase machine per request:
 *
 *   first call      match the route (404/405), check the URL length,
 *                   authenticate (401/403); for routes with a body check
 *                   Content-Type (415) and Content-Length (413) before a
 *                   byte of the body is read.  A refusal is queued at once
 *                   (the connection then closes); otherwise nothing is
 *                   answered yet, which keeps the connection alive.
 *   upload calls    append to a buffer capped at the route's cap; past the
 *                   cap the rest is discarded and 413 answered at the end
 *                   (libmicrohttpd 0.9.75 cannot queue a reply mid-upload).
 *   final call      for routes with a body check nesting depth and parse
 *                   JSON (duplicate keys are an error); call the handler.
 *   resumed call    a handler that suspended the connection has had its
 *                   reply stored by request_complete(): queue it.
 *
 * Every reply goes through queue_reply(), which records the status for the
 * access log and the metrics written when libmicrohttpd reports the
 * request complete.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "aced/auth.h"
#include "aced/http.h"
#include "aced/limits.h"
#include "aced/log.h"
#include "aced/metrics.h"

enum phase { PH_BODY, PH_DISCARD, PH_SUSPENDED, PH_RESUMED, PH_DONE };

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
  char method[8];
  char url[160];                 /* for the access log, truncated */
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

static pthread_rwlock_t auth_lock = PTHREAD_RWLOCK_INITIALIZER;
/* Requests suspended and not yet answered: shutdown waits for them. */
static atomic_int n_suspended;
static struct auth *auth_current;

void http_set_auth(struct auth *a)
{
  pthread_rwlock_wrlock(&auth_lock);
  struct auth *old = auth_current;
  auth_current = a;
  pthread_rwlock_unlock(&auth_lock);
  auth_free(old);
}

/* s into dst[n], cut if longer (the access log's copy of method and URL). */
static void copy_cut(char *dst, size_t n, const char *s)
{
  size_t k = strnlen(s, n - 1);
  memcpy(dst, s, k);
  dst[k] = '\0';
}

/* ---- replies ---- */

/* mode MHD_RESPMEM_MUST_FREE hands `body` (malloc'ed) to libmicrohttpd,
 * saving a copy of every JSON reply; MUST_COPY copies it. */
static MHD_RESULT queue_reply(struct request *rq, unsigned status,
                              const char *ctype, const char *body, size_t len,
                              enum MHD_ResponseMemoryMode mode,
                              const char *extra_name, const char *extra_value)
{
  /* A 5xx is our failure, not the client's: every one is logged at error
   * level with its body, which names the cause. */
  if (status >= 500)
    log_error("http", "%s %s answered %u: %.*s", rq->priv->method, rq->priv->url, status,
              (int)(len < 512 ? len : 512), body);
  struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, mode);
  if (r == NULL) {
    if (mode == MHD_RESPMEM_MUST_FREE)
      free((void *)body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  MHD_add_response_header(r, "Cache-Control", "no-store");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  if (extra_name != NULL)
    MHD_add_response_header(r, extra_name, extra_value);
  rq->priv->status = status;
  rq->priv->phase = PH_DONE;
  /* Counted when queued, so that a client's next request already sees
   * this one in /metrics; latency is to the moment the reply is ready. */
  metrics_request(rq->route_index, status, (aced_now_us() - rq->start_us) / 1e6);
  MHD_RESULT ret = MHD_queue_response(rq->conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

static MHD_RESULT reply_json_h(struct request *rq, unsigned status, json_t *j,
                               const char *hname, const char *hvalue)
{
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
  json_decref(j);
  if (s == NULL) {
    static const char oom[] =
        "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\",\"field\":\"\"}}";
    return queue_reply(rq, 500, "application/json", oom, sizeof oom - 1,
                       MHD_RESPMEM_PERSISTENT, NULL, NULL);
  }
  return queue_reply(rq, status, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE,
                     hname, hvalue);
}

MHD_RESULT reply_json_text(struct request *rq, unsigned status, char *text, size_t len)
{
  return queue_reply(rq, status, "application/json", text, len, MHD_RESPMEM_MUST_FREE, NULL,
                     NULL);
}

MHD_RESULT reply_json(struct request *rq, unsigned status, json_t *j)
{
  const char *hn = NULL, *hv = NULL;
  char loc[128];
  if (status == 503) {
    hn = "Retry-After";
    hv = "1";
  } else if (status == 202 && json_is_string(json_object_get(j, "location"))) {
    snprintf(loc, sizeof loc, "%s", json_string_value(json_object_get(j, "location")));
    hn = "Location";
    hv = loc;
  }
  return reply_json_h(rq, status, j, hn, hv);
}

MHD_RESULT reply_aced_error(struct request *rq, const struct aced_error *err)
{
  unsigned status = aced_err_status(err->code);
  const char *hn = NULL, *hv = NULL;
  if (status == 503 || status == 429) {
    hn = "Retry-After";
    hv = "1";
  } else if (status == 401) {
    hn = MHD_HTTP_HEADER_WWW_AUTHENTICATE;
    hv = "Bearer realm=\"aced\"";
  }
  return reply_json_h(rq, status, error_json(err), hn, hv);
}

MHD_RESULT reply_error(struct request *rq, enum aced_err e, const char *field,
                       const char *fmt, ...)
{
  struct aced_error err;
  err.code = e;
  snprintf(err.field, sizeof err.field, "%s", field ? field : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err.message, sizeof err.message, fmt, ap);
  va_end(ap);
  return reply_aced_error(rq, &err);
}

MHD_RESULT reply_text(struct request *rq, unsigned status, const char *ctype,
                      const char *text)
{
  return queue_reply(rq, status, ctype, text, strlen(text), MHD_RESPMEM_MUST_COPY, NULL,
                     NULL);
}

/* ---- asynchronous replies ---- */

void request_suspend(struct request *rq)
{
  rq->priv->phase = PH_SUSPENDED;
  atomic_fetch_add(&n_suspended, 1);
  MHD_suspend_connection(rq->conn);
}

void request_complete(struct request *rq, unsigned status, json_t *j)
{
  pthread_mutex_lock(&rq->priv->lock);
  rq->priv->pending_status = status;
  rq->priv->pending = j;
  rq->priv->phase = PH_RESUMED;
  pthread_mutex_unlock(&rq->priv->lock);
  MHD_resume_connection(rq->conn);
}

/* ---- query parameters ---- */

const char *request_query(struct request *rq, const char *name)
{
  return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct qcheck {
  const char *const *allowed;
  const char *bad;
};

static MHD_RESULT qcheck_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                            const char *value)
{
  struct qcheck *q = cls;
  for (const char *const *a = q->allowed; *a != NULL; a++)
    if (strcmp(*a, key) == 0)
      return MHD_YES;
  q->bad = key;
  return MHD_NO;
}

int request_query_check(struct request *rq, const char *const *allowed,
                        const char **bad)
{
  struct qcheck q = {allowed, NULL};
  MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, qcheck_cb, &q);
  *bad = q.bad;
  return q.bad ? -1 : 0;
}

/* ---- routing ---- */

/* Match the path u against pattern; on a match, record where each {x}
 * segment starts and how long it is.  Returns 1 on a match.  Nothing is
 * copied: this runs for every route on every request. */
static int match(const char *pattern, const char *u, size_t *off, size_t *len)
{
  int n = 0;
  const char *p = pattern, *u0 = u;
  while (*p != '\0' || *u != '\0') {
    if (*p != '/' || *u != '/')
      return 0;
    p++;
    u++;
    size_t plen = 0, ulen = 0;
    while (p[plen] != '\0' && p[plen] != '/')
      plen++;
    while (u[ulen] != '\0' && u[ulen] != '/')
      ulen++;
    if (plen > 0 && p[0] == '{') {
      if (ulen == 0 || n == REQUEST_MAX_ARGS)
        return 0;
      off[n] = (size_t)(u - u0);
      len[n++] = ulen;
    } else if (plen != ulen || memcmp(p, u, plen) != 0) {
      return 0;
    }
    p += plen;
    u += ulen;
  }
  while (n < REQUEST_MAX_ARGS)
    len[n++] = 0;
  return 1;
}

int http_route_find(const char *method, const char *url, char *argbuf,
                    const char **args, char *allow, size_t allowlen)
{
  int path_seen = 0;
  allow[0] = '\0';
  /* a longer URL is matched as cut to ACED_URL_MAX bytes (on_request
   * refuses it before it gets here) */
  char cut[ACED_URL_MAX + 1];
  size_t ulen = strnlen(url, ACED_URL_MAX + 1);
  if (ulen > ACED_URL_MAX) {
    memcpy(cut, url, ACED_URL_MAX);
    cut[ACED_URL_MAX] = '\0';
    url = cut;
  }
  for (int i = 0; i < aced_n_routes; i++) {
    size_t off[REQUEST_MAX_ARGS], len[REQUEST_MAX_ARGS];
    if (!match(aced_routes[i].pattern, url, off, len))
      continue;
    if (strcmp(aced_routes[i].method, method) == 0) {
      /* each argument, NUL-terminated, into argbuf: they and their
       * terminators fit in the URL's length, as each follows a '/' */
      size_t pos = 0;
      for (int k = 0; k < REQUEST_MAX_ARGS; k++) {
        if (len[k] == 0) {
          args[k] = NULL;
          continue;
        }
        memcpy(argbuf + pos, url + off[k], len[k]);
        argbuf[pos + len[k]] = '\0';
        args[k] = argbuf + pos;
        pos += len[k] + 1;
      }
      return i;
    }
    path_seen = 1;
    if (strstr(allow, aced_routes[i].method) == NULL) {
      size_t n = strlen(allow);
      snprintf(allow + n, allowlen - n, "%s%s", n ? ", " : "",
               aced_routes[i].method);
    }
  }
  return path_seen ? -2 : -1;
}

int http_json_depth(const char *s, size_t n)
{
  int depth = 0, max = 0, in_str = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '[' || c == '{') {
      if (++depth > max)
        max = depth;
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return max;
}

static int is_json_type(const char *ct)
{
  if (ct == NULL)
    return 0;
  while (*ct == ' ')
    ct++;
  size_t n = strlen("application/json");
  if (strncasecmp(ct, "application/json", n) != 0)
    return 0;
  return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* Client address for logs: the peer, or X-Forwarded-For's first entry when
 * the peer is a configured proxy.  Worked out on first use: most requests
 * are never logged at a level that shows it. */
static void client_address(struct request *rq)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  char peer[INET6_ADDRSTRLEN] = "?";
  if (ci != NULL && ci->client_addr != NULL) {
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
      inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, peer, sizeof peer);
    else if (sa->sa_family == AF_INET6)
      inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, peer, sizeof peer);
  }
  snprintf(rq->client, sizeof rq->client, "%s", peer);
  const char *proxies = rq->srv->cfg.trusted_proxies;
  if (proxies[0] == '\0')
    return;
  char list[sizeof rq->srv->cfg.trusted_proxies];
  snprintf(list, sizeof list, "%s", proxies);
  int trusted = 0;
  for (char *save = NULL, *t = strtok_r(list, ", ", &save); t != NULL;
       t = strtok_r(NULL, ", ", &save))
    if (strcmp(t, peer) == 0)
      trusted = 1;
  const char *xff =
      MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Forwarded-For");
  if (!trusted || xff == NULL)
    return;
  char first[64];
  size_t k = 0;
  while (xff[k] != '\0' && xff[k] != ',' && k < sizeof first - 1) {
    first[k] = xff[k];
    k++;
  }
  first[k] = '\0';
  /* Only characters an address can hold go to the log. */
  for (size_t i = 0; i < k; i++)
    if (!strchr("0123456789abcdefABCDEF.:[] ", first[i]))
      return;
  snprintf(rq->client, sizeof rq->client, "%s via %s", first, peer);
}

const char *request_client(struct request *rq)
{
  if (rq->client[0] == '\0')
    client_address(rq);
  return rq->client;
}

static struct http *the_http; /* for conn_mark: one listener per process */

/* Move conn's tracking to `state` (a new state restarts its clock, at
 * now_us if the caller has the time, else read here), or count `bytes`
 * more of body in the current one. */
static void conn_mark(struct MHD_Connection *conn, enum conn_state state, size_t bytes,
                      int64_t now_us)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  struct http *h = the_http;
  if (ci == NULL || ci->socket_context == NULL || h == NULL)
    return;
  struct conn_track *t = ci->socket_context;
  /* No lock: this runs several times per request, and only this thread
   * writes these fields.  A timed state (IDLE, BODY) gets its clock and
   * count before the state itself (release), so a watchdog that sees the
   * new state (acquire) sees them too; one that still sees the old state
   * may see the new clock, which is "now", younger than the old one: that
   * can only delay a shutdown.  BUSY is never timed, so entering it leaves
   * the clock and count alone (and saves a clock reading). */
  if (atomic_load_explicit(&t->state, memory_order_relaxed) == (int)state) {
    if (bytes != 0)
      atomic_fetch_add_explicit(&t->body_bytes, bytes, memory_order_relaxed);
    return;
  }
  if (state != CS_BUSY) {
    atomic_store_explicit(&t->since_us, now_us != 0 ? now_us : aced_now_us(),
                          memory_order_relaxed);
    atomic_store_explicit(&t->body_bytes, bytes, memory_order_relaxed);
  }
  atomic_store_explicit(&t->state, (int)state, memory_order_release);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
  struct http *h = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    struct conn_track *t = calloc(1, sizeof *t);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_context = t;
    if (t == NULL || ci == NULL) {
      free(t);
      *socket_context = NULL;
      return;
    }
    t->fd = ci->connect_fd;
    atomic_init(&t->state, CS_IDLE);
    atomic_init(&t->since_us, aced_now_us());
    atomic_init(&t->body_bytes, 0);
    pthread_mutex_lock(&h->track_lock);
    t->next = h->tracked;
    if (h->tracked)
      h->tracked->prev = t;
    h->tracked = t;
    pthread_mutex_unlock(&h->track_lock);
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL) {
    /* Called before libmicrohttpd closes the socket, so the watchdog never
     * touches a descriptor number that has been reused. */
    struct conn_track *t = *socket_context;
    pthread_mutex_lock(&h->track_lock);
    if (t->prev)
      t->prev->next = t->next;
    else
      h->tracked = t->next;
    if (t->next)
      t->next->prev = t->prev;
    pthread_mutex_unlock(&h->track_lock);
    free(t);
    *socket_context = NULL;
  }
}

static void *watchdog_main(void *arg)
{
  struct http *h = arg;
  int64_t limit = h->srv->cfg.connection_timeout * 1000000L;
  pthread_mutex_lock(&h->track_lock);
  while (!h->stop) {
    int64_t now = aced_now_us();
    for (struct conn_track *t = h->tracked; t; t = t->next) {
      int st = atomic_load_explicit(&t->state, memory_order_acquire);
      int64_t age = now - atomic_load_explicit(&t->since_us, memory_order_relaxed);
      size_t bytes = atomic_load_explicit(&t->body_bytes, memory_order_relaxed);
      int late = st == CS_IDLE && age > limit;
      int slow = st == CS_BODY && age > limit &&
                 (double)bytes < ACED_BODY_MIN_RATE * (age / 1e6);
      if ((late || slow) && !t->shut) {
        shutdown(t->fd, SHUT_RDWR);
        t->shut = 1;
      }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 250 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&h->stop_cv, &h->track_lock, &ts);
  }
  pthread_mutex_unlock(&h->track_lock);
  return NULL;
}

static MHD_RESULT dispatch(struct request *rq)
{
  if (rq->route->body == BODY_JSON) {
    struct request_priv *p = rq->priv;
    if (p->len == 0)
      return reply_error(rq, ACED_E_BAD_JSON, "", "request body is empty");
    int depth = http_json_depth(p->buf, p->len);
    if (depth > ACED_JSON_DEPTH_MAX)
      return reply_error(rq, ACED_E_BAD_JSON, "",
                         "JSON nested %d levels deep; at most %d allowed", depth,
                         ACED_JSON_DEPTH_MAX);
    json_error_t jerr;
    rq->body = json_loadb(p->buf, p->len, JSON_REJECT_DUPLICATES, &jerr);
    free(p->buf);
    p->buf = NULL;
    if (rq->body == NULL)
      return reply_error(rq, ACED_E_BAD_JSON, "",
                         "invalid JSON at line %d column %d: %s", jerr.line,
                         jerr.column, jerr.text);
    if (!json_is_object(rq->body))
      return reply_error(rq, ACED_E_BAD_TYPE, "", "request body must be a JSON object");
  }
  return rq->route->handler(rq);
}

static MHD_RESULT on_request(void *cls, struct MHD_Connection *conn,
                             const char *url, const char *method,
                             const char *version, const char *upload_data,
                             size_t *upload_data_size, void **con_cls)
{
  struct server *srv = cls;
  struct request *rq = *con_cls;

  if (rq == NULL) {
    /* the path arguments need at most the URL's length (see
     * http_route_find); longer URLs are refused below */
    size_t ulen = strnlen(url, ACED_URL_MAX + 1);
    rq = calloc(1, sizeof *rq + sizeof(struct request_priv) + ulen + 1);
    if (rq == NULL)
      return MHD_NO;
    rq->priv = (struct request_priv *)(rq + 1);
    char *argbuf = (char *)(rq->priv + 1);
    pthread_mutex_init(&rq->priv->lock, NULL);
    rq->conn = conn;
    rq->srv = srv;
    rq->start_us = aced_now_us();
    rq->route_index = -1;
    rq->who[0] = '-';
    copy_cut(rq->priv->method, sizeof rq->priv->method, method);
    copy_cut(rq->priv->url, sizeof rq->priv->url, url);
    *con_cls = rq;
    conn_mark(conn, CS_BUSY, 0, 0);

    if (ulen > ACED_URL_MAX)
      return reply_error(rq, ACED_E_BAD_REQUEST, "url", "URL longer than %d bytes",
                         ACED_URL_MAX);
    char allow[64];
    int ri = http_route_find(method, url, argbuf, rq->arg, allow, sizeof allow);
    if (ri == -1)
      return reply_error(rq, ACED_E_NOT_FOUND, "url", "no route for %s", url);
    if (ri == -2) {
      struct aced_error err;
      aced_error_set(&err, ACED_E_METHOD_NOT_ALLOWED, "method",
                     "%s is not allowed here; allowed: %s", method, allow);
      return reply_json_h(rq, 405, error_json(&err), "Allow", allow);
    }
    rq->route = &aced_routes[ri];
    rq->route_index = ri;

    if (rq->route->scope != 0) {
      pthread_rwlock_rdlock(&auth_lock);
      int scopes = AUTH_READ | AUTH_WRITE;
      if (auth_current != NULL) {
        const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_AUTHORIZATION);
        scopes = auth_check(auth_current, h, rq->who, sizeof rq->who);
        if (scopes == 0) {
          pthread_rwlock_unlock(&auth_lock);
          return reply_error(rq, ACED_E_UNAUTHORIZED, "Authorization",
                             h ? "bearer token not recognised"
                               : "missing 'Authorization: Bearer <token>' header");
        }
      }
      pthread_rwlock_unlock(&auth_lock);
      rq->scopes = scopes;
      if ((scopes & rq->route->scope) == 0)
        return reply_error(rq, ACED_E_FORBIDDEN, "Authorization",
                           "token '%s' lacks the '%s' scope", rq->who,
                           rq->route->scope == AUTH_WRITE ? "write" : "read");
    }

    /* Accepted: the reply comes on the final call.  Queueing it now,
     * before libmicrohttpd has seen the end of the request, would make it
     * close the connection (no keep-alive). */
    if (rq->route->body == BODY_NONE) {
      rq->priv->phase = PH_BODY;
      return MHD_YES;
    }

    rq->priv->body_max = (size_t)srv->cfg.max_body_bytes;
    if (rq->route->body_max > 0 && rq->route->body_max < srv->cfg.max_body_bytes)
      rq->priv->body_max = (size_t)rq->route->body_max;
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!is_json_type(ct))
      return reply_error(rq, ACED_E_UNSUPPORTED_MEDIA, "Content-Type",
                         "expected application/json, got '%s'", ct ? ct : "(none)");
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
      char *end;
      unsigned long long n = strtoull(cl, &end, 10);
      if (end == cl || *end != '\0')
        return reply_error(rq, ACED_E_BAD_REQUEST, "Content-Length",
                           "Content-Length is not a number");
      if (n > (unsigned long long)rq->priv->body_max)
        return reply_error(rq, ACED_E_TOO_LARGE, "Content-Length",
                           "body of %llu bytes is over the limit of %zu bytes", n,
                           rq->priv->body_max);
      if (n > 0) {
        rq->priv->buf = malloc((size_t)n + 1);
        if (rq->priv->buf == NULL)
          return reply_error(rq, ACED_E_UNAVAILABLE, "", "out of memory");
        rq->priv->cap = (size_t)n;
      }
    }
    rq->priv->phase = PH_BODY;
    conn_mark(conn, CS_BODY, 0, rq->start_us);
    return MHD_YES;
  }

  struct request_priv *p = rq->priv;
  if (*upload_data_size > 0) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    conn_mark(conn, CS_BODY, n, 0);
    if (p->phase == PH_DISCARD) {
      /* Past the cap: swallow up to one more cap's worth so that the 413
       * can be delivered, then give up on the connection. */
      p->len += n;
      return p->len > 2 * p->body_max ? MHD_NO : MHD_YES;
    }
    if (p->len + n > p->body_max) {
      free(p->buf);
      p->buf = NULL;
      p->phase = PH_DISCARD;
      p->len += n;
      return MHD_YES;
    }
    if (p->len + n > p->cap) {
      size_t cap = p->cap ? p->cap : 4096;
      while (cap < p->len + n)
        cap *= 2;
      if (cap > p->body_max)
        cap = p->body_max;
      char *q = realloc(p->buf, cap + 1);
      if (q == NULL)
        return MHD_NO;
      p->buf = q;
      p->cap = cap;
    }
    memcpy(p->buf + p->len, upload_data, n);
    p->len += n;
    return MHD_YES;
  }

  switch (p->phase) {
  case PH_DISCARD:
    return reply_error(rq, ACED_E_TOO_LARGE, "body",
                       "body is over the limit of %zu bytes", p->body_max);
  case PH_BODY:
    conn_mark(conn, CS_BUSY, 0, 0);
    return dispatch(rq);
  case PH_RESUMED: {
    pthread_mutex_lock(&p->lock);
    json_t *j = p->pending;
    unsigned st = p->pending_status;
    p->pending = NULL;
    pthread_mutex_unlock(&p->lock);
    MHD_RESULT r = reply_json(rq, st, j);
    atomic_fetch_sub(&n_suspended, 1);
    return r;
  }
  case PH_SUSPENDED:
    /* A spurious call while suspended: nothing to do yet. */
    return MHD_YES;
  case PH_DONE:
  default:
    return MHD_YES;
  }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  struct request *rq = *con_cls;
  if (rq == NULL)
    return;
  int64_t now = aced_now_us();
  double secs = (now - rq->start_us) / 1e6;
  unsigned status = rq->priv->status;
  if (status == 0) {
    status = 499; /* client went away or timed out before a reply */
    metrics_request(rq->route_index, status, secs);
  }
  if (log_enabled(LOG_L_INFO))
    log_info("http", "%s %s %s %u %.1fms who=%s", request_client(rq), rq->priv->method,
             rq->priv->url, status, secs * 1e3, rq->who);
  conn_mark(conn, CS_IDLE, 0, now);
  if (rq->hstate_free != NULL)
    rq->hstate_free(rq->hstate);
  json_decref(rq->body);
  json_decref(rq->priv->pending);
  free(rq->priv->buf);
  pthread_mutex_destroy(&rq->priv->lock);
  free(rq);
  *con_cls = NULL;
}

/* Percent-decoding of the URL and query arguments, as libmicrohttpd's
 * own, except that %00 stays as it is: decoded, it would end the C string
 * early and /v1/models/a%00b would be served as model "a". */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
  char *w = s;
  for (const char *r = s; *r != '\0'; r++) {
    unsigned v;
    if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2]) &&
        sscanf(r + 1, "%2x", &v) == 1 && v != 0) {
      *w++ = (char)v;
      r += 2;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
  return (size_t)(w - s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  size_t n = strlen(buf);
  while (n > 0 && buf[n - 1] == '\n')
    buf[--n] = '\0';
  log_warn("mhd", "%s", buf);
}

struct http *http_start(struct server *srv, char *errbuf, size_t errlen)
{
  struct aced_config *c = &srv->cfg;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG | MHD_USE_ITC;
  const char *addr = strcmp(c->listen_address, "localhost") == 0 ? "127.0.0.1"
                                                                  : c->listen_address;
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)c->port);
  } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)c->port);
    flags |= MHD_USE_IPv6;
  } else {
    snprintf(errbuf, errlen, "listen_address '%s' is not an IP address", addr);
    return NULL;
  }
  struct http *h = calloc(1, sizeof *h);
  if (h == NULL) {
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  h->srv = srv;
  pthread_mutex_init(&h->track_lock, NULL);
  pthread_cond_init(&h->stop_cv, NULL);
  the_http = h;
  /* Metric labels are "METHOD pattern": bounded, whatever the URLs. */
  static char labels[64][96];
  static const char *label_ptrs[64];
  for (int i = 0; i < aced_n_routes && i < 64; i++) {
    snprintf(labels[i], sizeof labels[i], "%s %s", aced_routes[i].method,
             aced_routes[i].pattern);
    label_ptrs[i] = labels[i];
  }
  metrics_init(aced_n_routes, label_ptrs);
  h->d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, srv,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)c->http_threads,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)c->connection_limit,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)c->connection_timeout,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)c->connection_memory,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
      MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 1U,
      MHD_OPTION_END);
  if (h->d == NULL) {
    snprintf(errbuf, errlen, "cannot listen on %s port %ld (address in use?)",
             c->listen_address, c->port);
    the_http = NULL;
    free(h);
    return NULL;
  }
  pthread_create(&h->watchdog, NULL, watchdog_main, h);
  return h;
}

void http_quiesce(struct http *h)
{
  if (h == NULL || h->d == NULL)
    return;
  MHD_socket fd = MHD_quiesce_daemon(h->d);
  if (fd != MHD_INVALID_SOCKET)
    close(fd);
}

void http_drain(struct http *h, int timeout_ms)
{
  int64_t end = aced_now_us() + (int64_t)timeout_ms * 1000;
  while (h != NULL && atomic_load(&n_suspended) > 0 && aced_now_us() < end) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

void http_stop(struct http *h)
{
  if (h == NULL)
    return;
  pthread_mutex_lock(&h->track_lock);
  h->stop = 1;
  pthread_cond_signal(&h->stop_cv);
  pthread_mutex_unlock(&h->track_lock);
  pthread_join(h->watchdog, NULL);
  MHD_stop_daemon(h->d);
  the_http = NULL;
  pthread_mutex_destroy(&h->track_lock);
  pthread_cond_destroy(&h->stop_cv);
  free(h);
}
