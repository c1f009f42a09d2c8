/*
 * regressor.c -- the "regressor" job kind (GET
 * .../regressors/{output}/{feature}): one causal regressor, from the cache
 * or fitted (one task: the feature's grid, which caches every output's
 * regressor at once).  Answered on the HTTP thread when the model is
 * loaded and the regressor cached (svc_cached_regressor).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/internal.h"

struct regressor_work {
  const struct svc *svc;
  struct job *job;
  struct loaded *L;
  struct query_params q;
  int output, feature;
  json_t *result;
};

static void regressor_free(void *work)
{
  struct regressor_work *w = work;
  if (w == NULL)
    return;
  prepared_release(w->L);
  json_decref(w->result);
  free(w);
}

static void *regressor_plan(void *ctx, struct job *job, const struct job_request *req,
                            int *n_tasks, long *units_total, struct aced_error *err)
{
  *n_tasks = 0;
  *units_total = 1;
  struct regressor_work *w = calloc(1, sizeof *w);
  if (w == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  w->svc = ctx;
  w->job = job;
  const json_t *p = req->params;
  const char *output = json_string_value(json_object_get(p, "output"));
  const char *feature = json_string_value(json_object_get(p, "feature"));
  if ((w->L = prepared_acquire(ctx, req->model, req->version, req->digest, err)) == NULL ||
      query_params_parse(ctx, p, &w->q, err) != ACED_OK ||
      effect_check(w->L, &w->q, err) != ACED_OK)
    goto fail;
  w->output = model_output_lookup(w->L->m, output ? output : "");
  w->feature = model_feature_lookup(w->L->m, feature ? feature : "");
  if (w->output < 0) {
    aced_error_set(err, ACED_E_UNKNOWN_OUTPUT, "output", "model '%s' has no output '%s'",
                   req->model, output ? output : "");
    goto fail;
  }
  if (w->feature < 0) {
    aced_error_set(err, ACED_E_UNKNOWN_FEATURE, "feature", "model '%s' has no feature '%s'",
                   req->model, feature ? feature : "");
    goto fail;
  }
  if (resolve_steps_json(w->L, p, &w->feature, &w->output, err) != ACED_OK)
    goto fail;
  json_t *hit = regcache_get(ctx, w->L, w->output, w->feature, &w->q);
  if (hit) {
    w->result = regressor_reply(hit, "hit");
    json_decref(hit);
    effect_meta(json_object_get(w->result, "meta"), w->L, &w->q);
    if (w->result == NULL) {
      aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
      goto fail;
    }
    return w;
  }
  *n_tasks = 1;
  return w;
fail:
  regressor_free(w);
  return NULL;
}

static long regressor_task(void *work, int i, struct aced_error *err)
{
  (void)i;
  struct regressor_work *w = work;
  json_t *v = NULL;
  int waited = 0; /* another replica fitted it meanwhile: a cache hit */
  svc_stop_begin(w->job);
  enum aced_err rc =
      fit_feature_shared(w->svc, w->L, w->feature, &w->q, w->output, &v, w->job, &waited, err);
  svc_stop_end();
  if (rc != ACED_OK)
    return -1;
  w->result = regressor_reply(v, waited ? "hit" : "miss");
  json_decref(v);
  effect_meta(json_object_get(w->result, "meta"), w->L, &w->q);
  return 1;
}

static json_t *regressor_finish(void *work, struct aced_error *err)
{
  struct regressor_work *w = work;
  if (w->result == NULL) {
    aced_error_set(err, ACED_E_INTERNAL, "", "job produced no result");
    return NULL;
  }
  return json_incref(w->result);
}

const struct job_ops svc_kind_regressor = {
    .name = "regressor",
    .plan = regressor_plan,
    .task = regressor_task,
    .finish = regressor_finish,
    .free = regressor_free,
};

char *svc_cached_regressor(const struct svc *svc, const char *digest, const char *output,
                           const char *feature, int timestep, int output_timestep,
                           const struct query_params *q, int64_t start_us, size_t *len,
                           struct aced_error *err)
{
  err->code = ACED_OK;
  struct loaded *L = prepared_peek(digest);
  if (L == NULL)
    return NULL;
  char *reply = NULL;
  int o = model_output_lookup(L->m, output), f = model_feature_lookup(L->m, feature);
  if (o < 0)
    aced_error_set(err, ACED_E_UNKNOWN_OUTPUT, "output", "the model has no output '%s'",
                   output);
  else if (f < 0)
    aced_error_set(err, ACED_E_UNKNOWN_FEATURE, "feature", "the model has no feature '%s'",
                   feature);
  else if (resolve_steps(L, timestep, output_timestep, &f, &o, err) == ACED_OK &&
           effect_check(L, q, err) == ACED_OK)
    reply = regcache_reply_text(svc, L, o, f, q, start_us, len);
  prepared_release(L);
  return reply;
}
