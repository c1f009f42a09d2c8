/*
 * jsonw.c -- the append-only JSON writer (see jsonw.h).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/jsonw.h"

void jw_init(struct jw *w, size_t hint)
{
  w->len = 0;
  w->oom = 0;
  w->cap = hint ? hint : 1024;
  w->buf = malloc(w->cap);
  if (w->buf == NULL) {
    w->cap = 0;
    w->oom = 1;
  }
}

/* Make room for n more bytes plus the final NUL. */
static int reserve(struct jw *w, size_t n)
{
  if (w->oom)
    return -1;
  if (w->len + n + 1 <= w->cap)
    return 0;
  size_t cap = w->cap ? w->cap : 1024;
  while (cap < w->len + n + 1) {
    if (cap > ((size_t)-1) / 2) {
      w->oom = 1;
      return -1;
    }
    cap *= 2;
  }
  char *b = realloc(w->buf, cap);
  if (b == NULL) {
    w->oom = 1;
    return -1;
  }
  w->buf = b;
  w->cap = cap;
  return 0;
}

void jw_raw(struct jw *w, const char *s, size_t n)
{
  if (reserve(w, n) != 0)
    return;
  memcpy(w->buf + w->len, s, n);
  w->len += n;
}

void jw_lit(struct jw *w, const char *s)
{
  jw_raw(w, s, strlen(s));
}

/* jansson's escaping (dump.c, without JSON_ENSURE_ASCII or
 * JSON_ESCAPE_SLASH): '"' and '\\' backslashed, the five control
 * characters with short forms as \b \f \n \r \t, other bytes below 0x20
 * as \u00XX, everything else (UTF-8 included) as it is. */
void jw_str(struct jw *w, const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(s);
  /* worst case: every byte becomes \u00XX */
  if (reserve(w, 6 * n + 2) != 0)
    return;
  char *o = w->buf + w->len;
  *o++ = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char c = *p;
    if (c >= 0x20 && c != '"' && c != '\\') {
      *o++ = (char)c;
      continue;
    }
    *o++ = '\\';
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
      *o++ = 'u';
      *o++ = '0';
      *o++ = '0';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 15];
    }
  }
  *o++ = '"';
  w->len = (size_t)(o - w->buf);
}

size_t jw_format_real(char *buf, double v)
{
  if (!isfinite(v)) {
    memcpy(buf, "null", 5);
    return 4;
  }
  int n = snprintf(buf, 32, "%.17g", v);
  if (n < 0 || n >= 32) { /* cannot happen for a double; be safe */
    memcpy(buf, "null", 5);
    return 4;
  }
  /* "%.17g" of an integral value has neither '.' nor an exponent; like
   * jansson, add ".0" so that it reads back as a real.  (The C locale is
   * the daemon's, so the decimal point is '.'.) */
  char *e = strchr(buf, 'e');
  if (e == NULL) {
    if (strchr(buf, '.') == NULL) {
      buf[n++] = '.';
      buf[n++] = '0';
      buf[n] = '\0';
    }
    return (size_t)n;
  }
  /* Like jansson, drop the exponent's '+' and leading zeros: "1e+20" is
   * written "1e20", "1e-05" "1e-5". */
  char *start = e + 1, *end = e + 2;
  if (*start == '-')
    start++;
  while (*end == '0')
    end++;
  if (end != start) {
    memmove(start, end, (size_t)(buf + n - end) + 1);
    n -= (int)(end - start);
  }
  return (size_t)n;
}

void jw_real(struct jw *w, double v)
{
  char b[40];
  jw_raw(w, b, jw_format_real(b, v));
}

void jw_int(struct jw *w, long long v)
{
  char b[24];
  char *e = b + sizeof b, *p = e;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0)
    *--p = '-';
  jw_raw(w, p, (size_t)(e - p));
}

char *jw_finish(struct jw *w, size_t *len)
{
  if (w->oom || reserve(w, 0) != 0) {
    jw_free(w);
    return NULL;
  }
  w->buf[w->len] = '\0';
  char *s = w->buf;
  if (len != NULL)
    *len = w->len;
  w->buf = NULL;
  w->len = w->cap = 0;
  return s;
}

void jw_free(struct jw *w)
{
  free(w->buf);
  w->buf = NULL;
  w->len = w->cap = 0;
}
