/*
 * unscented.c -- E[y | do(x_i = a)] by the unscented transform (Julier and
 * Uhlmann): the network evaluated at sigma points that have the
 * interventional mean and covariance exactly, averaged with their weights.
 *
 * DESIGN.  The interventional distribution has mean mu_a and covariance
 * S_i = L_i L_i^T, L_i the model's factor (k x r, the eigen-factor kept at
 * prepare, r its rank) with row i zeroed.  With n = r columns v_q of L_i
 * and kappa = max(0, 3 - n), the 2n + 1 sigma points are
 *     mu_a,  mu_a +- sqrt(n + kappa) v_q,
 * with weights kappa / (n + kappa) and 1 / (2 (n + kappa)).  They match the
 * mean and covariance exactly (and, for n <= 3, the Gaussian fourth moment
 * along each column: n + kappa = 3).  Why these choices:
 *   - the weights are never negative (kappa >= 0), so E is a convex
 *     combination of network outputs and stays inside the output's range
 *     for bounded outputs (softmax, sigmoid, tanh), where Eq. 4 can leave
 *     it on sharp classifiers;
 *   - expanding f to second order around mu_a gives f(mu_a) +
 *     1/2 sum_q v_q^T H v_q, Eq. 4 exactly: the two agree where Eq. 4 is
 *     good, and both are exact for a linear network;
 *   - a sigma point set depends on the factor chosen (any rotation of L_i
 *     has the same covariance); this one is the model's own factor, so the
 *     answer is a function of the registered model alone.
 * The network sees x only through z1 = W1 x + b1, and the sigma points move
 * z1 by +- sqrt(n + kappa) W1 v_q, columns of W1 L_i = W1 L - W1 e_i L[i,:]
 * (n1 x r, built once per call): every point costs layers 2.. only, batched
 * into GEMMs of UT_CHUNK rows over points and alphas.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "engine/internal.h"

/* Sigma points per batch (rows stacked into one GEMM). */
#define UT_CHUNK 256

/* A recurrent model without feedback: the same sigma points, in the input
 * space (the time-unrolled inputs), through the whole network.  (With
 * feedback the interventional distribution is the re-simulated one, not
 * the observed mean and factor: refused.) */
static int ut_inputs(const struct eng_model *m, int feature, const double *alpha, int n_alpha,
                     double *E)
{
  if (m->rnn->feedback)
    return -1;
  int k = m->k, no = m->n_out, r = m->r;
  int per = 2 * r + 1;
  double kappa = r < 3 ? 3.0 - r : 0.0, nk = r + kappa;
  double c = sqrt(nk), w0 = kappa / nk, wq = 0.5 / nk;
  double *x = malloc((size_t)UT_CHUNK * k * sizeof *x);
  double *y = malloc((size_t)UT_CHUNK * no * sizeof *y);
  int rc = -1;
  if (!x || !y)
    goto done;
  for (size_t t = 0; t < (size_t)n_alpha * no; t++)
    E[t] = 0.0;
  long total = (long)n_alpha * per;
  for (long t0 = 0; t0 < total; t0 += UT_CHUNK) {
    if (eng_should_stop()) {
      rc = ENG_STOPPED;
      goto done;
    }
    int nc = total - t0 < UT_CHUNK ? (int)(total - t0) : UT_CHUNK;
    for (int s = 0; s < nc; s++) {
      long t = t0 + s;
      int a = (int)(t / per), p = (int)(t % per);
      double *xr = x + (size_t)s * k;
      memcpy(xr, m->mean, (size_t)k * sizeof *xr);
      if (p > 0) {
        int q = (p - 1) / 2;
        double sg = p % 2 ? c : -c;
        for (int j = 0; j < k; j++)
          xr[j] += sg * m->L[(size_t)j * r + q];
      }
      xr[feature] = alpha[a]; /* L_i: the factor with row i zeroed */
    }
    if (eng_forward(m, x, nc, y) != 0)
      goto done;
    for (int s = 0; s < nc; s++) {
      long t = t0 + s;
      int a = (int)(t / per), p = (int)(t % per);
      double wt = p == 0 ? w0 : wq;
      for (int o = 0; o < no; o++)
        E[(size_t)a * no + o] += wt * y[(size_t)s * no + o];
    }
  }
  rc = 0;
done:
  free(x);
  free(y);
  return rc;
}

int eng_unscented(const struct eng_model *m, int feature, const double *alpha, int n_alpha,
                  double *E)
{
  if (!m || feature < 0 || feature >= m->k || n_alpha < 0 || (n_alpha > 0 && (!alpha || !E)))
    return -1;
  if (n_alpha == 0)
    return 0;
  if (m->rnn)
    return ut_inputs(m, feature, alpha, n_alpha, E);
  int n1 = m->n1, k = m->k, no = m->n_out, r = m->r;
  const struct eng_layer *l1 = &m->net.layers[0];
  int per = 2 * r + 1; /* sigma points per alpha */
  double kappa = r < 3 ? 3.0 - r : 0.0, nk = r + kappa;
  double c = sqrt(nk), w0 = kappa / nk, wq = 0.5 / nk;
  double *tz = malloc(((size_t)n1 * (r > 0 ? r : 1)) * sizeof *tz);
  double *base = malloc((size_t)n1 * sizeof *base);
  double *z = malloc((size_t)UT_CHUNK * n1 * sizeof *z);
  double *y = malloc((size_t)UT_CHUNK * no * sizeof *y);
  double *work = malloc((size_t)2 * UT_CHUNK * m->max_units * sizeof *work);
  int rc = -1;
  if (!tz || !base || !z || !y || !work)
    goto done;
  /* W1 L_i (n1 x r) */
  if (r > 0)
    memcpy(tz, m->W1L, (size_t)n1 * r * sizeof *tz);
  const double *li = m->L + (size_t)feature * r;
  for (int j = 0; j < n1 && r > 0; j++) {
    double w = l1->W[(size_t)j * k + feature];
    if (w != 0.0)
      cblas_daxpy(r, -w, li, 1, tz + (size_t)j * r, 1);
  }
  /* z1 at mu_a = base + alpha W1[:, i] */
  memcpy(base, l1->b, (size_t)n1 * sizeof *base);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, n1, k, 1.0, l1->W, k, m->mean, 1, 1.0, base, 1);
  for (int j = 0; j < n1; j++)
    base[j] -= l1->W[(size_t)j * k + feature] * m->mean[feature];
  for (size_t t = 0; t < (size_t)n_alpha * no; t++)
    E[t] = 0.0;
  /* Points are numbered t = a * per + p: p = 0 the centre, p = 2q + 1 and
   * 2q + 2 the pair along column q. */
  long total = (long)n_alpha * per;
  for (long t0 = 0; t0 < total; t0 += UT_CHUNK) {
    if (eng_should_stop()) {
      rc = ENG_STOPPED;
      goto done;
    }
    int nc = total - t0 < UT_CHUNK ? (int)(total - t0) : UT_CHUNK;
    for (int s = 0; s < nc; s++) {
      long t = t0 + s;
      int a = (int)(t / per), p = (int)(t % per);
      double *zr = z + (size_t)s * n1;
      double al = alpha[a];
      for (int j = 0; j < n1; j++)
        zr[j] = base[j] + al * l1->W[(size_t)j * k + feature];
      if (p > 0) {
        int q = (p - 1) / 2;
        double sg = p % 2 ? c : -c;
        for (int j = 0; j < n1; j++)
          zr[j] += sg * tz[(size_t)j * r + q];
      }
    }
    eng_act_rows(l1->act, z, nc, n1);
    eng_forward_from(m, 1, z, nc, y, work);
    for (int s = 0; s < nc; s++) {
      long t = t0 + s;
      int a = (int)(t / per), p = (int)(t % per);
      double wt = p == 0 ? w0 : wq;
      if (wt == 0.0)
        continue;
      double *e = E + (size_t)a * no;
      const double *yr = y + (size_t)s * no;
      for (int o = 0; o < no; o++)
        e[o] += wt * yr[o];
    }
  }
  rc = 0;
done:
  free(tz);
  free(base);
  free(z);
  free(y);
  free(work);
  return rc;
}
