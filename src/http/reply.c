/*
 * reply.c -- every reply aced sends: JSON bodies (trees or text), errors
 * from the registry (aced/errors.h) with the headers their status calls
 * for, plain text, and the replies of suspended requests, which a worker
 * stores and the connection's own thread queues when resumed.
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
#include "aced/jsonw.h"
#include "aced/limits.h"
#include "aced/log.h"
#include "aced/metrics.h"
#include "http/internal.h"

/* ---- replies ---- */

/* mode MHD_RESPMEM_MUST_FREE hands `body` (malloc'ed) to libmicrohttpd,
 * saving a copy of every JSON reply; MUST_COPY copies it. */
MHD_RESULT http_queue_reply(struct request *rq, unsigned status,
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
  struct request_priv *p = rq->priv;
  if (ctype != NULL)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  /* What a browser may keep: only a 200 (or its 304) that the handler
   * marked cacheable (request_set_caching); everything else no-store. */
  int cacheable = (status == 200 || status == 304) && p->cache_control != NULL;
  MHD_add_response_header(r, "Cache-Control", cacheable ? p->cache_control : "no-store");
  if (cacheable && p->etag[0] != '\0')
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, p->etag);
  if (p->csp != NULL)
    MHD_add_response_header(r, "Content-Security-Policy", p->csp);
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  if (rq->srv->cfg.cors_origins[0] != '\0')
    http_cors_headers(rq, r);
  if (extra_name != NULL)
    MHD_add_response_header(r, extra_name, extra_value);
  /* A 202 hands over a job to poll: say how soon (every 202, whichever
   * path it took: submitted in the background or a sync wait timed out). */
  if (status == 202)
    MHD_add_response_header(r, "Retry-After", "1");
  rq->priv->status = status;
  rq->priv->phase = PH_DONE;
  /* Counted when queued, so that a client's next request already sees
   * this one in /metrics; latency is to the moment the reply is ready. */
  metrics_request(rq->route_index, status, (aced_now_us() - rq->start_us) / 1e6);
  MHD_RESULT ret = MHD_queue_response(rq->conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

MHD_RESULT http_reply_json_h(struct request *rq, unsigned status, json_t *j,
                               const char *hname, const char *hvalue)
{
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
  json_decref(j);
  size_t len = s ? strlen(s) : 0;
  if (s != NULL)
    s = jw_fix_ms(s, &len); /* times to the microsecond */
  if (s == NULL) {
    static const char oom[] =
        "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\",\"field\":\"\"}}";
    return http_queue_reply(rq, 500, "application/json", oom, sizeof oom - 1,
                       MHD_RESPMEM_PERSISTENT, NULL, NULL);
  }
  return http_queue_reply(rq, status, "application/json", s, len, MHD_RESPMEM_MUST_FREE,
                     hname, hvalue);
}

MHD_RESULT reply_json_text(struct request *rq, unsigned status, char *text, size_t len)
{
  return http_queue_reply(rq, status, "application/json", text, len, MHD_RESPMEM_MUST_FREE, NULL,
                     NULL);
}

MHD_RESULT reply_json(struct request *rq, unsigned status, json_t *j)
{
  const char *hn = NULL, *hv = NULL;
  char loc[ACED_BASE_PATH_MAX + 64];
  if (status == 503) {
    hn = "Retry-After";
    hv = "1";
  } else if (status == 202 && json_is_string(json_object_get(j, "location"))) {
    snprintf(loc, sizeof loc, "%s", json_string_value(json_object_get(j, "location")));
    hn = "Location";
    hv = loc;
  }
  return http_reply_json_h(rq, status, j, hn, hv);
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
  return http_reply_json_h(rq, status, error_json(err), hn, hv);
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
  return http_queue_reply(rq, status, ctype, text, strlen(text), MHD_RESPMEM_MUST_COPY, NULL,
                     NULL);
}

/* ---- asynchronous replies ---- */

void request_suspend(struct request *rq)
{
  rq->priv->phase = PH_SUSPENDED;
  atomic_fetch_add(&http_n_suspended, 1);
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

