/*
 * handler_ui_get.c -- GET /ui, /ui/ and /ui/{file}: the web view's files.
 *
 * The page (ui/index.html, app.js, style.css in the source tree, installed
 * under $(pkgdatadir)/ui) is public: it holds no data.  Everything it
 * shows it asks the API for with the token the user typed (kept in the
 * browser's session storage), so the read routes' authentication applies.
 *
 * Where the files are: ui_dir when set; otherwise the source tree's ui/
 * when the running program is the one in the build tree, else
 * $(pkgdatadir)/ui.  The chart library, ui/d3.min.js, is the file named
 * by ui_chart_library (Debian's libjs-d3 puts it in /usr/share/javascript/d3).
 *
 * Path traversal: {file} is one path segment, percent-decoded, so it may
 * hold '/' (%2F); a name is served only when it is letters, digits, '-',
 * '_' and '.', does not start with '.', and has a known extension, and it
 * is opened without following a symbolic link.  Each file must be a
 * regular file of at most ACED_UI_FILE_MAX bytes.
 *
 * Caching: Cache-Control: no-cache with an ETag made of the file's size
 * and modification time, so a browser revalidates and gets 304 while the
 * file is unchanged.  Every file goes out with the page's strict
 * Content-Security-Policy: scripts, styles and requests only from aced
 * itself, no inline script or style, no frames.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aced/limits.h"
#include "aced/log.h"
#include "api/api.h"

static const char ui_csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/* The media type for a file name's extension, or NULL: not served. */
static const char *media_type(const char *name)
{
  static const char *const types[][2] = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
      {".png", "image/png"},                 {".json", "application/json"},
  };
  const char *dot = strrchr(name, '.');
  if (dot == NULL)
    return NULL;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strcmp(dot, types[i][0]) == 0)
      return types[i][1];
  return NULL;
}

static int name_valid(const char *name)
{
  size_t n = strlen(name);
  if (n == 0 || n > ACED_UI_NAME_MAX || name[0] == '.')
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_' || c == '.'))
      return 0;
  }
  return 1;
}

MHD_RESULT handler_ui_get(struct request *rq)
{
  const char *file = rq->arg[0];
  /* /ui: the page's relative URLs need the trailing slash */
  if (file == NULL && strcmp(rq->route->pattern, "/ui") == 0)
    return reply_redirect(rq, "ui/");
  if (file == NULL)
    file = "index.html";
  if (!name_valid(file) || media_type(file) == NULL)
    return reply_error(rq, ACED_E_NOT_FOUND, "file", "no web view file named '%s'", file);

  const struct aced_config *cfg = &rq->srv->cfg;
  char path[PATH_MAX];
  int follow = 0;
  if (strcmp(file, "d3.min.js") == 0) {
    snprintf(path, sizeof path, "%s", cfg->ui_chart_library);
    follow = 1; /* the administrator's own choice of file */
  } else if (cfg->ui_dir[0] != '\0') {
    snprintf(path, sizeof path, "%s/%s", cfg->ui_dir, file);
  } else {
    snprintf(path, sizeof path, "%s/%s",
             api_in_build_tree() ? ACED_ABS_SRCDIR "/ui" : PKGDATADIR "/ui", file);
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    if (strcmp(file, "d3.min.js") == 0 || strcmp(file, "index.html") == 0)
      log_warn("api", "web view file %s cannot be served: %s", path,
               fd < 0 ? strerror(e) : "not a regular file");
    return reply_error(rq, ACED_E_NOT_FOUND, "file", "no web view file named '%s'", file);
  }
  if (st.st_size > ACED_UI_FILE_MAX) {
    close(fd);
    log_error("api", "web view file %s is over %d bytes", path, ACED_UI_FILE_MAX);
    return reply_error(rq, ACED_E_INTERNAL, "", "web view file '%s' is over %d bytes", file,
                       ACED_UI_FILE_MAX);
  }
  char etag[80];
  snprintf(etag, sizeof etag, "W/\"%llx-%llx.%lx\"", (unsigned long long)st.st_size,
           (unsigned long long)st.st_mtim.tv_sec, (unsigned long)st.st_mtim.tv_nsec);
  request_set_caching(rq, "no-cache", etag);
  if (request_etag_matches(rq, etag)) {
    close(fd);
    return reply_not_modified(rq);
  }
  size_t len = (size_t)st.st_size;
  char *body = malloc(len ? len : 1);
  size_t got = 0;
  while (body != NULL && got < len) {
    ssize_t k = read(fd, body + got, len - got);
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  close(fd);
  if (body == NULL || got != len) {
    free(body);
    return reply_error(rq, ACED_E_INTERNAL, "", "web view file '%s' cannot be read", file);
  }
  return reply_file(rq, media_type(file), body, len, ui_csp);
}
