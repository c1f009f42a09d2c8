/*
 * prepared.c -- prepared models: parsed, validated, covariance factored.
 *
 * DESIGN
 * Prepared models are kept in a small in-memory LRU keyed by content
 * digest (model_cache entries), so a model is factored once and shared by
 * every worker; HTTP threads only ever *peek* into it (never load), which
 * keeps all O(k^3) work on the workers.
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

/* Every cached query looks a model up here, from every HTTP thread: the
 * list is read under a read lock (readers never wait for each other, and
 * a reader descheduled while holding it stalls nobody), and references
 * and use ticks are atomic.  Only loading and eviction take it for
 * writing. */
static pthread_rwlock_t loaded_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct loaded *loaded_list;
static atomic_ulong loaded_tick;
static long loaded_n;

static void loaded_destroy(struct loaded *l)
{
  effect_state_free(l->fx, l->m ? l->m->n_features : 0);
  eng_model_free(l->em);
  model_free(l->m);
  free(l);
}

void prepared_release(struct loaded *l)
{
  if (l == NULL)
    return;
  /* the list's own reference is dropped only under the write lock, so a
   * count reaching 0 here means nobody can find it any more */
  if (atomic_fetch_sub(&l->refs, 1) == 1)
    loaded_destroy(l);
}

/* Find by digest (lock held, for reading at least); takes a reference. */
static struct loaded *loaded_find_locked(const char *digest)
{
  for (struct loaded *l = loaded_list; l; l = l->next)
    if (strcmp(l->digest, digest) == 0) {
      atomic_fetch_add(&l->refs, 1);
      atomic_store_explicit(&l->tick, atomic_fetch_add(&loaded_tick, 1) + 1,
                            memory_order_relaxed);
      return l;
    }
  return NULL;
}

struct loaded *prepared_peek(const char *digest)
{
  pthread_rwlock_rdlock(&loaded_lock);
  struct loaded *l = loaded_find_locked(digest);
  pthread_rwlock_unlock(&loaded_lock);
  return l;
}

long svc_loaded_count(void)
{
  pthread_rwlock_rdlock(&loaded_lock);
  long n = loaded_n;
  pthread_rwlock_unlock(&loaded_lock);
  return n;
}

/* Bumped whenever a model leaves the list (prepared_generation). */
static atomic_ulong loaded_gen;

unsigned long prepared_generation(void)
{
  return atomic_load_explicit(&loaded_gen, memory_order_acquire);
}

static void unlink_locked(struct loaded **pp, struct loaded **drop)
{
  struct loaded *l = *pp;
  *pp = l->next;
  loaded_n--;
  atomic_fetch_add_explicit(&loaded_gen, 1, memory_order_release);
  if (atomic_fetch_sub(&l->refs, 1) == 1) {
    l->next = *drop;
    *drop = l;
  }
}

void svc_evict(const char *digest)
{
  regcache_purge(digest);
  struct loaded *drop = NULL;
  pthread_rwlock_wrlock(&loaded_lock);
  for (struct loaded **pp = &loaded_list; *pp;) {
    if (strcmp((*pp)->digest, digest) == 0)
      unlink_locked(pp, &drop);
    else
      pp = &(*pp)->next;
  }
  pthread_rwlock_unlock(&loaded_lock);
  while (drop) {
    struct loaded *n = drop->next;
    loaded_destroy(drop);
    drop = n;
  }
}

void svc_clear(void)
{
  regcache_clear();
  struct loaded *drop = NULL;
  pthread_rwlock_wrlock(&loaded_lock);
  while (loaded_list)
    unlink_locked(&loaded_list, &drop);
  pthread_rwlock_unlock(&loaded_lock);
  while (drop) {
    struct loaded *n = drop->next;
    loaded_destroy(drop);
    drop = n;
  }
}

struct loaded *prepared_acquire(const struct svc *svc, const char *name, int version,
                                const char *digest, struct aced_error *err)
{
  if (digest[0] != '\0') {
    struct loaded *l = prepared_peek(digest);
    if (l)
      return l;
  }
  struct store_model_row row;
  memset(&row, 0, sizeof row);
  enum aced_err rc = svc->store->ops->model_get(svc->store, name, version, 1, &row, err);
  if (rc != ACED_OK)
    return NULL;
  struct loaded *l = prepared_peek(row.digest);
  if (l) {
    store_model_row_clear(&row);
    return l;
  }
  json_error_t jerr;
  json_t *j = row.body ? json_loads(row.body, 0, &jerr) : NULL;
  if (j == NULL) {
    aced_error_set(err, ACED_E_STORE, "", "stored model %s v%d is unreadable", name,
                   row.version);
    store_model_row_clear(&row);
    return NULL;
  }
  struct aced_model *m = NULL;
  struct aced_error perr;
  if (model_parse(j, 0, &m, &perr) != ACED_OK) {
    json_decref(j);
    aced_error_set(err, ACED_E_STORE, "", "stored model %s v%d fails validation: %s",
                   name, row.version, perr.message);
    store_model_row_clear(&row);
    return NULL;
  }
  json_decref(j);
  if (strcmp(m->digest, row.digest) != 0) {
    aced_error_set(err, ACED_E_STORE, "", "stored model %s v%d does not match its digest",
                   name, row.version);
    model_free(m);
    store_model_row_clear(&row);
    return NULL;
  }
  snprintf(m->name, sizeof m->name, "%s", row.name);
  m->version = row.version;
  store_model_row_clear(&row);

  struct eng_net net;
  struct eng_layer *folded = NULL;
  if (model_engine_net(m, &net, &folded) != 0) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    model_free(m);
    return NULL;
  }
  struct eng_model_input in = {
      .net = &net, .k = m->n_features, .mean = m->mean, .cov = m->cov,
      .n_samples = m->n_samples, .samples = m->samples, .lowrank_share = 0, .rnn = m->rnn};
  struct eng_model *em = NULL;
  char ebuf[256];
  int64_t t0 = aced_now_us();
  int prc = eng_model_prepare(&in, &em, ebuf, sizeof ebuf);
  model_engine_net_free(folded);
  if (prc != 0) {
    aced_error_set(err, ACED_E_INTERNAL, "", "cannot prepare model: %s", ebuf);
    model_free(m);
    return NULL;
  }
  log_info("model", "prepared %s v%d (%d inputs, rank %d) in %.1f ms", m->name,
           m->version, m->n_features, eng_model_rank(em), (aced_now_us() - t0) / 1e3);
  l = calloc(1, sizeof *l);
  if (l == NULL) {
    eng_model_free(em);
    model_free(m);
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  snprintf(l->digest, sizeof l->digest, "%s", m->digest);
  l->m = m;
  l->em = em;
  if (effect_state_new(m, &l->fx, err) != ACED_OK) {
    loaded_destroy(l);
    return NULL;
  }
  struct loaded *drop = NULL;
  pthread_rwlock_wrlock(&loaded_lock);
  struct loaded *other = loaded_find_locked(l->digest);
  if (other) {
    /* another worker won the race: use its copy */
    pthread_rwlock_unlock(&loaded_lock);
    loaded_destroy(l);
    return other;
  }
  atomic_init(&l->refs, 2);
  atomic_init(&l->tick, atomic_fetch_add(&loaded_tick, 1) + 1);
  l->next = loaded_list;
  loaded_list = l;
  loaded_n++;
  while (loaded_n > svc->cfg->model_cache) {
    struct loaded **oldest = NULL;
    for (struct loaded **pp = &loaded_list; *pp; pp = &(*pp)->next)
      if (*pp != l && (oldest == NULL || atomic_load(&(*pp)->tick) < atomic_load(&(*oldest)->tick)))
        oldest = pp;
    if (oldest == NULL)
      break;
    unlink_locked(oldest, &drop);
  }
  pthread_rwlock_unlock(&loaded_lock);
  while (drop) {
    struct loaded *n = drop->next;
    loaded_destroy(drop);
    drop = n;
  }
  return l;
}

