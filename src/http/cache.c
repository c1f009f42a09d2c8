/*
 * cache.c -- what browsers may keep, and the replies of the web view's
 * files: a handler marks its 200 cacheable (request_set_caching) and
 * http_queue_reply (reply.c) writes Cache-Control and ETag for it; every
 * other reply stays Cache-Control: no-store.  Conditional requests
 * (If-None-Match) are answered 304 here, as are the web view's files and
 * its redirect.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "http/internal.h"

void request_set_caching(struct request *rq, const char *cache_control, const char *etag)
{
  rq->priv->cache_control = cache_control;
  snprintf(rq->priv->etag, sizeof rq->priv->etag, "%s", etag ? etag : "");
}

/* Weak comparison (RFC 9110 13.1.2, as If-None-Match asks): W/ ignored on
 * both sides; the header is a comma-separated list of tags.  "*" (any
 * current representation: meant for PUT) is not honoured, so a GET for a
 * name that has no representation is answered with its 404 or 422. */
int request_etag_matches(struct request *rq, const char *etag)
{
  const char *h =
      MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
  if (h == NULL)
    return 0;
  if (strncmp(etag, "W/", 2) == 0)
    etag += 2;
  size_t n = strlen(etag);
  while (*h != '\0') {
    h += strspn(h, " \t,");
    if (strncmp(h, "W/", 2) == 0)
      h += 2;
    size_t len = strcspn(h, " \t,");
    if (len == n && n > 0 && memcmp(h, etag, n) == 0)
      return 1;
    h += len;
  }
  return 0;
}

MHD_RESULT reply_not_modified(struct request *rq)
{
  return http_queue_reply(rq, 304, NULL, "", 0, MHD_RESPMEM_PERSISTENT, NULL, NULL);
}

MHD_RESULT reply_file(struct request *rq, const char *ctype, char *body, size_t len,
                      const char *csp)
{
  rq->priv->csp = csp;
  return http_queue_reply(rq, 200, ctype, body, len, MHD_RESPMEM_MUST_FREE, NULL, NULL);
}

MHD_RESULT reply_redirect(struct request *rq, const char *location)
{
  return http_queue_reply(rq, 301, "text/plain; charset=utf-8", "", 0, MHD_RESPMEM_PERSISTENT,
                          MHD_HTTP_HEADER_LOCATION, location);
}
