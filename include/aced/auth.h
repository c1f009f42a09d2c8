/*
 * auth.h -- bearer tokens.
 *
 * The token file holds one token per line, as a hash, never in clear:
 *
 *     # scopes      hash                                      label
 *     read,write    sha256:9f86d081884c7d659a2feaa0c55ad015...  pipeline
 *     read          sha256:...                                  dashboard
 *
 * `aced --hash-token` reads a token on stdin and prints its hash line.
 * A request's token is hashed and compared with every entry in constant
 * time, so neither the position of a match nor the length of a common
 * prefix shows in the response time.
 */
#ifndef ACED_AUTH_H
#define ACED_AUTH_H

#include <stddef.h>

enum auth_scope { AUTH_READ = 1, AUTH_WRITE = 2 };

struct auth;

/* Returns NULL with a message ("path:line: ...") on any malformed line. */
struct auth *auth_load(const char *path, char *errbuf, size_t errlen);
void auth_free(struct auth *a);
size_t auth_count(const struct auth *a);

/* Check an Authorization header value ("Bearer <token>").  Returns the
 * scope bits of the matching token (0: no match or malformed) and copies
 * its label into who. */
int auth_check(const struct auth *a, const char *header, char *who,
               size_t wholen);

/* Parse a scope list as the token file writes it: "read", "write" or
 * both, comma-separated.  Returns 0 with the AUTH_* bits in *out, or -1
 * for an empty list or any other word. */
int auth_parse_scopes(const char *scopes, int *out);

/* "sha256:<hex>" of a token. out must hold 72 bytes. */
void auth_hash_token(const char *token, size_t len, char out[72]);

#endif
