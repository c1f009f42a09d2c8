/*
 * test_jsonr.c -- the quick body reader against jansson, its reference.
 *
 * jsonr_parse must either give up (NULL, and jansson then parses) or build
 * exactly the tree json_loadb(JSON_REJECT_DUPLICATES) builds: the same
 * types (an integer is never a real), the same values, bit for bit.  It
 * must never accept a body jansson refuses.  Checked on hand-picked edge
 * cases (each named), on real query bodies the daemon takes, and on about
 * 200,000 random bodies and byte-level mutations of them.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "aced/jsonr.h"
#include "aced/limits.h"
#include "tap.h"

static uint64_t rng = 0x2545f4914f6cdd1dULL;
static uint64_t next(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Same types and values all the way down, reals bit for bit. */
static int same_tree(const json_t *a, const json_t *b)
{
  if (json_typeof(a) != json_typeof(b))
    return 0;
  switch (json_typeof(a)) {
  case JSON_OBJECT: {
    const char *k;
    json_t *v;
    if (json_object_size(a) != json_object_size(b))
      return 0;
    json_object_foreach((json_t *)a, k, v) {
      json_t *w = json_object_get(b, k);
      if (w == NULL || !same_tree(v, w))
        return 0;
    }
    return 1;
  }
  case JSON_ARRAY:
    if (json_array_size(a) != json_array_size(b))
      return 0;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!same_tree(json_array_get(a, i), json_array_get(b, i)))
        return 0;
    return 1;
  case JSON_REAL: {
    double x = json_real_value(a), y = json_real_value(b);
    return memcmp(&x, &y, sizeof x) == 0;
  }
  default:
    return json_equal((json_t *)a, (json_t *)b);
  }
}

enum verdict { SAME, GAVE_UP, WRONG_TREE, ACCEPTED_BAD };

static enum verdict judge(const char *s, size_t n)
{
  json_t *quick = jsonr_parse(s, n);
  json_t *ref = json_loadb(s, n, JSON_REJECT_DUPLICATES, NULL);
  enum verdict v;
  if (quick == NULL)
    v = GAVE_UP;
  else if (ref == NULL)
    v = ACCEPTED_BAD;
  else
    v = same_tree(quick, ref) ? SAME : WRONG_TREE;
  json_decref(quick);
  json_decref(ref);
  return v;
}

/* Bodies the reader must take itself (the hot path depends on it). */
static const char *const taken[] = {
    "{\"output\":\"y1\",\"inputs\":[[0.2,0.7,0.4,0.9]],\"estimator\":\"taylor\",\"num\":100}",
    " \t\r\n{ \"a\" : [ 1 , -2 , 3.5e-3 , -0.0 , 0 , 1E+2 , 7e0 ] } \n",
    "{}",
    "{\"\":null,\"t\":true,\"f\":false,\"o\":{},\"e\":[]}",
    "{\"inputs\":[[[0.5],[1.5]],[[2],[3]]],\"all_timesteps\":true}",
    "{\"big\":9223372036854775807,\"small\":-9223372036854775808}",
    "{\"tiny\":4e-320,\"under\":1e-400,\"max\":1.7976931348623157e308}",
    "{\"del\":\"\x7f\",\"sym\":\"a/b c~!@#$%^&*()[]{}:,\"}",
};

/* Bodies jansson refuses: the reader must give up on every one. */
static const char *const refused[] = {
    "", "{", "}", "{\"a\":1,}", "{\"a\":1 \"b\":2}", "{\"a\" 1}", "{a:1}", "{\"a\":01}",
    "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":1e+}", "{\"a\":-}", "{\"a\":+1}",
    "{\"a\":1}x", "{\"a\":1}{}", "{\"a\":tru}", "{\"a\":truex}", "{\"a\":nul}",
    "{\"a\":1,\"a\":2}", "{\"a\":[1,]}", "{\"a\":[,1]}", "{\"a\":1e400}",
    "{\"a\":-1e400}", "{\"a\":9223372036854775808}", "{\"a\":-9223372036854775809}",
    "{\"a\":\"x\ny\"}", "{\"a\":\"unterminated}", "{\"a\":NaN}", "{\"a\":Infinity}",
    "{\"a\":0x10}", "{\"a\":1 2}", "{\"a\":[1 2]}",
};

/* Bodies jansson takes that the reader leaves to it (outside its subset). */
static const char *const left[] = {
    "[1,2]",                           /* not an object: dispatch says so */
    "{\"a\":\"\\u00e9\"}",             /* escapes */
    "{\"a\":\"caf\xc3\xa9\"}",         /* UTF-8 */
    "{\"a\":[[[[[[[[[1]]]]]]]]]}",     /* deeper than ACED_JSONR_DEPTH_MAX */
    "{\"a\":0.10000000000000000000000000000000000000000000000000000000000000001}",
};

/* A body as a one-line TAP description. */
static const char *shown(const char *s)
{
  static char out[200];
  size_t j = 0;
  for (; *s != '\0' && j + 5 < sizeof out; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c >= 0x7f || c == '#')
      j += (size_t)snprintf(out + j, sizeof out - j, "\\x%02x", c);
    else
      out[j++] = (char)c;
  }
  out[j] = '\0';
  return out;
}

static void edge_cases(void)
{
  for (size_t i = 0; i < sizeof taken / sizeof *taken; i++)
    tap_ok(judge(taken[i], strlen(taken[i])) == SAME, "taken and equal to jansson: %s", shown(taken[i]));
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
    tap_ok(judge(refused[i], strlen(refused[i])) == GAVE_UP, "gives up where jansson refuses: %s",
           shown(refused[i]));
  for (size_t i = 0; i < sizeof left / sizeof *left; i++) {
    json_t *ref = json_loadb(left[i], strlen(left[i]), JSON_REJECT_DUPLICATES, NULL);
    tap_ok(ref != NULL && judge(left[i], strlen(left[i])) == GAVE_UP,
           "jansson takes it, the reader leaves it: %s", shown(left[i]));
    json_decref(ref);
  }
  /* a NUL byte inside the length: jansson refuses it */
  static const char nul[] = "{\"a\":1}\0";
  tap_ok(judge(nul, sizeof nul - 1) == GAVE_UP, "gives up on a NUL byte after the object");
  /* the buffer need not be terminated: a number at the very end of it */
  char unterminated[] = "{\"a\":[12345]}XXXX";
  tap_ok(judge(unterminated, 13) == SAME, "reads only len bytes of an unterminated buffer");
  /* integers stay integers, reals stay reals */
  json_t *t = jsonr_parse("{\"i\":2,\"r\":2.0,\"e\":2e0}", 23);
  tap_ok(t != NULL && json_is_integer(json_object_get(t, "i")) &&
             json_is_real(json_object_get(t, "r")) && json_is_real(json_object_get(t, "e")),
         "2 is an integer, 2.0 and 2e0 are reals");
  json_decref(t);
  /* the size limit */
  size_t n = ACED_JSONR_BYTES_MAX + 16;
  char *big = malloc(n + 1);
  memset(big, ' ', n);
  memcpy(big, "{\"a\":1}", 7);
  tap_ok(jsonr_parse(big, n) == NULL, "a body over ACED_JSONR_BYTES_MAX goes to jansson");
  tap_ok(judge(big, ACED_JSONR_BYTES_MAX) == SAME, "a body of exactly the limit is read");
  free(big);
}

/* ---- random bodies ---- */
struct buf {
  char s[8192];
  size_t n;
};
static void put(struct buf *b, const char *s)
{
  size_t k = strlen(s);
  if (b->n + k < sizeof b->s) {
    memcpy(b->s + b->n, s, k);
    b->n += k;
  }
}
static void ws(struct buf *b)
{
  static const char *const sp[] = {"", "", "", " ", "\n", "\t", "\r\n  "};
  put(b, sp[next() % 7]);
}
static void number(struct buf *b)
{
  char t[64];
  switch (next() % 6) {
  case 0:
    snprintf(t, sizeof t, "%lld", (long long)(next() % 2000001) - 1000000);
    break;
  case 1:
    snprintf(t, sizeof t, "%.17g", ((double)(next() >> 11) / 9007199254740992.0 - 0.5) * 10);
    break;
  case 2:
    snprintf(t, sizeof t, "%.*e", (int)(next() % 18), ldexp((double)(next() >> 11), (int)(next() % 200) - 150));
    break;
  case 3:
    snprintf(t, sizeof t, "%s%d.%d", next() % 2 ? "-" : "", (int)(next() % 10), (int)(next() % 1000));
    break;
  case 4: {
    uint64_t bits = next();
    double d;
    memcpy(&d, &bits, sizeof d);
    if (!isfinite(d))
      d = 1.5;
    snprintf(t, sizeof t, "%.17g", d);
    break;
  }
  default:
    snprintf(t, sizeof t, "%s%lluE%s%d", next() % 2 ? "-" : "", (unsigned long long)(next() % 100),
             next() % 2 ? "+" : "-", (int)(next() % 30));
  }
  put(b, t);
}
static void string(struct buf *b)
{
  static const char alpha[] = "abcxyz_019 -/.:,{}[]\"";
  char t[16];
  size_t k = next() % 8, j = 0;
  t[j++] = '"';
  for (size_t i = 0; i < k; i++) {
    char c = alpha[next() % (sizeof alpha - 2)]; /* never the quote itself */
    t[j++] = c;
  }
  t[j++] = '"';
  t[j] = '\0';
  put(b, t);
}
static void value(struct buf *b, int depth)
{
  unsigned r = (unsigned)(next() % (depth > 5 ? 6 : 9));
  switch (r) {
  case 0:
  case 1:
  case 2:
    number(b);
    break;
  case 3:
    string(b);
    break;
  case 4:
    put(b, next() % 2 ? "true" : "false");
    break;
  case 5:
    put(b, "null");
    break;
  case 6:
  case 7: {
    put(b, "[");
    ws(b);
    int k = (int)(next() % 5);
    for (int i = 0; i < k; i++) {
      if (i)
        put(b, ",");
      ws(b);
      value(b, depth + 1);
      ws(b);
    }
    put(b, "]");
    break;
  }
  default: {
    put(b, "{");
    int k = (int)(next() % 4);
    for (int i = 0; i < k; i++) {
      if (i)
        put(b, ",");
      ws(b);
      string(b); /* duplicate keys happen: the reader must give up on them */
      ws(b);
      put(b, ":");
      ws(b);
      value(b, depth + 1);
    }
    ws(b);
    put(b, "}");
  }
  }
}

static void random_bodies(void)
{
  long counts[4] = {0, 0, 0, 0}, mutated[4] = {0, 0, 0, 0};
  static const char noise[] = "{}[],:\"\\ -+.eE0123456789tfnaxu\x01\x80\xc3";
  for (int i = 0; i < 100000; i++) {
    struct buf b = {.n = 0};
    ws(&b);
    put(&b, "{");
    int k = (int)(next() % 5);
    for (int j = 0; j < k; j++) {
      if (j)
        put(&b, ",");
      ws(&b);
      string(&b);
      put(&b, ":");
      ws(&b);
      value(&b, 1);
    }
    put(&b, "}");
    ws(&b);
    counts[judge(b.s, b.n)]++;
    /* one to three byte edits: insert, delete or replace */
    int edits = 1 + (int)(next() % 3);
    for (int e = 0; e < edits && b.n > 0; e++) {
      size_t at = next() % b.n;
      char c = noise[next() % (sizeof noise - 1)];
      switch (next() % 3) {
      case 0:
        if (b.n + 1 < sizeof b.s) {
          memmove(b.s + at + 1, b.s + at, b.n - at);
          b.s[at] = c;
          b.n++;
        }
        break;
      case 1:
        memmove(b.s + at, b.s + at + 1, b.n - at - 1);
        b.n--;
        break;
      default:
        b.s[at] = c;
      }
    }
    mutated[judge(b.s, b.n)]++;
  }
  tap_diag("generated: %ld same, %ld left to jansson; mutated: %ld same, %ld left", counts[SAME],
           counts[GAVE_UP], mutated[SAME], mutated[GAVE_UP]);
  tap_ok(counts[WRONG_TREE] == 0 && mutated[WRONG_TREE] == 0,
         "never a tree other than jansson's (%ld, %ld)", counts[WRONG_TREE], mutated[WRONG_TREE]);
  tap_ok(counts[ACCEPTED_BAD] == 0 && mutated[ACCEPTED_BAD] == 0,
         "never accepts what jansson refuses (%ld, %ld)", counts[ACCEPTED_BAD],
         mutated[ACCEPTED_BAD]);
  /* the generator makes duplicate keys and deep nesting now and then, so
   * not all are taken; most must be, or the hot path gains nothing */
  tap_ok(counts[SAME] > 80000, "the reader takes most plain bodies itself (%ld of 100000)",
         counts[SAME]);
  tap_ok(mutated[SAME] > 1000 && mutated[GAVE_UP] > 1000,
         "mutations give both outcomes (%ld taken, %ld left)", mutated[SAME], mutated[GAVE_UP]);
}

/* Reals the reader converts without strtod (up to 53 bits of digits,
 * powers of ten up to 10^22) and just past those bounds, where it must
 * hand over to strtod: bit for bit strtod's value either way. */
static void fast_path_numbers(void)
{
  long bad = 0, n = 0;
  for (int i = 0; i < 300000; i++) {
    char num[64], body[80];
    int nd = 1 + (int)(next() % 18), point = (int)(next() % (nd + 1));
    size_t k = 0;
    if (next() % 2)
      num[k++] = '-';
    for (int d = 0; d < nd; d++) {
      if (d == point && d > 0)
        num[k++] = '.';
      /* near 2^53 = 9007199254740992 now and then */
      num[k++] = (char)('0' + (i % 7 == 0 && nd == 16 ? "9007199254740992"[d] - '0' + (d == 15 ? (int)(next() % 3) - 1 : 0) : (int)(next() % 10)));
      if (d == 0 && num[k - 1] == '0' && nd > 1 && point != 1)
        num[k - 1] = '1'; /* no leading zeros */
    }
    if (point == nd || point == 0)
      k += (size_t)snprintf(num + k, sizeof num - k, ".5");
    if (next() % 2)
      k += (size_t)snprintf(num + k, sizeof num - k, "e%d", (int)(next() % 51) - 25);
    num[k] = '\0';
    int bl = snprintf(body, sizeof body, "{\"a\":%s}", num);
    json_t *t = jsonr_parse(body, (size_t)bl);
    double want = strtod(num, NULL), got = t ? json_real_value(json_object_get(t, "a")) : NAN;
    n++;
    if (t == NULL || !json_is_real(json_object_get(t, "a")) || memcmp(&want, &got, sizeof want) != 0) {
      if (bad++ < 5)
        tap_diag("%s: strtod %.17g, reader %.17g", num, want, got);
    }
    json_decref(t);
  }
  tap_ok(bad == 0, "%ld random decimals near the fast path's bounds read as strtod reads them (%ld differ)", n, bad);
}

/* jsonr_get finds what json_object_get finds, by scan or by hash. */
static void lookups(void)
{
  int bad = 0;
  for (int size = 0; size <= 12; size++) {
    json_t *o = json_object();
    char key[16];
    for (int i = 0; i < size; i++) {
      snprintf(key, sizeof key, "k%d", i);
      json_object_set_new(o, key, json_integer(i));
    }
    for (int i = 0; i < size + 2; i++) {
      snprintf(key, sizeof key, "k%d", i);
      bad += jsonr_get(o, key) != json_object_get(o, key);
    }
    bad += jsonr_get(o, "") != NULL || jsonr_get(o, "k") != NULL;
    json_decref(o);
  }
  json_t *a = json_array();
  bad += jsonr_get(a, "k0") != NULL || jsonr_get(NULL, "k0") != NULL;
  json_decref(a);
  tap_ok(bad == 0, "jsonr_get agrees with json_object_get on objects of 0 to 12 keys (%d differ)", bad);
}

int main(void)
{
  edge_cases();
  lookups();
  fast_path_numbers();
  random_bodies();
  return tap_done();
}
