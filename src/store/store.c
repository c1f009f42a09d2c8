/*
 * store.c -- store_open: the one place that maps a database URI to a
 * backend, so that nothing else names a backend (see store.h).
 */
#include "config.h"

#include <string.h>

#include "aced/store.h"

struct store *store_open(const char *uri, struct aced_error *err)
{
  if (strncmp(uri, "sqlite:", 7) == 0)
    return store_sqlite_open(uri + 7, err);
  /* "scheme://..." of a backend this build does not have */
  const char *colon = strstr(uri, "://");
  if (colon != NULL) {
    aced_error_set(err, ACED_E_INVALID, "database",
                   "unknown database scheme '%.*s' (this build has sqlite)", (int)(colon - uri),
                   uri);
    return NULL;
  }
  return store_sqlite_open(uri, err);
}
