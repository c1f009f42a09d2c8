/*
 * handler_openapi_get.c -- GET /openapi.yaml: the API description this
 * daemon was built with (api/openapi.yaml), for spec-driven clients,
 * proxies and contract testers.  Read scope, like the queries.
 *
 * The file is read on each request (a rare one) from where it is:
 *   - the source tree's api/openapi.yaml when the running program is the
 *     one in the build tree (/proc/self/exe is ACED_ABS_BUILDDIR/aced),
 *     so that `./aced` serves the spec of the tree it was built from;
 *   - otherwise the installed copy, $(pkgdatadir)/openapi.yaml
 *     (`make install` puts it there, e.g. /usr/local/share/aced).
 * A missing or unreadable file is 500 `internal` naming the path: an
 * installation problem, not the client's.
 *
 * Content-Type: application/yaml, the media type registered for YAML by
 * RFC 9512 (2024).  The OpenAPI Initiative's vendor type
 * application/vnd.oai.openapi is registered too but few tools know it;
 * application/openapi+yaml is only an IETF draft.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aced/limits.h"
#include "aced/log.h"
#include "api/api.h"

/* Where the document is for this program (see above). */
static const char *openapi_path(void)
{
  return api_in_build_tree() ? ACED_ABS_SRCDIR "/api/openapi.yaml" : PKGDATADIR "/openapi.yaml";
}

MHD_RESULT handler_openapi_get(struct request *rq)
{
  const char *path = openapi_path();
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    int e = errno;
    log_error("api", "cannot open the OpenAPI document %s: %s", path, strerror(e));
    return reply_error(rq, ACED_E_INTERNAL, "", "the OpenAPI document %s cannot be read: %s",
                       path, strerror(e));
  }
  char *text = malloc(ACED_OPENAPI_MAX + 1);
  size_t len = text ? fread(text, 1, ACED_OPENAPI_MAX + 1, f) : 0;
  int bad = text == NULL || ferror(f) || len > ACED_OPENAPI_MAX || memchr(text, '\0', len);
  fclose(f);
  if (bad) {
    free(text);
    log_error("api", "the OpenAPI document %s is unreadable, over %d bytes or not text", path,
              ACED_OPENAPI_MAX);
    return reply_error(rq, ACED_E_INTERNAL, "",
                       "the OpenAPI document %s is unreadable, over %d bytes or not text", path,
                       ACED_OPENAPI_MAX);
  }
  text[len] = '\0';
  MHD_RESULT r = reply_text(rq, 200, "application/yaml", text);
  free(text);
  return r;
}
