/*
 * auth.c -- bearer token file and constant-time checks (see auth.h).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/auth.h"
#include "aced/limits.h"

struct token {
  unsigned char hash[SHA256_DIGEST_SIZE];
  int scopes;
  char label[ACED_TOKEN_LABEL_MAX];
};

struct auth {
  size_t n;
  struct token tokens[];
};

static void sha256(const char *s, size_t n, unsigned char out[SHA256_DIGEST_SIZE])
{
  struct sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, n, (const uint8_t *)s);
  sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}

void auth_hash_token(const char *token, size_t len, char out[72])
{
  unsigned char h[SHA256_DIGEST_SIZE];
  sha256(token, len, h);
  memcpy(out, "sha256:", 7);
  for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
    sprintf(out + 7 + 2 * i, "%02x", h[i]);
}

int auth_parse_scopes(const char *scopes, int *out)
{
  char buf[64];
  *out = 0;
  if (strlen(scopes) >= sizeof buf)
    return -1;
  snprintf(buf, sizeof buf, "%s", scopes);
  char *s = buf;
  for (char *save = NULL, *t = strtok_r(s, ",", &save); t != NULL;
       t = strtok_r(NULL, ",", &save)) {
    if (strcmp(t, "read") == 0)
      *out |= AUTH_READ;
    else if (strcmp(t, "write") == 0)
      *out |= AUTH_WRITE;
    else
      return -1;
  }
  return *out ? 0 : -1;
}

static int parse_hash(const char *s, unsigned char out[SHA256_DIGEST_SIZE])
{
  if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 2 * SHA256_DIGEST_SIZE)
    return -1;
  for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
    unsigned v;
    if (!isxdigit((unsigned char)s[7 + 2 * i]) ||
        !isxdigit((unsigned char)s[8 + 2 * i]) ||
        sscanf(s + 7 + 2 * i, "%2x", &v) != 1)
      return -1;
    out[i] = (unsigned char)v;
  }
  return 0;
}

struct auth *auth_load(const char *path, char *errbuf, size_t errlen)
{
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
    return NULL;
  }
  struct auth *a = calloc(1, sizeof *a + ACED_TOKENS_MAX * sizeof(struct token));
  if (a == NULL) {
    fclose(f);
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  char line[512];
  int lineno = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    lineno++;
    char *save = NULL;
    char *scopes = strtok_r(line, " \t\r\n", &save);
    if (scopes == NULL || scopes[0] == '#')
      continue;
    char *hash = strtok_r(NULL, " \t\r\n", &save);
    char *label = strtok_r(NULL, " \t\r\n", &save);
    if (a->n == ACED_TOKENS_MAX) {
      snprintf(errbuf, errlen, "%s:%d: more than %d tokens", path, lineno,
               ACED_TOKENS_MAX);
      goto fail;
    }
    struct token *t = &a->tokens[a->n];
    if (hash == NULL || auth_parse_scopes(scopes, &t->scopes) != 0 ||
        parse_hash(hash, t->hash) != 0) {
      snprintf(errbuf, errlen,
               "%s:%d: expected '<read|write|read,write> sha256:<64 hex> [label]'",
               path, lineno);
      goto fail;
    }
    snprintf(t->label, sizeof t->label, "%s", label ? label : "token");
    a->n++;
  }
  fclose(f);
  if (a->n == 0) {
    snprintf(errbuf, errlen, "%s: no tokens", path);
    free(a);
    return NULL;
  }
  return a;
fail:
  fclose(f);
  free(a);
  return NULL;
}

void auth_free(struct auth *a) { free(a); }

size_t auth_count(const struct auth *a) { return a ? a->n : 0; }

int auth_check(const struct auth *a, const char *header, char *who,
               size_t wholen)
{
  if (a == NULL || header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
    return 0;
  const char *tok = header + 7;
  while (*tok == ' ')
    tok++;
  size_t n = strlen(tok);
  if (n == 0 || n > 4096)
    return 0;
  unsigned char h[SHA256_DIGEST_SIZE];
  sha256(tok, n, h);
  /* Visit every entry and every byte whatever matches: the time taken
   * depends only on the number of tokens configured. */
  int scopes = 0;
  size_t match = (size_t)-1;
  for (size_t i = 0; i < a->n; i++) {
    unsigned diff = 0;
    for (int j = 0; j < SHA256_DIGEST_SIZE; j++)
      diff |= (unsigned)(a->tokens[i].hash[j] ^ h[j]);
    /* mask is all ones when diff == 0, without a branch */
    unsigned mask = (unsigned)(-(int)((diff - 1u) >> 31 & 1u));
    scopes |= (int)(mask & (unsigned)a->tokens[i].scopes);
    match = (mask & 1u) ? i : match;
  }
  if (who != NULL && wholen > 0)
    snprintf(who, wholen, "%s", match != (size_t)-1 ? a->tokens[match].label : "");
  return scopes;
}
