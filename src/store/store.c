/*
 * store.c -- store_open: the one place that maps a database URI to a
 * backend, so that nothing else names a backend (see store.h).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "aced/store.h"

static int is_pg(const char *uri)
{
  return strncmp(uri, "postgresql://", 13) == 0 || strncmp(uri, "postgres://", 11) == 0;
}

int store_uri_is_server(const char *uri)
{
  return uri != NULL && strstr(uri, "://") != NULL;
}

void store_uri_redact(const char *uri, char *out, size_t n)
{
  /* copy uri, masking the password of "scheme://user:password@" and the
   * value of a "password=" parameter */
  const char *start = strstr(uri, "://");
  const char *at = start ? strchr(start + 3, '@') : NULL;
  const char *slash = start ? strchr(start + 3, '/') : NULL;
  const char *colon = start ? strchr(start + 3, ':') : NULL;
  if (at != NULL && slash != NULL && at > slash)
    at = NULL;
  size_t o = 0;
  for (const char *p = uri; *p && o + 4 < n;) {
    if (at != NULL && colon != NULL && p == colon && colon < at) {
      memcpy(out + o, ":***", 4);
      o += 4;
      p = at;
    } else if (strncmp(p, "password=", 9) == 0 && o + 12 < n) {
      memcpy(out + o, "password=***", 12);
      o += 12;
      p += 9;
      while (*p && *p != '&')
        p++;
    } else {
      out[o++] = *p++;
    }
  }
  if (n > 0)
    out[o < n ? o : n - 1] = '\0';
}

struct store *store_open_pool(const char *uri, int n_conn, struct aced_error *err)
{
  if (strncmp(uri, "sqlite:", 7) == 0)
    return store_sqlite_open(uri + 7, err);
  if (is_pg(uri)) {
#ifdef HAVE_LIBPQ
    return store_pg_open(uri, n_conn, err);
#else
    aced_error_set(err, ACED_E_INVALID, "database",
                   "this aced was built without PostgreSQL (install libpq-dev and run "
                   "configure again)");
    return NULL;
#endif
  }
  /* "scheme://..." of a backend this build does not have */
  const char *colon = strstr(uri, "://");
  if (colon != NULL) {
    aced_error_set(err, ACED_E_INVALID, "database",
                   "unknown database scheme '%.*s' (this build has sqlite%s)", (int)(colon - uri),
                   uri,
#ifdef HAVE_LIBPQ
                   ", postgresql"
#else
                   ""
#endif
    );
    return NULL;
  }
  return store_sqlite_open(uri, err);
}

struct store *store_open(const char *uri, struct aced_error *err)
{
  return store_open_pool(uri, 0, err);
}
