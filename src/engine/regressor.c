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
#include <cblas.h>
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

/* |t - Phi m|^2, summed point by point (phi n x P, leading dimension
 * ldphi). */
static double misfit(const double *phi, int ldphi, const double *tv, int n, int P,
                     const double *m)
{
  double err = 0.0;
  for (int i = 0; i < n; i++) {
    double y = 0.0;
    for (int j = 0; j < P; j++)
      y += phi[(size_t)i * ldphi + j] * m[j];
    err += (tv[i] - y) * (tv[i] - y);
  }
  return err;
}

/* One re-estimation (PRML 3.92, 3.95) from the misfit err = |t - Phi m|^2
 * and mm = m^T m at the current alpha, beta: the new values, within their
 * bounds, in *alpha and *beta; returns 1 when both moved by at most
 * EVID_REL_TOL of themselves (settled). */
static int reestimate(const double *eig, int P, int n, double err, double mm,
                      double amin, double amax, double bmax, double *alpha, double *beta)
{
  double gamma = 0.0;
  for (int j = 0; j < P; j++) {
    double l = *beta * eig[j];
    gamma += l / (*alpha + l);
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
  int done = fabs(na - *alpha) <= EVID_REL_TOL * *alpha &&
             fabs(nb - *beta) <= EVID_REL_TOL * *beta;
  *alpha = na;
  *beta = nb;
  return done;
}

/* Fit one order.  G = Phi^T Phi (P x P), h = Phi^T t, tt = t^T t, and
 * phi (n x P) for the residuals.  Returns 0, or -1 when the fit is not
 * finite.
 *
 * G is diagonalised once, G = Q diag(eig) Q^T; A = alpha I + beta G then
 * shares Q, so every re-estimation of alpha and beta solves A m = beta h,
 * and the end takes ln|A| and A^-1, in that basis in O(P^2) instead of a
 * Cholesky factorisation per iteration.  G is PSD: an eigenvalue rounded
 * below zero counts as zero, as it does in gamma.
 *
 * The re-estimations run until alpha and beta move by at most 1e-12 of
 * themselves, in two phases:
 *  1. In the eigenbasis alone, O(P) a step: with the least-squares fit
 *     m_ls = G^-1 h and its residual r_ls (summed point by point once),
 *     |t - Phi m|^2 = |r_ls|^2 + (m_ls - m)^T G (m_ls - m), and the second
 *     term is sum_k hq_k^2 alpha^2 / (eig_k (alpha + beta eig_k)^2), with
 *     no difference of near-equal numbers; m^T m = sum_k mq_k^2.  Only
 *     when G is well conditioned (every eigenvalue above 1e-8 of the
 *     largest), as a Legendre basis over a spread grid is.  It settles in
 *     about 3 steps.  Then one pass forms m and sums the residual point by
 *     point at the settled alpha and beta, for the evidence.
 *     Should phase 1 reach EVID_ITER_MAX unsettled, its last values go to
 *     that pass, as the old steps' did at the cap.
 *  2. Otherwise (G ill conditioned), the same steps with m formed and the
 *     residual summed point by point every time.  Not tt - 2 m.h + m'Gm,
 *     which would cancel to rounding for the exact fits the beta cap exists
 *     for.
 * Phase 2 alone was the fit until 2026-12-02, and on a fit that is good but
 * not exact (residuals 1e-7 of the data, orders 5 to 12 of the regressors
 * of an MNIST-scale model) it does not settle: the point-by-point residual
 * carries rounding of about 1e-10 of itself, drawn afresh at every step, so
 * beta = (n - gamma) / err wanders by more than the 1e-12 asked and the
 * steps ran to the cap, 124 on average per order over orders 0..20 and
 * 450 to 580 for orders 7 to 10.  Phase 1's misfit is a smooth function of
 * alpha and beta, with the rounding of |r_ls|^2 frozen, and settles; the
 * two misfits agree to about 1e-10, the width of that wandering.  The fits
 * took 3.4% of a regressor job's CPU at MNIST scale then. */
static int fit_order(const double *phi, int ldphi, const double *tv, int n, int P,
                     const double *G, const double *h, double scale,
                     struct fit *f)
{
  enum { PMAX = ENG_ORDER_CAP + 1 };
  double eig[PMAX], q[PMAX * PMAX], hq[PMAX], mq[PMAX], work[34 * PMAX];
  /* G is symmetric, so its row-major array reads as itself column-major:
   * no transposed copy.  Q comes back column-major: q[i + k P] is entry
   * i of eigenvector k. */
  memcpy(q, G, (size_t)P * P * sizeof *q);
  if (LAPACKE_dsyev_work(LAPACK_COL_MAJOR, 'V', 'U', P, q, P, eig, work, 34 * PMAX) != 0)
    return -1;
  for (int k = 0; k < P; k++) {
    if (!(eig[k] > 0.0))
      eig[k] = 0.0;
    double v = 0.0;
    for (int i = 0; i < P; i++)
      v += q[i + k * P] * h[i];
    hq[k] = v;
  }
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
  int it = 0;

  /* phase 1 */
  double emax = 0.0;
  for (int k = 0; k < P; k++)
    if (eig[k] > emax)
      emax = eig[k];
  int conditioned = emax > 0.0;
  for (int k = 0; k < P; k++)
    conditioned &= eig[k] > 1e-8 * emax;
  if (conditioned) {
    /* m_ls = Q diag(1 / eig) Q^T h, and |t - Phi m_ls|^2 point by point */
    for (int i = 0; i < P; i++) {
      double v = 0.0;
      for (int k = 0; k < P; k++)
        v += q[i + k * P] * (hq[k] / eig[k]);
      f->m[i] = v;
    }
    double rls = misfit(phi, ldphi, tv, n, P, f->m);
    for (; it < EVID_ITER_MAX; it++) {
      double err = rls, mm = 0.0;
      for (int k = 0; k < P; k++) {
        double d = alpha + beta * eig[k], mk = beta * hq[k] / d;
        mm += mk * mk;
        err += hq[k] * hq[k] * alpha * alpha / (eig[k] * d * d);
      }
      if (reestimate(eig, P, n, err, mm, amin, amax, bmax, &alpha, &beta)) {
        it = EVID_ITER_MAX; /* settled: phase 2 is the final pass alone */
        break;
      }
    }
  }

  /* phase 2 */
  double err = 0.0, mm = 0.0;
  for (;; it++) {
    /* m = beta A^-1 h = Q diag(beta / (alpha + beta eig)) Q^T h */
    for (int k = 0; k < P; k++)
      mq[k] = beta * hq[k] / (alpha + beta * eig[k]);
    for (int i = 0; i < P; i++) {
      double v = 0.0;
      for (int k = 0; k < P; k++)
        v += q[i + k * P] * mq[k];
      f->m[i] = v;
    }
    err = misfit(phi, ldphi, tv, n, P, f->m);
    mm = 0.0;
    for (int j = 0; j < P; j++)
      mm += f->m[j] * f->m[j];
    if (it >= EVID_ITER_MAX)
      break;
    if (reestimate(eig, P, n, err, mm, amin, amax, bmax, &alpha, &beta))
      it = EVID_ITER_MAX - 1; /* one more pass with the settled values to refresh m */
  }
  double logdet = 0.0;
  for (int k = 0; k < P; k++)
    logdet += log(alpha + beta * eig[k]);
  double E = 0.5 * beta * err + 0.5 * alpha * mm;
  f->alpha = alpha;
  f->beta = beta;
  f->logev = 0.5 * P * log(alpha) + 0.5 * n * log(beta) - E - 0.5 * logdet -
             0.5 * n * LOG_2PI;
  /* A^-1 = Q diag(1 / (alpha + beta eig)) Q^T */
  for (int k = 0; k < P; k++)
    mq[k] = 1.0 / (alpha + beta * eig[k]);
  for (int i = 0; i < P; i++)
    for (int j = 0; j <= i; j++) {
      double v = 0.0;
      for (int k = 0; k < P; k++)
        v += q[i + k * P] * q[j + k * P] * mq[k];
      f->ainv[i * P + j] = v;
      f->ainv[j * P + i] = v;
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

/* ---- the fit with known noise (Monte Carlo points) ----
 *
 * Model: t_j = phi_j^T w + e_j + u_j, e_j the estimator's own error with
 * known variance var_j (Monte Carlo: se_j^2), u_j ~ N(0, s2) the
 * polynomial's misfit, w ~ N(0, I/alpha).  With omega_j = 1/(var_j + s2),
 * G = Phi^T diag(omega) Phi, h = Phi^T diag(omega) t and
 * ln|diag(var + s2)| = sum ln(var_j + s2).  For each order alpha is
 * re-estimated (PRML 3.92, in the eigenbasis of G); s2 is profiled on a
 * log grid from the floor (BETA_NOISE_REL x scale)^2 to scale^2 and
 * refined by golden section for the order chosen.  log evidence =
 * P/2 ln alpha - 1/2 sum ln(var + s2) - E(m) - 1/2 ln|A| - n/2 ln 2 pi,
 * E(m) = 1/2 sum omega_j r_j^2 + alpha/2 m^T m.  Judged against the
 * points' own error, a residual below it buys no further order: the order
 * is not at the cap merely because the points are smooth.
 *
 * Why the variances and not the whole covariance in the fit: Monte Carlo
 * points share one set of samples, so their errors are correlated and as
 * smooth as the curve itself; with that covariance as the noise model
 * (generalised least squares) the fit cannot tell signal from error along
 * those smooth directions and moved the curve a whole standard error off
 * the points there (tried: 53% coverage).  The correlation is accounted
 * for in the band instead: the posterior mean is a linear map of the
 * points, m = A^-1 Phi^T Omega t, so when C (n x n, the points' error
 * covariance, eng_montecarlo_cov) is given, the coefficients' covariance
 * is the sandwich A^-1 Phi^T Omega (C + s2 I) Omega Phi A^-1, the spread
 * of that map's output over fresh samples.  With C = diag(var) this is
 * A^-1 less the prior's share.  beta = 1/s2, and the predictive variance
 * s2 + phi^T cov phi (eng_regressor_std) is the uncertainty about the
 * interventional expectation itself. */
/* s2 grid points (2.25 decades apart over the 18 from the floor to scale^2:
 * each costs one small eigendecomposition per order, the fit's main cost)
 * and golden-section steps (to 2e-6 of the bracket's log-width). */
#define KN_GRID 9
#define KN_GOLDEN 30

struct kn_data {
  int n, P;            /* points, weights of the top order */
  const double *vp;    /* n x P: Phi */
  const double *vt;    /* n: t */
  const double *D;     /* n: the points' error variances */
  double scale;
  double *G, *h;       /* P x P, P: scratch for one s2 */
};

/* Fill G and h (top order) for s2; returns ln|C + s2 I| and sets *tct. */
static double kn_build(struct kn_data *d, double s2, double *tct)
{
  int n = d->n, P = d->P;
  double logdet = 0.0, q = 0.0;
  memset(d->G, 0, (size_t)P * P * sizeof *d->G);
  memset(d->h, 0, (size_t)P * sizeof *d->h);
  for (int j = 0; j < n; j++) {
    double v = d->D[j] + s2, om = 1.0 / v;
    const double *row = d->vp + (size_t)j * P;
    logdet += log(v);
    q += om * d->vt[j] * d->vt[j];
    for (int a = 0; a < P; a++) {
      d->h[a] += om * d->vt[j] * row[a];
      for (int b = a; b < P; b++)
        d->G[a * P + b] += om * row[a] * row[b];
    }
  }
  for (int a = 0; a < P; a++)
    for (int b = 0; b < a; b++)
      d->G[a * P + b] = d->G[b * P + a];
  *tct = q;
  return logdet;
}

/* Order with Pm weights under the G, h of kn_build: alpha re-estimated,
 * f filled (m and A^-1 only when full).  0, or -1 on a LAPACK failure. */
static int kn_order(const struct kn_data *d, int Pm, double s2, double logdetc, double tct,
                    int full, struct fit *f)
{
  int P = d->P;
  double u[(ENG_ORDER_CAP + 1) * (ENG_ORDER_CAP + 1)], lam[ENG_ORDER_CAP + 1];
  double b[ENG_ORDER_CAP + 1], c[ENG_ORDER_CAP + 1];
  for (int i = 0; i < Pm; i++)
    for (int j = 0; j < Pm; j++)
      u[i * Pm + j] = d->G[i * P + j];
  if (LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', Pm, u, Pm, lam) != 0)
    return -1;
  for (int i = 0; i < Pm; i++) {
    lam[i] = lam[i] > 0.0 ? lam[i] : 0.0;
    b[i] = 0.0;
    for (int j = 0; j < Pm; j++)
      b[i] += u[j * Pm + i] * d->h[j];
  }
  double s2s = d->scale * d->scale;
  double amin = ALPHA_REL_MIN / s2s, amax = ALPHA_REL_MAX / s2s, alpha = 1.0 / s2s, mm = 0.0;
  for (int it = 0; it <= EVID_ITER_MAX; it++) {
    double gamma = 0.0;
    mm = 0.0;
    for (int i = 0; i < Pm; i++) {
      c[i] = b[i] / (lam[i] + alpha);
      mm += c[i] * c[i];
      gamma += lam[i] / (lam[i] + alpha);
    }
    if (it == EVID_ITER_MAX)
      break;
    double na = mm > 0.0 ? gamma / mm : amax;
    na = !(na >= amin) ? amin : na > amax ? amax : na;
    int done = fabs(na - alpha) <= EVID_REL_TOL * alpha;
    alpha = na;
    if (done)
      it = EVID_ITER_MAX - 1; /* one more pass with the settled alpha */
  }
  double mh = 0.0, mgm = 0.0, logdeta = 0.0;
  for (int i = 0; i < Pm; i++) {
    mh += c[i] * b[i];
    mgm += lam[i] * c[i] * c[i];
    logdeta += log(lam[i] + alpha);
  }
  double ed = 0.5 * (tct - 2.0 * mh + mgm);
  if (ed < 0.0)
    ed = 0.0; /* rounding */
  f->alpha = alpha;
  f->beta = 1.0 / s2;
  f->logev = 0.5 * Pm * log(alpha) - 0.5 * logdetc - ed - 0.5 * alpha * mm - 0.5 * logdeta -
             0.5 * d->n * LOG_2PI;
  if (full)
    for (int i = 0; i < Pm; i++) {
      f->m[i] = 0.0;
      for (int j = 0; j < Pm; j++)
        f->m[i] += u[i * Pm + j] * c[j];
      for (int j = 0; j < Pm; j++) {
        double a = 0.0;
        for (int q = 0; q < Pm; q++)
          a += u[i * Pm + q] * u[j * Pm + q] / (lam[q] + alpha);
        f->ainv[i * Pm + j] = a;
      }
    }
  return isfinite(f->logev) ? 0 : -1;
}

/* The best evidence of order Pm - 1 over s2 in [lo, hi] (log scale) by
 * golden section; *s2 gets its argument. */
static double kn_golden(struct kn_data *d, int Pm, double lo, double hi, double *s2)
{
  const double g = 0.38196601125010515;
  double a = log(lo), c = log(hi), x1 = a + g * (c - a), x2 = c - g * (c - a), tct;
  struct fit f;
  double f1 = -INFINITY, f2 = -INFINITY, ld;
  ld = kn_build(d, exp(x1), &tct);
  if (kn_order(d, Pm, exp(x1), ld, tct, 0, &f) == 0)
    f1 = f.logev;
  ld = kn_build(d, exp(x2), &tct);
  if (kn_order(d, Pm, exp(x2), ld, tct, 0, &f) == 0)
    f2 = f.logev;
  for (int it = 0; it < KN_GOLDEN; it++) {
    if (f1 >= f2) {
      c = x2;
      x2 = x1;
      f2 = f1;
      x1 = a + g * (c - a);
      ld = kn_build(d, exp(x1), &tct);
      f1 = kn_order(d, Pm, exp(x1), ld, tct, 0, &f) == 0 ? f.logev : -INFINITY;
    } else {
      a = x1;
      x1 = x2;
      f1 = f2;
      x2 = c - g * (c - a);
      ld = kn_build(d, exp(x2), &tct);
      f2 = kn_order(d, Pm, exp(x2), ld, tct, 0, &f) == 0 ? f.logev : -INFINITY;
    }
  }
  *s2 = f1 >= f2 ? exp(x1) : exp(x2);
  return f1 >= f2 ? f1 : f2;
}

/* cov (P x P) = A^-1 Phi^T Omega (C + s2 I) Omega Phi A^-1, A^-1 given
 * in cov; phi n x ldp.  0, or -1 out of memory. */
static int kn_sandwich(const double *phi, int ldp, const double *var, const double *C, int n,
                       int P, double s2, double *cov)
{
  double *B = malloc((size_t)P * n * sizeof *B), *T = malloc((size_t)P * n * sizeof *T);
  double *S = malloc((size_t)P * P * sizeof *S), *R = malloc((size_t)P * P * sizeof *R);
  if (!B || !T || !S || !R) {
    free(B);
    free(T);
    free(S);
    free(R);
    return -1;
  }
  /* B = A^-1 Phi^T Omega (P x n) */
  for (int j = 0; j < n; j++) {
    double om = 1.0 / (var[j] + s2);
    for (int a = 0; a < P; a++) {
      double v = 0.0;
      for (int b = 0; b < P; b++)
        v += cov[a * P + b] * phi[(size_t)j * ldp + b];
      B[(size_t)a * n + j] = v * om;
    }
  }
  /* S = B C B^T + s2 B B^T */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P, n, n, 1.0, B, n, C, n, 0.0, T, n);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, P, n, 1.0, T, n, B, n, 0.0, S, P);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, P, n, s2, B, n, B, n, 0.0, R, P);
  for (int a = 0; a < P; a++)
    for (int b = 0; b < P; b++)
      cov[a * P + b] = 0.5 * (S[a * P + b] + S[b * P + a]) + R[a * P + b];
  free(B);
  free(T);
  free(S);
  free(R);
  return 0;
}

int eng_regressor_fit_known(const double *x, const double *t, const double *var,
                            const double *C, int n, double low, double high, int max_order,
                            struct eng_regressor *r)
{
  if (!var)
    return eng_regressor_fit(x, t, n, low, high, max_order, r);
  if (!x || !t || !r || n < 1 || !(high > low) || !isfinite(low) || !isfinite(high) ||
      max_order < 0 || max_order > ENG_ORDER_CAP)
    return -1;
  for (int i = 0; i < n; i++)
    if (!isfinite(x[i]) || !isfinite(t[i]) || !isfinite(var[i]))
      return -1;
  for (size_t i = 0; C && i < (size_t)n * n; i++)
    if (!isfinite(C[i]))
      return -1;
  int top = max_order;
  if (top > n - 2)
    top = n - 2 > 0 ? n - 2 : 0;
  int P = top + 1;
  double *D = malloc((size_t)n * sizeof *D), *phi = malloc((size_t)n * P * sizeof *phi);
  double *G = malloc((size_t)P * P * sizeof *G), *h = malloc((size_t)P * sizeof *h);
  struct fit *f = malloc(sizeof *f);
  int rc = -1;
  if (!D || !phi || !G || !h || !f)
    goto done;
  double scale = 0.0, dmax = 0.0;
  for (int i = 0; i < n; i++) {
    legendre(to_t(low, high, x[i]), top, phi + (size_t)i * P);
    scale = fabs(t[i]) > scale ? fabs(t[i]) : scale;
    D[i] = var[i] > 0.0 ? var[i] : 0.0;
    dmax = D[i] > dmax ? D[i] : dmax;
  }
  if (!(scale > 0.0))
    scale = 1.0;
  struct kn_data d = {.n = n, .P = P, .vp = phi, .vt = t, .D = D, .scale = scale, .G = G,
                      .h = h};
  double s2lo = BETA_NOISE_REL * scale * BETA_NOISE_REL * scale;
  double s2hi = scale * scale > dmax ? scale * scale : dmax;
  double grid[KN_GRID], best_s2[ENG_ORDER_CAP + 1];
  for (int g = 0; g < KN_GRID; g++)
    grid[g] = exp(log(s2lo) + (log(s2hi) - log(s2lo)) * g / (KN_GRID - 1));
  memset(r, 0, sizeof *r);
  r->low = low;
  r->high = high;
  r->max_order = top;
  for (int M = 0; M <= top; M++) {
    r->log_evidence[M] = -DBL_MAX;
    best_s2[M] = grid[0];
  }
  for (int g = 0; g < KN_GRID; g++) {
    double tct, ld = kn_build(&d, grid[g], &tct);
    for (int M = 0; M <= top; M++)
      if (kn_order(&d, M + 1, grid[g], ld, tct, 0, f) == 0 && f->logev > r->log_evidence[M]) {
        r->log_evidence[M] = f->logev;
        best_s2[M] = grid[g];
      }
  }
  int best = -1;
  for (int M = 0; M <= top; M++)
    if (r->log_evidence[M] > -DBL_MAX && (best < 0 || r->log_evidence[M] > r->log_evidence[best]))
      best = M;
  if (best < 0)
    goto done;
  /* refine s2 for the order chosen, between the grid neighbours */
  int gi = 0;
  while (gi < KN_GRID - 1 && grid[gi] < best_s2[best])
    gi++;
  double lo = grid[gi > 0 ? gi - 1 : 0], hi = grid[gi < KN_GRID - 1 ? gi + 1 : gi], s2 = 0.0;
  double ev = hi > lo ? kn_golden(&d, best + 1, lo, hi, &s2) : -INFINITY;
  if (!(ev > r->log_evidence[best]))
    s2 = best_s2[best];
  double tct, ld = kn_build(&d, s2, &tct);
  if (kn_order(&d, best + 1, s2, ld, tct, 1, f) != 0)
    goto done;
  int Pb = best + 1;
  if (C && kn_sandwich(phi, P, D, C, n, Pb, s2, f->ainv) != 0)
    goto done;
  r->log_evidence[best] = f->logev;
  r->order = best;
  r->alpha = f->alpha;
  r->beta = f->beta;
  memcpy(r->coef, f->m, (size_t)Pb * sizeof *r->coef);
  memcpy(r->cov, f->ainv, (size_t)Pb * Pb * sizeof *r->cov);
  rc = 0;
done:
  free(D);
  free(phi);
  free(G);
  free(h);
  free(f);
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

void eng_legendre_series4(const double *const coef[4], const int order[4], const double low[4],
                          const double high[4], const double x[4], double out[4])
{
  double t[4], p0[4], p1[4], y[4];
  int top = 0;
  for (int l = 0; l < 4; l++) {
    t[l] = to_t(low[l], high[l], x[l]);
    p0[l] = 1.0;
    p1[l] = t[l];
    y[l] = 0.0 + coef[l][0] * 1.0; /* as the loop's first step: -0.0 becomes 0.0 */
    if (order[l] >= 1)
      y[l] += coef[l][1] * t[l];
    top = order[l] > top ? order[l] : top;
  }
  for (int n = 1; n < top; n++)
    for (int l = 0; l < 4; l++) {
      double p2 = ((2.0 * n + 1.0) * t[l] * p1[l] - n * p0[l]) / (n + 1.0);
      p0[l] = p1[l];
      p1[l] = p2;
      if (n < order[l])
        y[l] += coef[l][n + 1] * p2;
    }
  for (int l = 0; l < 4; l++)
    out[l] = y[l];
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
