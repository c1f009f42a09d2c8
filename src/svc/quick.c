/*
 * quick.c -- cached attributions answered from the request's bytes.
 *
 * A dashboard asks the same question over and over with new rows: the
 * same output, features and parameters, other "inputs".  The usual path
 * parses every body into a jansson tree (some twenty allocations), checks
 * it field by field, resolves the output and the features, looks the
 * regressors up and writes a reply of which only the rows and
 * meta.elapsed_ms change.  That is most of aced's own CPU per cached
 * request (issue #11).
 *
 * So each HTTP thread remembers, for a few recent queries, the reply the
 * usual path gave (quick_learn, called by svc_cached_attributions): keyed
 * by the model's digest and the body as sent with the value of "inputs"
 * cut out.  A body that is byte for byte the same but for that value is
 * the same query: its other members were checked and resolved when the
 * reply was learnt, and they mean the same as long as the model (its
 * digest), the configured defaults and the regressors (the same summaries,
 * whose references the entry holds, so their addresses cannot be reused)
 * are the same; each is checked on every use.  The rows are then read
 * straight into doubles, strictly (arrays of exactly the model's number of
 * JSON numbers, as many rows as the route takes), and the reply is the
 * learnt one with new values and a new elapsed_ms: the same bytes the
 * usual path would write.  Anything else (another key, a malformed or
 * unusual body, a value the regressor overflows at) declines, and the
 * usual path answers, with its error if there is one.
 *
 * The table is per thread (no lock on the hot path), ACED_QUICK_SLOTS
 * entries mapped by hash; a thread frees its entries when it ends.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aced/clock.h"
#include "aced/jsonr.h"
#include "aced/jsonw.h"
#include "aced/limits.h"
#include "aced/metrics.h"
#include "svc/internal.h"

struct quick {
  uint64_t hash;
  char digest[72];
  char *key;           /* the body without the value of "inputs" */
  size_t key_len, cut; /* its length, and where that value was */
  struct query_params q, defaults;
  int o, nf, k;        /* output, features, the model's inputs per row */
  int *feats;
  struct reg_summary **regs; /* references held */
  char *text;                /* the reply learnt, and its parts */
  size_t len;
  struct reply_marks marks;
};

static pthread_key_t slots_key;
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;

static void quick_free(struct quick *e)
{
  if (e == NULL)
    return;
  for (int i = 0; i < e->nf; i++)
    regcache_summary_unref(e->regs[i]);
  free(e->regs);
  free(e->feats);
  free(e->key);
  free(e->text);
  free(e);
}

static void slots_free(void *p)
{
  struct quick **slots = p;
  for (int i = 0; i < ACED_QUICK_SLOTS; i++)
    quick_free(slots[i]);
  free(slots);
}

static void slots_init(void)
{
  pthread_key_create(&slots_key, slots_free);
}

/* This thread's table; created when `create`, else NULL until then. */
static struct quick **thread_slots(int create)
{
  pthread_once(&slots_once, slots_init);
  struct quick **slots = pthread_getspecific(slots_key);
  if (slots == NULL && create) {
    slots = calloc(ACED_QUICK_SLOTS, sizeof *slots);
    if (slots != NULL && pthread_setspecific(slots_key, slots) != 0) {
      free(slots);
      slots = NULL;
    }
  }
  return slots;
}

static int is_ws(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Past the string that starts at s[i] ('"'), escapes skipped; 0 if it
 * does not end. */
static size_t skip_string(const char *s, size_t n, size_t i)
{
  for (i++; i < n; i++)
    if (s[i] == '\\')
      i++;
    else if (s[i] == '"')
      return i + 1;
  return 0;
}

/* Past the value that starts at s[i]: a string, a balanced array or
 * object (strings inside skipped), or a literal or number (up to the next
 * delimiter).  0 if it does not end.  Not a validator: a body is only
 * answered here when its bytes around "inputs" are those of one the
 * usual path accepted. */
static size_t skip_value(const char *s, size_t n, size_t i)
{
  if (i >= n)
    return 0;
  if (s[i] == '"')
    return skip_string(s, n, i);
  if (s[i] == '[' || s[i] == '{') {
    int depth = 0;
    while (i < n) {
      if (s[i] == '"') {
        if ((i = skip_string(s, n, i)) == 0)
          return 0;
        continue;
      }
      if (s[i] == '[' || s[i] == '{')
        depth++;
      else if ((s[i] == ']' || s[i] == '}') && --depth == 0)
        return i + 1;
      i++;
    }
    return 0;
  }
  size_t j = i;
  while (j < n && !is_ws(s[j]) && s[j] != ',' && s[j] != ']' && s[j] != '}')
    j++;
  return j > i ? j : 0;
}

/* The value of the top-level member "inputs" of the object in s: [*vs,
 * *ve).  0, or -1 when s is not an object this scan follows or has not
 * exactly one "inputs". */
static int find_inputs(const char *s, size_t n, size_t *vs, size_t *ve)
{
  size_t i = 0;
  int found = 0;
  while (i < n && is_ws(s[i]))
    i++;
  if (i >= n || s[i++] != '{')
    return -1;
  for (;;) {
    while (i < n && is_ws(s[i]))
      i++;
    if (i >= n || s[i] != '"')
      return -1;
    size_t k0 = i + 1, k1 = skip_string(s, n, i);
    if (k1 == 0)
      return -1;
    int is_inputs = k1 - 1 - k0 == 6 && memcmp(s + k0, "inputs", 6) == 0;
    i = k1;
    while (i < n && is_ws(s[i]))
      i++;
    if (i >= n || s[i++] != ':')
      return -1;
    while (i < n && is_ws(s[i]))
      i++;
    size_t end = skip_value(s, n, i);
    if (end == 0)
      return -1;
    if (is_inputs) {
      if (found++)
        return -1;
      *vs = i;
      *ve = end;
    }
    i = end;
    while (i < n && is_ws(s[i]))
      i++;
    if (i < n && s[i] == ',') {
      i++;
      continue;
    }
    if (i >= n || s[i++] != '}')
      return -1;
    while (i < n && is_ws(s[i]))
      i++;
    return i == n && found ? 0 : -1;
  }
}

/* FNV-1a over the digest, the key's two parts and where they meet. */
static uint64_t key_hash(const char *digest, const char *a, size_t an, const char *b, size_t bn)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char *p = digest; *p; p++)
    h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
  for (size_t i = 0; i < an; i++)
    h = (h ^ (unsigned char)a[i]) * 0x100000001b3ULL;
  h = (h ^ an) * 0x100000001b3ULL;
  for (size_t i = 0; i < bn; i++)
    h = (h ^ (unsigned char)b[i]) * 0x100000001b3ULL;
  return h;
}

static int params_same(const struct query_params *a, const struct query_params *b)
{
  return a->estimator == b->estimator && a->num == b->num && a->max_order == b->max_order &&
         a->epsilon == b->epsilon && a->effect == b->effect;
}

/* The rows of "inputs" in [p, end), strictly: 1 to ACED_ATTR_ROWS_MAX
 * arrays of exactly k JSON numbers each, whitespace between tokens, into
 * x (rows x k, malloc'ed).  The number of rows, or 0 when they are
 * anything else. */
static size_t read_rows(const char *p, const char *end, int k, double **x)
{
  size_t rows = 0, cap = 0;
  *x = NULL;
  while (p < end && is_ws(*p))
    p++;
  if (p >= end || *p++ != '[')
    return 0;
  for (;;) {
    while (p < end && is_ws(*p))
      p++;
    if (p >= end || *p++ != '[' || rows == ACED_ATTR_ROWS_MAX)
      goto fail;
    if (rows == cap) {
      cap = cap ? 2 * cap : 4;
      double *nx = realloc(*x, sizeof(double) * cap * (size_t)k);
      if (nx == NULL)
        goto fail;
      *x = nx;
    }
    double *row = *x + rows * (size_t)k;
    for (int j = 0; j < k; j++) {
      while (p < end && is_ws(*p))
        p++;
      if (j > 0) {
        if (p >= end || *p++ != ',')
          goto fail;
        while (p < end && is_ws(*p))
          p++;
      }
      if ((p = jsonr_number(p, end, &row[j])) == NULL)
        goto fail;
    }
    while (p < end && is_ws(*p))
      p++;
    if (p >= end || *p++ != ']')
      goto fail;
    rows++;
    while (p < end && is_ws(*p))
      p++;
    if (p < end && *p == ',') {
      p++;
      continue;
    }
    if (p >= end || *p++ != ']')
      goto fail;
    while (p < end && is_ws(*p))
      p++;
    if (p != end)
      goto fail;
    return rows;
  }
fail:
  free(*x);
  *x = NULL;
  return 0;
}

void quick_learn(const struct svc *svc, const char *digest, const char *body, size_t len,
                 const struct loaded *L, int o, const int *feats, int nf,
                 struct reg_summary *const *regs, const struct query_params *q,
                 const char *text, size_t text_len, const struct reply_marks *marks)
{
  size_t vs, ve;
  if (!svc->cfg->quick_queries || L->m->rnn != NULL || nf < 1 || nf > ACED_QUICK_FEATURES_MAX ||
      marks->values_end <= marks->values || marks->ms_end <= marks->ms ||
      strlen(digest) >= sizeof ((struct quick *)0)->digest ||
      find_inputs(body, len, &vs, &ve) != 0 || len - (ve - vs) > ACED_QUICK_KEY_MAX)
    return;
  struct quick **slots = thread_slots(1);
  struct quick *e = calloc(1, sizeof *e);
  if (slots == NULL || e == NULL) {
    free(e);
    return;
  }
  e->key_len = len - (ve - vs);
  e->cut = vs;
  e->key = malloc(e->key_len + 1);
  e->feats = malloc(sizeof(int) * (size_t)nf);
  e->regs = malloc(sizeof *e->regs * (size_t)nf);
  e->text = malloc(text_len);
  if (e->key == NULL || e->feats == NULL || e->regs == NULL || e->text == NULL) {
    quick_free(e);
    return;
  }
  memcpy(e->key, body, vs);
  memcpy(e->key + vs, body + ve, len - ve);
  e->hash = key_hash(digest, body, vs, body + ve, len - ve);
  strcpy(e->digest, digest);
  e->q = *q;
  params_defaults(svc, &e->defaults);
  e->o = o;
  e->k = L->m->n_features;
  memcpy(e->feats, feats, sizeof(int) * (size_t)nf);
  for (int i = 0; i < nf; i++) {
    atomic_fetch_add(&regs[i]->refs, 1);
    e->regs[i] = regs[i];
  }
  e->nf = nf;
  memcpy(e->text, text, text_len);
  e->len = text_len;
  e->marks = *marks;
  struct quick **slot = &slots[e->hash % ACED_QUICK_SLOTS];
  quick_free(*slot);
  *slot = e;
}

/* The entry for this body, or NULL (and *slot is where it would be). */
static struct quick *lookup(const char *digest, const char *body, size_t len, size_t vs,
                            size_t ve, struct quick ***slot)
{
  struct quick **slots = thread_slots(0);
  if (slots == NULL)
    return NULL;
  uint64_t h = key_hash(digest, body, vs, body + ve, len - ve);
  *slot = &slots[h % ACED_QUICK_SLOTS];
  struct quick *e = **slot;
  if (e == NULL || e->hash != h || e->cut != vs || e->key_len != len - (ve - vs) ||
      strcmp(e->digest, digest) != 0 || memcmp(e->key, body, vs) != 0 ||
      memcmp(e->key + vs, body + ve, len - ve) != 0)
    return NULL;
  return e;
}

/* The reply of entry e for the rows x: the learnt text with these values
 * and this elapsed_ms.  NULL when a value is not finite (the usual path
 * then says where) or memory ran out. */
static char *reply(const struct quick *e, const double *x, size_t rows, int64_t start_us,
                   size_t *out_len)
{
  size_t nv = rows * (size_t)e->nf;
  double small[256], xsmall[64];
  double *ace = nv <= 256 ? small : malloc(sizeof(double) * nv);
  double *xs = e->nf <= 64 ? xsmall : malloc(sizeof(double) * (size_t)e->nf);
  char *text = NULL;
  if (ace == NULL || xs == NULL)
    goto done;
  for (size_t r = 0; r < rows; r++) {
    for (int i = 0; i < e->nf; i++)
      xs[i] = x[r * (size_t)e->k + (size_t)e->feats[i]];
    if (attributions_ace_row(e->regs, e->nf, xs, ace + r * (size_t)e->nf) >= 0)
      goto done;
  }
  const struct reply_marks *m = &e->marks;
  struct jw w;
  jw_init(&w, e->len - (m->values_end - m->values) + 26 * nv + 16);
  jw_raw(&w, e->text, m->values);
  attributions_write_values(&w, ace, rows, e->nf);
  jw_raw(&w, e->text + m->values_end, m->ms - m->values_end);
  int64_t us = aced_now_us() - start_us;
  jw_ms(&w, us < 0 ? 0 : us);
  jw_raw(&w, e->text + m->ms_end, e->len - m->ms_end);
  text = jw_finish(&w, out_len);
done:
  if (ace != small)
    free(ace);
  if (xs != xsmall)
    free(xs);
  return text;
}

char *svc_quick_attributions(const struct svc *svc, const char *digest, const char *body,
                             size_t len, int64_t start_us, size_t *out_len)
{
  size_t vs, ve;
  struct quick **slot = NULL;
  if (!svc->cfg->quick_queries || find_inputs(body, len, &vs, &ve) != 0)
    return NULL;
  struct quick *e = lookup(digest, body, len, vs, ve, &slot);
  if (e == NULL)
    return NULL;
  struct query_params d;
  params_defaults(svc, &d);
  if (!params_same(&d, &e->defaults)) { /* reloaded with other defaults */
    quick_free(e);
    *slot = NULL;
    return NULL;
  }
  struct loaded *L = prepared_peek(digest);
  if (L == NULL)
    return NULL; /* not loaded: a worker loads it (the usual path) */
  char *text = NULL;
  struct reg_summary *small[64];
  struct reg_summary **now = e->nf <= 64 ? small : calloc((size_t)e->nf, sizeof *now);
  if (now == NULL || L->m->n_features != e->k)
    goto done;
  memset(now, 0, sizeof *now * (size_t)e->nf);
  /* the regressors the usual path would use: the same ones, or the
   * entry is stale (dropped: the usual path learns anew) */
  int stale = regcache_summaries(svc, L, e->o, e->feats, e->nf, &e->q, 1, now) != 0;
  for (int i = 0; i < e->nf && !stale; i++)
    stale = now[i] != e->regs[i];
  if (!stale) {
    double *x;
    size_t rows = read_rows(body + vs, body + ve, e->k, &x);
    if (rows > 0 && (text = reply(e, x, rows, start_us, out_len)) != NULL)
      metrics_quick_answer();
    free(x);
  }
  for (int i = 0; i < e->nf; i++)
    regcache_summary_unref(now[i]);
  if (stale) {
    quick_free(e);
    *slot = NULL;
  }
done:
  if (now != small)
    free(now);
  prepared_release(L);
  return text;
}
