/*
 * jsonw.c -- the append-only JSON writer (see jsonw.h).
 */
#include "config.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/jsonw.h"

void jw_init(struct jw *w, size_t hint)
{
  w->len = 0;
  w->oom = 0;
  w->sink = NULL;
  w->sink_cls = NULL;
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
  if (w->sink != NULL && w->len > 0) {
    w->sink(w->sink_cls, w->buf, w->len);
    w->len = 0;
    if (n + 1 <= w->cap)
      return 0;
  }
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

void jw_ms(struct jw *w, long long us)
{
  if (us < 0) {
    jw_raw(w, "-", 1);
    us = -us;
  }
  char frac[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                  (char)('0' + us % 10)};
  jw_int(w, us / 1000);
  jw_raw(w, frac, sizeof frac);
}

const char *const jw_ms_keys[] = {"\"elapsed_ms\":", "\"queued_ms\":", NULL};

/* The first key of jw_ms_keys at or after p (in s[0..n)), not escaped
 * (inside a string a quote is preceded by an odd run of backslashes);
 * *klen its length. */
static const char *next_ms_key(const char *s, size_t n, const char *p, size_t *klen)
{
  const char *best = NULL;
  for (const char *const *k = jw_ms_keys; *k != NULL; k++) {
    size_t kl = strlen(*k);
    const char *q = p;
    while ((q = memmem(q, (size_t)(s + n - q), *k, kl)) != NULL) {
      size_t bs = 0;
      while (q - bs > s && q[-1 - (ptrdiff_t)bs] == '\\')
        bs++;
      if (bs % 2 == 0)
        break;
      q += 1;
    }
    if (q != NULL && (best == NULL || q < best)) {
      best = q;
      *klen = kl;
    }
  }
  return best;
}

char *jw_fix_ms(char *text, size_t *len)
{
  size_t n = *len, klen = 0;
  const char *k = next_ms_key(text, n, text, &klen);
  if (k == NULL)
    return text;
  struct jw w;
  jw_init(&w, n + 64);
  const char *p = text;
  for (; k != NULL; k = next_ms_key(text, n, p, &klen)) {
    const char *v = k + klen, *e = v;
    while (e < text + n && strchr("-+.0123456789eE", *e) != NULL && *e != '\0')
      e++;
    jw_raw(&w, p, (size_t)(v - p));
    p = v;
    if (e == v)
      continue; /* not a number (null) */
    char num[64];
    size_t nl = (size_t)(e - v) < sizeof num - 1 ? (size_t)(e - v) : sizeof num - 1;
    memcpy(num, v, nl);
    num[nl] = '\0';
    double ms = strtod(num, NULL);
    if (!(fabs(ms) < 9e15))
      continue; /* leave what cannot be a time as it is */
    jw_ms(&w, llround(ms * 1000.0));
    p = e;
  }
  jw_raw(&w, p, (size_t)(text + n - p));
  free(text);
  return jw_finish(&w, len);
}

void jw_raw_grow(struct jw *w, const char *s, size_t n)
{
  if (reserve(w, n) != 0)
    return;
  memcpy(w->buf + w->len, s, n);
  w->len += n;
}

/* Whether s[0..n) holds a byte jw_str must escape ('"', '\\', below
 * 0x20), eight bytes at a time: (x - k) & ~x & 0x80.. is nonzero exactly
 * when some byte of x is below k (k <= 0x80), and a byte equal to c is a
 * zero byte of x ^ c.  False positives cannot happen; nor can misses. */
static int needs_escape(const char *s, size_t n)
{
  const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, q, b;
    memcpy(&x, s + i, 8);
    q = x ^ (ones * '"');
    b = x ^ (ones * '\\');
    if ((((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs)
      return 1;
  }
  for (; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == '"' || c == '\\')
      return 1;
  }
  return 0;
}

/* jansson's escaping (dump.c, without JSON_ENSURE_ASCII or
 * JSON_ESCAPE_SLASH): '"' and '\\' backslashed, the five control
 * characters with short forms as \b \f \n \r \t, other bytes below 0x20
 * as \u00XX, everything else (UTF-8 included) as it is. */
void jw_str(struct jw *w, const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(s);
  /* Names, estimators, notes: nearly always nothing to escape, and then
   * one copy. */
  if (!needs_escape(s, n)) {
    if (reserve(w, n + 2) != 0)
      return;
    char *o = w->buf + w->len;
    o[0] = '"';
    memcpy(o + 1, s, n);
    o[n + 1] = '"';
    w->len += n + 2;
    return;
  }
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

/* "%.17g" without printf, for the magnitudes replies are made of.
 *
 * glibc's printf converts a double exactly (multi-precision arithmetic);
 * that is most of the cost of writing a cached attribution.  For 1e-6 <=
 * |v| < 2^52 the same exact answer fits in 128-bit integers: with v =
 * m / 2^s (m the 53-bit significand), the 17 significant digits are
 * q = m 10^k / 2^s rounded half to even (as glibc rounds), where
 * 10^k <= 10^22 keeps m 10^k below 2^127.  The layout then follows C's %g
 * rule for precision 17: exponent X of the rounded value; fixed notation
 * with 16 - X decimals when -4 <= X < 17, else d.ddde-XX; trailing zeros
 * (and a bare '.') dropped.  Returns the length, or 0 outside the range
 * (the caller then uses snprintf).  tests/unit/test_jsonw.c compares it
 * with snprintf byte for byte. */
static int fmt17(char *buf, double v)
{
  double a = fabs(v);
  if (!(a >= 1e-6 && a < 9007199254740992.0))
    return 0;
  /* a = m 2^(be - 1075) with m the 53-bit significand (a is normal here):
   * frexp's a = fr 2^e2, fr in [0.5, 1), has e2 = be - 1022 */
  uint64_t bits;
  memcpy(&bits, &a, sizeof bits);
  int be = (int)(bits >> 52) & 0x7ff, e2 = be - 1022;
  uint64_t m = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
  int s = 53 - e2; /* a = m / 2^s */
  if (s < 1 || s > 73)
    return 0; /* 2^52 <= a < 2^53 has no fraction bits (s = 0): printf's */
  static const uint64_t p10[20] = {1ULL,
                                   10ULL,
                                   100ULL,
                                   1000ULL,
                                   10000ULL,
                                   100000ULL,
                                   1000000ULL,
                                   10000000ULL,
                                   100000000ULL,
                                   1000000000ULL,
                                   10000000000ULL,
                                   100000000000ULL,
                                   1000000000000ULL,
                                   10000000000000ULL,
                                   100000000000000ULL,
                                   1000000000000000ULL,
                                   10000000000000000ULL,
                                   100000000000000000ULL,
                                   1000000000000000000ULL,
                                   10000000000000000000ULL};
  /* decimal exponent: an estimate from the binary one, corrected below */
  int x = ((e2 - 1) * 78913) >> 18; /* floor((e2 - 1) log10 2), or one off */
  uint64_t q = 0;
  int ok = 0;
  for (int tries = 0; tries < 4 && !ok; tries++) {
    int k = 16 - x;
    if (k < 0 || k > 22)
      return 0;
    unsigned __int128 n = (unsigned __int128)m * p10[k < 19 ? k : 19];
    if (k > 19)
      n *= p10[k - 19];
    unsigned __int128 qq = n >> s, r = n - (qq << s), half = (unsigned __int128)1 << (s - 1);
    if (r > half || (r == half && (qq & 1)))
      qq++;
    if (qq >= p10[17])
      x++;
    else if (qq < p10[16])
      x--;
    else {
      q = (uint64_t)qq;
      ok = 1;
    }
  }
  if (!ok)
    return 0;
  static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                              "25262728293031323334353637383940414243444546474849"
                              "50515253545556575859606162636465666768697071727374"
                              "75767778798081828384858687888990919293949596979899";
  char d[17];
  for (int i = 15; i >= 1; i -= 2) { /* two digits a division */
    unsigned r = (unsigned)(q % 100);
    q /= 100;
    d[i] = pairs[2 * r];
    d[i + 1] = pairs[2 * r + 1];
  }
  d[0] = (char)('0' + q);
  int nd = 17; /* significant digits left once trailing zeros go */
  while (nd > 1 && d[nd - 1] == '0')
    nd--;
  char *o = buf;
  if (v < 0)
    *o++ = '-';
  if (x < -4 || x >= 17) {
    *o++ = d[0];
    if (nd > 1) {
      *o++ = '.';
      memcpy(o, d + 1, (size_t)nd - 1);
      o += nd - 1;
    }
    int ex = x < 0 ? -x : x;
    *o++ = 'e';
    *o++ = x < 0 ? '-' : '+';
    if (ex >= 100)
      *o++ = (char)('0' + ex / 100);
    *o++ = (char)('0' + ex / 10 % 10);
    *o++ = (char)('0' + ex % 10);
  } else if (x >= 0) {
    memcpy(o, d, (size_t)x + 1); /* integer part */
    o += x + 1;
    if (nd > x + 1) {
      *o++ = '.';
      memcpy(o, d + x + 1, (size_t)(nd - x - 1));
      o += nd - x - 1;
    }
  } else {
    *o++ = '0';
    *o++ = '.';
    for (int i = 0; i < -x - 1; i++)
      *o++ = '0';
    memcpy(o, d, (size_t)nd);
    o += nd;
  }
  *o = '\0';
  return (int)(o - buf);
}

size_t jw_format_g17(char *buf, double v)
{
  int n = fmt17(buf, v);
  if (n == 0)
    n = snprintf(buf, 32, "%.17g", v);
  return n < 0 || n >= 32 ? 0 : (size_t)n; /* neither happens for a double */
}

size_t jw_format_real(char *buf, double v)
{
  if (!isfinite(v)) {
    memcpy(buf, "null", 5);
    return 4;
  }
  int n = fmt17(buf, v);
  if (n > 0 && !(v > -1e-4 && v < 1e-4) && !(v <= -1e16 || v >= 1e16)) {
    /* fixed notation (exponent -4 to 16): add ".0" to an integer */
    if (memchr(buf, '.', (size_t)n) == NULL) {
      buf[n++] = '.';
      buf[n++] = '0';
      buf[n] = '\0';
    }
    return (size_t)n;
  }
  if (n == 0)
    n = (int)jw_format_g17(buf, v);
  if (n == 0) { /* cannot happen for a double; be safe */
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

void jw_init_sink(struct jw *w, size_t chunk,
                  void (*sink)(void *cls, const char *text, size_t n), void *cls)
{
  jw_init(w, chunk);
  w->sink = sink;
  w->sink_cls = cls;
}

int jw_flush(struct jw *w)
{
  if (w->oom)
    return -1;
  if (w->sink != NULL && w->len > 0)
    w->sink(w->sink_cls, w->buf, w->len);
  w->len = 0;
  return 0;
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
