/*
 * config.h -- aced's configuration: one table drives the defaults, the
 * config file parser, the command-line flags, validation and --help.
 */
#ifndef ACED_CONFIG_H
#define ACED_CONFIG_H

#include <stddef.h>

#include "aced/limits.h"

struct aced_config {
  char listen_address[128];
  long port;
  char database[1024];
  long http_threads;
  long workers;
  long queue_max;
  long max_body_bytes;
  long connection_limit;
  long connection_timeout;   /* seconds */
  long connection_memory;    /* bytes per connection (MHD pool) */
  long sync_wait_ms;
  long job_timeout;          /* seconds a job may run before it is failed */
  long max_order;
  char token_file[1024];     /* empty: no auth, loopback only */
  char trusted_proxies[1024];/* comma-separated addresses and CIDR ranges */
  char base_path[ACED_BASE_PATH_MAX + 1]; /* "" or "/aced": URL prefix */
  char log_level[16];        /* error, warn, info, debug */
  long access_log_buffer;    /* bytes of access-log lines per write; 0: a write per line */
  long access_log_flush_ms;  /* longest an access-log line waits in the buffer */
  long model_cache;          /* prepared models kept in memory */
  long quick_queries;        /* 1: repeated cached attributions from the body's bytes */
  char cors_origins[1024];   /* origins allowed cross-origin ("" none, "*" any) */
  char ui_dir[1024];         /* the web view's files; "" the built-in place */
  char ui_chart_library[1024]; /* d3.min.js, served as ui/d3.min.js */
};

/* Fill with the embedded defaults. */
void config_defaults(struct aced_config *c);

/* Read "key = value" lines from path into c.  Returns 0, or -1 with a
 * message "path:line: ..." in errbuf. */
int config_load_file(struct aced_config *c, const char *path, char *errbuf,
                     size_t errlen);

/* Set one key from a string (used by the file parser and --key=value
 * flags).  Returns 0 or -1 with a message. */
int config_set(struct aced_config *c, const char *key, const char *value,
               char *errbuf, size_t errlen);

/* Cross-field checks (e.g. no token file -> loopback only). */
int config_validate(const struct aced_config *c, char *errbuf, size_t errlen);

/* Print every key with its default and a one-line description. */
void config_print_help(void *stream);

/* Is the address a loopback address (127.0.0.0/8, ::1, localhost)? */
int config_is_loopback(const char *addr);

/* Is the address (family AF_INET or AF_INET6, addr an in_addr or
 * in6_addr) in the trusted_proxies list (addresses and CIDR ranges, as
 * config_validate accepts them)?  An IPv4-mapped IPv6 address also
 * matches the IPv4 entries. */
int config_proxy_trusted(const char *list, int family, const void *addr);

/* Is p a valid URL prefix (base_path, X-Forwarded-Prefix): empty, or '/'
 * then path characters, no trailing '/', no empty, '.' or '..' segment,
 * at most ACED_BASE_PATH_MAX bytes?  0, or -1 with the reason in why. */
int config_base_path_check(const char *p, char *why, size_t whylen);

/* Is origin (an Origin request header) one of cors_origins (comma- or
 * blank-separated "scheme://host[:port]" entries, or "*" for any)?  The
 * comparison is exact, as browsers send the origin serialized. */
int config_cors_allowed(const char *list, const char *origin);

#endif
