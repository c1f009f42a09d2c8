/*
 * dispatch.c -- the access handler libmicrohttpd calls for every request.
 *
 * DESIGN
 * The access handler is a small phase machine per request:
 *
 *   URI callback    (http_on_uri, before libmicrohttpd parses the query)
 *                   allocate the request, measure the target and count
 *                   its parameters; drop the query of a target that will
 *                   be refused, so that it cannot exhaust the pool.
 *   first call      check the request head against limits.h (414 target,
 *                   431 headers) and its Host (400), match the route
 *                   (404/405), authenticate (401/403); for routes with a body check
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
 * Every reply goes through http_queue_reply() (reply.c), which records the
 * status for the access log and the metrics written when libmicrohttpd
 * reports the request complete.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
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
#include "aced/config.h"
#include "aced/jsonr.h"
#include "aced/limits.h"
#include "aced/log.h"
#include "aced/metrics.h"
#include "http/internal.h"

/* s into dst[n], cut if longer (the access log's copy of method and URL). */
static void copy_cut(char *dst, size_t n, const char *s)
{
  size_t k = strnlen(s, n - 1);
  memcpy(dst, s, k);
  dst[k] = '\0';
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

/* The peer's address as text into peer[INET6_ADDRSTRLEN], and whether it
 * is one of trusted_proxies (an address or a CIDR range). */
static int peer_address(struct request *rq, char *peer)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  memcpy(peer, "?", 2);
  if (ci == NULL || ci->client_addr == NULL)
    return 0;
  const struct sockaddr *sa = ci->client_addr;
  const char *proxies = rq->srv->cfg.trusted_proxies;
  if (sa->sa_family == AF_INET) {
    /* dotted quad as inet_ntop writes it, without its sprintf: the
     * access log asks for this on every request */
    const struct in_addr *a = &((const struct sockaddr_in *)sa)->sin_addr;
    const unsigned char *b = (const unsigned char *)&a->s_addr;
    char *o = peer;
    for (int i = 0; i < 4; i++) {
      if (i)
        *o++ = '.';
      if (b[i] >= 100)
        *o++ = (char)('0' + b[i] / 100);
      if (b[i] >= 10)
        *o++ = (char)('0' + b[i] / 10 % 10);
      *o++ = (char)('0' + b[i] % 10);
    }
    *o = '\0';
    return config_proxy_trusted(proxies, AF_INET, a);
  }
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    inet_ntop(AF_INET6, a, peer, INET6_ADDRSTRLEN);
    return config_proxy_trusted(proxies, AF_INET6, a);
  }
  return 0;
}

/* Client address for logs: the peer, or X-Forwarded-For's first entry when
 * the peer is a configured proxy.  Worked out on first use: most requests
 * are never logged at a level that shows it. */
static void client_address(struct request *rq)
{
  char peer[INET6_ADDRSTRLEN];
  int trusted = peer_address(rq, peer);
  memcpy(rq->client, peer, strlen(peer) + 1); /* INET6_ADDRSTRLEN < sizeof client */
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

/* X-Forwarded-Prefix, honoured only from a trusted proxy, replaces
 * base_path for this request.  Returns 0, or -1 when a trusted proxy sent
 * a prefix that is not a valid one (the caller answers 400: a proxy
 * misconfigured so must not make aced write broken or foreign URLs). */
static int forwarded_prefix(struct request *rq, char *why, size_t whylen)
{
  const char *xfp =
      MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Forwarded-Prefix");
  char peer[INET6_ADDRSTRLEN];
  if (xfp == NULL || !peer_address(rq, peer))
    return 0;
  if (config_base_path_check(xfp, why, whylen) != 0)
    return -1;
  snprintf(rq->priv->prefix, sizeof rq->priv->prefix, "%s", xfp);
  rq->priv->has_prefix = 1;
  return 0;
}

const char *request_base_path(struct request *rq)
{
  return rq->priv->has_prefix ? rq->priv->prefix : rq->srv->cfg.base_path;
}

const char *request_raw_body(const struct request *rq, size_t *len)
{
  *len = rq->priv->buf ? rq->priv->len : 0;
  return rq->priv->buf;
}

const char *request_client(struct request *rq)
{
  if (rq->client[0] == '\0')
    client_address(rq);
  return rq->client;
}


static MHD_RESULT dispatch(struct request *rq)
{
  if (rq->priv->preflight)
    return http_reply_options(rq);
  if (rq->route->body == BODY_JSON) {
    struct request_priv *p = rq->priv;
    if (p->len == 0)
      return reply_error(rq, ACED_E_BAD_JSON, "", "request body is empty");
    MHD_RESULT quick;
    if (rq->route->quick != NULL && rq->route->quick(rq, &quick))
      return quick;
    /* Small plain bodies (every query a dashboard sends) take the quick
     * reader; anything it leaves, jansson parses and judges. */
    rq->body = jsonr_parse(p->buf, p->len);
    if (rq->body == NULL) {
      int depth = http_json_depth(p->buf, p->len);
      if (depth > ACED_JSON_DEPTH_MAX)
        return reply_error(rq, ACED_E_BAD_JSON, "",
                           "JSON nested %d levels deep; at most %d allowed", depth,
                           ACED_JSON_DEPTH_MAX);
      json_error_t jerr;
      rq->body = json_loadb(p->buf, p->len, JSON_REJECT_DUPLICATES, &jerr);
      if (rq->body == NULL) {
        return reply_error(rq, ACED_E_BAD_JSON, "",
                           "invalid JSON at line %d column %d: %s", jerr.line,
                           jerr.column, jerr.text);
      }
    }
    /* the bytes stay (request_raw_body) until the request ends */
    if (!json_is_object(rq->body))
      return reply_error(rq, ACED_E_BAD_TYPE, "", "request body must be a JSON object");
  }
  return rq->route->handler(rq);
}

/* A new request's state, with room after it for the path arguments (at
 * most the path's length, see http_route_find). */
static struct request *request_new(struct server *srv, struct MHD_Connection *conn,
                                   size_t path_max)
{
  /* malloc rather than calloc: glibc's calloc skips the per-thread cache
   * that malloc takes this (about 1 KiB) block from.  The two structs are
   * zeroed; the path buffer after them is written before it is read
   * (http_route_find), so it only gets its terminator.  (Zeroing the
   * whole block would be turned back into calloc by the compiler.) */
  size_t head = sizeof(struct request) + sizeof(struct request_priv);
  struct request *rq = malloc(head + path_max + 1);
  if (rq == NULL)
    return NULL;
  memset(rq, 0, head);
  ((char *)rq)[head] = '\0';
  rq->priv = (struct request_priv *)(rq + 1);
  pthread_mutex_init(&rq->priv->lock, NULL);
  rq->conn = conn;
  rq->srv = srv;
  rq->start_us = aced_now_us();
  rq->route_index = -1;
  rq->who[0] = '-';
  rq->priv->phase = PH_NEW;
  return rq;
}

/* libmicrohttpd's URI log callback: called with the request target as
 * sent, before libmicrohttpd parses its query into the connection's pool.
 * Measures the target and counts its parameters for the access handler's
 * checks; when the request will be refused for either, the query is cut
 * off here (libmicrohttpd has already found the '?', and parses what
 * follows it), so that no number of parameters can fill the pool and
 * leave the connection without a reply.  Returns the request's state,
 * which libmicrohttpd hands to the access handler as *con_cls. */
void *http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
  size_t n = strlen(uri);
  const char *q = strchr(uri, '?');
  size_t params = 0;
  if (q != NULL && q[1] != '\0') {
    params = 1;
    for (const char *c = q + 1; *c != '\0'; c++)
      params += *c == '&';
  }
  size_t path = q ? (size_t)(q - uri) : n;
  struct request *rq = request_new(cls, conn, path < ACED_URL_MAX ? path : ACED_URL_MAX);
  if (rq == NULL)
    return NULL;
  copy_cut(rq->priv->url, sizeof rq->priv->url, uri); /* until the path is decoded */
  rq->priv->target_len = n;
  rq->priv->n_params = params;
  if ((n > ACED_URL_MAX || params > ACED_QUERY_PARAMS_MAX) && q != NULL)
    ((char *)q)[1] = '\0'; /* the buffer is libmicrohttpd's, writable */
  return rq;
}

/* The request headers against ACED_HEADERS_MAX and ACED_HEADER_BYTES_MAX,
 * and the Host header RFC 9112 (3.2) asks for. */
struct hcount {
  size_t n, bytes, hosts;
};

static MHD_RESULT hcount_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                            const char *value)
{
  struct hcount *h = cls;
  h->n++;
  h->bytes += strlen(key) + strlen(value) + 4; /* ": " and CRLF */
  h->hosts += strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0;
  return MHD_YES;
}

/* 414, 431 or 400 for a request head over aced's limits or without its
 * Host; MHD_YES with nothing queued when it passes. */
static int check_head(struct request *rq, const char *version, MHD_RESULT *ret)
{
  struct request_priv *p = rq->priv;
  if (p->target_len > ACED_URL_MAX) {
    *ret = reply_error(rq, ACED_E_URI_TOO_LONG, "url",
                       "request target of %zu bytes is over the limit of %d bytes",
                       p->target_len, ACED_URL_MAX);
    return -1;
  }
  if (p->n_params > ACED_QUERY_PARAMS_MAX) {
    *ret = reply_error(rq, ACED_E_URI_TOO_LONG, "query",
                       "%zu query parameters; at most %d allowed", p->n_params,
                       ACED_QUERY_PARAMS_MAX);
    return -1;
  }
  struct hcount h = {0, 0, 0};
  MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, hcount_cb, &h);
  if (h.n > ACED_HEADERS_MAX) {
    *ret = reply_error(rq, ACED_E_HEADERS_TOO_LARGE, "headers",
                       "%zu header lines; at most %d allowed", h.n, ACED_HEADERS_MAX);
    return -1;
  }
  if (h.bytes > ACED_HEADER_BYTES_MAX) {
    *ret = reply_error(rq, ACED_E_HEADERS_TOO_LARGE, "headers",
                       "headers of %zu bytes are over the limit of %d bytes", h.bytes,
                       ACED_HEADER_BYTES_MAX);
    return -1;
  }
  if (h.hosts > 1 || (h.hosts == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)) {
    *ret = reply_error(rq, ACED_E_BAD_REQUEST, MHD_HTTP_HEADER_HOST,
                       h.hosts ? "more than one Host header"
                               : "an HTTP/1.1 request must have a Host header");
    return -1;
  }
  return 0;
}

MHD_RESULT http_on_request(void *cls, struct MHD_Connection *conn,
                             const char *url, const char *method,
                             const char *version, const char *upload_data,
                             size_t *upload_data_size, void **con_cls)
{
  struct server *srv = cls;
  struct request *rq = *con_cls;

  if (rq == NULL || rq->priv->phase == PH_NEW) {
    if (rq == NULL) { /* no URI callback ran: measure the path alone */
      rq = request_new(srv, conn, strnlen(url, ACED_URL_MAX + 1));
      if (rq == NULL)
        return MHD_NO;
      rq->priv->target_len = strnlen(url, ACED_URL_MAX + 1);
      *con_cls = rq;
    }
    /* the path arguments need at most the path's length (see
     * http_route_find), which the URI callback bounded */
    char *argbuf = (char *)(rq->priv + 1);
    rq->start_us = aced_now_us(); /* latency counts from complete headers, as always */
    copy_cut(rq->priv->method, sizeof rq->priv->method, method);
    copy_cut(rq->priv->url, sizeof rq->priv->url, url);
    http_conn_mark(conn, CS_BUSY, 0, 0);

    MHD_RESULT ret;
    if (check_head(rq, version, &ret) != 0)
      return ret;
    char allow[64];
    int ri = http_route_find(method, url, argbuf, rq->arg, allow, sizeof allow);
    if (ri == -1)
      return reply_error(rq, ACED_E_NOT_FOUND, "url", "no route for %s", url);
    if (ri == -2 && strcmp(method, "OPTIONS") == 0) {
      /* answered on the final call, like any request (cors.c) */
      snprintf(rq->priv->allow, sizeof rq->priv->allow, "%s, OPTIONS", allow);
      rq->priv->preflight = 1;
      rq->priv->phase = PH_BODY;
      return MHD_YES;
    }
    if (ri == -2) {
      struct aced_error err;
      aced_error_set(&err, ACED_E_METHOD_NOT_ALLOWED, "method",
                     "%s is not allowed here; allowed: %s", method, allow);
      return http_reply_json_h(rq, 405, error_json(&err), "Allow", allow);
    }
    rq->route = &aced_routes[ri];
    rq->route_index = ri;
    char why[128];
    if (forwarded_prefix(rq, why, sizeof why) != 0)
      return reply_error(rq, ACED_E_BAD_REQUEST, "X-Forwarded-Prefix",
                         "X-Forwarded-Prefix from a trusted proxy is not a valid prefix: %s",
                         why);

    if (rq->route->scope != 0 && !atomic_load_explicit(&http_auth_on, memory_order_acquire)) {
      rq->scopes = AUTH_READ | AUTH_WRITE; /* no tokens: loopback only, every scope */
    } else if (rq->route->scope != 0) {
      pthread_rwlock_rdlock(&http_auth_lock);
      int scopes = AUTH_READ | AUTH_WRITE;
      if (http_auth_current != NULL) {
        const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_AUTHORIZATION);
        scopes = auth_check(http_auth_current, h, rq->who, sizeof rq->who);
        if (scopes == 0) {
          pthread_rwlock_unlock(&http_auth_lock);
          return reply_error(rq, ACED_E_UNAUTHORIZED, "Authorization",
                             h ? "bearer token not recognised"
                               : "missing 'Authorization: Bearer <token>' header");
        }
      }
      pthread_rwlock_unlock(&http_auth_lock);
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
    http_conn_mark(conn, CS_BODY, 0, rq->start_us);
    return MHD_YES;
  }

  struct request_priv *p = rq->priv;
  if (*upload_data_size > 0) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    http_conn_mark(conn, CS_BODY, n, 0);
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
      /* 1016 (+1 for the terminator) keeps a dashboard's query, a few
       * hundred bytes, in malloc's per-thread cache */
      size_t cap = p->cap ? p->cap : 1016;
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
    http_conn_mark(conn, CS_BUSY, 0, 0);
    return dispatch(rq);
  case PH_RESUMED: {
    pthread_mutex_lock(&p->lock);
    json_t *j = p->pending;
    unsigned st = p->pending_status;
    p->pending = NULL;
    pthread_mutex_unlock(&p->lock);
    MHD_RESULT r = reply_json(rq, st, j);
    atomic_fetch_sub(&http_n_suspended, 1);
    return r;
  }
  case PH_SUSPENDED:
    /* A spurious call while suspended: nothing to do yet. */
    return MHD_YES;
  case PH_NEW:
  case PH_DONE:
  default:
    return MHD_YES;
  }
}

void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  struct request *rq = *con_cls;
  if (rq == NULL)
    return;
  if (rq->priv->phase == PH_NEW) {
    /* The access handler never ran: libmicrohttpd refused the head itself
     * (414/431, too large for its pool) or the client left before its
     * headers were complete.  Neither is a request aced answered. */
    if (log_enabled(LOG_L_DEBUG))
      log_debug("http", "%s request head not completed or refused by libmicrohttpd: %s",
                request_client(rq), rq->priv->url);
    pthread_mutex_destroy(&rq->priv->lock);
    free(rq);
    *con_cls = NULL;
    return;
  }
  int64_t now = aced_now_us();
  double secs = (now - rq->start_us) / 1e6;
  unsigned status = rq->priv->status;
  if (status == 0) {
    status = 499; /* client went away or timed out before a reply */
    metrics_request(rq->route_index, status, secs);
  }
  if (log_enabled(LOG_L_INFO))
    log_access(request_client(rq), rq->priv->method, rq->priv->url, status, now - rq->start_us,
               rq->who);
  http_conn_mark(conn, CS_IDLE, 0, now);
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
 * early and /v1/models/a%00b would be served as model "a".  In the path
 * (the string libmicrohttpd hands over that starts with '/'), %2F and %25
 * stay encoded too: routing splits on the raw '/' and decodes each
 * segment afterwards (http_segment_decode, routes.c), so that a name with
 * a '/' in it can be addressed as %2F within its segment.  A query key or
 * value that itself starts with '/' keeps its %2F and %25 as well: no
 * query parameter of aced takes either character. */
size_t http_unescape(void *cls, struct MHD_Connection *c, char *s)
{
  (void)cls;
  (void)c;
  const int path = s[0] == '/';
  char *w = s;
  for (const char *r = s; *r != '\0'; r++) {
    unsigned v;
    if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2]) &&
        sscanf(r + 1, "%2x", &v) == 1 && v != 0 && !(path && (v == '/' || v == '%'))) {
      *w++ = (char)v;
      r += 2;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
  return (size_t)(w - s);
}
