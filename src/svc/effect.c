/*
 * effect.c -- total, direct and indirect effects through the model's
 * graph among its inputs (issue 14), for every estimate that takes an
 * `effect`: interventions, regressors, attributions.
 *
 * DESIGN
 *
 * A loaded model with a graph carries its structural equations, fitted
 * once when it is prepared (struct effect_state, engine/scm.c).  The total
 * effect of feature i is the direct effect of i on a re-parametrised
 * model (eng_scm_view: the network f o B over the inputs u = B^-1 x whose
 * do(u_i = a) re-generates the descendants of i), prepared on first use
 * per feature and kept with the loaded model, so phase1_run, the taylor
 * diagnostic, montecarlo and the regressor fits run on it unchanged.
 * Indirect = total - direct, point by point.
 *
 * `effect` defaults to total when the model has a graph and to direct
 * without one; asking for total or indirect without a graph is a 422
 * `no_graph`.  The resolved effect is part of every regressor cache key
 * (params "...;effect=total"), and the graph is part of the digest, so a
 * regressor is only ever served under the graph and effect it was fitted
 * for.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/log.h"
#include "svc/internal.h"

struct effect_state {
  struct eng_scm *scm;
  pthread_mutex_t lock;     /* guards views[] while one is prepared */
  struct eng_model **views; /* k, prepared on first use */
  size_t bytes;             /* held by views[] (ACED_EFFECT_VIEW_BYTES at most) */
};

enum aced_err effect_state_new(const struct aced_model *m, struct effect_state **out,
                               struct aced_error *err)
{
  *out = NULL;
  if (m->graph == NULL)
    return ACED_OK;
  int k = m->n_features;
  int *order = malloc(sizeof(int) * (size_t)k);
  struct effect_state *fx = calloc(1, sizeof *fx);
  if (order == NULL || fx == NULL || (fx->views = calloc((size_t)k, sizeof *fx->views)) == NULL ||
      model_graph_order(m, order) != 0) {
    free(order);
    if (fx)
      free(fx->views);
    free(fx);
    return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  }
  char ebuf[256];
  int rc = eng_scm_fit(k, (const int (*)[2])m->graph->edges, m->graph->n_edges, order,
                       m->n_samples, m->samples, m->mean, m->cov, &fx->scm, ebuf, sizeof ebuf);
  free(order);
  if (rc != 0) {
    free(fx->views);
    free(fx);
    return aced_error_set(err, ACED_E_INTERNAL, "", "cannot fit the structural equations: %s",
                          ebuf);
  }
  pthread_mutex_init(&fx->lock, NULL);
  *out = fx;
  return ACED_OK;
}

void effect_state_free(struct effect_state *fx, int k)
{
  if (fx == NULL)
    return;
  for (int i = 0; i < k; i++)
    eng_model_free(fx->views[i]);
  free(fx->views);
  eng_scm_free(fx->scm);
  pthread_mutex_destroy(&fx->lock);
  free(fx);
}

enum effect effect_of(const struct loaded *L, const struct query_params *q)
{
  if (q->effect != EFFECT_DEFAULT)
    return q->effect;
  return L->fx ? EFFECT_TOTAL : EFFECT_DIRECT;
}

const char *effect_reason(const struct loaded *L, const struct query_params *q)
{
  if (q->effect != EFFECT_DEFAULT)
    return "requested";
  return L->fx ? "default: the model has a graph among its inputs, so do(x_i) re-generates "
                 "the descendants of i"
               : "default: the model has no graph, so do(x_i) leaves the other inputs as "
                 "they were";
}

enum aced_err effect_check(const struct loaded *L, const struct query_params *q,
                           struct aced_error *err)
{
  if (L->fx == NULL && (q->effect == EFFECT_TOTAL || q->effect == EFFECT_INDIRECT))
    return aced_error_set(err, ACED_E_NO_GRAPH, "effect",
                          "effect '%s' needs a graph among the inputs, and this model has "
                          "none: give one (PUT /v1/models/%s/graph) or learn one (POST "
                          "/v1/models/%s/graph)",
                          effect_name(q->effect), L->m->name, L->m->name);
  return ACED_OK;
}

void effect_meta(json_t *meta, const struct loaded *L, const struct query_params *q)
{
  if (!json_is_object(meta))
    return;
  json_object_set_new(meta, "effect", json_string(effect_name(effect_of(L, q))));
  json_object_set_new(meta, "effect_reason", json_string(effect_reason(L, q)));
}

/* The prepared total-effect view of feature f, or NULL with err set.
 * Kept with L while the views fit ACED_EFFECT_VIEW_BYTES (*own = 0);
 * otherwise the caller's, to free (*own = 1). */
static struct eng_model *view_of(const struct loaded *L, int f, int *own,
                                 struct aced_error *err)
{
  struct effect_state *fx = L->fx;
  *own = 0;
  pthread_mutex_lock(&fx->lock);
  if (fx->views[f] == NULL) {
    struct eng_net net;
    struct eng_layer *folded = NULL;
    char ebuf[256] = "";
    int rc = -1;
    if (model_engine_net(L->m, &net, &folded) == 0) {
      struct eng_model_input in = {.net = &net, .k = L->m->n_features, .mean = L->m->mean,
                                   .cov = L->m->cov, .n_samples = L->m->n_samples,
                                   .samples = L->m->samples, .lowrank_share = 0};
      struct eng_model *v = NULL;
      rc = eng_scm_view(fx->scm, &in, f, &v, ebuf, sizeof ebuf);
      if (rc == 0 && fx->bytes + eng_model_bytes(v) <= ACED_EFFECT_VIEW_BYTES) {
        fx->views[f] = v;
        fx->bytes += eng_model_bytes(v);
      } else if (rc == 0) {
        pthread_mutex_unlock(&fx->lock);
        model_engine_net_free(folded);
        *own = 1;
        return v;
      }
      model_engine_net_free(folded);
    }
    if (rc != 0) {
      pthread_mutex_unlock(&fx->lock);
      aced_error_set(err, ACED_E_INTERNAL, "", "cannot prepare the total effect of '%s': %s",
                     L->m->features[f].name, ebuf[0] ? ebuf : "out of memory");
      return NULL;
    }
  }
  struct eng_model *v = fx->views[f];
  pthread_mutex_unlock(&fx->lock);
  return v;
}

enum aced_err effect_phase1(const struct loaded *L, int f, const double *alpha, int n,
                            const struct query_params *q, int focus, struct phase1 *p,
                            struct aced_error *err)
{
  enum effect e = effect_of(L, q);
  if (effect_check(L, q, err) != ACED_OK)
    return err->code;
  if (e == EFFECT_DIRECT)
    return phase1_run(L, f, alpha, n, q->estimator, q->epsilon, focus, p, err);
  int own;
  struct eng_model *em = view_of(L, f, &own, err);
  if (em == NULL)
    return err->code;
  /* L with the view in place of its prepared model: phase1_run reads
   * only m and em */
  struct loaded V;
  memset(&V, 0, sizeof V);
  memcpy(V.digest, L->digest, sizeof V.digest);
  V.m = L->m;
  V.em = em;
  V.fx = L->fx;
  enum aced_err rc = phase1_run(&V, f, alpha, n, q->estimator, q->epsilon, focus, p, err);
  if (own)
    eng_model_free(em);
  if (rc != ACED_OK || e == EFFECT_TOTAL)
    return rc;
  struct phase1 d;
  if ((rc = phase1_run(L, f, alpha, n, q->estimator, q->epsilon, focus, &d, err)) != ACED_OK) {
    phase1_free(p);
    return rc;
  }
  size_t nm = (size_t)n * (size_t)p->n_out;
  for (size_t i = 0; i < nm; i++)
    p->E[i] -= d.E[i];
  /* standard errors of a difference of two means over the same samples:
   * at most the sum of the two (correlation 1); said so in the docs */
  if (p->se != NULL)
    for (size_t i = 0; i < nm; i++)
      p->se[i] += d.se ? d.se[i] : 0.0;
  for (size_t i = 0; i < json_array_size(d.warnings); i++)
    json_array_append(p->warnings, json_array_get(d.warnings, i));
  phase1_free(&d);
  return ACED_OK;
}

json_t *effect_graph_json(const struct loaded *L)
{
  const struct aced_model *m = L->m;
  if (m->graph == NULL)
    return json_null();
  json_t *edges = json_array();
  for (int e = 0; e < m->graph->n_edges; e++) {
    double w = L->fx ? eng_scm_weight(L->fx->scm, e) : NAN;
    json_array_append_new(edges, json_pack("{s:s,s:s,s:o}", "from",
                                           m->features[m->graph->edges[e][0]].name, "to",
                                           m->features[m->graph->edges[e][1]].name, "weight",
                                           isfinite(w) ? json_real(w) : json_null()));
  }
  json_t *g = json_pack("{s:o,s:s}", "edges", edges, "source",
                        m->graph->learned ? "learned" : "given");
  const json_t *info = m->graph->info;
  const char *keys[] = {"method", "parameters", "score", "warnings", "varsortability",
                        "standardized", NULL};
  for (int i = 0; g && keys[i]; i++) {
    json_t *v = info ? json_object_get(info, keys[i]) : NULL;
    if (v)
      json_object_set(g, keys[i], v);
    else if (strcmp(keys[i], "warnings") == 0)
      json_object_set_new(g, keys[i], json_array());
    else if (strcmp(keys[i], "method") == 0 || strcmp(keys[i], "parameters") == 0 ||
             strcmp(keys[i], "score") == 0)
      json_object_set_new(g, keys[i], json_null());
  }
  return g;
}
