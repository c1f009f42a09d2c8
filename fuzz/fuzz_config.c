/*
 * fuzz_config.c -- the configuration table (src/config.c): aced.conf
 * through config_load_file(), and "key=value" pairs through config_set()
 * as the --key=value flags use it, then config_validate() on whatever was
 * accepted.
 *
 * Input: the file's text.  It is written to a scratch file and loaded over
 * the defaults; then each line is split at its first '=' and handed to
 * config_set() as it is (untrimmed, like a flag).  After any sequence of
 * calls, successful or not, every string in the struct must still be
 * terminated within its buffer and every number within the table's bounds
 * (the bounds checked here are the ones limits.h promises).
 */
#include "config.h"

#include <sys/socket.h>

#include "aced/config.h"
#include "aced/limits.h"
#include "fuzz.h"

#define TERMINATED(c, f) fuzz_terminated((c)->f, sizeof (c)->f)

static void check(const struct aced_config *c)
{
  FUZZ_ASSERT(TERMINATED(c, listen_address));
  FUZZ_ASSERT(TERMINATED(c, database));
  FUZZ_ASSERT(TERMINATED(c, token_file));
  FUZZ_ASSERT(TERMINATED(c, trusted_proxies));
  FUZZ_ASSERT(TERMINATED(c, log_level));
  FUZZ_ASSERT(TERMINATED(c, base_path));
  FUZZ_ASSERT(c->port >= 1 && c->port <= 65535);
  FUZZ_ASSERT(c->workers >= 1 && c->workers <= ACED_WORKERS_MAX);
  FUZZ_ASSERT(c->max_body_bytes >= 1 && c->max_body_bytes <= ACED_BODY_MAX_HARD);
  FUZZ_ASSERT(c->max_order >= 0 && c->max_order < ACED_ORDER_MAX_HARD);
  FUZZ_ASSERT(strcmp(c->log_level, "error") == 0 || strcmp(c->log_level, "warn") == 0 ||
              strcmp(c->log_level, "info") == 0 || strcmp(c->log_level, "debug") == 0);
  char err[512];
  if (config_validate(c, err, sizeof err) != 0) {
    FUZZ_ASSERT(fuzz_terminated(err, sizeof err));
  } else {
    /* an accepted configuration has a usable prefix, and its proxy list
     * parses (asked about the loopback addresses) */
    char why[128];
    FUZZ_ASSERT(config_base_path_check(c->base_path, why, sizeof why) == 0);
    FUZZ_ASSERT(strlen(c->base_path) <= ACED_BASE_PATH_MAX);
    const unsigned char lo4[4] = {127, 0, 0, 1}, lo6[16] = {[15] = 1};
    (void)config_proxy_trusted(c->trusted_proxies, AF_INET, lo4);
    (void)config_proxy_trusted(c->trusted_proxies, AF_INET6, lo6);
  }
  (void)config_is_loopback(c->listen_address);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct aced_config c;
  char err[512];

  config_defaults(&c);
  const char *path = fuzz_tmp_write(data, size);
  if (config_load_file(&c, path, err, sizeof err) != 0)
    FUZZ_ASSERT(fuzz_terminated(err, sizeof err));
  check(&c);

  config_defaults(&c);
  char *s = fuzz_strndup(data, size);
  for (char *save = NULL, *line = strtok_r(s, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    char *eq = strchr(line, '=');
    if (eq == NULL)
      continue;
    *eq = '\0';
    err[0] = '\0';
    if (config_set(&c, line, eq + 1, err, sizeof err) != 0)
      FUZZ_ASSERT(err[0] != '\0' && fuzz_terminated(err, sizeof err));
  }
  free(s);
  check(&c);
  return 0;
}
