/*
 * config.c -- the configuration table.
 *
 * Every key is one row of `keys[]`: name, type, bounds, default and a
 * description.  The same row is used to parse aced.conf, to parse
 * `--key=value` flags, to check bounds and to print --help, so the four
 * cannot drift apart.  etc/aced.conf documents the same keys by hand; a
 * test (tests/e2e/test_config.py) checks that both list the same set.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/config.h"
#include "aced/limits.h"

enum key_type { K_LONG, K_STRING };

struct key {
  const char *name;
  enum key_type type;
  size_t offset;
  size_t size;      /* for strings: buffer size */
  long min, max;    /* for longs */
  const char *def;
  const char *help;
  const char *choices; /* strings: space-separated allowed values, or NULL */
};

#define L(field, lo, hi, d, h) \
  {#field, K_LONG, offsetof(struct aced_config, field), 0, lo, hi, d, h, NULL}
#define S(field, d, h)                                                        \
  {#field, K_STRING, offsetof(struct aced_config, field),                   \
   sizeof(((struct aced_config *)0)->field), 0, 0, d, h, NULL}
#define STR_(x) #x
#define STR(x) STR_(x)

static const struct key keys[] = {
    S(listen_address, "127.0.0.1", "address to listen on (IPv4 or IPv6)"),
    L(port, 1, 65535, "8080", "TCP port"),
    S(database, "state/aced.db", "SQLite database file (its folder is created), or postgresql://... (replicas)"),
    L(http_threads, 1, ACED_HTTP_THREADS_MAX, STR(ACED_HTTP_THREADS_DEFAULT), "HTTP threads (libmicrohttpd pool; <= cores)"),
    L(workers, 1, ACED_WORKERS_MAX, STR(ACED_WORKERS_DEFAULT), "worker threads for numerical work"),
    L(queue_max, 1, 1000000, STR(ACED_QUEUE_MAX_DEFAULT),
      "jobs waiting at most; beyond it requests get 503 + Retry-After"),
    L(max_body_bytes, 1024, ACED_BODY_MAX_HARD, STR(ACED_BODY_MAX_DEFAULT),
      "largest request body in bytes (413 beyond)"),
    L(connection_limit, 4, 100000, STR(ACED_CONN_LIMIT_DEFAULT),
      "simultaneous connections"),
    L(connection_timeout, 1, 3600, STR(ACED_CONN_TIMEOUT_DEFAULT),
      "seconds an idle connection is kept; also the deadline for request headers"),
    L(connection_memory, 16384, 16777216, STR(ACED_CONN_MEMORY_DEFAULT),
      "bytes of per-connection buffer memory (headers, replies)"),
    L(sync_wait_ms, 0, 3600000, STR(ACED_SYNC_WAIT_MS_DEFAULT),
      "longest a synchronous query waits before answering 202 with its job"),
    L(job_timeout, 1, 86400, STR(ACED_JOB_TIMEOUT_DEFAULT), "seconds a job may run before it is failed"),
    L(max_order, 0, ACED_ORDER_MAX_HARD - 1, STR(ACED_ORDER_MAX_DEFAULT),
      "default highest regressor polynomial order tried (requests may set max_order up to 39)"),
    S(token_file, "", "bearer token file; empty: no auth, loopback only"),
    S(trusted_proxies, "",
      "comma-separated proxy addresses or CIDR ranges (127.0.0.0/8, ::1/128) whose "
      "X-Forwarded-For is logged and X-Forwarded-Prefix honoured"),
    S(base_path, "",
      "path prefix aced is mounted under behind a proxy (/aced); every URL aced writes "
      "starts with it"),
    {"log_level", K_STRING, offsetof(struct aced_config, log_level),
     sizeof(((struct aced_config *)0)->log_level), 0, 0, "info",
     "error, warn, info or debug", "error warn info debug"},
    L(model_cache, 1, 100000, STR(ACED_MODEL_CACHE_DEFAULT), "prepared models kept in memory"),
    L(quick_queries, 0, 1, "1",
      "1: a cached attributions query repeated with other rows is answered from the "
      "body's bytes (the same reply); 0: every body is parsed in full"),
    L(access_log_buffer, 0, ACED_ACCESS_LOG_BUFFER_MAX, STR(ACED_ACCESS_LOG_BUFFER_DEFAULT),
      "bytes of access-log lines written at once (0: one write per line)"),
    L(access_log_flush_ms, 1, 60000, STR(ACED_ACCESS_LOG_FLUSH_MS_DEFAULT),
      "longest an access-log line waits in that buffer, in milliseconds"),
    S(cors_origins, "",
      "origins that other dashboards are served from (https://dash.example.org, comma-"
      "separated; * for any): CORS headers for them; empty: none"),
    S(ui_dir, "",
      "folder of the web view's files served at /ui/ (empty: the installed "
      "$(datadir)/aced/ui, or the source tree's ui/ when run from the build tree)"),
    S(ui_chart_library, "/usr/share/javascript/d3/d3.min.js",
      "the chart library the web view loads as ui/d3.min.js (Debian's libjs-d3)"),
};
#define N_KEYS (sizeof keys / sizeof keys[0])

static const struct key *find_key(const char *name)
{
  for (size_t i = 0; i < N_KEYS; i++)
    if (strcmp(keys[i].name, name) == 0)
      return &keys[i];
  return NULL;
}

/* Is value exactly one of the space-separated words in choices? */
static int is_choice(const char *choices, const char *value)
{
  size_t n = strlen(value);
  for (const char *w = choices; *w != '\0';) {
    size_t len = strcspn(w, " ");
    if (len == n && n > 0 && strncmp(w, value, n) == 0)
      return 1;
    w += len;
    while (*w == ' ')
      w++;
  }
  return 0;
}

int config_set(struct aced_config *c, const char *name, const char *value,
               char *errbuf, size_t errlen)
{
  const struct key *k = find_key(name);
  if (k == NULL) {
    snprintf(errbuf, errlen, "unknown key '%s'", name);
    return -1;
  }
  char *p = (char *)c + k->offset;
  if (k->type == K_STRING) {
    if (strlen(value) >= k->size) {
      snprintf(errbuf, errlen, "%s: value longer than %zu bytes", name,
               k->size - 1);
      return -1;
    }
    if (k->choices != NULL && !is_choice(k->choices, value)) {
      {
        snprintf(errbuf, errlen, "%s: '%s' is not one of: %s", name, value, k->choices);
        return -1;
      }
    }
    snprintf(p, k->size, "%s", value);
    return 0;
  }
  char *end;
  errno = 0;
  long v = strtol(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0') {
    snprintf(errbuf, errlen, "%s: '%s' is not an integer", name, value);
    return -1;
  }
  if (v < k->min || v > k->max) {
    snprintf(errbuf, errlen, "%s: %ld is outside [%ld, %ld]", name, v, k->min,
             k->max);
    return -1;
  }
  *(long *)p = v;
  return 0;
}

void config_defaults(struct aced_config *c)
{
  char err[128];
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < N_KEYS; i++)
    if (config_set(c, keys[i].name, keys[i].def, err, sizeof err) != 0)
      abort(); /* a bad default is a programming error */
}

static char *trim(char *s)
{
  while (isspace((unsigned char)*s))
    s++;
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1]))
    s[--n] = '\0';
  return s;
}

/* Cut a trailing comment off a value: a '#' at the start of the value or
 * after a blank, outside double quotes, starts one ("max_body_bytes =
 * 67108864  # 64 MiB", the usual convention).  A '#' inside a word
 * (a path "/srv/a#b") or inside quotes ("\"a #b\"") is part of the value. */
static void strip_comment(char *v)
{
  int quoted = 0;
  for (char *p = v; *p != '\0'; p++) {
    if (*p == '"')
      quoted = !quoted;
    else if (*p == '#' && !quoted && (p == v || isspace((unsigned char)p[-1]))) {
      *p = '\0';
      return;
    }
  }
}

int config_load_file(struct aced_config *c, const char *path, char *errbuf,
                     size_t errlen)
{
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  char line[2048];
  int lineno = 0;
  int rc = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    lineno++;
    if (strchr(line, '\n') == NULL && !feof(f)) {
      snprintf(errbuf, errlen, "%s:%d: line too long", path, lineno);
      rc = -1;
      break;
    }
    char *s = trim(line);
    if (*s == '\0' || *s == '#')
      continue;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
      snprintf(errbuf, errlen, "%s:%d: expected 'key = value'", path, lineno);
      rc = -1;
      break;
    }
    *eq = '\0';
    strip_comment(eq + 1);
    char *key = trim(s), *value = trim(eq + 1);
    /* Allow "quoted" values so that an empty string can be written. */
    size_t vn = strlen(value);
    if (vn >= 2 && value[0] == '"' && value[vn - 1] == '"') {
      value[vn - 1] = '\0';
      value++;
    }
    char msg[512];
    if (config_set(c, key, value, msg, sizeof msg) != 0) {
      snprintf(errbuf, errlen, "%s:%d: %s", path, lineno, msg);
      rc = -1;
      break;
    }
  }
  fclose(f);
  return rc;
}

int config_is_loopback(const char *addr)
{
  struct in_addr a4;
  struct in6_addr a6;
  if (strcmp(addr, "localhost") == 0)
    return 1;
  if (inet_pton(AF_INET, addr, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, addr, &a6) == 1)
    return memcmp(&a6, &in6addr_loopback, sizeof a6) == 0;
  return 0;
}

/* ---- trusted_proxies: addresses and CIDR ranges ---- */

/* One entry: family, address bytes (network order) and prefix length. */
struct net {
  int family;
  unsigned char a[16];
  int bits;
};

/* "a.b.c.d", "a.b.c.d/n" (n 0..32), "x::y" or "x::y/n" (n 0..128). */
static int parse_net(const char *s, struct net *n)
{
  char buf[INET6_ADDRSTRLEN + 8];
  if (strlen(s) >= sizeof buf)
    return -1;
  snprintf(buf, sizeof buf, "%s", s);
  char *slash = strchr(buf, '/');
  long bits = -1;
  if (slash != NULL) {
    char *end;
    *slash = '\0';
    if (!isdigit((unsigned char)slash[1]))
      return -1;
    errno = 0;
    bits = strtol(slash + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end - (slash + 1) > 3)
      return -1;
  }
  memset(n, 0, sizeof *n);
  if (inet_pton(AF_INET, buf, n->a) == 1) {
    n->family = AF_INET;
    n->bits = bits < 0 ? 32 : (int)bits;
    return bits > 32 ? -1 : 0;
  }
  if (inet_pton(AF_INET6, buf, n->a) == 1) {
    n->family = AF_INET6;
    n->bits = bits < 0 ? 128 : (int)bits;
    return bits > 128 ? -1 : 0;
  }
  return -1;
}

/* Do the first `bits` bits of a and b agree? */
static int prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
  int whole = bits / 8, rest = bits % 8;
  if (memcmp(a, b, (size_t)whole) != 0)
    return 0;
  if (rest == 0)
    return 1;
  unsigned char mask = (unsigned char)(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

int config_proxy_trusted(const char *list, int family, const void *addr)
{
  if (list[0] == '\0')
    return 0;
  unsigned char a[16];
  if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr)) {
    /* an IPv4 peer of an IPv6 listener: compared as IPv4 (and as itself) */
    memcpy(a, (const unsigned char *)addr + 12, 4);
    if (config_proxy_trusted(list, AF_INET, a))
      return 1;
  }
  size_t alen = family == AF_INET ? 4 : 16;
  memcpy(a, addr, alen);
  char buf[sizeof ((struct aced_config *)0)->trusted_proxies];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t != NULL;
       t = strtok_r(NULL, ", ", &save)) {
    struct net n;
    if (parse_net(t, &n) == 0 && n.family == family && prefix_equal(n.a, a, n.bits))
      return 1;
  }
  return 0;
}

/* ---- base_path and X-Forwarded-Prefix ---- */

int config_base_path_check(const char *p, char *why, size_t whylen)
{
  size_t n = strlen(p);
  if (n == 0)
    return 0;
  if (n > ACED_BASE_PATH_MAX) {
    snprintf(why, whylen, "longer than %d bytes", ACED_BASE_PATH_MAX);
    return -1;
  }
  if (p[0] != '/') {
    snprintf(why, whylen, "must start with '/'");
    return -1;
  }
  if (p[n - 1] == '/') {
    snprintf(why, whylen, "must not end with '/' (write /aced, not /aced/; empty for none)");
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '%') {
      if (!isxdigit((unsigned char)p[i + 1]) || !isxdigit((unsigned char)p[i + 2])) {
        snprintf(why, whylen, "'%%' must start a %%XX escape");
        return -1;
      }
      continue;
    }
    if (!isalnum(c) && strchr("/-._~!$&'()*+,;=:@", c) == NULL) {
      snprintf(why, whylen, "byte %zu is not a path character", i);
      return -1;
    }
  }
  /* Empty, "." and ".." segments: "//host" would make every Location a
   * link to another host, and dot segments move out of the mount. */
  for (const char *seg = p; seg != NULL && *seg == '/'; seg = strchr(seg + 1, '/')) {
    size_t len = strcspn(seg + 1, "/");
    if (len == 0 || (len == 1 && seg[1] == '.') ||
        (len == 2 && seg[1] == '.' && seg[2] == '.')) {
      snprintf(why, whylen, "empty, '.' and '..' segments are not allowed");
      return -1;
    }
  }
  return 0;
}

/* ---- cors_origins ---- */

/* "*", or scheme "://" host [":" port] with nothing after it. */
static int origin_valid(const char *o)
{
  if (strcmp(o, "*") == 0)
    return 1;
  const char *h = strstr(o, "://");
  if (h == NULL || h == o || h[3] == '\0')
    return 0;
  for (const char *c = o; c < h; c++)
    if (!isalnum((unsigned char)*c) && strchr("+-.", *c) == NULL)
      return 0;
  for (const char *c = h + 3; *c != '\0'; c++)
    if (!isalnum((unsigned char)*c) && strchr("-.:[]", *c) == NULL)
      return 0;
  return 1;
}

int config_cors_allowed(const char *list, const char *origin)
{
  size_t n = strlen(origin);
  for (const char *w = list; *w != '\0';) {
    size_t len = strcspn(w, ", ");
    if ((len == 1 && w[0] == '*') || (len == n && n > 0 && memcmp(w, origin, n) == 0))
      return 1;
    w += len;
    w += strspn(w, ", ");
  }
  return 0;
}

int config_validate(const struct aced_config *c, char *errbuf, size_t errlen)
{
  struct in_addr a4;
  struct in6_addr a6;
  if (strcmp(c->listen_address, "localhost") != 0 &&
      inet_pton(AF_INET, c->listen_address, &a4) != 1 &&
      inet_pton(AF_INET6, c->listen_address, &a6) != 1) {
    snprintf(errbuf, errlen, "listen_address: '%s' is not an IP address",
             c->listen_address);
    return -1;
  }
  /* Without tokens anyone who can connect can register and delete models:
   * only acceptable when nobody but local users can connect. */
  if (c->token_file[0] == '\0' && !config_is_loopback(c->listen_address)) {
    snprintf(errbuf, errlen,
             "listen_address: refusing to listen on %s without token_file "
             "(only loopback addresses may run without authentication)",
             c->listen_address);
    return -1;
  }
  if (c->database[0] == '\0') {
    snprintf(errbuf, errlen, "database: must not be empty");
    return -1;
  }
  if (c->trusted_proxies[0] != '\0') {
    char buf[sizeof c->trusted_proxies];
    snprintf(buf, sizeof buf, "%s", c->trusted_proxies);
    for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t != NULL;
         t = strtok_r(NULL, ", ", &save)) {
      struct net n;
      if (parse_net(t, &n) != 0) {
        snprintf(errbuf, errlen,
                 "trusted_proxies: '%s' is not an IP address or CIDR range "
                 "(such as 10.0.0.1, 127.0.0.0/8, ::1/128)",
                 t);
        return -1;
      }
    }
  }
  char cors[sizeof c->cors_origins];
  snprintf(cors, sizeof cors, "%s", c->cors_origins);
  for (char *save = NULL, *t = strtok_r(cors, ", ", &save); t != NULL;
       t = strtok_r(NULL, ", ", &save)) {
    if (!origin_valid(t)) {
      snprintf(errbuf, errlen,
               "cors_origins: '%s' is not an origin (scheme://host[:port], no path, "
               "such as https://dash.example.org) or *",
               t);
      return -1;
    }
  }
  char why[128];
  if (config_base_path_check(c->base_path, why, sizeof why) != 0) {
    snprintf(errbuf, errlen, "base_path: '%s' %s", c->base_path, why);
    return -1;
  }
  return 0;
}

void config_print_help(void *stream)
{
  FILE *f = stream;
  for (size_t i = 0; i < N_KEYS; i++)
    fprintf(f, "  --%-20s %s (default: \"%s\")\n", keys[i].name, keys[i].help,
            keys[i].def);
}
