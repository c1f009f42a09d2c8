/*
 * test_jsonw.c -- the hot-path JSON writer against jansson, its reference:
 * every real, string and integer it writes must be byte for byte what
 * json_dumps(JSON_COMPACT | JSON_REAL_PRECISION(17)) writes, and every
 * real must read back (strtod) as the same double.
 */
#include "config.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "aced/jsonw.h"
#include "tap.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* jansson's text for one value (consumed). */
static char *ref_dump(json_t *v)
{
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
  json_decref(v);
  return s;
}

static char *jw_one_real(double v)
{
  struct jw w;
  jw_init(&w, 8); /* small on purpose: growth is exercised */
  jw_real(&w, v);
  return jw_finish(&w, NULL);
}

static int check_real(double v, int *roundtrip_ok)
{
  char *got = jw_one_real(v);
  char *want = ref_dump(json_real(v));
  int same = got && want && strcmp(got, want) == 0;
  if (!same)
    tap_diag("real %a: jw '%s', jansson '%s'", v, got ? got : "(null)", want ? want : "(null)");
  if (got && strtod(got, NULL) != v)
    *roundtrip_ok = 0;
  free(got);
  free(want);
  return same;
}

static void test_reals(void)
{
  static const double special[] = {0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 10.0, 100.0, 1e15, 1e16,
                                   1e17, 1e20, 1e21, 1e22, 1e100, 1e300, 1e-5, 1e-4, 1e-7,
                                   1.5e-300, 5e-324, DBL_MIN, DBL_MAX, -DBL_MAX, 0.1, 0.2,
                                   1.0 / 3.0, 123456789012345678.0, 9007199254740993.0,
                                   0.14246719643022265, 2.8700000000000001, -7.25e-10};
  int all = 1, rt = 1;
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
    all &= check_real(special[i], &rt);
  tap_ok(all, "special reals are written as jansson writes them");
  tap_ok(rt, "special reals read back as the same double");

  all = 1;
  rt = 1;
  int n = 0;
  for (int i = 0; i < 200000; i++) {
    uint64_t bits = next();
    double v;
    memcpy(&v, &bits, sizeof v);
    if (!isfinite(v))
      continue;
    n++;
    all &= check_real(v, &rt);
    if (!all)
      break;
  }
  tap_ok(all, "%d random bit patterns are written as jansson writes them", n);
  tap_ok(rt, "and every one reads back as the same double");

  all = 1;
  rt = 1;
  for (int i = 0; i < 100000 && all; i++) {
    /* the values replies carry: moderate magnitudes, both signs */
    double v = ((double)(next() >> 11) / 9007199254740992.0 - 0.5) * pow(10.0, (int)(next() % 13) - 6);
    all &= check_real(v, &rt);
  }
  tap_ok(all && rt, "100000 reply-like reals match jansson and round-trip");

  char b[40];
  tap_ok(jw_format_real(b, NAN) == 4 && strcmp(b, "null") == 0, "NaN is written as null");
  tap_ok(jw_format_real(b, INFINITY) == 4 && strcmp(b, "null") == 0 &&
             jw_format_real(b, -INFINITY) == 4,
         "infinities are written as null");
  tap_ok(jw_format_real(b, 3.0) == 3 && strcmp(b, "3.0") == 0, "3 is written 3.0");
  tap_ok(jw_format_real(b, 1e20) == 4 && strcmp(b, "1e20") == 0, "1e20 has no '+' or padding");
  tap_ok(jw_format_real(b, ldexp(1.0, -17)) == 16 && strcmp(b, "7.62939453125e-6") == 0,
         "2^-17 is 7.62939453125e-6: no exponent padding");
}

/* The printf-free "%.17g" against glibc's, byte for byte. */
static int same_as_printf(double v)
{
  char got[40], want[40];
  jw_format_g17(got, v);
  snprintf(want, sizeof want, "%.17g", v);
  if (strcmp(got, want) != 0) {
    tap_diag("%%.17g of %a: fast '%s', printf '%s'", v, got, want);
    return 0;
  }
  return 1;
}

static void test_g17(void)
{
  int all = 1;
  /* log-uniform over the fast range and past both of its ends */
  for (int i = 0; i < 1000000 && all; i++) {
    double u = (double)(next() >> 11) / 9007199254740992.0;
    double v = pow(10.0, -8.0 + 26.0 * u);
    all = same_as_printf(next() & 1 ? -v : v);
  }
  tap_ok(all, "1e6 log-uniform reals in [1e-8, 1e18]: as glibc prints them");

  /* short significands: their exact decimal expansions end early, so
   * ties (a digit 5 then zeros past the 17th) happen, and round half to
   * even must agree */
  all = 1;
  int n = 0;
  for (int bits = 1; bits <= 53 && all; bits++)
    for (int i = 0; i < 4000 && all; i++) {
      uint64_t m = (next() >> (64 - bits)) | 1;
      int e = (int)(next() % 120) - 80;
      double v = ldexp((double)m, e);
      if (v < 1e-7 || v > 1e17)
        continue;
      n++;
      all = same_as_printf(v);
    }
  tap_ok(all, "%d reals with 1- to 53-bit significands (ties included): as glibc prints them",
         n);

  /* around every power of ten in range, where the exponent and the
   * notation change */
  all = 1;
  for (int p = -7; p <= 17 && all; p++) {
    double t = pow(10.0, p);
    double v = t;
    for (int k = 0; k < 64 && all; k++, v = nextafter(v, 0.0))
      all = same_as_printf(v);
    v = t;
    for (int k = 0; k < 64 && all; k++, v = nextafter(v, INFINITY))
      all = same_as_printf(v);
  }
  tap_ok(all, "the 128 doubles around each power of ten from 1e-7 to 1e17: as glibc prints them");

  /* 2^52 and above have no fraction bits: printf's path (UBSan checks the
   * fast path never shifts by a negative amount) */
  all = same_as_printf(1e-6) && same_as_printf(4503599627370496.0) &&
        same_as_printf(4503599627370495.5) && same_as_printf(9007199254740991.0) &&
        same_as_printf(9007199254740992.0) && same_as_printf(0.5) && same_as_printf(-0.0) &&
        same_as_printf(1.0 / 3.0) && same_as_printf(2.0 / 3.0) && same_as_printf(0.1) &&
        same_as_printf(123.456) && same_as_printf(99999999999999999.0);
  tap_ok(all, "edge values of the fast range: as glibc prints them");
}

static void test_strings(void)
{
  static const char *const fixed[] = {"", "x0", "a\"b", "back\\slash", "slash/ok",
                                      "tab\tnl\ncr\rbs\bff\f", "\x01\x1f\x7f",
                                      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                      "taylor (Eq. 4) is unreliable for output 'y1'"};
  int all = 1;
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    struct jw w;
    jw_init(&w, 1);
    jw_str(&w, fixed[i]);
    char *got = jw_finish(&w, NULL);
    char *want = ref_dump(json_string(fixed[i]));
    if (!(got && want && strcmp(got, want) == 0)) {
      tap_diag("string %zu: jw '%s', jansson '%s'", i, got ? got : "(null)",
               want ? want : "(null)");
      all = 0;
    }
    free(got);
    free(want);
  }
  tap_ok(all, "fixed strings (quotes, controls, UTF-8, '/') are escaped as jansson does");

  /* random ASCII-and-control strings, which are valid UTF-8 */
  all = 1;
  for (int i = 0; i < 20000 && all; i++) {
    char s[64];
    int n = (int)(next() % 63);
    for (int k = 0; k < n; k++)
      s[k] = (char)(1 + next() % 127);
    s[n] = '\0';
    struct jw w;
    jw_init(&w, 4);
    jw_str(&w, s);
    char *got = jw_finish(&w, NULL);
    char *want = ref_dump(json_string(s));
    all = got && want && strcmp(got, want) == 0;
    json_t *back = got ? json_loads(got, JSON_DECODE_ANY, NULL) : NULL;
    all = all && json_is_string(back) && strcmp(json_string_value(back), s) == 0;
    json_decref(back);
    free(got);
    free(want);
  }
  tap_ok(all, "20000 random strings match jansson and parse back to themselves");
}

static void test_ints_and_composition(void)
{
  static const long long v[] = {0, 1, -1, 9, 10, 42, -42, 1000000, INT_MAX, INT_MIN,
                                LLONG_MAX, LLONG_MIN};
  int all = 1;
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    struct jw w;
    jw_init(&w, 2);
    jw_int(&w, v[i]);
    char *got = jw_finish(&w, NULL);
    char want[32];
    snprintf(want, sizeof want, "%lld", v[i]);
    all &= got != NULL && strcmp(got, want) == 0;
    free(got);
  }
  tap_ok(all, "integers, LLONG_MIN included, are written as %%lld");

  struct jw w;
  jw_init(&w, 0);
  jw_lit(&w, "{\"a\":[");
  for (int i = 0; i < 1000; i++) {
    if (i)
      jw_raw(&w, ",", 1);
    jw_real(&w, i * 0.25);
  }
  jw_lit(&w, "],\"s\":");
  jw_str(&w, "x\"y");
  jw_lit(&w, "}");
  size_t len = 0;
  char *s = jw_finish(&w, &len);
  json_t *j = s ? json_loads(s, 0, NULL) : NULL;
  tap_ok(j != NULL && len == strlen(s) && json_array_size(json_object_get(j, "a")) == 1000 &&
             json_real_value(json_array_get(json_object_get(j, "a"), 999)) == 999 * 0.25 &&
             strcmp(json_string_value(json_object_get(j, "s")), "x\"y") == 0,
         "a document grown past its first buffer parses back with every value");
  json_decref(j);
  free(s);
  tap_ok(w.buf == NULL && w.len == 0, "jw_finish leaves the writer empty");
}

/* Times: jw_ms writes whole microseconds as milliseconds with three
 * decimals; jw_fix_ms rewrites them so in jansson's text, and nothing
 * else. */
static char *fix(const char *in)
{
  size_t len = strlen(in);
  char *t = strdup(in);
  return jw_fix_ms(t, &len);
}

static void test_ms(void)
{
  struct jw w;
  jw_init(&w, 0);
  jw_ms(&w, 87911);
  jw_raw(&w, ",", 1);
  jw_ms(&w, 72);
  jw_raw(&w, ",", 1);
  jw_ms(&w, 12000);
  jw_raw(&w, ",", 1);
  jw_ms(&w, 0);
  char *s = jw_finish(&w, NULL);
  tap_ok(s && strcmp(s, "87.911,0.072,12.000,0.000") == 0, "jw_ms: 87.911,0.072,12.000,0.000 (%s)",
         s ? s : "null");
  free(s);

  /* What jansson writes for 87911 us / 1e3. */
  json_t *j = json_pack("{s:{s:f,s:f},s:f,s:s,s:f}", "meta", "elapsed_ms", 87911 / 1e3,
                        "queued_ms", 0.1, "value", 87911 / 1e3, "note", "x\"elapsed_ms\":1.23456",
                        "y_elapsed_ms", 1.23456);
  char *d = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
  json_decref(j);
  tap_ok(d && strstr(d, "87.911000000000001") != NULL, "jansson writes 87.911 as 87.911000000000001");
  char *f = d ? fix(d) : NULL;
  free(d);
  tap_ok(f && strstr(f, "\"elapsed_ms\":87.911,") != NULL && strstr(f, "\"queued_ms\":0.100}") != NULL,
         "jw_fix_ms: elapsed_ms and queued_ms to the microsecond (%s)", f ? f : "null");
  tap_ok(f && strstr(f, "\"value\":87.911000000000001") != NULL &&
             strstr(f, "x\\\"elapsed_ms\\\":1.23456") != NULL &&
             strstr(f, "\"y_elapsed_ms\":1.23456") != NULL,
         "jw_fix_ms: other reals, strings and other keys are left as they are");
  free(f);
  char *g = fix("{\"a\":1}");
  tap_ok(g && strcmp(g, "{\"a\":1}") == 0, "jw_fix_ms: text without times is unchanged");
  free(g);
  g = fix("{\"elapsed_ms\":0.0,\"queued_ms\":null,\"x\":[{\"elapsed_ms\":1234567.8904}]}");
  tap_ok(g && strcmp(g, "{\"elapsed_ms\":0.000,\"queued_ms\":null,\"x\":[{\"elapsed_ms\":1234567.890}]}") == 0,
         "jw_fix_ms: zero, null and nested times (%s)", g ? g : "null");
  free(g);
}

int main(void)
{
  test_ms();
  test_reals();
  test_g17();
  test_strings();
  test_ints_and_composition();
  return tap_done();
}
