/*
 * jsonr.c -- a quick reader for the plain JSON of query bodies (see
 * jsonr.h for what it takes and why it hands everything else to jansson).
 *
 * The rules below follow jansson 2.14's lexer where it accepts: whitespace
 * is space, tab, newline and carriage return; a number without '.', 'e'
 * or 'E' is an integer (strtoll, refused on overflow), any other a real
 * (strtod, refused when it overflows to infinity, kept when it underflows);
 * a leading zero may not be followed by a digit; a fraction and an
 * exponent need at least one digit.  Where this reader is unsure it does
 * not guess: it returns NULL.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "aced/jsonr.h"
#include "aced/limits.h"

struct reader {
  const char *p, *end;
};

static void skip_ws(struct reader *r)
{
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
    r->p++;
}

static int is_digit(char c)
{
  return c >= '0' && c <= '9';
}

/* A string's bytes between the quotes: ASCII without control characters
 * (jansson refuses those) and without escapes.
 * On success *s and *n give them and r->p is past the closing quote. */
static int read_plain_string(struct reader *r, const char **s, size_t *n)
{
  const char *q = ++r->p; /* past the opening quote */
  while (q < r->end && *q != '"') {
    unsigned char c = (unsigned char)*q;
    if (c < 0x20 || c >= 0x80 || c == '\\')
      return -1;
    q++;
  }
  if (q >= r->end)
    return -1;
  *s = r->p;
  *n = (size_t)(q - r->p);
  r->p = q + 1;
  return 0;
}

/* A decimal number [-]digits[.digits][e[+-]digits], already checked by
 * read_number, as a double without strtod when that is exact by
 * construction (Clinger's fast path): its digits, read as an integer m,
 * fit in 53 bits and its power of ten 10^k has |k| <= 22, so m and 10^|k|
 * are both exact doubles and one IEEE multiplication or division rounds
 * their product or quotient correctly, as strtod does.  Dashboards send
 * numbers like 0.25 and 1.5e-3, which all take it.  Returns 0 when the
 * number is outside it (the caller uses strtod). */
static int fast_decimal(const char *p, const char *end, double *out)
{
  static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  const uint64_t two53 = (uint64_t)1 << 53;
  int neg = *p == '-';
  p += neg;
  uint64_t m = 0;
  int k = 0;
  for (; p < end && is_digit(*p); p++) {
    if (m >= two53 / 10)
      return 0;
    m = m * 10 + (uint64_t)(*p - '0');
  }
  if (p < end && *p == '.')
    for (p++; p < end && is_digit(*p); p++, k--) {
      if (m >= two53 / 10)
        return 0;
      m = m * 10 + (uint64_t)(*p - '0');
    }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    int eneg = *p == '-', x = 0;
    p += *p == '-' || *p == '+';
    for (; p < end && is_digit(*p); p++) {
      if (x > 1000)
        return 0;
      x = x * 10 + (*p - '0');
    }
    k += eneg ? -x : x;
  }
  if (k < -22 || k > 22)
    return 0;
  double d = (double)m;
  d = k < 0 ? d / pow10[-k] : d * pow10[k];
  *out = neg ? -d : d;
  return 1;
}

/* The JSON number at [p, end): its value as jansson would hold it (an
 * integer, or a real), or 0 when it is malformed, out of range, or longer
 * than ACED_JSONR_NUMBER_MAX bytes; *stop is where it ends. */
static int scan_number(const char *p, const char *end, const char **stop, int *real,
                       long long *iv, double *dv)
{
  const char *start = p, *q = p;
  *real = 0;
  if (q < end && *q == '-')
    q++;
  if (q >= end || !is_digit(*q))
    return 0;
  if (*q == '0') {
    q++;
    if (q < end && is_digit(*q))
      return 0;
  } else {
    while (q < end && is_digit(*q))
      q++;
  }
  if (q < end && *q == '.') {
    *real = 1;
    q++;
    if (q >= end || !is_digit(*q))
      return 0;
    while (q < end && is_digit(*q))
      q++;
  }
  if (q < end && (*q == 'e' || *q == 'E')) {
    *real = 1;
    q++;
    if (q < end && (*q == '+' || *q == '-'))
      q++;
    if (q >= end || !is_digit(*q))
      return 0;
    while (q < end && is_digit(*q))
      q++;
  }
  *stop = q;
  if (*real && fast_decimal(start, q, dv))
    return 1;
  /* strtod and strtoll need a terminated copy: the buffer is not ours to
   * write and need not end in a NUL */
  char tok[ACED_JSONR_NUMBER_MAX + 1];
  size_t n = (size_t)(q - start);
  if (n > ACED_JSONR_NUMBER_MAX)
    return 0;
  memcpy(tok, start, n);
  tok[n] = '\0';
  char *e;
  errno = 0;
  if (*real) {
    *dv = strtod(tok, &e);
    return e == tok + n && !(isinf(*dv) && errno == ERANGE);
  }
  *iv = strtoll(tok, &e, 10);
  return e == tok + n && errno != ERANGE;
}

static json_t *read_number(struct reader *r)
{
  const char *stop;
  int real;
  long long iv;
  double dv;
  if (!scan_number(r->p, r->end, &stop, &real, &iv, &dv))
    return NULL;
  r->p = stop;
  return real ? json_real(dv) : json_integer((json_int_t)iv);
}

const char *jsonr_number(const char *p, const char *end, double *v)
{
  const char *stop;
  int real;
  long long iv;
  if (!scan_number(p, end, &stop, &real, &iv, v))
    return NULL;
  if (!real)
    *v = (double)(json_int_t)iv;
  return stop;
}

static json_t *read_value(struct reader *r, int depth);

static json_t *read_array(struct reader *r, int depth)
{
  json_t *a = json_array();
  if (a == NULL)
    return NULL;
  r->p++; /* '[' */
  skip_ws(r);
  if (r->p < r->end && *r->p == ']') {
    r->p++;
    return a;
  }
  for (;;) {
    json_t *v = read_value(r, depth);
    if (v == NULL || json_array_append_new(a, v) != 0)
      goto fail;
    skip_ws(r);
    if (r->p >= r->end)
      goto fail;
    if (*r->p == ']') {
      r->p++;
      return a;
    }
    if (*r->p != ',')
      goto fail;
    r->p++;
    skip_ws(r);
  }
fail:
  json_decref(a);
  return NULL;
}

static json_t *read_object(struct reader *r, int depth)
{
  json_t *o = json_object();
  if (o == NULL)
    return NULL;
  r->p++; /* '{' */
  skip_ws(r);
  if (r->p < r->end && *r->p == '}') {
    r->p++;
    return o;
  }
  for (;;) {
    const char *key;
    size_t klen;
    if (r->p >= r->end || *r->p != '"' || read_plain_string(r, &key, &klen) != 0)
      goto fail;
    /* jansson refuses a repeated key under JSON_REJECT_DUPLICATES; let
     * it say so */
    if (json_object_getn(o, key, klen) != NULL)
      goto fail;
    skip_ws(r);
    if (r->p >= r->end || *r->p != ':')
      goto fail;
    r->p++;
    skip_ws(r);
    json_t *v = read_value(r, depth);
    if (v == NULL || json_object_setn_new_nocheck(o, key, klen, v) != 0)
      goto fail;
    skip_ws(r);
    if (r->p >= r->end)
      goto fail;
    if (*r->p == '}') {
      r->p++;
      return o;
    }
    if (*r->p != ',')
      goto fail;
    r->p++;
    skip_ws(r);
  }
fail:
  json_decref(o);
  return NULL;
}

static int literal(struct reader *r, const char *word, size_t n)
{
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
    return 0;
  r->p += n;
  return 1;
}

/* A value at r->p (whitespace before it already skipped). */
static json_t *read_value(struct reader *r, int depth)
{
  if (r->p >= r->end)
    return NULL;
  switch (*r->p) {
  case '{':
    return depth < ACED_JSONR_DEPTH_MAX ? read_object(r, depth + 1) : NULL;
  case '[':
    return depth < ACED_JSONR_DEPTH_MAX ? read_array(r, depth + 1) : NULL;
  case '"': {
    const char *s;
    size_t n;
    if (read_plain_string(r, &s, &n) != 0)
      return NULL;
    return json_stringn_nocheck(s, n);
  }
  case 't':
    return literal(r, "true", 4) ? json_true() : NULL;
  case 'f':
    return literal(r, "false", 5) ? json_false() : NULL;
  case 'n':
    return literal(r, "null", 4) ? json_null() : NULL;
  default:
    return read_number(r);
  }
}

json_t *jsonr_parse(const char *buf, size_t len)
{
  if (len > ACED_JSONR_BYTES_MAX)
    return NULL;
  struct reader r = {buf, buf + len};
  skip_ws(&r);
  if (r.p >= r.end || *r.p != '{')
    return NULL;
  json_t *v = read_value(&r, 0);
  if (v == NULL)
    return NULL;
  skip_ws(&r);
  if (r.p != r.end) {
    json_decref(v);
    return NULL;
  }
  return v;
}

json_t *jsonr_get(const json_t *obj, const char *key)
{
  if (json_object_size(obj) > 8)
    return json_object_get(obj, key);
  for (void *it = json_object_iter((json_t *)obj); it != NULL;
       it = json_object_iter_next((json_t *)obj, it)) {
    const char *k = json_object_iter_key(it);
    if (k[0] == key[0] && strcmp(k, key) == 0)
      return json_object_iter_value(it);
  }
  return NULL;
}
