/*
 * log.c -- see log.h.  Records are written with one write(2) each (or, for
 * access lines, one per batch of whole lines) so that lines from different
 * threads never interleave.
 */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aced/clock.h"
#include "aced/log.h"

/* The access-log buffer; `lock` also orders other records after it. */
static pthread_mutex_t acc_lock = PTHREAD_MUTEX_INITIALIZER;
static char *acc_buf;
static size_t acc_len, acc_cap;
static int64_t acc_first_us; /* when the oldest buffered line was logged */
static atomic_long acc_flush_us = 1000000;
static atomic_int acc_on;    /* a buffer is configured: others must lock */

static void write_all(const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, p, n);
    if (w <= 0)
      return; /* nowhere to report it */
    p += w;
    n -= (size_t)w;
  }
}

static void flush_locked(void)
{
  if (acc_len > 0)
    write_all(acc_buf, acc_len);
  acc_len = 0;
}

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

/* One record into buf: prefix, message, control characters blanked, a
 * newline.  Returns its length, or -1. */
static int format_record(char *buf, size_t size, enum log_level l, const char *component,
                         const char *fmt, va_list ap)
{
  int n = snprintf(buf, size, "<%d>%s %s: ", (int)l, level_name(l), component);
  if (n >= 0 && (size_t)n < size)
    n += vsnprintf(buf + n, size - (size_t)n, fmt, ap);
  if (n < 0)
    return -1;
  if ((size_t)n >= size - 1)
    n = (int)size - 2;
  /* One record, one line: control characters from client input must not
   * forge extra log lines. */
  for (int i = 0; i < n; i++)
    if ((unsigned char)buf[i] < 0x20)
      buf[i] = ' ';
  buf[n++] = '\n';
  return n;
}

void log_msg(enum log_level l, const char *component, const char *fmt, ...)
{
  if (!log_enabled(l))
    return;
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = format_record(buf, sizeof buf, l, component, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if (!atomic_load_explicit(&acc_on, memory_order_relaxed)) {
    write_all(buf, (size_t)n);
    return;
  }
  pthread_mutex_lock(&acc_lock);
  flush_locked(); /* buffered access lines came first */
  write_all(buf, (size_t)n);
  pthread_mutex_unlock(&acc_lock);
}

/* Appends s (at most up to end) at o; returns the new end. */
static char *put(char *o, const char *end, const char *s)
{
  while (*s != '\0' && o < end)
    *o++ = *s++;
  return o;
}

/* Appends the decimal digits of v. */
static char *put_uint(char *o, const char *end, unsigned long long v)
{
  char d[24];
  int n = 0;
  do {
    d[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0 && o < end)
    *o++ = d[--n];
  return o;
}

void log_access(const char *client, const char *method, const char *url, unsigned status,
                long long us, const char *who)
{
  if (!log_enabled(LOG_L_INFO))
    return;
  char buf[2048];
  const char *end = buf + sizeof buf - 1; /* room for the newline */
  char *o = put(buf, end, "<6>info http: ");
  char *msg = o;
  o = put(o, end, client);
  o = put(o, end, " ");
  o = put(o, end, method);
  o = put(o, end, " ");
  o = put(o, end, url);
  o = put(o, end, " ");
  o = put_uint(o, end, status);
  o = put(o, end, " ");
  /* milliseconds to one decimal, rounded half up: 1234 us is "1.2ms" */
  unsigned long long tenths = us > 0 ? ((unsigned long long)us + 50) / 100 : 0;
  o = put_uint(o, end, tenths / 10);
  o = put(o, end, ".");
  o = put_uint(o, end, tenths % 10);
  o = put(o, end, "ms who=");
  o = put(o, end, who);
  /* One record, one line: control characters from client input must not
   * forge extra log lines. */
  for (char *c = msg; c < o; c++)
    if ((unsigned char)*c < 0x20)
      *c = ' ';
  *o++ = '\n';
  int n = (int)(o - buf);
  if (!atomic_load_explicit(&acc_on, memory_order_relaxed)) {
    write_all(buf, (size_t)n);
    return;
  }
  int64_t now = aced_now_us();
  pthread_mutex_lock(&acc_lock);
  if (acc_len + (size_t)n > acc_cap)
    flush_locked();
  if (acc_len == 0)
    acc_first_us = now;
  if ((size_t)n > acc_cap) {
    write_all(buf, (size_t)n); /* longer than the whole buffer */
  } else {
    memcpy(acc_buf + acc_len, buf, (size_t)n);
    acc_len += (size_t)n;
  }
  if (acc_len > 0 && now - acc_first_us >= atomic_load(&acc_flush_us))
    flush_locked();
  pthread_mutex_unlock(&acc_lock);
}

void log_access_config(size_t bytes, int flush_ms)
{
  pthread_mutex_lock(&acc_lock);
  flush_locked();
  char *nb = bytes > 0 ? realloc(acc_buf, bytes) : NULL;
  if (bytes > 0 && nb == NULL) {
    bytes = 0; /* no memory for a buffer: write each line */
    free(acc_buf);
  } else if (bytes == 0) {
    free(acc_buf);
  }
  acc_buf = nb;
  acc_cap = bytes;
  atomic_store(&acc_flush_us, (long)flush_ms * 1000L);
  atomic_store(&acc_on, bytes > 0);
  pthread_mutex_unlock(&acc_lock);
}

void log_flush(void)
{
  pthread_mutex_lock(&acc_lock);
  flush_locked();
  pthread_mutex_unlock(&acc_lock);
}

void log_flush_stale(void)
{
  if (!atomic_load_explicit(&acc_on, memory_order_relaxed))
    return;
  int64_t now = aced_now_us();
  pthread_mutex_lock(&acc_lock);
  if (acc_len > 0 && now - acc_first_us >= atomic_load(&acc_flush_us))
    flush_locked();
  pthread_mutex_unlock(&acc_lock);
}
