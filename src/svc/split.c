/*
 * split.c -- one job's tasks shared by the replicas of a store that keeps
 * tasks (PostgreSQL, store.h "a durable job's tasks").
 *
 * DESIGN
 *
 * A kind whose plan is repeatable task by task (the same request on the
 * same model digest gives the same tasks in the same order, and a task's
 * result is what it writes to the shared regressor cache) splits: its
 * plan records the tasks in the store (split_start), and each call of its
 * task step, on this replica's pool, claims whichever task is left
 * (split_claim), not task i.  Other replicas help: their journal sees the
 * job's free tasks (task_find), runs a helper job of the same kind on the
 * same request under another id (its params carry "_help": the job's id),
 * whose task steps claim from the same rows.  The owner's finish step
 * (split_drain) runs what is left to claim (tasks of a replica that died,
 * once their lease ran out) and waits for the tasks other replicas still
 * run; then the job ends on the owner, with counts summed from the rows.
 *
 * fit_feature_shared is single flight across replicas for one fit (a
 * feature's grid, every output): the replica that claims the fit's key
 * (store fit_claim) fits it; another asked for it meanwhile polls the
 * claim, and once the first has released it (its regressors are then in
 * the shared cache) takes them from the cache.  A claim whose replica
 * died runs out with its lease and is taken, and the fit done, by the
 * next to poll.
 *
 * Nothing here changes a job that does not split: without the journal
 * (SQLite) or when the store cannot record its tasks, split_start answers
 * NULL and the kind runs every task here, as before.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aced/clock.h"
#include "aced/limits.h"
#include "aced/log.h"
#include "aced/store.h"
#include "svc/internal.h"

struct split {
  const struct svc *svc;
  struct job *job;
  char id[40];      /* the job's id in the store (the helped job's for a helper) */
  int helper;
  int n;
  int broken;       /* the store failed: run what is left here (atomic: any worker) */
  int exhausted;    /* a task step found nothing left to claim (atomic) */
  /* claim statistics, for the log and the benchmark */
  long claims, here;
  int64_t claim_us;
};

struct split *split_start(const struct svc *svc, struct job *job, const json_t *params, int n)
{
  struct store *s = svc->store;
  const char *owner = svc_journal_owner();
  if (owner == NULL || s->ops->task_plan == NULL || n < 2)
    return NULL;
  struct split *sp = calloc(1, sizeof *sp);
  if (sp == NULL)
    return NULL;
  sp->svc = svc;
  sp->job = job;
  sp->n = n;
  const char *help = json_string_value(json_object_get(params, "_help"));
  sp->helper = help != NULL;
  snprintf(sp->id, sizeof sp->id, "%s", help ? help : job_id(job));
  struct aced_error err;
  if (!sp->helper && s->ops->task_plan(s, sp->id, n, &err) != ACED_OK) {
    log_info("split", "job %s runs whole here: %s", sp->id, err.message);
    free(sp);
    return NULL;
  }
  return sp;
}

int split_helper(const struct split *sp)
{
  return sp != NULL && sp->helper;
}

int split_claim(struct split *sp, int *pending)
{
  struct store *s = sp->svc->store;
  int i = -1;
  *pending = 0;
  if (__atomic_load_n(&sp->broken, __ATOMIC_RELAXED))
    return -1;
  struct aced_error err;
  int64_t t0 = aced_now_us();
  enum aced_err rc =
      s->ops->task_claim(s, sp->id, svc_journal_owner(), ACED_JOB_LEASE_MS, &i, pending, &err);
  int64_t dt = aced_now_us() - t0;
  __atomic_add_fetch(&sp->claim_us, dt, __ATOMIC_RELAXED);
  __atomic_add_fetch(&sp->claims, 1, __ATOMIC_RELAXED);
  if (rc != ACED_OK) {
    log_warn("split", "job %s: task claim failed (%s): %s", sp->id,
             sp->helper ? "this helper stops" : "the rest runs here", err.message);
    __atomic_store_n(&sp->broken, 1, __ATOMIC_RELAXED);
    return -1;
  }
  if (i >= 0)
    __atomic_add_fetch(&sp->here, 1, __ATOMIC_RELAXED);
  return i;
}

int split_next(struct split *sp)
{
  /* Tasks come free again only when a replica dies with a lease, and
   * those the owner's finish (split_drain) takes: once one task step
   * found none, the others do not ask the store again. */
  if (__atomic_load_n(&sp->exhausted, __ATOMIC_RELAXED))
    return -1;
  int pending = 0, i = split_claim(sp, &pending);
  if (i < 0)
    __atomic_store_n(&sp->exhausted, 1, __ATOMIC_RELAXED);
  return i;
}

void split_done(struct split *sp, int i, long units, long computed)
{
  struct store *s = sp->svc->store;
  struct aced_error err;
  if (s->ops->task_done(s, sp->id, i, svc_journal_owner(), units, computed, &err) != ACED_OK)
    log_warn("split", "job %s: task %d done but not recorded: %s", sp->id, i, err.message);
}

void split_release(struct split *sp, int i)
{
  struct store *s = sp->svc->store;
  struct aced_error err;
  if (s->ops->task_release(s, sp->id, i, svc_journal_owner(), &err) != ACED_OK)
    log_warn("split", "job %s: task %d not released (its lease runs out): %s", sp->id, i,
             err.message);
}

enum aced_err split_drain(struct split *sp, long (*run)(void *cls, int i, long *computed,
                                                        struct aced_error *err),
                          void *cls, struct aced_error *err)
{
  for (;;) {
    /* cancelled (the pool has ended it already), timed out, or this
     * replica stopping (the journal then gives the job up to another) */
    if (job_cancelled(sp->job))
      return aced_error_set(err, ACED_E_UNAVAILABLE, "",
                            "job stopped (cancelled, timed out or shutting down)");
    int pending = 0;
    int i = split_claim(sp, &pending);
    if (i >= 0) {
      long computed = 0, u = run(cls, i, &computed, err);
      if (u < 0)
        return err->code != ACED_OK ? err->code : ACED_E_INTERNAL;
      split_done(sp, i, u, computed);
      continue;
    }
    if (__atomic_load_n(&sp->broken, __ATOMIC_RELAXED)) {
      /* every task again here: those done elsewhere are cache hits */
      for (int k = 0; k < sp->n; k++) {
        long computed = 0;
        if (run(cls, k, &computed, err) < 0)
          return err->code != ACED_OK ? err->code : ACED_E_INTERNAL;
      }
      return ACED_OK;
    }
    long units = 0, computed = 0;
    int done = 0, total = 0;
    struct aced_error e2;
    struct store *s = sp->svc->store;
    if (s->ops->task_sum(s, sp->id, &units, &computed, &done, &total, &e2) == ACED_OK)
      job_progress_note(sp->job, units);
    if (pending == 0)
      return ACED_OK;
    struct timespec ts = {0, ACED_SPLIT_POLL_MS * 1000000L};
    nanosleep(&ts, NULL);
  }
}

int split_counts(struct split *sp, long *units, long *computed)
{
  struct store *s = sp->svc->store;
  int done = 0, total = 0;
  struct aced_error err;
  if (__atomic_load_n(&sp->broken, __ATOMIC_RELAXED) ||
      s->ops->task_sum(s, sp->id, units, computed, &done, &total, &err) != ACED_OK ||
      done != total)
    return -1;
  return 0;
}

void split_free(struct split *sp)
{
  if (sp == NULL)
    return;
  if (sp->claims > 0)
    log_info("split",
             "job %s%s: %ld of %d tasks ran here; %ld claims took %.3f ms (%.1f us each)",
             sp->id, sp->helper ? " (helping)" : "", sp->here, sp->n, sp->claims,
             (double)sp->claim_us / 1e3, (double)sp->claim_us / (double)sp->claims);
  free(sp);
}

enum aced_err fit_feature_shared(const struct svc *svc, const struct loaded *L, int f,
                                 const struct query_params *q, int want, json_t **out,
                                 struct job *job, int *waited, struct aced_error *err)
{
  struct store *s = svc->store;
  const char *owner = svc_journal_owner();
  *waited = 0;
  if (owner == NULL || s->ops->fit_claim == NULL)
    return fit_feature(svc, L, f, q, want, out, err);
  /* the fit's key: the cache key of its grid, any output */
  char pbuf[128], key[256];
  struct store_cache_key k;
  regcache_key(L, 0, f, q, pbuf, sizeof pbuf, &k);
  snprintf(key, sizeof key, "%s|%d|%s|%s", k.digest, f, k.estimator, k.params);
  struct aced_error e2;
  for (;;) {
    int mine = 0;
    if (s->ops->fit_claim(s, key, owner, ACED_JOB_LEASE_MS, &mine, &e2) != ACED_OK)
      return fit_feature(svc, L, f, q, want, out, err); /* the store failed: fit here */
    if (mine)
      break;
    if (!*waited)
      log_info("split", "feature %d of %s: fitted on another replica now, waiting for it", f,
               L->digest);
    *waited = 1;
    if (job_cancelled(job))
      return aced_error_set(err, ACED_E_UNAVAILABLE, "",
                            "job stopped (cancelled, timed out or shutting down)");
    struct timespec ts = {0, ACED_SPLIT_POLL_MS * 1000000L};
    nanosleep(&ts, NULL);
  }
  enum aced_err rc = ACED_OK;
  json_t *hit = *waited ? regcache_get(svc, L, want >= 0 ? want : 0, f, q) : NULL;
  if (hit != NULL) { /* fitted by the replica we waited for */
    if (out != NULL && want >= 0)
      *out = hit;
    else
      json_decref(hit);
  } else {
    *waited = 0;
    rc = fit_feature(svc, L, f, q, want, out, err);
  }
  if (s->ops->fit_release(s, key, owner, &e2) != ACED_OK)
    log_warn("split", "fit %s: not released (its lease runs out): %s", key, e2.message);
  return rc;
}
