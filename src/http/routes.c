/*
 * routes.c -- the one route table.  http.c matches method and path here,
 * answers 404/405, enforces the scope and, for routes that take a body,
 * checks its type and size cap and parses it before calling the handler,
 * unless the route's quick path answered from the raw body first.
 * A registration may be as large as max_body_bytes; a query body is
 * capped at ACED_QUERY_BODY_MAX (limits.h) as well.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "aced/auth.h"
#include "aced/handlers.h"
#include "aced/limits.h"

const struct route aced_routes[] = {
    /* method    pattern                                        handler                 scope       body       cap       quick path (or NULL) */
    {"GET",    "/healthz",                                     handler_healthz,            0,          BODY_NONE, 0, NULL},
    {"GET",    "/readyz",                                      handler_readyz,             0,          BODY_NONE, 0, NULL},
    {"GET",    "/metrics",                                     handler_metrics,            0,          BODY_NONE, 0, NULL},
    {"GET",    "/openapi.yaml",                                handler_openapi_get,        AUTH_READ,  BODY_NONE, 0, NULL},
    {"POST",   "/v1/models",                                   handler_models_post,        AUTH_WRITE, BODY_JSON, 0, NULL},
    {"GET",    "/v1/models",                                   handler_models_list,        AUTH_READ,  BODY_NONE, 0, NULL},
    {"GET",    "/v1/models/{name}",                            handler_model_get,          AUTH_READ,  BODY_NONE, 0, NULL},
    {"DELETE", "/v1/models/{name}",                            handler_model_delete,       AUTH_WRITE, BODY_NONE, 0, NULL},
    {"POST",   "/v1/models/{name}/interventions",              handler_interventions_post, AUTH_READ,  BODY_JSON, ACED_QUERY_BODY_MAX, NULL},
    {"GET",    "/v1/models/{name}/regressors/{output}/{feature}", handler_regressor_get,   AUTH_READ,  BODY_NONE, 0, NULL},
    {"POST",   "/v1/models/{name}/regressors",                 handler_regressors_post,    AUTH_READ,  BODY_JSON, ACED_QUERY_BODY_MAX, NULL},
    {"POST",   "/v1/models/{name}/attributions",               handler_attributions_post,  AUTH_READ,  BODY_JSON, ACED_QUERY_BODY_MAX, handler_attributions_quick},
    {"POST",   "/v1/models/{name}/explanations",               handler_explanations_post,  AUTH_READ,  BODY_JSON, ACED_QUERY_BODY_MAX, NULL},
    {"GET",    "/v1/models/{name}/graph",                      handler_graph_get,          AUTH_READ,  BODY_NONE, 0, NULL},
    {"PUT",    "/v1/models/{name}/graph",                      handler_graph_put,          AUTH_WRITE, BODY_JSON, ACED_QUERY_BODY_MAX, NULL},
    {"POST",   "/v1/models/{name}/graph",                      handler_graph_post,         AUTH_WRITE, BODY_JSON, ACED_QUERY_BODY_MAX, NULL},
    {"POST",   "/v1/models/{name}/significance",               handler_significance_post,  AUTH_READ,  BODY_JSON, ACED_QUERY_BODY_MAX, NULL},
    {"GET",    "/v1/jobs/{id}",                                handler_job_get,            AUTH_READ,  BODY_NONE, 0, NULL},
    {"DELETE", "/v1/jobs/{id}",                                handler_job_delete,         AUTH_READ,  BODY_NONE, 0, NULL},
    /* the web view's files: public (no data in them; every request the page makes for data
     * carries the token and is checked as above) */
    {"GET",    "/ui",                                          handler_ui_get,             0,          BODY_NONE, 0, NULL},
    {"GET",    "/ui/",                                         handler_ui_get,             0,          BODY_NONE, 0, NULL},
    {"GET",    "/ui/{file}",                                   handler_ui_get,             0,          BODY_NONE, 0, NULL},
};
const int aced_n_routes = sizeof aced_routes / sizeof aced_routes[0];

/* ---- routing ---- */

/* The value of a hex digit, or -1. */
static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decode one path segment src[0..n) into dst (n + 1 bytes): the %2F and
 * %25 that http_unescape left encoded so that routing could split on the
 * raw '/' (and any other %XX), except %00, which stays as it is (a NUL
 * would cut the name).  Returns the decoded length, never 0 for n > 0. */
size_t http_segment_decode(char *dst, const char *src, size_t n)
{
  size_t w = 0;
  for (size_t r = 0; r < n; r++) {
    int hi, lo;
    if (src[r] == '%' && r + 2 < n && (hi = hexval(src[r + 1])) >= 0 &&
        (lo = hexval(src[r + 2])) >= 0 && (hi | lo) != 0) {
      dst[w++] = (char)(hi * 16 + lo);
      r += 2;
    } else {
      dst[w++] = src[r];
    }
  }
  dst[w] = '\0';
  return w;
}

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

/* HEAD is answered wherever GET is, as GET without the body (RFC 9110
 * 9.3.2; libmicrohttpd leaves the body out of a reply to HEAD): it matches
 * the GET routes, and an Allow header that lists GET lists HEAD too. */
/* Each pattern's last segment ('/' included) when it is a literal, else
 * NULL: worked out once, not per request. */
static struct {
  const char *text;
  size_t len;
} tails[sizeof aced_routes / sizeof aced_routes[0]];
static pthread_once_t tails_once = PTHREAD_ONCE_INIT;

static void tails_init(void)
{
  for (int i = 0; i < aced_n_routes; i++) {
    const char *pt = strrchr(aced_routes[i].pattern, '/');
    tails[i].text = pt != NULL && pt[1] != '{' ? pt : NULL;
    tails[i].len = tails[i].text ? strlen(pt) : 0;
  }
}

int http_route_find(const char *method, const char *url, char *argbuf,
                    const char **args, char *allow, size_t allowlen)
{
  int path_seen = 0;
  if (strcmp(method, "HEAD") == 0)
    method = "GET";
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
  /* Two passes: the routes of this method first, in table order (the
   * first whose path matches wins, as it would in one pass); only when
   * none does, every route again, for 405's Allow.  The hot path then
   * compares a method, not a path, against most of the table. */
  const char *tail = strrchr(url, '/'); /* the last segment, '/' included */
  size_t tail_len = tail ? strlen(tail) : 0;
  pthread_once(&tails_once, tails_init);
  for (int i = 0; i < aced_n_routes; i++) {
    size_t off[REQUEST_MAX_ARGS], len[REQUEST_MAX_ARGS];
    if (aced_routes[i].method[0] != method[0] || strcmp(aced_routes[i].method, method) != 0)
      continue;
    /* a pattern ending in a literal segment needs the URL to end in it:
     * one comparison turns most candidates down */
    const char *pt = tails[i].text;
    if (pt != NULL && tail != NULL &&
        (tails[i].len != tail_len || memcmp(pt, tail, tail_len) != 0))
      continue;
    if (!match(aced_routes[i].pattern, url, off, len))
      continue;
    /* each argument, NUL-terminated, into argbuf: they and their
     * terminators fit in the URL's length, as each follows a '/' */
    size_t pos = 0;
    for (int k = 0; k < REQUEST_MAX_ARGS; k++) {
      if (len[k] == 0) {
        args[k] = NULL;
        continue;
      }
      args[k] = argbuf + pos;
      pos += http_segment_decode(argbuf + pos, url + off[k], len[k]) + 1;
    }
    return i;
  }
  for (int i = 0; i < aced_n_routes; i++) {
    size_t off[REQUEST_MAX_ARGS], len[REQUEST_MAX_ARGS];
    if (!match(aced_routes[i].pattern, url, off, len))
      continue;
    path_seen = 1;
    if (strstr(allow, aced_routes[i].method) == NULL) {
      size_t n = strlen(allow);
      int get = strcmp(aced_routes[i].method, "GET") == 0;
      snprintf(allow + n, allowlen - n, "%s%s%s", n ? ", " : "",
               aced_routes[i].method, get ? ", HEAD" : "");
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
