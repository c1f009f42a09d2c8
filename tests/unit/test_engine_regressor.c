/*
 * test_engine_regressor.c -- the Bayesian polynomial regressor against
 * known polynomials and independent numerical integration.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/engine.h"
#include "tap.h"

/* A cubic in raw x on [low, high]. */
static double cubic(double x)
{
  return 0.3 - 1.7 * x + 0.8 * x * x + 2.1 * x * x * x;
}

/* Composite Simpson of the regressor's mean over [low, high]. */
static double simpson_mean(const struct eng_regressor *r, int n)
{
  double h = (r->high - r->low) / n, s = 0.0;
  for (int i = 0; i <= n; i++) {
    double w = (i == 0 || i == n) ? 1.0 : (i % 2 ? 4.0 : 2.0);
    s += w * eng_regressor_mean(r, r->low + i * h);
  }
  return s * h / 3.0 / (r->high - r->low);
}


/* Solve the k x k system a y = b (a copied, partial pivoting), and return
 * ln|det a|: a check of the fit that shares no code with it (no LAPACK,
 * no eigenbasis). */
static double gauss_solve(const double *a_in, int k, double *b, int nrhs)
{
  double a[144];
  for (int i = 0; i < k * k; i++)
    a[i] = a_in[i];
  double logdet = 0.0;
  for (int c = 0; c < k; c++) {
    int piv = c;
    for (int r = c + 1; r < k; r++)
      if (fabs(a[r * k + c]) > fabs(a[piv * k + c]))
        piv = r;
    for (int j = 0; j < k; j++) {
      double tmp = a[c * k + j];
      a[c * k + j] = a[piv * k + j];
      a[piv * k + j] = tmp;
    }
    for (int j = 0; j < nrhs; j++) {
      double tmp = b[c * nrhs + j];
      b[c * nrhs + j] = b[piv * nrhs + j];
      b[piv * nrhs + j] = tmp;
    }
    logdet += log(fabs(a[c * k + c]));
    for (int r = c + 1; r < k; r++) {
      double f = a[r * k + c] / a[c * k + c];
      for (int j = c; j < k; j++)
        a[r * k + j] -= f * a[c * k + j];
      for (int j = 0; j < nrhs; j++)
        b[r * nrhs + j] -= f * b[c * nrhs + j];
    }
  }
  for (int r = k - 1; r >= 0; r--)
    for (int j = 0; j < nrhs; j++) {
      double v = b[r * nrhs + j];
      for (int c = r + 1; c < k; c++)
        v -= a[r * k + c] * b[c * nrhs + j];
      b[r * nrhs + j] = v / a[r * k + r];
    }
  return logdet;
}

/* The evidence fit's answer checked against its definition (PRML 3.5) at
 * the alpha and beta it returns: m = beta A^-1 Phi^T t and cov = A^-1 with
 * A = alpha I + beta Phi^T Phi, the log evidence of PRML 3.86 at the chosen
 * order, and the fixed point alpha = gamma / m'm, beta = (n - gamma) / |r|^2
 * with gamma = P - alpha tr(A^-1) (PRML 3.91, 3.95). */
static void check_definition(const double *x, const double *t, int n, double low, double high,
                             const char *what)
{
  struct eng_regressor r;
  if (!tap_ok(eng_regressor_fit(x, t, n, low, high, 10, &r) == 0, "%s: fits", what))
    return;
  int P = r.order + 1;
  double phi[400 * 11], G[121], rhs[11 * 12], unit[11];
  for (int i = 0; i < n; i++)
    for (int j = 0; j < P; j++) {
      for (int k = 0; k < P; k++)
        unit[k] = k == j;
      phi[i * P + j] = eng_legendre_series(unit, j, low, high, x[i]);
    }
  /* right-hand sides: beta Phi^T t, then the identity (for A^-1) */
  for (int i = 0; i < P; i++) {
    double h = 0.0;
    for (int s = 0; s < n; s++)
      h += phi[s * P + i] * t[s];
    rhs[i * (P + 1)] = r.beta * h;
    for (int j = 0; j < P; j++) {
      double g = 0.0;
      for (int s = 0; s < n; s++)
        g += phi[s * P + i] * phi[s * P + j];
      G[i * P + j] = r.beta * g + (i == j ? r.alpha : 0.0);
      rhs[i * (P + 1) + 1 + j] = i == j;
    }
  }
  double logdet = gauss_solve(G, P, rhs, P + 1);
  double dm = 0.0, dc = 0.0, mm = 0.0, err = 0.0, tr = 0.0, cmax = 0.0;
  for (int i = 0; i < P; i++) {
    dm = fmax(dm, fabs(rhs[i * (P + 1)] - r.coef[i]));
    mm += r.coef[i] * r.coef[i];
    tr += rhs[i * (P + 1) + 1 + i];
    for (int j = 0; j < P; j++) {
      dc = fmax(dc, fabs(rhs[i * (P + 1) + 1 + j] - r.cov[i * P + j]));
      cmax = fmax(cmax, fabs(r.cov[i * P + j]));
    }
  }
  double scale = 0.0;
  for (int s = 0; s < n; s++) {
    double y = 0.0;
    for (int j = 0; j < P; j++)
      y += phi[s * P + j] * r.coef[j];
    err += (t[s] - y) * (t[s] - y);
    scale = fmax(scale, fabs(t[s]));
  }
  tap_ok(dm <= 1e-9 * scale, "%s: m = beta A^-1 Phi't (off by %.2g of the scale %.3g)", what, dm,
         scale);
  tap_ok(dc <= 1e-9 * cmax, "%s: cov = A^-1 (off by %.2g of %.3g)", what, dc, cmax);
  double logev = 0.5 * P * log(r.alpha) + 0.5 * n * log(r.beta) - 0.5 * r.beta * err -
                 0.5 * r.alpha * mm - 0.5 * logdet - 0.5 * n * log(2 * 3.14159265358979323846);
  tap_ok(fabs(logev - r.log_evidence[r.order]) <= 1e-8 * fmax(1.0, fabs(logev)),
         "%s: log evidence at order %d is PRML 3.86 (%.12g vs %.12g)", what, r.order,
         r.log_evidence[r.order], logev);
  double gamma = P - r.alpha * tr;
  tap_ok(fabs(r.alpha - gamma / mm) <= 1e-8 * r.alpha &&
             fabs(r.beta - (n - gamma) / err) <= 1e-8 * r.beta,
         "%s: alpha, beta at the fixed point (alpha %.6g vs %.6g, beta %.6g vs %.6g)", what,
         r.alpha, gamma / mm, r.beta, (n - gamma) / err);
}

int main(void)
{
  enum { N = 100 };
  double x[N], t[N];
  struct eng_regressor r;

  eng_grid(-2.0, 3.0, N, x);
  tap_ok(x[0] == -2.0 && x[N - 1] == 3.0 && fabs(x[1] - x[0] - 5.0 / 99) < 1e-15,
         "eng_grid: inclusive, even spacing");

  /* a constant feature's one-point domain (issue 10): the grid is that
   * point, the fit refuses it, and a series evaluated on it stays finite
   * (t = 0, not 0/0) */
  {
    double g[5], c[3] = {0.5, 2.0, -1.0}, tc[5] = {1, 1, 1, 1, 1};
    eng_grid(0.25, 0.25, 5, g);
    tap_ok(g[0] == 0.25 && g[2] == 0.25 && g[4] == 0.25, "eng_grid on low == high: that point");
    tap_ok(eng_regressor_fit(g, tc, 5, 0.25, 0.25, 3, &r) != 0,
           "eng_regressor_fit refuses low == high");
    double v = eng_legendre_series(c, 2, 0.25, 0.25, 0.25);
    tap_ok(isfinite(v) && fabs(v - (0.5 + 2.0 * 0.0 - 1.0 * -0.5)) < 1e-15,
           "a series on low == high is its value at t = 0 (%g), not NaN", v);
  }

  /* four series at once: bit for bit four single ones, whatever the
   * orders (0 to the cap, mixed), the signs, and x inside, outside or far
   * outside the domain (where P_n overflows), low == high included */
  {
    uint64_t z = 88172645463325252ULL;
    long bad = 0;
    for (int it = 0; it < 20000; it++) {
      double cf[4][ENG_ORDER_CAP + 1], lo[4], hi[4], xs[4], out[4];
      const double *cp[4];
      int ord[4];
      for (int l = 0; l < 4; l++) {
        z ^= z << 13, z ^= z >> 7, z ^= z << 17;
        ord[l] = (int)(z % (ENG_ORDER_CAP + 1));
        for (int j = 0; j <= ENG_ORDER_CAP; j++) {
          z ^= z << 13, z ^= z >> 7, z ^= z << 17;
          cf[l][j] = ((double)(z >> 11) / 9007199254740992.0 - 0.5) * (j == 0 && z % 5 == 0 ? -0.0 : 4.0);
        }
        lo[l] = -1.0 - (double)(z % 7);
        hi[l] = z % 11 == 0 ? lo[l] : lo[l] + 0.5 + (double)(z % 13);
        double u = (double)((z >> 20) % 100000) / 100000.0;
        xs[l] = z % 17 == 0 ? 1e300 : lo[l] + (hi[l] - lo[l]) * (3.0 * u - 1.0);
        cp[l] = cf[l];
      }
      eng_legendre_series4(cp, ord, lo, hi, xs, out);
      for (int l = 0; l < 4; l++) {
        double want = eng_legendre_series(cf[l], ord[l], lo[l], hi[l], xs[l]);
        bad += memcmp(&want, &out[l], sizeof want) != 0;
      }
    }
    tap_ok(bad == 0, "eng_legendre_series4 is four eng_legendre_series bit for bit (80000 lanes, %ld differ)",
           bad);
  }

  for (int i = 0; i < N; i++)
    t[i] = cubic(x[i]);
  tap_ok(eng_regressor_fit(x, t, N, -2.0, 3.0, 20, &r) == 0, "fit cubic");
  tap_ok(r.order == 3, "cubic picks order 3 (got %d)", r.order);
  tap_ok(r.max_order == 20, "orders 0..20 tried");
  double worst = 0.0;
  for (int i = 0; i <= 1000; i++) {
    double xx = -2.0 + 5.0 * i / 1000;
    double d = fabs(eng_regressor_mean(&r, xx) - cubic(xx));
    if (!(d <= worst))
      worst = d;
  }
  tap_ok(worst <= 1e-8, "cubic recovered (max err %.3g on a dense grid)", worst);
  /* exact average of the cubic over [-2, 3]: integral / 5 */
  double F3 = 0.3 * 3 - 1.7 * 9 / 2 + 0.8 * 27 / 3 + 2.1 * 81 / 4;
  double Fm2 = 0.3 * -2 - 1.7 * 4 / 2 + 0.8 * -8 / 3 + 2.1 * 16 / 4;
  tap_close(eng_regressor_baseline(&r), (F3 - Fm2) / 5.0, 1e-8,
            "baseline = exact average of the cubic");
  tap_close(eng_regressor_baseline(&r), simpson_mean(&r, 20000), 1e-9,
            "baseline = Simpson average of the predictive mean");
  int ev_ok = 1;
  for (int m = 0; m <= r.max_order; m++)
    if (!isfinite(r.log_evidence[m]) || r.log_evidence[m] > r.log_evidence[3])
      ev_ok = 0;
  tap_ok(ev_ok, "log evidence finite and highest at the chosen order");
  double s0 = eng_regressor_std(&r, 0.1), s1 = eng_regressor_std(&r, 3.0);
  tap_ok(s0 > 0 && isfinite(s0) && s1 > 0 && isfinite(s1),
         "predictive std positive and finite (%.3g, %.3g)", s0, s1);
  tap_ok(r.beta > 0 && isfinite(r.beta) && r.alpha > 0 && isfinite(r.alpha),
         "alpha, beta positive and finite (beta bounded: %.3g)", r.beta);

  /* a non-polynomial curve: the baseline still equals the average of the
   * predictive mean (it is coef[0] by construction of the basis) */
  for (int i = 0; i < N; i++)
    t[i] = 1.0 / (1.0 + exp(-3.0 * x[i])) + 0.2 * sin(2.0 * x[i]);
  tap_ok(eng_regressor_fit(x, t, N, -2.0, 3.0, 20, &r) == 0, "fit sigmoid+sine");
  tap_ok(r.order >= 4, "a curved function needs a higher order (got %d)", r.order);
  tap_close(eng_regressor_baseline(&r), simpson_mean(&r, 20000), 1e-9,
            "baseline = Simpson average (order %d)", r.order);
  worst = 0.0;
  for (int i = 0; i < N; i++) {
    double d = fabs(eng_regressor_mean(&r, x[i]) - t[i]);
    if (d > worst)
      worst = d;
  }
  tap_ok(worst < 1e-3, "smooth curve fitted (max residual %.3g)", worst);

  /* noisy line: order 1 and a noise std close to the truth */
  unsigned s = 12345;
  double noise = 0.05;
  for (int i = 0; i < N; i++) {
    double u = 0;
    for (int j = 0; j < 12; j++) {
      s = s * 1103515245u + 12345u;
      u += (s >> 8) / 16777216.0;
    }
    t[i] = 0.5 + 0.25 * x[i] + noise * (u - 6.0);
  }
  tap_ok(eng_regressor_fit(x, t, N, -2.0, 3.0, 20, &r) == 0, "fit noisy line");
  tap_ok(r.order == 1, "noisy line picks order 1 (got %d)", r.order);
  double sd = 1.0 / sqrt(r.beta);
  tap_ok(sd > 0.035 && sd < 0.07, "noise std estimated (%.4g, true 0.05)", sd);

  /* constant picks order 0 */
  for (int i = 0; i < N; i++)
    t[i] = 0.42;
  tap_ok(eng_regressor_fit(x, t, N, -2.0, 3.0, 20, &r) == 0, "fit constant");
  tap_ok(r.order == 0, "constant picks order 0 (got %d)", r.order);
  tap_close(eng_regressor_baseline(&r), 0.42, 1e-9, "constant baseline");
  s0 = eng_regressor_std(&r, 0.5);
  tap_ok(s0 > 0 && isfinite(s0), "std positive and finite for a constant (%.3g)", s0);

  /* all zero: alpha guard */
  for (int i = 0; i < N; i++)
    t[i] = 0.0;
  tap_ok(eng_regressor_fit(x, t, N, -2.0, 3.0, 20, &r) == 0 && r.order == 0 &&
             fabs(eng_regressor_mean(&r, 1.0)) < 1e-12 &&
             isfinite(eng_regressor_std(&r, 1.0)),
         "all-zero data: order 0, mean 0, finite std");

  /* few points: orders above n - 2 are not tried */
  tap_ok(eng_regressor_fit(x, t, 3, -2.0, 3.0, 20, &r) == 0 && r.max_order == 1,
         "3 points: only orders 0..1 tried");
  tap_ok(eng_regressor_fit(x, t, N, 1.0, 1.0, 5, &r) == -1, "empty domain rejected");
  tap_ok(eng_regressor_fit(x, t, N, -2.0, 3.0, ENG_ORDER_CAP + 1, &r) == -1,
         "order above the cap rejected");
  /* noisy curves: the fit settles inside the bounds, so the fixed point
   * and the definitions can be checked exactly */
  {
    double xs[400], ts[400];
    unsigned long long u = 88172645463325252ULL;
    for (int c = 0; c < 3; c++) {
      int n = c == 0 ? 100 : c == 1 ? 37 : 400;
      eng_grid(-1.5, 2.5, n, xs);
      for (int i = 0; i < n; i++) {
        u ^= u << 13, u ^= u >> 7, u ^= u << 17;
        double eps = ((double)(u >> 11) / 9007199254740992.0 - 0.5) * (c == 2 ? 0.2 : 0.02);
        ts[i] = (c == 1 ? 40.0 : 1.0) / (1.0 + exp(-3.0 * xs[i])) + sin(2.0 * xs[i]) + eps;
      }
      char what[48];
      snprintf(what, sizeof what, "noisy curve %d (n = %d)", c, n);
      check_definition(xs, ts, n, -1.5, 2.5, what);
    }
    /* Without noise: a smooth curve that order 10 fits to about 1e-8 of
     * its scale (beta near 1e16), where the residual summed point by point
     * carries rounding of about 1e-10 of itself; the fit settles on its
     * eigenbasis misfit there (regressor.c), which must still be the fixed
     * point of the point-by-point one. */
    eng_grid(-1.5, 2.5, 100, xs);
    for (int i = 0; i < 100; i++)
      ts[i] = 1.0 / (1.0 + exp(-xs[i])) + 0.2 * sin(xs[i]);
    check_definition(xs, ts, 100, -1.5, 2.5, "smooth curve, no noise");
  }
  return tap_done();
}
