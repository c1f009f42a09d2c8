/*
 * fuzz_router.c -- method + URL through http_route_find() (src/http/routes.c),
 * the route table lookup every request goes through before auth.
 *
 * Input: "<method> <url>" (or method NUL url); no separator means GET.
 * The URL stops at the next NUL, as libmicrohttpd hands it over, and one
 * longer than ACED_URL_MAX is refused first, as the real caller does.
 * Buffers have exactly the sizes the caller gives (argbuf ACED_URL_MAX + 1,
 * allow 64 bytes) so that ASan notices any write past them.  Path
 * arguments are segments split on the raw '/' and then percent-decoded
 * (issue 10: %2F addresses a name holding '/'), so the harness checks each
 * against the decoded segments of the URL.
 */
#include "config.h"

#include "aced/http.h"
#include "aced/limits.h"
#include "fuzz.h"

static int count_args(const char *pattern)
{
  int n = 0;
  for (const char *p = pattern; *p; p++)
    n += *p == '{';
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  size_t cut = 0;
  while (cut < size && data[cut] != ' ' && data[cut] != '\0')
    cut++;
  char *method, *url;
  if (cut == size) {
    method = fuzz_strndup((const uint8_t *)"GET", 3);
    url = fuzz_strndup(data, size);
  } else {
    method = fuzz_strndup(data, cut);
    url = fuzz_strndup(data + cut + 1, size - cut - 1);
  }
  size_t ulen = strlen(url);
  if (ulen > ACED_URL_MAX)
    goto out;
  /* exactly strlen + 1 bytes, as MHD's copy would be */
  char *u = fuzz_strndup((const uint8_t *)url, ulen);
  /* exactly what http_route_find promises to need: ASan catches more */
  char *argbuf = malloc(ulen + 1);
  const char *args[REQUEST_MAX_ARGS] = {NULL};
  char allow[64];
  FUZZ_ASSERT(argbuf != NULL);

  int ri = http_route_find(method, u, argbuf, args, allow, sizeof allow);
  FUZZ_ASSERT(ri >= -2 && ri < aced_n_routes);
  FUZZ_ASSERT(fuzz_terminated(allow, sizeof allow));
  if (ri >= 0) {
    const struct route *r = &aced_routes[ri];
    /* HEAD is served by the GET routes */
    FUZZ_ASSERT(strcmp(r->method, method) == 0 ||
                (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0));
    int n = count_args(r->pattern);
    for (int k = 0; k < REQUEST_MAX_ARGS; k++) {
      if (k >= n) {
        FUZZ_ASSERT(args[k] == NULL);
        continue;
      }
      /* each argument is one non-empty segment inside argbuf */
      FUZZ_ASSERT(args[k] != NULL);
      FUZZ_ASSERT(args[k] >= argbuf && args[k] < argbuf + ulen + 1);
      FUZZ_ASSERT(args[k][0] != '\0');
      FUZZ_ASSERT(args[k] + strlen(args[k]) < argbuf + ulen + 1);
      /* and it is a whole segment of the URL (split on the raw '/'),
       * percent-decoded: it holds a '/' only where the segment had %2F,
       * and never a NUL (%00 stays encoded) */
      int seg = 0;
      char *dec = malloc(ulen + 1);
      FUZZ_ASSERT(dec != NULL);
      for (const char *at = strchr(u, '/'); at != NULL && !seg; at = strchr(at + 1, '/')) {
        size_t sn = strcspn(at + 1, "/");
        size_t dn = http_segment_decode(dec, at + 1, sn);
        FUZZ_ASSERT(dn <= sn && dec[dn] == '\0' && strlen(dec) == dn);
        seg = sn > 0 && strcmp(dec, args[k]) == 0;
      }
      free(dec);
      FUZZ_ASSERT(seg);
    }
  } else if (ri == -2) {
    /* the path exists under other methods: they are listed, and the
     * method asked for is not one of them */
    FUZZ_ASSERT(allow[0] != '\0');
    char list[sizeof allow];
    memcpy(list, allow, sizeof list);
    for (char *save = NULL, *t = strtok_r(list, ", ", &save); t != NULL;
         t = strtok_r(NULL, ", ", &save))
      FUZZ_ASSERT(strcmp(t, method) != 0);
    /* HEAD is allowed exactly where GET is */
    FUZZ_ASSERT((strstr(allow, "GET") != NULL) == (strstr(allow, "HEAD") != NULL));
  } else {
    FUZZ_ASSERT(allow[0] == '\0');
  }
  free(argbuf);
  free(u);
out:
  free(url);
  free(method);
  return 0;
}
