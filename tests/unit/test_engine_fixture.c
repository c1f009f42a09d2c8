/*
 * test_engine_fixture.c -- the engine against independent reference values:
 * $ACED_SRCDIR/tests/data/small_mlp.json holds E[y | do(x_i = a)] computed
 * in PyTorch float64 with an exact autograd Hessian (taylor, Eq. 4) and as
 * the mean over the samples (montecarlo, Eq. 2); tools/gen_small_mlp.py
 * recomputes them.  A missing fixture fails.  log_softmax_mlp.json is the
 * same network with a log_softmax output layer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "aced/engine.h"
#include "engine/test_load.h"
#include "tap.h"

/* Central differences: the error is cancellation, ~ 1e-16 |f| / eps^2 per
 * factor column, plus truncation ~ eps^2 |v|^4 f'''' / 12.  Measured max
 * |finite_difference - taylor| on this fixture (all features, 11 alphas):
 * eps 1e-5: 5.7e-5, eps 1e-4: 4.4e-7, eps 3e-4: 4.8e-8, eps 1e-3: 2.5e-8.
 * We use eps = 1e-3 with tolerance 1e-7; a missing 1/eps^2 or a transposed
 * eigenvector matrix gives errors of order 1e-2 and more. */
#define FD_EPS 1e-3
#define FD_TOL 1e-7

static int find(const char *name, json_t *arr)
{
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *v = json_array_get(arr, i);
    const char *s = json_is_string(v) ? json_string_value(v)
                                      : json_string_value(json_object_get(v, "name"));
    if (s && strcmp(s, name) == 0)
      return (int)i;
  }
  return -1;
}

/* Compare one reference list ("taylor" or "montecarlo"); returns the max
 * abs error, or -1 on a structural problem. */
static double compare(struct eng_model *m, json_t *root, const char *which,
                      int *n_checked)
{
  json_t *ref = json_object_get(json_object_get(root, "reference"), which);
  json_t *feats = json_object_get(root, "features");
  json_t *outs = json_object_get(root, "outputs");
  int no = eng_model_outputs(m);
  double worst = 0.0;
  *n_checked = 0;
  if (!json_is_array(ref) || json_array_size(ref) == 0)
    return -1.0;
  for (size_t e = 0; e < json_array_size(ref); e++) {
    json_t *ent = json_array_get(ref, e);
    int o = find(json_string_value(json_object_get(ent, "output")), outs);
    int f = find(json_string_value(json_object_get(ent, "feature")), feats);
    json_t *al = json_object_get(ent, "alpha"), *ex = json_object_get(ent, "expectation");
    int na = (int)json_array_size(al);
    if (o < 0 || f < 0 || na < 1 || (int)json_array_size(ex) != na)
      return -1.0;
    double *alpha = tl_vector(al, na), *want = tl_vector(ex, na);
    double *E = malloc((size_t)na * no * sizeof *E);
    int rc = strcmp(which, "taylor") == 0 ? eng_taylor(m, f, alpha, na, E, NULL)
                                          : eng_montecarlo(m, f, alpha, na, E, NULL);
    if (rc != 0)
      worst = INFINITY;
    else
      for (int a = 0; a < na; a++) {
        double d = fabs(E[(size_t)a * no + o] - want[a]);
        if (!(d <= worst))
          worst = d;
        (*n_checked)++;
      }
    free(alpha);
    free(want);
    free(E);
  }
  return worst;
}

int main(void)
{
  eng_init();
  const char *src = getenv("ACED_SRCDIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/data/small_mlp.json", src ? src : ".");
  struct tl_model t = {0};
  if (!tap_ok(tl_load(path, &t) == 0, "load %s", path))
    return tap_done();
  struct eng_model *m = NULL;
  tap_ok(tl_prepare(&t, 1, 0.0, &m) == 0, "prepare");
  tap_ok(eng_model_inputs(m) == 4 && eng_model_outputs(m) == 3, "shape 4 -> 3");
  tap_ok(eng_model_rank(m) == 4, "full rank factor (rank %d)", eng_model_rank(m));
  tap_ok(eng_model_samples(m) == 200, "200 samples");

  int n = 0;
  double err = compare(m, t.root, "taylor", &n);
  tap_ok(err >= 0.0 && err <= 1e-10 && n == 132,
         "taylor reproduces the reference (max err %.3g over %d values)", err, n);
  err = compare(m, t.root, "montecarlo", &n);
  tap_ok(err >= 0.0 && err <= 1e-10 && n == 132,
         "montecarlo reproduces the reference (max err %.3g over %d values)", err, n);

  /* finite differences vs taylor on every feature, 11 alphas */
  double fdworst = 0.0, secmax = 0.0;
  int no = eng_model_outputs(m);
  for (int f = 0; f < t.k; f++) {
    double alpha[11], E[33], F[33], S[33];
    eng_grid(t.low[f], t.high[f], 11, alpha);
    int ok = eng_taylor(m, f, alpha, 11, E, S) == 0 &&
             eng_finite_difference(m, f, alpha, 11, FD_EPS, F) == 0;
    for (int i = 0; i < 11 * no; i++) {
      double d = ok ? fabs(E[i] - F[i]) : INFINITY;
      if (!(d <= fdworst))
        fdworst = d;
      if (fabs(S[i]) > secmax)
        secmax = fabs(S[i]);
    }
  }
  tap_diag("finite_difference(eps=%g) vs taylor: max diff %.3g; "
           "largest second-order term %.3g", FD_EPS, fdworst, secmax);
  tap_ok(fdworst <= FD_TOL, "finite_difference agrees with taylor to %g", FD_TOL);
  tap_ok(secmax > 1e-4, "second-order term is not trivially zero");

  /* montecarlo standard error: sample std / sqrt(n), checked by hand for
   * feature 0 at alpha 0.5 */
  {
    double a = 0.5, E[3], se[3];
    int ns = t.n_samples;
    double *x = malloc((size_t)ns * t.k * sizeof *x), *y = malloc((size_t)ns * 3 * sizeof *y);
    memcpy(x, t.samples, (size_t)ns * t.k * sizeof *x);
    for (int s = 0; s < ns; s++)
      x[(size_t)s * t.k] = a;
    eng_forward(m, x, ns, y);
    double mu = 0, ss = 0;
    for (int s = 0; s < ns; s++)
      mu += y[s * 3 + 1];
    mu /= ns;
    for (int s = 0; s < ns; s++)
      ss += (y[s * 3 + 1] - mu) * (y[s * 3 + 1] - mu);
    eng_montecarlo(m, 0, &a, 1, E, se);
    tap_close(E[1], mu, 1e-13, "montecarlo mean = mean of forward passes");
    tap_close(se[1], sqrt(ss / (ns - 1)) / sqrt((double)ns), 1e-13,
              "montecarlo standard error");
    free(x);
    free(y);
  }

  /* the Monte Carlo means' covariance across a grid: its diagonal is
   * se^2, an off-diagonal entry the samples' covariance of f at the two
   * values over n, checked here from forward passes */
  {
    enum { G = 7 };
    double g[G], E[G * 3], se[G * 3], C[2 * G * G];
    eng_grid(0.0, 1.0, G, g);
    eng_montecarlo(m, 2, g, G, E, se);
    int rc = eng_montecarlo_cov(m, 2, g, G, E, 1, 2, C);
    double worst = 0.0;
    for (int o = 0; o < 2; o++)
      for (int a = 0; a < G; a++) {
        double s2 = se[a * 3 + 1 + o] * se[a * 3 + 1 + o];
        worst = fmax(worst, fabs(C[(size_t)o * G * G + a * G + a] - s2) / s2);
      }
    tap_ok(rc == 0 && worst < 1e-12, "montecarlo_cov: diagonal = se^2 (rel %.2g)", worst);
    int ns = t.n_samples;
    double *x = malloc(sizeof(double) * (size_t)ns * t.k), *y0 = malloc(sizeof(double) * ns * 3);
    double *y1 = malloc(sizeof(double) * ns * 3), c = 0.0;
    memcpy(x, t.samples, sizeof(double) * (size_t)ns * t.k);
    for (int s = 0; s < ns; s++)
      x[(size_t)s * t.k + 2] = g[1];
    eng_forward(m, x, ns, y0);
    for (int s = 0; s < ns; s++)
      x[(size_t)s * t.k + 2] = g[5];
    eng_forward(m, x, ns, y1);
    for (int s = 0; s < ns; s++)
      c += (y0[s * 3 + 2] - E[1 * 3 + 2]) * (y1[s * 3 + 2] - E[5 * 3 + 2]);
    c /= (double)ns * (ns - 1);
    tap_close(C[G * G + 1 * G + 5], c, 1e-12, "montecarlo_cov: an off-diagonal entry");
    tap_ok(C[G * G + 5 * G + 1] == C[G * G + 1 * G + 5], "montecarlo_cov: symmetric");
    free(x);
    free(y0);
    free(y1);
  }

  /* without samples: montecarlo fails, taylor still matches */
  struct eng_model *m2 = NULL;
  tap_ok(tl_prepare(&t, 0, 0.0, &m2) == 0, "prepare without samples");
  err = compare(m2, t.root, "taylor", &n);
  tap_ok(err >= 0.0 && err <= 1e-10, "taylor without samples (max err %.3g)", err);
  {
    double a = 0.5, E[3];
    tap_ok(eng_montecarlo(m2, 0, &a, 1, E, NULL) == -1, "montecarlo without samples fails");
  }
  eng_model_free(m2);
  eng_model_free(m);
  tl_free(&t);

  /* log_softmax (issue 10): the same network with a log_softmax output
   * layer, its reference computed by tools/gen_small_mlp.py with
   * torch.log_softmax and an exact autograd Hessian */
  snprintf(path, sizeof path, "%s/tests/data/log_softmax_mlp.json", src ? src : ".");
  struct tl_model tl = {0};
  if (tap_ok(tl_load(path, &tl) == 0, "load %s", path)) {
    struct eng_model *ml = NULL;
    tap_ok(tl_prepare(&tl, 1, 0.0, &ml) == 0, "prepare the log_softmax network");
    err = compare(ml, tl.root, "taylor", &n);
    tap_ok(err >= 0.0 && err <= 1e-10 && n == 132,
           "log_softmax: taylor reproduces PyTorch's autograd Hessian reference (max err %.3g "
           "over %d values)", err, n);
    err = compare(ml, tl.root, "montecarlo", &n);
    tap_ok(err >= 0.0 && err <= 1e-10 && n == 132,
           "log_softmax: montecarlo reproduces the reference (max err %.3g over %d values)", err,
           n);
    double lo, hi;
    eng_output_range(ml, &lo, &hi);
    tap_ok(isinf(lo) && lo < 0 && hi == 0.0, "log_softmax outputs range over (-inf, 0]");
    eng_model_free(ml);
  }
  tl_free(&tl);
  return tap_done();
}
