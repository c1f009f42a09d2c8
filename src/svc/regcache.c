/*
 * regcache.c -- the regressor cache: fitted regressors in the store (they
 * survive restarts and are shared by replicas), and what attributions
 * need of them kept decoded in memory.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/clock.h"
#include "aced/jsonw.h"
#include "aced/limits.h"
#include "aced/log.h"
#include "aced/metrics.h"
#include "aced/store.h"
#include "svc/internal.h"

void regcache_key(const struct loaded *L, int o, int f, const struct query_params *q,
                  char *pbuf, size_t pn, struct store_cache_key *k)
{
  params_key(q, pbuf, pn);
  enum effect e = effect_of(L, q); /* direct keeps the keys it always had */
  if (e != EFFECT_DIRECT) {
    size_t used = strlen(pbuf);
    snprintf(pbuf + used, pn - used, ";effect=%s", effect_name(e));
  }
  k->digest = L->digest;
  k->output = o;
  k->feature = f;
  k->estimator = estimator_name(q->estimator);
  k->params = pbuf;
}

json_t *regcache_get(const struct svc *svc, const struct loaded *L, int o, int f,
                     const struct query_params *q)
{
  char pbuf[128];
  struct store_cache_key k;
  regcache_key(L, o, f, q, pbuf, sizeof pbuf, &k);
  char *val = NULL;
  struct aced_error err;
  if (svc->store->ops->cache_get(svc->store, &k, &val, &err) != ACED_OK || val == NULL) {
    metrics_cache(0);
    return NULL;
  }
  json_t *j = json_loads(val, 0, NULL);
  free(val);
  struct eng_regressor r;
  if (j == NULL || svc_regressor_decode(j, &r) != 0) {
    /* a damaged entry is treated as a miss and overwritten later */
    log_warn("cache", "discarding unreadable cache entry %s/%d/%d", L->digest, o, f);
    json_decref(j);
    metrics_cache(0);
    return NULL;
  }
  metrics_cache(1);
  return j;
}

/* ---- summaries: what attributions need, kept decoded in memory ---- */

/* A cached regressor is a few tens of kilobytes of JSON (grid points,
 * curve, posterior covariance); an attribution needs only its order,
 * coefficients, domain, estimator, baseline and warnings.  Those are kept
 * here per cache key, decoded, with the parts of the reply that never
 * change (baseline, warnings) already rendered as JSON text: a cached
 * attribution then parses nothing and formats only its own values.
 * Summaries are immutable once made and shared by reference count.
 * Entries are dropped with their model (regcache_purge) and otherwise replaced
 * oldest first within a small probe window. */

/* Bytes of GET reply text attached to summaries (ACED_REGCACHE_REPLY_BYTES). */
static atomic_long reply_bytes;

void regcache_summary_unref(struct reg_summary *s)
{
  if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
    struct reg_reply *r = atomic_load(&s->reply);
    if (r != NULL) {
      atomic_fetch_sub(&reply_bytes, (long)(sizeof *r + r->pre_len + r->post_len));
      free(r);
    }
    free(s->warnings);
    free(s);
  }
}

/* The summary of a full regressor (cached or just fitted); NULL if it is
 * unreadable or memory ran out. */
struct reg_summary *regcache_summary_of(const json_t *full)
{
  /* per thread: struct eng_regressor carries a 13 KB covariance */
  static _Thread_local struct eng_regressor r;
  if (svc_regressor_decode(full, &r) != 0)
    return NULL;
  struct reg_summary *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  atomic_init(&s->refs, 1);
  atomic_init(&s->reply, NULL);
  s->order = r.order;
  memcpy(s->coef, r.coef, sizeof(double) * (size_t)(r.order + 1));
  s->low = r.low;
  s->high = r.high;
  const char *e = json_string_value(json_object_get(full, "estimator"));
  snprintf(s->estimator, sizeof s->estimator, "%s", e ? e : "?");
  s->base = eng_regressor_baseline(&r);
  jw_format_real(s->baseline, s->base);
  struct jw w;
  jw_init(&w, 256);
  json_t *warn = json_object_get(full, "warnings");
  for (size_t i = 0; i < json_array_size(warn); i++) {
    const char *t = json_string_value(json_array_get(warn, i));
    if (t == NULL)
      continue;
    if (w.len > 0)
      jw_raw(&w, ",", 1);
    jw_str(&w, t);
  }
  s->warnings = jw_finish(&w, &s->warnings_len);
  if (s->warnings == NULL) {
    free(s);
    return NULL;
  }
  return s;
}

/* Everything that selects a cached regressor, as plain data: zeroed
 * first, so that padding compares equal too. */
struct hot_key {
  char digest[72];
  int output, feature, estimator, num, max_order;
  int effect; /* resolved (effect.c) */
  double epsilon; /* as in the store's key: 0 unless it changes the result */
};

static void hot_key_make(const struct loaded *L, int o, int f, const struct query_params *q,
                         struct hot_key *k)
{
  memset(k, 0, sizeof *k);
  memcpy(k->digest, L->digest, sizeof k->digest);
  k->output = o;
  k->feature = f;
  k->estimator = (int)q->estimator;
  k->num = q->num;
  k->max_order = q->max_order;
  k->effect = (int)effect_of(L, q);
  k->epsilon = q->estimator == EST_FD ? q->epsilon : 0.0;
}

#define HOT_SLOTS ACED_REGCACHE_SLOTS
#define HOT_PROBE ACED_REGCACHE_PROBE
struct hot_entry {
  int used;
  struct hot_key key;
  struct reg_summary *summary;
  atomic_ulong tick;
};
/* Read under a read lock (see loaded_lock for why); replacing and
 * purging entries take it for writing. */
static struct hot_entry hot_tab[HOT_SLOTS];
static pthread_rwlock_t hot_lock = PTHREAD_RWLOCK_INITIALIZER;
static atomic_ulong hot_clock;
/* Bumped (under the write lock) whenever an entry is added, replaced or
 * dropped (regcache_generation). */
static atomic_ulong hot_gen;

unsigned long regcache_generation(void)
{
  return atomic_load_explicit(&hot_gen, memory_order_acquire);
}

static unsigned long hot_hash(const struct hot_key *k)
{
  /* FNV-1a over the digest's first 16 hex digits (64 bits of SHA-256)
   * and the integers; the full key is compared on a match */
  unsigned long h = 1469598103934665603UL;
  for (int i = 0; i < 16 && k->digest[i]; i++)
    h = (h ^ (unsigned char)k->digest[i]) * 1099511628211UL;
  const int v[] = {k->output, k->feature, k->estimator, k->num, k->max_order};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    h = (h ^ (unsigned long)(unsigned)v[i]) * 1099511628211UL;
  return h;
}

/* The summaries of output o for features feats[0..n), from memory, under
 * one acquisition of the lock (a cached attribution needs one per
 * feature): out[i] is a new reference, or NULL on a miss.  Hits are
 * counted in the metrics. */
static void hot_get_many(const struct loaded *L, int o, const int *feats, int n,
                         const struct query_params *q, struct reg_summary **out)
{
  pthread_rwlock_rdlock(&hot_lock);
  for (int k = 0; k < n; k++) {
    struct hot_key key;
    hot_key_make(L, o, feats[k], q, &key);
    unsigned long h = hot_hash(&key);
    out[k] = NULL;
    for (int i = 0; i < HOT_PROBE; i++) {
      struct hot_entry *e = &hot_tab[(h + (unsigned long)i) & (HOT_SLOTS - 1)];
      if (e->used && memcmp(&e->key, &key, sizeof key) == 0) {
        atomic_store_explicit(&e->tick, atomic_fetch_add(&hot_clock, 1) + 1, memory_order_relaxed);
        out[k] = e->summary;
        atomic_fetch_add(&out[k]->refs, 1);
        break;
      }
    }
  }
  pthread_rwlock_unlock(&hot_lock);
  for (int k = 0; k < n; k++)
    if (out[k] != NULL)
      metrics_cache(1);
}

static void hot_put(const struct hot_key *key, struct reg_summary *summary)
{
  unsigned long h = hot_hash(key);
  struct reg_summary *old = NULL;
  atomic_fetch_add(&summary->refs, 1);
  pthread_rwlock_wrlock(&hot_lock);
  struct hot_entry *victim = NULL;
  for (int i = 0; i < HOT_PROBE; i++) {
    struct hot_entry *e = &hot_tab[(h + (unsigned long)i) & (HOT_SLOTS - 1)];
    if (!e->used || memcmp(&e->key, key, sizeof *key) == 0) {
      victim = e;
      break;
    }
    if (victim == NULL || atomic_load(&e->tick) < atomic_load(&victim->tick))
      victim = e;
  }
  old = victim->used ? victim->summary : NULL;
  atomic_fetch_add_explicit(&hot_gen, 1, memory_order_release);
  victim->used = 1;
  victim->key = *key;
  victim->summary = summary;
  atomic_store(&victim->tick, atomic_fetch_add(&hot_clock, 1) + 1);
  pthread_rwlock_unlock(&hot_lock);
  regcache_summary_unref(old);
}

/* Drop every entry of a digest (its model was deleted).  One write
 * acquisition for the whole table (a few microseconds): taken per entry,
 * a writer could wait behind a stream of readers thousands of times. */
void regcache_purge(const char *digest)
{
  pthread_rwlock_wrlock(&hot_lock);
  atomic_fetch_add_explicit(&hot_gen, 1, memory_order_release);
  for (int i = 0; i < HOT_SLOTS; i++) {
    struct hot_entry *e = &hot_tab[i];
    if (e->used && strcmp(e->key.digest, digest) == 0) {
      regcache_summary_unref(e->summary);
      e->used = 0;
      e->summary = NULL;
    }
  }
  pthread_rwlock_unlock(&hot_lock);
}

void regcache_clear(void)
{
  pthread_rwlock_wrlock(&hot_lock);
  atomic_fetch_add_explicit(&hot_gen, 1, memory_order_release);
  for (int i = 0; i < HOT_SLOTS; i++) {
    regcache_summary_unref(hot_tab[i].summary);
    hot_tab[i].used = 0;
    hot_tab[i].summary = NULL;
  }
  pthread_rwlock_unlock(&hot_lock);
}

/* The summary of regressor (o, f) read from the cache and then kept in
 * memory; NULL if it is not cached.  A new reference.  With keep, the
 * entry read is handed back too (a new reference, or NULL), so that a
 * caller who needs the whole entry does not read it twice. */
static struct reg_summary *summary_load(const struct svc *svc, const struct loaded *L, int o,
                                        int f, const struct query_params *q, json_t **keep)
{
  json_t *full = regcache_get(svc, L, o, f, q);
  if (keep != NULL)
    *keep = NULL;
  if (full == NULL)
    return NULL;
  struct reg_summary *s = regcache_summary_of(full);
  if (keep != NULL && s != NULL)
    *keep = full;
  else
    json_decref(full);
  if (s != NULL) {
    struct hot_key key;
    hot_key_make(L, o, f, q, &key);
    hot_put(&key, s);
  }
  return s;
}

/* The summaries of output o for features feats[0..n): from memory, the
 * rest from the cache.  regs[i] is a new reference or NULL when (o,
 * feats[i]) is not cached; returns 0 when none is, else (without
 * stop_at_miss) how many are not.  With stop_at_miss the cache is not read
 * past the first one missing: the HTTP thread then hands the whole request
 * to a worker, which looks again. */
int regcache_summaries(const struct svc *svc, const struct loaded *L, int o, const int *feats,
                       int n, const struct query_params *q, int stop_at_miss,
                       struct reg_summary **regs)
{
  hot_get_many(L, o, feats, n, q, regs);
  int missing = 0;
  for (int i = 0; i < n; i++)
    if (regs[i] == NULL && (missing == 0 || !stop_at_miss) &&
        (regs[i] = summary_load(svc, L, o, feats[i], q, NULL)) == NULL)
      missing++;
  return missing;
}

/* ---- the regressor GET's reply, kept as text ----
 *
 * A warm GET used to read the regressor's JSON from the store, parse it
 * (tens of kilobytes: grid, curve, covariance), add meta and serialise it
 * again.  The reply differs between two GETs only in meta.elapsed_ms, so
 * the first warm GET keeps it as the text before and after that number,
 * on the summary of its key; later GETs write the two parts around their
 * own figure.  The text is made exactly as http/reply.c writes a JSON
 * reply (compact, 17 significant digits, times to the microsecond by
 * jw_fix_ms), so the bytes are those of the path through the store. */

/* Split a serialised reply at the value of its one "elapsed_ms" key. */
static struct reg_reply *reply_split(const char *text, size_t len)
{
  static const char key[] = "\"elapsed_ms\":";
  const char *k = strstr(text, key);
  if (k == NULL || strstr(k + 1, key) != NULL)
    return NULL; /* none, or more than one: not a shape to patch */
  const char *v = k + sizeof key - 1, *e = v;
  while (*e && strchr("-+.0123456789eE", *e))
    e++;
  size_t pre = (size_t)(v - text), post = len - (size_t)(e - text);
  struct reg_reply *r = malloc(sizeof *r + pre + post);
  if (r == NULL)
    return NULL;
  r->pre_len = pre;
  r->post_len = post;
  memcpy(r->text, text, pre);
  memcpy(r->text + pre, e, post);
  return r;
}

/* The kept text made from the store's entry (full, borrowed, when the
 * caller has just read it; else read here), attached to s unless the
 * budget is spent or another thread was first; the one to use (s's when
 * attached), or a private one the caller frees when *owned. */
static struct reg_reply *reply_make(const struct svc *svc, const struct loaded *L, int o, int f,
                                    const struct query_params *q, const json_t *full,
                                    struct reg_summary *s, int *owned)
{
  json_t *read = NULL;
  if (full == NULL && (full = read = regcache_get(svc, L, o, f, q)) == NULL)
    return NULL;
  json_t *reply = regressor_reply((json_t *)full, "hit");
  json_decref(read);
  if (reply != NULL)
    effect_meta(json_object_get(reply, "meta"), L, q);
  char *text = reply ? json_dumps(reply, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
  json_decref(reply);
  size_t len = text ? strlen(text) : 0;
  if (text != NULL)
    text = jw_fix_ms(text, &len);
  struct reg_reply *r = text ? reply_split(text, len) : NULL;
  free(text);
  if (r != NULL)
    r->effect = (int)q->effect;
  *owned = 1;
  if (r == NULL || s == NULL)
    return r;
  long sz = (long)(sizeof *r + r->pre_len + r->post_len);
  if (atomic_fetch_add(&reply_bytes, sz) + sz > ACED_REGCACHE_REPLY_BYTES) {
    atomic_fetch_sub(&reply_bytes, sz);
    return r;
  }
  struct reg_reply *none = NULL;
  if (atomic_compare_exchange_strong(&s->reply, &none, r)) {
    *owned = 0;
    return r;
  }
  atomic_fetch_sub(&reply_bytes, sz); /* another GET attached the same text */
  return r;
}

char *regcache_reply_text(const struct svc *svc, const struct loaded *L, int o, int f,
                          const struct query_params *q, int64_t start_us, size_t *len)
{
  struct reg_summary *s = NULL;
  json_t *full = NULL; /* the entry, when this call read it for the summary */
  hot_get_many(L, o, &f, 1, q, &s);
  if (s == NULL) /* NULL: not cached at all, or memory ran out */
    s = summary_load(svc, L, o, f, q, &full);
  struct reg_reply *r = s ? atomic_load(&s->reply) : NULL;
  int owned = 0;
  /* the summary's key has the effect resolved; the text also says whether
   * it was asked for (meta.effect_reason): another request's is not ours */
  if (r != NULL && r->effect != (int)q->effect)
    r = reply_make(svc, L, o, f, q, full, NULL, &owned);
  else if (r == NULL)
    r = reply_make(svc, L, o, f, q, full, s, &owned);
  json_decref(full);
  char *out = NULL;
  if (r != NULL) {
    struct jw w;
    jw_init(&w, r->pre_len + r->post_len + 16);
    jw_raw(&w, r->text, r->pre_len);
    jw_ms(&w, aced_now_us() - start_us);
    jw_raw(&w, r->text + r->pre_len, r->post_len);
    out = jw_finish(&w, len);
    if (owned)
      free(r);
  }
  regcache_summary_unref(s);
  return out;
}
