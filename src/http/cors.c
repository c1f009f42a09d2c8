/*
 * cors.c -- cross-origin requests from other dashboards (the Fetch
 * standard's CORS protocol) and OPTIONS.
 *
 * With cors_origins empty (the default) aced sends no CORS header at all:
 * a page of another origin cannot read its replies.  With origins listed,
 * every reply says Vary: Origin (it differs by Origin, and caches must
 * know), and a request whose Origin is listed gets
 * Access-Control-Allow-Origin naming it (or "*" when the list says so)
 * and the headers it may read (ETag, Location, Retry-After).
 *
 * A browser asks before a request that is not "simple" (any request with
 * Authorization, or a JSON POST) with a preflight: OPTIONS with
 * Access-Control-Request-Method.  OPTIONS on any path that has routes is
 * answered 204 with Allow, without authentication (a preflight never
 * carries the token), and for an allowed Origin with the methods of that
 * path, the request headers aced reads (Authorization, Content-Type) and
 * how long the browser may keep the answer.  A request header that is
 * not listed makes the browser refuse the real request itself.
 */
#include "config.h"

#include <string.h>

#include "aced/config.h"
#include "aced/limits.h"
#include "http/internal.h"

void http_cors_headers(struct request *rq, struct MHD_Response *r)
{
  MHD_add_response_header(r, "Vary", "Origin");
  const char *origin = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Origin");
  const char *list = rq->srv->cfg.cors_origins;
  if (origin == NULL || !config_cors_allowed(list, origin))
    return;
  int any = strcmp(list, "*") == 0;
  MHD_add_response_header(r, "Access-Control-Allow-Origin", any ? "*" : origin);
  if (rq->priv->preflight) {
    MHD_add_response_header(r, "Access-Control-Allow-Methods", rq->priv->allow);
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(r, "Access-Control-Max-Age", ACED_CORS_MAX_AGE);
  } else {
    MHD_add_response_header(r, "Access-Control-Expose-Headers", "ETag, Location, Retry-After");
  }
}

MHD_RESULT http_reply_options(struct request *rq)
{
  return http_queue_reply(rq, 204, NULL, "", 0, MHD_RESPMEM_PERSISTENT, "Allow",
                          rq->priv->allow);
}
