/*
 * regressor.c -- Phase II: Bayesian polynomial regression with the evidence
 * approximation (Bishop, PRML sec. 3.5), in a Legendre basis.
 *
 * DESIGN.  phi_j(x) = P_j(t), t = 2 (x - low)/(high - low) - 1: Legendre
 * polynomials are orthogonal on [-1, 1], so Phi^T Phi stays well conditioned
 * where monomials are hopeless, and the average of the mean over the domain
 * is exactly coef[0].  For each order M the prior precision alpha and noise
 * precision beta are re-estimated (PRML 3.91-3.95) until they settle; the
 * order with the highest log evidence (PRML 3.86) wins.
 *
 * Bounds.  Phase I values are deterministic, so an order that fits them
 * exactly drives the residual to zero and beta to infinity.  beta is capped
 * so the noise standard deviation is at least BETA_NOISE_REL (1e-9) times
 * the data scale (max |t|, or 1 when all t are 0): below that the residual
 * is rounding in the Phase I estimators and the float64 fit, not signal.
 * alpha is kept within [1e-12, 1e12] / scale^2 (weights of the order of the
 * data have precision about 1/scale^2), which guards m^T m == 0 (t all
 * zero) and gamma == 0.  Orders need at least M + 2 points (one left over to
 * estimate the noise): orders above n - 2 are not tried (order 0 always is).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <lapacke.h>
#include "engine/internal.h"

#define BETA_NOISE_REL 1e-9
#define ALPHA_REL_MIN 1e-12
#define ALPHA_REL_MAX 1e12
#define EVID_ITER_MAX 1000
#define EVID_REL_TOL 1e-12
#define LOG_2PI 1.83787706640934548356

/* A one-point domain (low == high, a constant feature) has no scale: every
 * x maps to the centre t = 0 rather than to 0/0.  eng_regressor_fit
 * refuses such a domain; this keeps a series evaluated on one finite. */
static double to_t(double low, double high, double x)
{
  if (!(high > low))
    return 0.0;
  return 2.0 * (x - low) / (high - low) - 1.0;
}

/* P_0..P_order at t. */
static void legendre(double t, int order, double *p)
{
  p[0] = 1.0;
  if (order >= 1)
    p[1] = t;
  for (int n = 1; n < order; n++)
    p[n + 1] = ((2.0 * n + 1.0) * t * p[n] - n * p[n - 1]) / (n + 1.0);
}

struct fit {
  double alpha, beta, logev;
  double m[ENG_ORDER_CAP + 1];
  double ainv[(ENG_ORDER_CAP + 1) * (ENG_ORDER_CAP + 1)];
};

/* Fit one order.  G = Phi^T Phi (P x P), h = Phi^T t, tt = t^T t, and
 * phi (n x P) for the residuals.  Returns 0, or -1 when A is not
 * positive definite (numerically). */
static int fit_order(const double *phi, int ldphi, const double *tv, int n, int P,
                     const double *G, const double *h, double scale,
                     struct fit *f)
{
  double eig[ENG_ORDER_CAP + 1], a[(ENG_ORDER_CAP + 1) * (ENG_ORDER_CAP + 1)];
  memcpy(a, G, (size_t)P * P * sizeof *a);
  if (LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', P, a, P, eig) != 0)
    return -1;
  double s2 = scale * scale;
  double amin = ALPHA_REL_MIN / s2, amax = ALPHA_REL_MAX / s2;
  double sig = BETA_NOISE_REL * scale;
  double bmax = 1.0 / (sig * sig);
  double tt = 0.0, mean = 0.0;
  for (int i = 0; i < n; i++)
    mean += tv[i];
  mean /= n;
  for (int i = 0; i < n; i++)
    tt += (tv[i] - mean) * (tv[i] - mean);
  double alpha = 1.0 / s2;
  double beta = tt > 0.0 ? n / tt : bmax;
  if (beta > bmax)
    beta = bmax;
  double err = 0.0, mm = 0.0, gamma = 0.0;
  for (int it = 0;; it++) {
    /* A = alpha I + beta G; m = beta A^-1 h */
    for (int i = 0; i < P; i++)
      for (int j = 0; j < P; j++)
        a[i * P + j] = beta * G[i * P + j] + (i == j ? alpha : 0.0);
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', P, a, P) != 0)
      return -1;
    for (int i = 0; i < P; i++)
      f->m[i] = beta * h[i];
    if (LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', P, 1, a, P, f->m, 1) != 0)
      return -1;
    err = 0.0;
    for (int i = 0; i < n; i++) {
      double y = 0.0;
      for (int j = 0; j < P; j++)
        y += phi[(size_t)i * ldphi + j] * f->m[j];
      err += (tv[i] - y) * (tv[i] - y);
    }
    mm = 0.0;
    for (int j = 0; j < P; j++)
      mm += f->m[j] * f->m[j];
    if (it == EVID_ITER_MAX)
      break;
    gamma = 0.0;
    for (int j = 0; j < P; j++) {
      double l = beta * (eig[j] > 0.0 ? eig[j] : 0.0);
      gamma += l / (alpha + l);
    }
    double na = mm > 0.0 ? gamma / mm : amax;
    if (!(na >= amin))
      na = amin;
    if (na > amax)
      na = amax;
    double nb = (n - gamma > 0.0 && err > 0.0) ? (n - gamma) / err : bmax;
    if (!(nb <= bmax))
      nb = bmax;
    if (nb < DBL_MIN)
      nb = DBL_MIN;
    int done = fabs(na - alpha) <= EVID_REL_TOL * alpha &&
               fabs(nb - beta) <= EVID_REL_TOL * beta;
    alpha = na;
    beta = nb;
    if (done) {
      /* one more pass with the settled values to refresh m and A */
      it = EVID_ITER_MAX - 1;
    }
  }
  double logdet = 0.0;
  for (int i = 0; i < P; i++)
    logdet += 2.0 * log(a[i * P + i]);
  double E = 0.5 * beta * err + 0.5 * alpha * mm;
  f->alpha = alpha;
  f->beta = beta;
  f->logev = 0.5 * P * log(alpha) + 0.5 * n * log(beta) - E - 0.5 * logdet -
             0.5 * n * LOG_2PI;
  if (LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', P, a, P) != 0)
    return -1;
  for (int i = 0; i < P; i++)
    for (int j = 0; j <= i; j++) {
      f->ainv[i * P + j] = a[i * P + j];
      f->ainv[j * P + i] = a[i * P + j];
    }
  return isfinite(f->logev) ? 0 : -1;
}

int eng_regressor_fit(const double *x, const double *t, int n, double low,
                      double high, int max_order, struct eng_regressor *r)
{
  if (!x || !t || !r || n < 1 || !(high > low) || !isfinite(low) ||
      !isfinite(high) || max_order < 0 || max_order > ENG_ORDER_CAP)
    return -1;
  for (int i = 0; i < n; i++)
    if (!isfinite(x[i]) || !isfinite(t[i]))
      return -1;
  int top = max_order;
  if (top > n - 2)
    top = n - 2 > 0 ? n - 2 : 0;
  int P = top + 1;
  double *phi = malloc((size_t)n * P * sizeof *phi);
  struct fit *f = malloc(sizeof *f), *best = malloc(sizeof *best);
  double G[(ENG_ORDER_CAP + 1) * (ENG_ORDER_CAP + 1)], h[ENG_ORDER_CAP + 1];
  double Gs[(ENG_ORDER_CAP + 1) * (ENG_ORDER_CAP + 1)];
  int rc = -1;
  if (!phi || !f || !best)
    goto done;
  double scale = 0.0;
  for (int i = 0; i < n; i++) {
    legendre(to_t(low, high, x[i]), top, phi + (size_t)i * P);
    if (fabs(t[i]) > scale)
      scale = fabs(t[i]);
  }
  if (!(scale > 0.0))
    scale = 1.0;
  for (int i = 0; i < P; i++) {
    h[i] = 0.0;
    for (int s = 0; s < n; s++)
      h[i] += phi[(size_t)s * P + i] * t[s];
    for (int j = 0; j < P; j++) {
      double g = 0.0;
      for (int s = 0; s < n; s++)
        g += phi[(size_t)s * P + i] * phi[(size_t)s * P + j];
      G[i * P + j] = g;
    }
  }
  memset(r, 0, sizeof *r);
  r->low = low;
  r->high = high;
  r->max_order = top;
  int have = 0;
  for (int M = 0; M <= top; M++) {
    int Pm = M + 1;
    for (int i = 0; i < Pm; i++)
      for (int j = 0; j < Pm; j++)
        Gs[i * Pm + j] = G[i * P + j];
    if (fit_order(phi, P, t, n, Pm, Gs, h, scale, f) != 0) {
      r->log_evidence[M] = -DBL_MAX;
      continue;
    }
    r->log_evidence[M] = f->logev;
    if (!have || f->logev > best->logev) {
      *best = *f;
      r->order = M;
      have = 1;
    }
  }
  if (!have)
    goto done;
  int Pb = r->order + 1;
  r->alpha = best->alpha;
  r->beta = best->beta;
  memcpy(r->coef, best->m, (size_t)Pb * sizeof *r->coef);
  memcpy(r->cov, best->ainv, (size_t)Pb * Pb * sizeof *r->cov);
  rc = 0;
done:
  free(phi);
  free(f);
  free(best);
  return rc;
}

double eng_legendre_series(const double *coef, int order, double low, double high,
                           double x)
{
  double p[ENG_ORDER_CAP + 1], y = 0.0;
  legendre(to_t(low, high, x), order, p);
  for (int j = 0; j <= order; j++)
    y += coef[j] * p[j];
  return y;
}

double eng_regressor_mean(const struct eng_regressor *r, double x)
{
  return eng_legendre_series(r->coef, r->order, r->low, r->high, x);
}

double eng_regressor_std(const struct eng_regressor *r, double x)
{
  double p[ENG_ORDER_CAP + 1], v = 1.0 / r->beta;
  int P = r->order + 1;
  legendre(to_t(r->low, r->high, x), r->order, p);
  for (int i = 0; i < P; i++)
    for (int j = 0; j < P; j++)
      v += p[i] * r->cov[i * P + j] * p[j];
  return sqrt(v > 0.0 ? v : 0.0);
}

double eng_regressor_baseline(const struct eng_regressor *r)
{
  return r->coef[0];
}

void eng_grid(double low, double high, int n, double *out)
{
  if (n < 1 || !out)
    return;
  if (n == 1) {
    out[0] = low;
    return;
  }
  for (int i = 0; i < n; i++)
    out[i] = low + (high - low) * ((double)i / (n - 1));
  out[n - 1] = high;
}
