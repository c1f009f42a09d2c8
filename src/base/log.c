/*
 * log.c -- see log.h.  Records are written with one write(2) each so that
 * lines from different threads never interleave.
 */
#include "config.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aced/log.h"

static atomic_int current = LOG_L_INFO;

void log_set_level(enum log_level l) { atomic_store(&current, (int)l); }

int log_enabled(enum log_level l) { return (int)l <= atomic_load(&current); }

int log_level_parse(const char *s, enum log_level *out)
{
  static const struct { const char *name; enum log_level l; } t[] = {
      {"error", LOG_L_ERROR}, {"warn", LOG_L_WARN},
      {"info", LOG_L_INFO},   {"debug", LOG_L_DEBUG}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcmp(s, t[i].name) == 0) {
      *out = t[i].l;
      return 0;
    }
  return -1;
}

static const char *level_name(enum log_level l)
{
  switch (l) {
  case LOG_L_ERROR: return "error";
  case LOG_L_WARN: return "warn";
  case LOG_L_INFO: return "info";
  default: return "debug";
  }
}

void log_msg(enum log_level l, const char *component, const char *fmt, ...)
{
  if (!log_enabled(l))
    return;
  char buf[2048];
  int n = snprintf(buf, sizeof buf, "<%d>%s %s: ", (int)l, level_name(l),
                   component);
  va_list ap;
  va_start(ap, fmt);
  if (n >= 0 && (size_t)n < sizeof buf)
    n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof buf - 1)
    n = sizeof buf - 2;
  /* One record, one line: control characters from client input must not
   * forge extra log lines. */
  for (int i = 0; i < n; i++)
    if ((unsigned char)buf[i] < 0x20)
      buf[i] = ' ';
  buf[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
  (void)w;
}
