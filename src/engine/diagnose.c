/*
 * diagnose.c -- is the taylor estimate (paper Eq. 4) trustworthy for one
 * feature?
 *
 * Eq. 4 is a second-order expansion around mu_a.  It is good when the
 * second-order term is a modest correction to f(mu_a), and it is wrong in a
 * visible way when the input spread is wide compared with the scale on which
 * the network bends (sharp classifiers): the "expected probability" then
 * leaves [0, 1].  Three checks, per output, all measured against the output's
 * spread over the data (eng_output_spread), the natural unit of "how much
 * this output moves":
 *
 *   out_of_range   some value lies outside the range the last activation can
 *                  produce (eng_output_range), by more than RANGE_TOL times
 *                  max(1, largest |E|), which only forgives rounding.  An
 *                  expectation of values in [lo, hi] lies in [lo, hi]; outside
 *                  it, the estimate is certainly wrong.
 *   second_ratio   max |1/2 trace(H S_i)| / spread <= SECOND_MAX (0.5).  A
 *                  correction bigger than half the output's whole spread means
 *                  the expansion is far from converged: the neglected higher
 *                  orders are then of the same size as the term kept.
 *   mc_gap_ratio   max |taylor - montecarlo| / spread <= MC_GAP_MAX (0.25)
 *                  on ACED_MC_DIAG_POINTS grid points, when samples exist.
 *                  Monte Carlo is unbiased; a gap of a quarter of the spread
 *                  would change how a user reads the regressor curve.  The
 *                  Monte Carlo side averages over a fixed subsample of at
 *                  most ACED_MC_DIAG_SAMPLES samples (prepare.c), whose
 *                  standard error at the worst point is reported beside the
 *                  gap (mc_gap_se, same unit): about 0.04 with 512 samples,
 *                  well below the 0.25 judged, so the check needs no
 *                  allowance for it; the full-sample cost would be as much
 *                  again as Eq. 4 itself on a 3,000-sample model.
 *
 * reliable = !out_of_range && second_ratio <= SECOND_MAX &&
 *            (no samples || mc_gap_ratio <= MC_GAP_MAX).
 *
 * A zero spread (the output is constant over the data) would divide by
 * zero; the denominator is floored at SPREAD_FLOOR times max(1, largest
 * |E|), so any visible curvature or gap there is reported as large.
 */
#include <math.h>
#include <stdlib.h>
#include "engine/internal.h"

#define RANGE_TOL 1e-9
#define SECOND_MAX 0.5
#define MC_GAP_MAX 0.25
#define SPREAD_FLOOR 1e-12

int eng_taylor_diagnose(const struct eng_model *m, int feature,
                        const double *alpha, int n_alpha, const double *E,
                        const double *second, struct eng_diag *diag)
{
  if (!m || feature < 0 || feature >= m->k || n_alpha < 1 || !alpha || !E ||
      !diag)
    return -1;
  int no = m->n_out;
  double *mc = NULL, *mcse = NULL;
  int idx[ACED_MC_DIAG_POINTS], np = 0;
  if (m->n_samples > 0) {
    double pts[ACED_MC_DIAG_POINTS];
    int want = n_alpha < ACED_MC_DIAG_POINTS ? n_alpha : ACED_MC_DIAG_POINTS;
    for (int j = 0; j < want; j++) {
      int t = want == 1 ? 0
                        : (int)lround((double)j * (n_alpha - 1) / (want - 1));
      if (np > 0 && idx[np - 1] == t)
        continue;
      idx[np] = t;
      pts[np] = alpha[t];
      np++;
    }
    mc = malloc((size_t)np * no * sizeof *mc);
    mcse = malloc((size_t)np * no * sizeof *mcse);
    /* the subsample is a feedforward model's; a recurrent one (n_diag 0)
     * averages over all its sequences */
    int rc = !mc || !mcse ? -1
             : m->n_diag > 0 ? eng_montecarlo_diag(m, feature, pts, np, mc, mcse)
                             : eng_montecarlo(m, feature, pts, np, mc, mcse);
    if (rc != 0) {
      free(mc);
      free(mcse);
      return rc;
    }
  }
  for (int o = 0; o < no; o++) {
    struct eng_diag *d = &diag[o];
    double lo = INFINITY, hi = -INFINITY, big = 1.0, smax = 0.0;
    for (int a = 0; a < n_alpha; a++) {
      double v = E[(size_t)a * no + o];
      if (v < lo || isnan(v))
        lo = v;
      if (v > hi || isnan(v))
        hi = v;
      if (fabs(v) > big)
        big = fabs(v);
      if (second && fabs(second[(size_t)a * no + o]) > smax)
        smax = fabs(second[(size_t)a * no + o]);
    }
    double denom = m->spread[o];
    if (!(denom > SPREAD_FLOOR * big))
      denom = SPREAD_FLOOR * big;
    double tol = RANGE_TOL * big;
    d->min_value = lo;
    d->max_value = hi;
    d->out_of_range = isnan(lo) || isnan(hi) || lo < m->out_lo - tol ||
                      hi > m->out_hi + tol;
    d->second_ratio = smax / denom;
    d->mc_gap_ratio = -1.0;
    d->mc_gap_se = -1.0;
    d->mc_samples = 0;
    if (mc) {
      double gap = 0.0, gse = 0.0;
      for (int p = 0; p < np; p++) {
        double g = fabs(E[(size_t)idx[p] * no + o] - mc[(size_t)p * no + o]);
        if (g > gap || isnan(g) || p == 0) {
          gap = g;
          gse = mcse[(size_t)p * no + o];
        }
      }
      d->mc_gap_ratio = gap / denom;
      d->mc_gap_se = gse / denom;
      d->mc_samples = m->n_diag > 0 ? m->n_diag : m->n_samples;
    }
    d->reliable = !d->out_of_range && d->second_ratio <= SECOND_MAX &&
                  (d->mc_gap_ratio < 0.0 || d->mc_gap_ratio <= MC_GAP_MAX);
  }
  free(mc);
  free(mcse);
  return 0;
}
