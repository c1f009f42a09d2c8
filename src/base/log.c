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

/* The access-log buffers: one per thread that logs access lines (the
 * HTTP threads), so that a request takes only its own thread's lock, on a
 * cache line no other thread writes.  `acc_lock` serialises the writes to
 * stderr and everything that looks at every buffer (another record, which
 * writes the buffered lines first; the flush timer; a new size); it comes
 * before a buffer's own lock.  A thread's buffer is flushed when the
 * thread ends and kept for the next thread that logs. */
struct accbuf {
  /* Aligned so that no two buffers share a cache line: unaligned, the
   * second thread's lock sat on the line of the first one's first_us,
   * which every access line reads, and the line went back and forth
   * between the two HTTP threads at every request. */
  _Alignas(64) pthread_mutex_t lock;
  char *buf;
  size_t len, cap;
  int64_t first_us; /* when the oldest buffered line was logged */
  int owned;        /* by a running thread (under acc_lock) */
  struct accbuf *next;
};
static pthread_mutex_t acc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct accbuf *acc_list;
static size_t acc_cap;       /* bytes per buffer (under acc_lock) */
static atomic_long acc_flush_us = 1000000;
static atomic_int acc_on;    /* buffers are configured */
static pthread_key_t acc_key;
static pthread_once_t acc_once = PTHREAD_ONCE_INIT;
static _Thread_local struct accbuf *acc_mine;

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

/* Write and empty b (acc_lock and b's lock held). */
static void flush_one(struct accbuf *b)
{
  if (b->len > 0)
    write_all(b->buf, b->len);
  b->len = 0;
}

/* Write every buffer (acc_lock held), or with `stale_us` > 0 those whose
 * oldest line is at least that old at `now`. */
static void flush_all(int64_t now, long stale_us)
{
  for (struct accbuf *b = acc_list; b != NULL; b = b->next) {
    pthread_mutex_lock(&b->lock);
    if (stale_us <= 0 || (b->len > 0 && now - b->first_us >= stale_us))
      flush_one(b);
    pthread_mutex_unlock(&b->lock);
  }
}

/* A thread that logged access lines ends: its lines go out, and its
 * buffer waits for the next thread. */
static void acc_release(void *p)
{
  struct accbuf *b = p;
  pthread_mutex_lock(&acc_lock);
  pthread_mutex_lock(&b->lock);
  flush_one(b);
  b->owned = 0;
  pthread_mutex_unlock(&b->lock);
  pthread_mutex_unlock(&acc_lock);
}

static void acc_key_init(void)
{
  pthread_key_create(&acc_key, acc_release);
}

/* This thread's buffer: found on first use (a free one, or a new one of
 * acc_cap bytes); NULL if memory ran out. */
static struct accbuf *acc_buffer(void)
{
  if (acc_mine != NULL)
    return acc_mine;
  pthread_once(&acc_once, acc_key_init);
  pthread_mutex_lock(&acc_lock);
  struct accbuf *b = acc_list;
  while (b != NULL && b->owned)
    b = b->next;
  if (b == NULL && (b = aligned_alloc(_Alignof(struct accbuf), sizeof *b)) != NULL) {
    memset(b, 0, sizeof *b);
    if (acc_cap > 0 && (b->buf = malloc(acc_cap)) == NULL) {
      free(b);
      b = NULL;
    } else {
      b->cap = b->buf ? acc_cap : 0;
      pthread_mutex_init(&b->lock, NULL);
      b->next = acc_list;
      acc_list = b;
    }
  }
  if (b != NULL) {
    b->owned = 1;
    pthread_setspecific(acc_key, b);
  }
  pthread_mutex_unlock(&acc_lock);
  return acc_mine = b;
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
  flush_all(0, 0); /* buffered access lines came first */
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
  struct accbuf *b = acc_buffer();
  if (b == NULL) {
    pthread_mutex_lock(&acc_lock);
    write_all(buf, (size_t)n);
    pthread_mutex_unlock(&acc_lock);
    return;
  }
  int64_t now = aced_now_us();
  long stale_us = atomic_load_explicit(&acc_flush_us, memory_order_relaxed);
  pthread_mutex_lock(&b->lock);
  if (b->len + (size_t)n <= b->cap) { /* the usual case: this thread's lock only */
    if (b->len == 0)
      b->first_us = now;
    memcpy(b->buf + b->len, buf, (size_t)n);
    b->len += (size_t)n;
    int stale = now - b->first_us >= stale_us;
    pthread_mutex_unlock(&b->lock);
    if (!stale)
      return;
    pthread_mutex_lock(&acc_lock);
    pthread_mutex_lock(&b->lock);
    flush_one(b);
    pthread_mutex_unlock(&b->lock);
    pthread_mutex_unlock(&acc_lock);
    return;
  }
  /* full (or the line is longer than a buffer): the batch goes out, in
   * the writers' order */
  pthread_mutex_unlock(&b->lock);
  pthread_mutex_lock(&acc_lock);
  pthread_mutex_lock(&b->lock);
  flush_one(b);
  if ((size_t)n > b->cap) {
    write_all(buf, (size_t)n);
  } else {
    b->first_us = now;
    memcpy(b->buf, buf, (size_t)n);
    b->len = (size_t)n;
  }
  pthread_mutex_unlock(&b->lock);
  pthread_mutex_unlock(&acc_lock);
}

void log_access_config(size_t bytes, int flush_ms)
{
  pthread_mutex_lock(&acc_lock);
  for (struct accbuf *b = acc_list; b != NULL; b = b->next) {
    pthread_mutex_lock(&b->lock);
    flush_one(b);
    char *nb = bytes > 0 ? realloc(b->buf, bytes) : NULL;
    if (nb == NULL) {
      free(b->buf); /* no buffer (or no memory for one): lines go out at once */
      b->cap = 0;
    } else {
      b->cap = bytes;
    }
    b->buf = nb;
    pthread_mutex_unlock(&b->lock);
  }
  acc_cap = bytes;
  atomic_store(&acc_flush_us, (long)flush_ms * 1000L);
  atomic_store(&acc_on, bytes > 0);
  pthread_mutex_unlock(&acc_lock);
}

void log_flush(void)
{
  pthread_mutex_lock(&acc_lock);
  flush_all(0, 0);
  pthread_mutex_unlock(&acc_lock);
}

void log_flush_stale(void)
{
  if (!atomic_load_explicit(&acc_on, memory_order_relaxed))
    return;
  int64_t now = aced_now_us();
  pthread_mutex_lock(&acc_lock);
  flush_all(now, atomic_load(&acc_flush_us));
  pthread_mutex_unlock(&acc_lock);
}
