/*
 * fuzz_auth.c -- the bearer token file parser and the header check
 * (src/auth.c): auth_load() then auth_check().
 *
 * Input: "<token file>\0<Authorization header>"; without a NUL the whole
 * input is the token file and a few fixed headers are checked.  Whatever
 * the file, a load either fails with a message or yields 1..ACED_TOKENS_MAX
 * tokens, and a check returns only the read/write bits and a terminated
 * label.  The seed "read,write <hash of 'test'> pipeline\0Bearer test"
 * exercises a match.
 */
#include "config.h"

#include <strings.h>

#include "aced/auth.h"
#include "aced/limits.h"
#include "fuzz.h"

static void check_header(const struct auth *a, const char *header)
{
  char who[64];
  memset(who, 'x', sizeof who);
  int scopes = auth_check(a, header, who, sizeof who);
  FUZZ_ASSERT((scopes & ~(AUTH_READ | AUTH_WRITE)) == 0);
  /* who is only promised on a match (http.c answers 401 otherwise) */
  if (scopes != 0)
    FUZZ_ASSERT(who[0] != '\0' && fuzz_terminated(who, sizeof who));
  /* a header that is not "Bearer <token>" never matches */
  if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
    FUZZ_ASSERT(scopes == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const uint8_t *nul = memchr(data, '\0', size);
  size_t nfile = nul ? (size_t)(nul - data) : size;
  const char *path = fuzz_tmp_write(data, nfile);

  char err[256];
  err[0] = '\0';
  struct auth *a = auth_load(path, err, sizeof err);
  if (a == NULL) {
    FUZZ_ASSERT(err[0] != '\0' && fuzz_terminated(err, sizeof err));
    FUZZ_ASSERT(auth_count(NULL) == 0);
    check_header(NULL, "Bearer test");
    return 0;
  }
  FUZZ_ASSERT(auth_count(a) >= 1 && auth_count(a) <= ACED_TOKENS_MAX);
  if (nul != NULL) {
    char *header = fuzz_strndup(nul + 1, size - nfile - 1);
    check_header(a, header);
    free(header);
  } else {
    check_header(a, "Bearer test");
    check_header(a, "bearer    test");
    check_header(a, "Bearer ");
    check_header(a, "Basic dGVzdDp0ZXN0");
    check_header(a, NULL);
  }
  auth_free(a);
  return 0;
}
