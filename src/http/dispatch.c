/*
 * dispatch.c -- the access handler libmicrohttpd calls for every request.
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

MHD_RESULT http_on_request(void *cls, struct MHD_Connection *conn,
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
    http_conn_mark(conn, CS_BUSY, 0, 0);

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
      return http_reply_json_h(rq, 405, error_json(&err), "Allow", allow);
    }
    rq->route = &aced_routes[ri];
    rq->route_index = ri;

    if (rq->route->scope != 0) {
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
