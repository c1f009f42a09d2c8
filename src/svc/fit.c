/*
 * fit.c -- causal regressors (the paper's Phase II): one feature's Phase I
 * grid for every output at once (the engine propagates all outputs
 * together), a Bayesian polynomial fitted per output, and every output's
 * regressor written to the cache in one transaction: asking for the next
 * output of the same feature is then a cache hit.
 *
 * The band.  A regressor's curve carries std, the predictive standard
 * deviation sqrt(1/beta + phi^T A^-1 phi): how far the interventional
 * expectation E[y | do(x_i = a)] itself may be from the curve's mean.
 * Points from a deterministic estimator (taylor, finite_difference,
 * unscented) have no error of their own, so 1/beta is the fitted misfit
 * (bounded below: engine/regressor.c) and the band says how well the
 * polynomial follows the points, not how good the estimator is.  Monte
 * Carlo points do carry an error: each is a mean over the same samples, so
 * their errors are correlated along the grid, with the covariance
 * eng_montecarlo_cov computes.  Their variances enter the fit as known
 * noise (eng_regressor_fit_known), beside a fitted misfit variance 1/beta:
 * the evidence then stops rewarding orders that chase the estimator's own
 * error; the covariance makes the band the spread of the fitted curve over
 * fresh sets of samples (a sandwich: engine/regressor.c says why not GLS),
 * so it covers the estimator's error (about 95% of curve points within
 * 1.96 std of the true expectation: tests/e2e/test_band.py).  The regressor's "band" says which
 * ("noise": fitted, montecarlo_covariance, or montecarlo_variance when
 * only the variances are used: a grid above ACED_BAND_GRID_MAX, a
 * recurrent model, total or indirect effects)
 * and its misfit_std = sqrt(1/beta).
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/jsonw.h"
#include "aced/limits.h"
#include "aced/log.h"
#include "aced/metrics.h"
#include "aced/store.h"
#include "svc/internal.h"


/* A JSON array of n numbers; JSON has no NaN or infinity, so a
 * non-finite value becomes null (callers that can produce one check for
 * it first and answer 422 instead). */
json_t *dbl_array(const double *a, int n, int stride)
{
  json_t *arr = json_array();
  for (int i = 0; i < n; i++) {
    double v = a[(size_t)i * stride];
    json_array_append_new(arr, isfinite(v) ? json_real(v) : json_null());
  }
  return arr;
}

/* The cached (and served) form of one regressor. */
static json_t *regressor_json(const struct loaded *L, int o, int feature,
                              const struct query_params *q, const struct phase1 *p,
                              const double *grid, const struct eng_regressor *r,
                              const char *noise)
{
  int m = L->m->n_outputs, nb = r->order + 1;
  json_t *points = json_array();
  for (int a = 0; a < p->n; a++) {
    json_t *pt = json_pack("{s:f,s:f}", "x", grid[a], "expectation",
                           p->E[(size_t)a * m + o]);
    if (p->se && p->used[o] == EST_MC)
      json_object_set_new(pt, "stderr", json_real(p->se[(size_t)a * m + o]));
    json_array_append_new(points, pt);
  }
  json_t *curve = json_array();
  for (int c = 0; c < ACED_CURVE_POINTS; c++) {
    double x = r->low + (r->high - r->low) * c / (ACED_CURVE_POINTS - 1);
    json_array_append_new(curve, json_pack("{s:f,s:f,s:f}", "x", x, "mean",
                                           eng_regressor_mean(r, x), "std",
                                           eng_regressor_std(r, x)));
  }
  json_t *ev = json_array();
  for (int k = 0; k <= r->max_order; k++)
    json_array_append_new(ev, json_real(r->log_evidence[k]));
  json_t *cov = json_array();
  for (int i = 0; i < nb; i++)
    json_array_append_new(cov, dbl_array(r->cov + (size_t)i * nb, nb, 1));
  json_t *warn = json_array();
  for (size_t i = 0; i < json_array_size(p->warnings); i++) {
    /* warnings name their output as "output '<name>' under" */
    char tag[ACED_LABEL_MAX + 32];
    snprintf(tag, sizeof tag, "output '%s' under", L->m->outputs[o]);
    const char *w = json_string_value(json_array_get(p->warnings, i));
    if (w && strstr(w, tag) != NULL)
      json_array_append_new(warn, json_string(w));
  }
  if (strcmp(noise, "montecarlo_variance") == 0) {
    char msg[2 * ACED_LABEL_MAX + 256];
    char why[64];
    if (L->m->rnn)
      snprintf(why, sizeof why, "a recurrent model");
    else if (effect_of(L, q) != EFFECT_DIRECT)
      snprintf(why, sizeof why, "total and indirect effects");
    else
      snprintf(why, sizeof why, "grid above %d points", ACED_BAND_GRID_MAX);
    snprintf(msg, sizeof msg,
             "output '%s' under do(%s): the band takes the Monte Carlo errors as independent "
             "(%s) and understates their correlated part",
             L->m->outputs[o], L->m->features[feature].name, why);
    json_array_append_new(warn, json_string(msg));
  }
  /* recurrent models: indices per step, and the steps beside them */
  const struct aced_model *md = L->m;
  json_t *v = json_pack(
      "{s:s,s:i,s:s,s:i,s:s,s:s,s:s,s:i,s:i,s:i,s:s,s:o,s:f,s:[f,f],s:f,s:f,s:o,s:o,s:o,s:o,s:o,s:o}",
      "output", md->outputs[o], "output_index", md->rnn ? o % md->step_outputs : o, "feature",
      md->features[feature].name, "feature_index",
      md->rnn ? feature % md->step_features : feature, "estimator",
      estimator_name(p->used[o]), "estimator_requested", estimator_name(q->estimator),
      "estimator_reason", p->reason[o], "order", r->order, "num", q->num,
      "max_order", r->max_order, "basis", "legendre", "coefficients",
      dbl_array(r->coef, nb, 1), "baseline", eng_regressor_baseline(r), "domain",
      r->low, r->high, "alpha", r->alpha, "beta", r->beta, "evidence", ev,
      "posterior_covariance", cov, "points", points, "curve", curve, "diagnostic",
      p->diag ? diag_json(L, &p->diag[o]) : json_null(), "warnings", warn);
  /* what the band (curve[].std) is: see svc/fit.c's band note */
  if (v != NULL)
    json_object_set_new(v, "band", json_pack("{s:s,s:f}", "noise", noise, "misfit_std",
                                             sqrt(1.0 / r->beta)));
  if (v != NULL)
    resolve_step_json(L, v, feature, o);
  return v;
}

/* Decode the parts of a cached regressor the attributions need.  Every
 * field is checked: a damaged cache row is an error, not a crash. */
int svc_regressor_decode(const json_t *v, struct eng_regressor *r)
{
  /* Only what the predictive mean needs is set; the posterior covariance
   * (r->cov, 13 KB) is left alone, and zeroing it was most of the time of
   * a cached attribution. */
  r->alpha = 0;
  json_t *coef = json_object_get(v, "coefficients");
  json_t *dom = json_object_get(v, "domain");
  json_t *order = json_object_get(v, "order");
  if (!json_is_array(coef) || !json_is_array(dom) || json_array_size(dom) != 2 ||
      !json_is_integer(order))
    return -1;
  json_int_t k = json_integer_value(order);
  if (k < 0 || k > ENG_ORDER_CAP || json_array_size(coef) != (size_t)k + 1)
    return -1;
  r->order = (int)k;
  r->max_order = (int)k;
  for (int i = 0; i <= r->order; i++) {
    json_t *c = json_array_get(coef, (size_t)i);
    if (!json_is_number(c) || !isfinite(json_number_value(c)))
      return -1;
    r->coef[i] = json_number_value(c);
  }
  if (!json_is_number(json_array_get(dom, 0)) || !json_is_number(json_array_get(dom, 1)))
    return -1;
  r->low = json_number_value(json_array_get(dom, 0));
  r->high = json_number_value(json_array_get(dom, 1));
  if (!(r->low < r->high) || !isfinite(r->low) || !isfinite(r->high))
    return -1;
  r->beta = 1;
  return 0;
}

/* Compute one feature's grid and fit + cache every output's regressor.
 * If want >= 0, returns that output's regressor JSON (new reference). */
enum aced_err fit_feature(const struct svc *svc, const struct loaded *L, int f,
                          const struct query_params *q, int want, json_t **out,
                          struct aced_error *err)
{
  int m = L->m->n_outputs;
  double low = L->m->features[f].low, high = L->m->features[f].high;
  /* a constant feature has a one-point domain: no grid, no regressor
   * (eng_regressor_fit refuses it too) */
  if (resolve_not_constant(L, f, "feature", err) != ACED_OK)
    return err->code;
  double *grid = malloc(sizeof(double) * (size_t)q->num);
  double *col = malloc(sizeof(double) * (size_t)q->num);
  struct eng_regressor *r = malloc(sizeof *r);
  if (!grid || !col || !r) {
    free(grid);
    free(col);
    free(r);
    return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  }
  eng_grid(low, high, q->num, grid);
  struct phase1 p;
  enum aced_err rc = effect_phase1(L, f, grid, q->num, q, -1, &p, err);
  if (rc != ACED_OK) {
    free(grid);
    free(col);
    free(r);
    return rc;
  }
  /* Fit every output, then store them all in one transaction. */
  char **texts = calloc((size_t)m, sizeof *texts);
  struct store_cache_key *keys = calloc((size_t)m, sizeof *keys);
  char pbuf[128];
  /* Monte Carlo points: their errors' covariance along the grid, for a
   * group of outputs per pass over the samples (see the band note) */
  /* (the covariance pass runs the feedforward network over the stored
   * samples: not for a recurrent model, nor for total or indirect effects,
   * whose points are means over re-generated samples; those take the
   * variances alone, and say so) */
  int n = q->num, c0 = 0, cn = 0;
  int full = n <= ACED_BAND_GRID_MAX && L->m->rnn == NULL && effect_of(L, q) == EFFECT_DIRECT;
  int group = (int)(ACED_BAND_COV_CELLS / ((long)n * n));
  group = group < 1 ? 1 : group > m ? m : group;
  double *C = NULL, *var = NULL;
  if (texts == NULL || keys == NULL)
    rc = aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  for (int o = 0; o < m && rc == ACED_OK; o++) {
    for (int a = 0; a < n; a++)
      col[a] = p.E[(size_t)a * m + o];
    const double *Co = NULL, *vo = NULL;
    const char *noise = "fitted";
    if (p.se && p.used[o] == EST_MC) {
      if (full) {
        if (C == NULL && (C = malloc(sizeof(double) * (size_t)group * n * n)) == NULL) {
          rc = aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
          break;
        }
        if (o >= c0 + cn) {
          c0 = o;
          cn = m - o < group ? m - o : group;
          int erc = eng_montecarlo_cov(L->em, f, grid, n, p.E, c0, cn, C);
          if (erc != 0) {
            rc = erc == ENG_STOPPED
                     ? aced_error_set(err, ACED_E_UNAVAILABLE, "",
                                      "job stopped (cancelled, timed out or shutting down)")
                     : aced_error_set(err, ACED_E_INTERNAL, "",
                                      "numerical engine failed (out of memory?)");
            break;
          }
        }
        Co = C + (size_t)(o - c0) * n * n;
      }
      if (var == NULL && (var = malloc(sizeof(double) * (size_t)n)) == NULL) {
        rc = aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
        break;
      }
      for (int a = 0; a < n; a++)
        var[a] = p.se[(size_t)a * m + o] * p.se[(size_t)a * m + o];
      vo = var;
      noise = full ? "montecarlo_covariance" : "montecarlo_variance";
    }
    if (eng_regressor_fit_known(grid, col, vo, Co, n, low, high, q->max_order, r) != 0) {
      rc = aced_error_set(err, ACED_E_INTERNAL, "", "regressor fit failed for output %d", o);
      break;
    }
    json_t *v = regressor_json(L, o, f, q, &p, grid, r, noise);
    json_object_set_new(v, "effect", json_string(effect_name(effect_of(L, q))));
    texts[o] = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    if (texts[o] == NULL) {
      json_decref(v);
      rc = aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
      break;
    }
    regcache_key(L, o, f, q, pbuf, sizeof pbuf, &keys[o]);
    if (o == want && out)
      *out = v;
    else
      json_decref(v);
  }
  if (rc == ACED_OK)
    rc = svc->store->ops->cache_put(svc->store, keys, (const char *const *)texts, m, err);
  for (int o = 0; texts && o < m; o++)
    free(texts[o]);
  free(texts);
  free(keys);
  if (rc != ACED_OK && out && *out) {
    json_decref(*out);
    *out = NULL;
  }
  phase1_free(&p);
  free(grid);
  free(col);
  free(r);
  free(C);
  free(var);
  return rc;
}

json_t *meta_json(const char *estimator, const char *cache, json_t *warnings)
{
  return json_pack("{s:s,s:s,s:f,s:o}", "estimator", estimator, "cache", cache,
                   "elapsed_ms", 0.0, "warnings", warnings ? warnings : json_array());
}

json_t *regressor_reply(const json_t *v, const char *cache)
{
  json_t *reply = json_deep_copy(v);
  json_t *warn = json_object_get(reply, "warnings");
  json_object_set_new(reply, "meta",
                      meta_json(json_string_value(json_object_get(reply, "estimator")),
                                cache, json_incref(warn)));
  return reply;
}

/* The stop check handed to the engine: the job's own. */
static int job_stop(void *cls)
{
  return job_cancelled(cls);
}

void svc_stop_begin(struct job *job)
{
  eng_set_stop(job_stop, job);
}

void svc_stop_end(void)
{
  eng_set_stop(NULL, NULL);
}
