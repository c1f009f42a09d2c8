/*
 * phase1.c -- Phase I of the paper, E[y | do(x_i = a)], with the choice of
 * estimator: `auto` runs taylor (Eq. 4) and its reliability diagnostic and
 * answers with montecarlo (Eq. 2) for the outputs where taylor fails, when
 * the model has samples, else with the unscented transform (which stays
 * in the output's range); every unreliable answer carries a warning.
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

void phase1_free(struct phase1 *p)
{
  free(p->E);
  free(p->se);
  free(p->used);
  free(p->reason);
  free(p->diag);
  json_decref(p->warnings);
  memset(p, 0, sizeof *p);
}

json_t *diag_json(const struct loaded *L, const struct eng_diag *d)
{
  if (d == NULL)
    return json_null();
  double lo, hi;
  eng_output_range(L->em, &lo, &hi);
  json_t *range = json_pack("[oo]", isfinite(lo) ? json_real(lo) : json_null(),
                            isfinite(hi) ? json_real(hi) : json_null());
  int mc = d->mc_gap_ratio >= 0;
  return json_pack("{s:b,s:b,s:f,s:f,s:o,s:f,s:o,s:o,s:i}", "reliable", d->reliable,
                   "out_of_range", d->out_of_range, "min", d->min_value, "max",
                   d->max_value, "range", range, "second_order_ratio",
                   d->second_ratio, "montecarlo_gap_ratio",
                   mc ? json_real(d->mc_gap_ratio) : json_null(), "montecarlo_gap_se_ratio",
                   mc ? json_real(d->mc_gap_se) : json_null(), "montecarlo_samples",
                   mc ? d->mc_samples : 0);
}

static void warn_unreliable(struct phase1 *p, const struct loaded *L, int o,
                            int feature, const char *consequence)
{
  const struct eng_diag *d = &p->diag[o];
  double lo, hi;
  eng_output_range(L->em, &lo, &hi);
  char why[256] = "";
  size_t n = 0;
  if (d->out_of_range)
    n += (size_t)snprintf(why + n, sizeof why - n, "values reach [%.4g, %.4g] outside [%g, %g]; ",
                          d->min_value, d->max_value, lo, hi);
  if (n < sizeof why)
    n += (size_t)snprintf(why + n, sizeof why - n, "second-order term %.3g x the output's spread",
                          d->second_ratio);
  if (d->mc_gap_ratio >= 0 && n < sizeof why)
    snprintf(why + n, sizeof why - n, "; gap to montecarlo %.3g x spread", d->mc_gap_ratio);
  char msg[512], at[32] = ""; /* recurrent models: the step of the intervention */
  if (L->m->rnn)
    snprintf(at, sizeof at, " at step %d", feature / L->m->step_features);
  snprintf(msg, sizeof msg,
           "taylor (Eq. 4) is unreliable for output '%s' under do(%s%s): %s; %s",
           L->m->outputs[o], L->m->features[feature].name, at, why, consequence);
  json_array_append_new(p->warnings, json_string(msg));
}

enum aced_err phase1_run(const struct loaded *L, int feature,
                         const double *alpha, int n, enum estimator est,
                         double epsilon, int focus, struct phase1 *p,
                         struct aced_error *err)
{
  int m = L->m->n_outputs;
  memset(p, 0, sizeof *p);
  p->n = n;
  p->n_out = m;
  p->E = calloc((size_t)n * m, sizeof(double));
  p->used = calloc((size_t)m, sizeof *p->used);
  p->reason = calloc((size_t)m, sizeof *p->reason);
  p->warnings = json_array();
  double *second = NULL, *T = NULL;
  int erc = -1; /* the failing engine call's code: ENG_STOPPED is no failure of ours */
  if (!p->E || !p->used || !p->reason || !p->warnings)
    goto oom;
  int has_samples = eng_model_samples(L->em) > 0;

  /* with output feedback an intervention re-simulates the sequences: the
   * unscented transform of the observed moments does not apply */
  int ut_ok = L->m->rnn == NULL || !L->m->rnn->feedback;
  if (est == EST_UT && !ut_ok) {
    phase1_free(p);
    return aced_error_set(err, ACED_E_INVALID, "estimator",
                          "unscented is not available for a recurrent model with feedback; "
                          "use montecarlo, taylor or auto");
  }
  if (est == EST_UT) {
    if ((erc = eng_unscented(L->em, feature, alpha, n, p->E)) != 0)
      goto oom;
    for (int o = 0; o < m; o++) {
      p->used[o] = EST_UT;
      p->reason[o] = "requested";
    }
    return ACED_OK;
  }

  if (est == EST_MC) {
    if (!has_samples) {
      phase1_free(p);
      return aced_error_set(err, ACED_E_NO_SAMPLES, "estimator",
                            "montecarlo needs data samples; this model was registered "
                            "with mean and covariance only");
    }
    p->se = calloc((size_t)n * m, sizeof(double));
    if (!p->se || (erc = eng_montecarlo(L->em, feature, alpha, n, p->E, p->se)) != 0)
      goto oom;
    for (int o = 0; o < m; o++) {
      p->used[o] = EST_MC;
      p->reason[o] = "requested";
    }
    return ACED_OK;
  }

  /* taylor, finite_difference and auto all get the taylor diagnostic */
  second = calloc((size_t)n * m, sizeof(double));
  T = calloc((size_t)n * m, sizeof(double));
  p->diag = calloc((size_t)m, sizeof *p->diag);
  if (!second || !T || !p->diag)
    goto oom;
  if ((erc = eng_taylor(L->em, feature, alpha, n, T, second)) != 0 ||
      (erc = eng_taylor_diagnose(L->em, feature, alpha, n, T, second, p->diag)) != 0)
    goto oom;

  if (est == EST_FD) {
    if ((erc = eng_finite_difference(L->em, feature, alpha, n, epsilon, p->E)) != 0)
      goto oom;
    for (int o = 0; o < m; o++) {
      p->used[o] = EST_FD;
      p->reason[o] = "requested";
      if (!p->diag[o].reliable && (focus < 0 || focus == o))
        warn_unreliable(p, L, o, feature,
                        "finite_difference approximates the same Eq. 4; consider montecarlo");
    }
  } else {
    memcpy(p->E, T, sizeof(double) * (size_t)n * m);
    int need_mc = 0;
    for (int o = 0; o < m; o++) {
      p->used[o] = EST_TAYLOR;
      p->reason[o] = est == EST_TAYLOR ? "requested" : "taylor diagnostic passed";
      if (!p->diag[o].reliable && est == EST_AUTO && has_samples)
        need_mc = 1;
    }
    if (need_mc) {
      double *mc = calloc((size_t)n * m, sizeof(double));
      double *se = calloc((size_t)n * m, sizeof(double));
      if (!mc || !se || (erc = eng_montecarlo(L->em, feature, alpha, n, mc, se)) != 0) {
        free(mc);
        free(se);
        goto oom;
      }
      p->se = se;
      for (int o = 0; o < m; o++) {
        if (p->diag[o].reliable) {
          for (int a = 0; a < n; a++)
            se[(size_t)a * m + o] = 0;
          continue;
        }
        for (int a = 0; a < n; a++)
          p->E[(size_t)a * m + o] = mc[(size_t)a * m + o];
        p->used[o] = EST_MC;
        p->reason[o] = "taylor diagnostic failed; model has samples";
        if (focus < 0 || focus == o)
          warn_unreliable(p, L, o, feature, "auto answered with montecarlo instead");
      }
      free(mc);
    }
    /* no samples: auto answers with the unscented transform where taylor
     * failed (it stays in the output's range) */
    int need_ut = 0;
    for (int o = 0; o < m; o++)
      need_ut |= ut_ok && est == EST_AUTO && !p->diag[o].reliable && p->used[o] == EST_TAYLOR;
    if (need_ut) {
      double *ut = calloc((size_t)n * m, sizeof(double));
      if (!ut || (erc = eng_unscented(L->em, feature, alpha, n, ut)) != 0) {
        free(ut);
        goto oom;
      }
      for (int o = 0; o < m; o++) {
        if (p->diag[o].reliable || p->used[o] != EST_TAYLOR)
          continue;
        for (int a = 0; a < n; a++)
          p->E[(size_t)a * m + o] = ut[(size_t)a * m + o];
        p->used[o] = EST_UT;
        p->reason[o] = "taylor diagnostic failed; no samples, so the unscented transform";
        if (focus < 0 || focus == o)
          warn_unreliable(p, L, o, feature,
                          "no samples were registered, so auto answered with the unscented "
                          "transform instead");
      }
      free(ut);
    }
    for (int o = 0; o < m; o++)
      if (!p->diag[o].reliable && p->used[o] == EST_TAYLOR && (focus < 0 || focus == o))
        warn_unreliable(p, L, o, feature,
                        has_samples ? "use estimator montecarlo or auto"
                                    : "use estimator unscented or auto");
  }
  free(second);
  free(T);
  return ACED_OK;
oom:
  free(second);
  free(T);
  phase1_free(p);
  if (erc == ENG_STOPPED)
    return aced_error_set(err, ACED_E_UNAVAILABLE, "",
                          "job stopped (cancelled, timed out or shutting down)");
  return aced_error_set(err, ACED_E_INTERNAL, "", "numerical engine failed (out of memory?)");
}
