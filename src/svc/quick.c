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
 * are the same.  The defaults are compared on every use; the model and the
 * regressors are looked up again only when prepared_generation or
 * regcache_generation has moved since they were last seen (a dropped
 * model, an added, replaced or dropped summary), so a steady dashboard
 * load takes no shared lock here.  The rows are then read
 * straight into doubles, strictly (arrays of exactly the model's number of
 * JSON numbers, as many rows as the route takes), and the reply is the
 * learnt one with new values and a new elapsed_ms: the same bytes the
 * usual path would write.  Anything else (another key, a malformed or
 * unusual body, a value the regressor overflows at) declines, and the
 * usual path answers, with its error if there is one.
 *
 * The table is per thread (no lock on the hot path): ACED_QUICK_SLOTS
 * entries, the least recently used replaced; a thread frees its entries
 * when it ends.
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
  /* prepared_generation and regcache_generation when the model and the
   * regressors were last seen as they were learnt: while neither moves,
   * neither needs looking up again (no lock, no shared counter) */
  unsigned long loaded_gen, reg_gen;
  unsigned long used; /* its thread's clock at its last use */
};

/* A thread's entries, any in any slot: the least recently used one makes
 * room (two of a dashboard's queries must not take turns at one slot). */
struct table {
  struct quick *slot[ACED_QUICK_SLOTS];
  unsigned long clock;
};

static pthread_key_t table_key;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

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

static void table_free(void *p)
{
  struct table *t = p;
  for (int i = 0; i < ACED_QUICK_SLOTS; i++)
    quick_free(t->slot[i]);
  free(t);
}

static void table_init(void)
{
  pthread_key_create(&table_key, table_free);
}

/* This thread's table; created when `create`, else NULL until then. */
static struct table *thread_table(int create)
{
  pthread_once(&table_once, table_init);
  struct table *t = pthread_getspecific(table_key);
  if (t == NULL && create) {
    t = calloc(1, sizeof *t);
    if (t != NULL && pthread_setspecific(table_key, t) != 0) {
      free(t);
      t = NULL;
    }
  }
  return t;
}

static int is_ws(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Bytes the scan stops at: 1 in strings ('"', '\\'), 2 between them
 * ('"', brackets and braces).  A table keeps the loops to a load and a
 * test per byte. */
static const unsigned char stop[256] = {
    ['"'] = 3, ['\\'] = 1, ['['] = 2, [']'] = 2, ['{'] = 2, ['}'] = 2};

/* Past the string that starts at s[i] ('"'), escapes skipped; 0 if it
 * does not end. */
static size_t skip_string(const char *s, size_t n, size_t i)
{
  for (i++; i < n; i++) {
    while (i < n && !(stop[(unsigned char)s[i]] & 1))
      i++;
    if (i >= n)
      return 0;
    if (s[i] == '"')
      return i + 1;
    i++; /* the byte after a backslash */
  }
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
      while (i < n && !(stop[(unsigned char)s[i]] & 2))
        i++;
      if (i >= n)
        return 0;
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
int svc_quick_find_inputs(const char *s, size_t n, size_t *vs, size_t *ve)
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

/* Eight bytes at a time (a byte at a time cost as much as the rest of
 * the lookup); only picks a slot, the key is compared in full. */
static uint64_t hash_bytes(uint64_t h, const char *p, size_t n)
{
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  }
  uint64_t w = n; /* the tail, and its length */
  for (size_t i = 0; i < n; i++)
    w |= (uint64_t)(unsigned char)p[i] << (8 * i + 8);
  h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
  return h ^ (h >> 29);
}

/* The digest (its first 16 hex digits: 64 bits of SHA-256), the key's
 * two parts and where they meet. */
static uint64_t key_hash(const char *digest, const char *a, size_t an, const char *b, size_t bn)
{
  uint64_t h = hash_bytes(0x243f6a8885a308d3ULL, digest, strnlen(digest, 16));
  h = hash_bytes(h ^ an, a, an);
  return hash_bytes(h, b, bn);
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
size_t svc_quick_read_rows(const char *p, const char *end, int k, double **x)
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

/* Whether e's model is loaded and its regressors are the ones in memory
 * now; if so, the generations read before looking are e's from now on.
 * Looking takes the models' and the summaries' read locks and counts the
 * regressors as cache hits, as the usual path would. */
static int current(const struct svc *svc, struct quick *e)
{
  unsigned long lg = prepared_generation(), rg = regcache_generation();
  struct loaded *L = prepared_peek(e->digest);
  if (L == NULL)
    return 0; /* not loaded: a worker loads it (the usual path) */
  struct reg_summary *small[64];
  struct reg_summary **now = e->nf <= 64 ? small : calloc((size_t)e->nf, sizeof *now);
  int same = now != NULL && L->m->n_features == e->k;
  if (same) {
    memset(now, 0, sizeof *now * (size_t)e->nf);
    same = regcache_summaries(svc, L, e->o, e->feats, e->nf, &e->q, 1, now) == 0;
    for (int i = 0; i < e->nf; i++) {
      same = same && now[i] == e->regs[i];
      regcache_summary_unref(now[i]);
    }
  }
  if (now != small)
    free(now);
  prepared_release(L);
  if (same) {
    e->loaded_gen = lg;
    e->reg_gen = rg;
  }
  return same;
}

/* This thread's entry for this body, or NULL; *slot is set to where it is. */
static struct quick *lookup(const char *digest, const char *body, size_t len, size_t vs,
                            size_t ve, struct quick ***slot)
{
  struct table *t = thread_table(0);
  if (t == NULL)
    return NULL;
  uint64_t h = key_hash(digest, body, vs, body + ve, len - ve);
  for (int i = 0; i < ACED_QUICK_SLOTS; i++) {
    struct quick *e = t->slot[i];
    if (e == NULL || e->hash != h || e->cut != vs || e->key_len != len - (ve - vs) ||
        strcmp(e->digest, digest) != 0 || memcmp(e->key, body, vs) != 0 ||
        memcmp(e->key + vs, body + ve, len - ve) != 0)
      continue;
    e->used = ++t->clock;
    *slot = &t->slot[i];
    return e;
  }
  return NULL;
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
      svc_quick_find_inputs(body, len, &vs, &ve) != 0 || len - (ve - vs) > ACED_QUICK_KEY_MAX)
    return;
  struct table *t = thread_table(1);
  struct quick *e = calloc(1, sizeof *e);
  if (t == NULL || e == NULL) {
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
  if (!current(svc, e)) {
    quick_free(e);
    return;
  }
  memcpy(e->text, text, text_len);
  e->len = text_len;
  e->marks = *marks;
  /* the entry of the same key if there is one (rows the quick path left
   * to the usual path), else a free or the least recently used slot */
  struct quick **slot = NULL;
  if (lookup(digest, body, len, vs, ve, &slot) == NULL) {
    slot = &t->slot[0];
    for (int i = 1; i < ACED_QUICK_SLOTS && *slot != NULL; i++)
      if (t->slot[i] == NULL || t->slot[i]->used < (*slot)->used)
        slot = &t->slot[i];
  }
  quick_free(*slot);
  e->used = ++t->clock;
  *slot = e;
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
  /* The two new parts first, then the reply in one block of its exact
   * size: a reply of up to a kilobyte then comes from malloc's per-thread
   * cache, where a guess at its size would often be just past it. */
  const struct reply_marks *m = &e->marks;
  struct jw w;
  jw_init(&w, 26 * nv + 40);
  attributions_write_values(&w, ace, rows, e->nf);
  size_t nvals = w.len;
  int64_t us = aced_now_us() - start_us;
  jw_ms(&w, us < 0 ? 0 : us);
  size_t parts_len;
  char *parts = jw_finish(&w, &parts_len);
  if (parts == NULL)
    goto done;
  size_t head = m->values, mid = m->ms - m->values_end, tail = e->len - m->ms_end;
  *out_len = head + parts_len + mid + tail;
  if ((text = malloc(*out_len + 1)) != NULL) {
    char *o = text;
    memcpy(o, e->text, head);
    memcpy(o += head, parts, nvals);
    memcpy(o += nvals, e->text + m->values_end, mid);
    memcpy(o += mid, parts + nvals, parts_len - nvals);
    memcpy(o += parts_len - nvals, e->text + m->ms_end, tail);
    text[*out_len] = '\0';
  }
  free(parts);
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
  if (!svc->cfg->quick_queries || svc_quick_find_inputs(body, len, &vs, &ve) != 0)
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
  if (e->loaded_gen != prepared_generation() || e->reg_gen != regcache_generation()) {
    if (!current(svc, e)) { /* stale: the usual path learns anew */
      quick_free(e);
      *slot = NULL;
      return NULL;
    }
  } else {
    metrics_cache_hits(e->nf); /* what the lookups would have counted */
  }
  char *text = NULL;
  double *x;
  size_t rows = svc_quick_read_rows(body + vs, body + ve, e->k, &x);
  if (rows > 0 && (text = reply(e, x, rows, start_us, out_len)) != NULL)
    metrics_quick_answer();
  free(x);
  return text;
}
