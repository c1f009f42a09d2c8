/*
 * interventions.c -- the "interventions" job kind: raw Phase I values
 * E[y | do(x_feature = a)] for the values a client gives (not cached: the
 * values are arbitrary).  Computed in the plan step, under the job's stop
 * check.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/log.h"
#include "aced/store.h"
#include "svc/internal.h"

static json_t *do_interventions(const struct svc *svc, const struct loaded *L,
                                const json_t *b, struct aced_error *err)
{
  int o, f;
  struct query_params q;
  if (resolve_index(L, json_object_get(b, "output"), "output", 1, &o, err) != ACED_OK ||
      resolve_index(L, json_object_get(b, "feature"), "feature", 0, &f, err) != ACED_OK ||
      resolve_steps_json(L, b, &f, &o, err) != ACED_OK ||
      query_params_parse(svc, b, &q, err) != ACED_OK)
    return NULL;
  json_t *vals = json_object_get(b, "values");
  size_t n = json_array_size(vals);
  double *alpha = malloc(sizeof(double) * (n ? n : 1));
  if (alpha == NULL) {
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    alpha[i] = json_number_value(json_array_get(vals, i));
  struct phase1 p;
  if (effect_phase1(L, f, alpha, (int)n, &q, o, &p, err) != ACED_OK) {
    free(alpha);
    return NULL;
  }
  int m = L->m->n_outputs;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(p.E[i * (size_t)m + (size_t)o])) {
      char field[48];
      snprintf(field, sizeof field, "values[%zu]", i);
      aced_error_set(err, ACED_E_NOT_FINITE, field,
                     "the expectation at %g overflows (not a finite number); use values "
                     "nearer the feature's domain [%g, %g]",
                     alpha[i], L->m->features[f].low, L->m->features[f].high);
      phase1_free(&p);
      free(alpha);
      return NULL;
    }
  json_t *res = json_pack("{s:s,s:s,s:o,s:o,s:s,s:s,s:o}", "output", L->m->outputs[o],
                          "feature", L->m->features[f].name, "values",
                          dbl_array(alpha, (int)n, 1), "expectations",
                          dbl_array(p.E + o, (int)n, m), "estimator",
                          estimator_name(p.used[o]), "estimator_reason", p.reason[o],
                          "diagnostic", p.diag ? diag_json(L, &p.diag[o]) : json_null());
  resolve_step_json(L, res, f, o);
  if (p.se && p.used[o] == EST_MC)
    json_object_set_new(res, "stderr", dbl_array(p.se + o, (int)n, m));
  json_object_set_new(res, "meta", meta_json(estimator_name(p.used[o]), "none",
                                             json_incref(p.warnings)));
  effect_meta(json_object_get(res, "meta"), L, &q);
  phase1_free(&p);
  free(alpha);
  return res;
}

static void *interventions_plan(void *ctx, struct job *job, const struct job_request *req,
                                int *n_tasks, long *units_total, struct aced_error *err)
{
  *n_tasks = 0;
  *units_total = 1;
  struct loaded *L = prepared_acquire(ctx, req->model, req->version, req->digest, err);
  if (L == NULL)
    return NULL;
  svc_stop_begin(job);
  json_t *res = do_interventions(ctx, L, req->params, err);
  svc_stop_end();
  prepared_release(L);
  return done_work_new(res, err);
}

const struct job_ops svc_kind_interventions = {
    .name = "interventions",
    .plan = interventions_plan,
    .task = done_work_task,
    .finish = done_work_finish,
    .free = done_work_free,
};
