/*
 * regressors.c -- the "regressors" job kind (POST .../regressors): fit a
 * set of regressors (outputs x features, default all) in the background.
 * One task per feature: a feature's grid fits every output at once, so a
 * task whose outputs are all cached already returns at once.  The result
 * is kept for GET /v1/jobs/{id}, which is how its clients learn of it.
 *
 * With a store shared by replicas the job splits (split.c): its plan is
 * repeatable (task i is feature feats[i] of the same request and model
 * digest) and a task's result is the cache rows it writes, so each task
 * call claims whichever feature is left, here or on another replica.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/internal.h"

struct regressors_work {
  const struct svc *svc;
  struct job *job;
  struct loaded *L;
  char name[ACED_NAME_MAX + 1]; /* the model as asked for */
  int version;
  struct query_params q;
  int *outs, n_outs;
  int *feats, n_feats;
  pthread_mutex_t lock; /* guards the counts, which tasks update */
  int computed, cached;
  json_t *notes; /* constant features left out */
  struct split *split; /* NULL: every task runs here */
};

static void regressors_free(void *work)
{
  struct regressors_work *w = work;
  if (w == NULL)
    return;
  split_free(w->split);
  prepared_release(w->L);
  free(w->outs);
  free(w->feats);
  json_decref(w->notes);
  pthread_mutex_destroy(&w->lock);
  free(w);
}

/* A recurrent model: the per-step features at every timestep of the
 * window (resolve_step_window), the outputs at the output step. */
static enum aced_err expand_steps(struct regressors_work *w, const json_t *p,
                                  struct aced_error *err)
{
  int *steps, ns;
  enum aced_err rc = resolve_step_window(w->L, p, &steps, &ns, w->notes, err);
  if (rc != ACED_OK)
    return rc;
  int *f = malloc(sizeof(int) * (size_t)ns * (size_t)w->n_feats);
  if (f == NULL) {
    free(steps);
    return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  }
  for (int t = 0; t < ns; t++)
    for (int i = 0; i < w->n_feats; i++)
      f[t * w->n_feats + i] = w->feats[i] + steps[t] * w->L->m->step_features;
  free(w->feats);
  free(steps);
  w->feats = f;
  w->n_feats *= ns;
  for (int k = 0; k < w->n_outs && rc == ACED_OK; k++)
    rc = resolve_output_step(w->L, p, &w->outs[k], err);
  return rc;
}

static void *regressors_plan(void *ctx, struct job *job, const struct job_request *req,
                             int *n_tasks, long *units_total, struct aced_error *err)
{
  *n_tasks = 0;
  *units_total = 1;
  struct regressors_work *w = calloc(1, sizeof *w);
  if (w == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  pthread_mutex_init(&w->lock, NULL);
  w->svc = ctx;
  w->job = job;
  snprintf(w->name, sizeof w->name, "%s", req->model);
  const json_t *p = req->params;
  if ((w->notes = json_array()) == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    regressors_free(w);
    return NULL;
  }
  if ((w->L = prepared_acquire(ctx, req->model, req->version, req->digest, err)) == NULL ||
      query_params_parse(ctx, p, &w->q, err) != ACED_OK ||
      effect_check(w->L, &w->q, err) != ACED_OK ||
      resolve_index_list(w->L, json_object_get(p, "outputs"), "outputs", 1, &w->outs,
                         &w->n_outs, NULL, err) != ACED_OK ||
      resolve_index_list(w->L, json_object_get(p, "features"), "features", 0, &w->feats,
                         &w->n_feats, w->notes, err) != ACED_OK) {
    regressors_free(w);
    return NULL;
  }
  if (w->L->m->rnn != NULL && expand_steps(w, p, err) != ACED_OK) {
    regressors_free(w);
    return NULL;
  }
  w->version = req->version ? req->version : w->L->m->version;
  *n_tasks = w->n_feats;
  *units_total = (long)w->n_feats * w->n_outs;
  w->split = split_start(ctx, job, p, w->n_feats);
  return w;
}

/* Feature feats[i] for every output: fitted, or found cached.  Its
 * units, or -1; *computed = the regressors fitted. */
static long regressors_run(void *work, int i, long *computed, struct aced_error *err)
{
  struct regressors_work *w = work;
  int f = w->feats[i], all = 1;
  for (int k = 0; k < w->n_outs && all; k++) {
    json_t *hit = regcache_get(w->svc, w->L, w->outs[k], f, &w->q);
    all = hit != NULL;
    json_decref(hit);
  }
  if (!all) {
    int waited = 0; /* fitted by another replica meanwhile: cached */
    svc_stop_begin(w->job);
    enum aced_err rc = fit_feature_shared(w->svc, w->L, f, &w->q, -1, NULL, w->job, &waited, err);
    svc_stop_end();
    if (rc != ACED_OK)
      return -1;
    all = waited;
  }
  pthread_mutex_lock(&w->lock);
  if (all)
    w->cached += w->n_outs;
  else
    w->computed += w->n_outs;
  pthread_mutex_unlock(&w->lock);
  *computed = all ? 0 : w->n_outs;
  return w->n_outs;
}

static long regressors_task(void *work, int i, struct aced_error *err)
{
  struct regressors_work *w = work;
  long computed = 0;
  if (w->split == NULL)
    return regressors_run(w, i, &computed, err);
  /* not task i: whichever task no replica has claimed yet */
  int k = split_next(w->split);
  if (k < 0)
    return 0; /* all claimed (the owner's finish waits for the rest) */
  long u = regressors_run(w, k, &computed, err);
  if (u >= 0)
    split_done(w->split, k, u, computed);
  else
    split_release(w->split, k);
  return u;
}

static json_t *regressors_finish(void *work, struct aced_error *err)
{
  struct regressors_work *w = work;
  if (split_helper(w->split)) /* the job's owner answers; nothing to say here */
    return json_pack("{s:s}", "model", w->name);
  if (w->split != NULL) {
    if (split_drain(w->split, regressors_run, w, err) != ACED_OK)
      return NULL;
    long units = 0, computed = 0;
    if (split_counts(w->split, &units, &computed) == 0) {
      w->computed = (int)computed;
      w->cached = w->n_outs * w->n_feats - (int)computed;
    }
  }
  json_t *outs = json_array(), *feats = json_array();
  for (int k = 0; k < w->n_outs; k++)
    json_array_append_new(outs, json_string(w->L->m->outputs[w->outs[k]]));
  for (int k = 0; k < w->n_feats; k++)
    json_array_append_new(feats, json_string(w->L->m->features[w->feats[k]].name));
  json_t *res = json_pack("{s:s,s:i,s:o,s:o,s:s,s:i,s:i,s:i,s:O}", "model", w->name,
                          "version", w->version, "outputs", outs, "features", feats,
                          "estimator", estimator_name(w->q.estimator), "regressors",
                          w->n_outs * w->n_feats, "computed", w->computed, "cached", w->cached,
                          "warnings", w->notes);
  if (res != NULL && w->L->m->rnn != NULL) { /* the step of each entry of "features" */
    json_t *steps = json_array();
    for (int k = 0; k < w->n_feats; k++)
      json_array_append_new(steps, json_integer(w->feats[k] / w->L->m->step_features));
    json_object_set_new(res, "timesteps", steps);
  }
  if (res == NULL)
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  else
    json_object_set_new(res, "effect", json_string(effect_name(effect_of(w->L, &w->q))));
  return res;
}

const struct job_ops svc_kind_regressors = {
    .name = "regressors",
    .plan = regressors_plan,
    .task = regressors_task,
    .finish = regressors_finish,
    .free = regressors_free,
    .flags = JOB_KEEP_RESULT,
};
