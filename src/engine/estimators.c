/*
 * estimators.c -- the two reference estimators: finite differences (paper
 * App. A.5) and Monte Carlo over the stored samples (paper Eq. 2).
 *
 * Both start from the first layer's pre-activations, which move along
 * column i of W1 only: a forward pass of x with x_i replaced by alpha is
 * z1 = W1 x - W1[:,i] x_i + alpha W1[:,i] + b.  The remaining layers run as
 * batched GEMMs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "engine/internal.h"

/* Rows per batch (forward passes stacked into one GEMM). */
#define EST_CHUNK 256

/* Activate z1 (n x n1) in place and run layers 2.. to y (n x n_out). */
static void rest_of_net(const struct eng_model *m, double *z1, int n, double *y,
                        double *work)
{
  eng_act_rows(m->net.layers[0].act, z1, n, m->n1);
  eng_forward_from(m, 1, z1, n, y, work);
}

/* f(mu_a) + 1/2 sum_r (f(mu_a + eps v_r) + f(mu_a - eps v_r) - 2 f(mu_a))
 * / eps^2 over the columns v_r of L_i (L with row i zeroed).  W1 v_r is
 * column r of W1 L_i = W1 L - W1[:,i] L[i,:]. */
int eng_finite_difference(const struct eng_model *m, int feature,
                          const double *alpha, int n_alpha, double eps,
                          double *E)
{
  if (!m || feature < 0 || feature >= m->k || n_alpha < 0 ||
      (n_alpha > 0 && (!alpha || !E)) || !(eps > 0.0) || !isfinite(eps))
    return -1;
  if (m->rnn)
    return eng_rnn_finite_difference(m, feature, alpha, n_alpha, eps, E);
  int n1 = m->n1, k = m->k, no = m->n_out, r = m->r;
  const struct eng_layer *l1 = &m->net.layers[0];
  int pairs = EST_CHUNK / 2;
  int rows = 2 * pairs + 1;
  double *z = malloc((size_t)rows * n1 * sizeof *z);
  double *y = malloc((size_t)rows * no * sizeof *y);
  double *work = malloc((size_t)2 * rows * m->max_units * sizeof *work);
  double *base = malloc((size_t)n1 * sizeof *base);
  double *za = malloc((size_t)n1 * sizeof *za);
  double *acc = malloc((size_t)no * sizeof *acc);
  int rc = -1;
  if (!z || !y || !work || !base || !za || !acc)
    goto done;
  memcpy(base, l1->b, (size_t)n1 * sizeof *base);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, n1, k, 1.0, l1->W, k, m->mean, 1,
              1.0, base, 1);
  for (int j = 0; j < n1; j++)
    base[j] -= l1->W[(size_t)j * k + feature] * m->mean[feature];
  const double *li = m->L + (size_t)feature * r;
  for (int a = 0; a < n_alpha; a++) {
    if (eng_should_stop()) {
      rc = ENG_STOPPED;
      goto done;
    }
    for (int j = 0; j < n1; j++)
      za[j] = base[j] + alpha[a] * l1->W[(size_t)j * k + feature];
    /* f(mu_a) */
    memcpy(z, za, (size_t)n1 * sizeof *z);
    rest_of_net(m, z, 1, y, work);
    double *f0 = E + (size_t)a * no;
    memcpy(f0, y, (size_t)no * sizeof *y);
    for (int o = 0; o < no; o++)
      acc[o] = 0.0;
    for (int q0 = 0; q0 < r; q0 += pairs) {
      int np = r - q0 < pairs ? r - q0 : pairs;
      for (int p = 0; p < np; p++) {
        int q = q0 + p;
        double *zp = z + (size_t)(2 * p) * n1, *zm = zp + n1;
        for (int j = 0; j < n1; j++) {
          double d = eps * (m->W1L[(size_t)j * r + q] -
                            l1->W[(size_t)j * k + feature] * li[q]);
          zp[j] = za[j] + d;
          zm[j] = za[j] - d;
        }
      }
      rest_of_net(m, z, 2 * np, y, work);
      for (int p = 0; p < np; p++)
        for (int o = 0; o < no; o++)
          acc[o] += y[(size_t)(2 * p) * no + o] + y[(size_t)(2 * p + 1) * no + o] -
                    2.0 * f0[o];
    }
    for (int o = 0; o < no; o++)
      f0[o] += 0.5 * acc[o] / (eps * eps);
  }
  rc = 0;
done:
  free(z);
  free(y);
  free(work);
  free(base);
  free(za);
  free(acc);
  return rc;
}

/* zb (nc x n1) = X W1^T + b - x_i W1[:,i]^T for the nc sample rows xs:
 * the first pre-activations with feature i's contribution taken out. */
static void first_rows(const struct eng_model *m, int feature, const double *xs, int nc,
                       double *zb)
{
  int n1 = m->n1, k = m->k;
  const struct eng_layer *l1 = &m->net.layers[0];
  for (int s = 0; s < nc; s++)
    for (int j = 0; j < n1; j++)
      zb[(size_t)s * n1 + j] =
          l1->b[j] - xs[(size_t)s * k + feature] * l1->W[(size_t)j * k + feature];
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nc, n1, k, 1.0, xs, k, l1->W, k, 1.0,
              zb, n1);
}

/* y (nc x n_out) = the network at the nc sample rows whose first
 * pre-activations without feature i are zb, with x_i = alpha; z is
 * scratch (nc x n1). */
static void outputs_at(const struct eng_model *m, int feature, double alpha, const double *zb,
                       int nc, double *z, double *y, double *work)
{
  int n1 = m->n1, k = m->k;
  const double *W = m->net.layers[0].W;
  for (int s = 0; s < nc; s++)
    for (int j = 0; j < n1; j++)
      z[(size_t)s * n1 + j] = zb[(size_t)s * n1 + j] + alpha * W[(size_t)j * k + feature];
  rest_of_net(m, z, nc, y, work);
}

/* Chan's pairwise update of (count, mean, M2) per output with the nc rows
 * of y (nc x no) after `seen` earlier ones: E and m2 are no values. */
void eng_merge_chunk(const double *y, int nc, int no, long seen, double *E, double *m2)
{
  for (int o = 0; o < no; o++) {
    double mean = 0.0, ss = 0.0;
    for (int s = 0; s < nc; s++)
      mean += y[(size_t)s * no + o];
    mean /= nc;
    for (int s = 0; s < nc; s++) {
      double d = y[(size_t)s * no + o] - mean;
      ss += d * d;
    }
    double delta = mean - E[o], ntot = (double)(seen + nc);
    E[o] += delta * nc / ntot;
    m2[o] += ss + delta * delta * (double)seen * nc / ntot;
  }
}

/* The standard errors of n means of ns samples from their M2. */
void eng_stderr(const double *m2, size_t n, int ns, double *se)
{
  for (size_t u = 0; u < n; u++)
    se[u] = ns > 1 ? sqrt(m2[u] / (ns - 1)) / sqrt((double)ns) : 0.0;
}

/* Mean over `ns` sample rows with column i set to alpha; the standard
 * error is the sample standard deviation (divisor n - 1) over sqrt(n).
 * Chunks of samples are merged with Chan's pairwise update of (count,
 * mean, M2) so the variance does not suffer from cancellation.
 *
 * rows == NULL: the rows are the stored samples 0..ns-1 and their first
 * pre-activations are computed here, one GEMM per chunk (first_rows).
 * Otherwise rows lists the sample indices and z1pre (ns x n1) holds
 * W1 x + b for each of them, computed once at prepare time (the
 * reliability check's subsample, used for every feature). */
static int mc_core(const struct eng_model *m, int feature, const double *alpha,
                   int n_alpha, const int *rows, const double *z1pre, int ns,
                   double *E, double *se)
{
  int n1 = m->n1, k = m->k, no = m->n_out;
  const double *wi = m->net.layers[0].W + feature; /* column i of W1, stride k */
  int chunk = ns < EST_CHUNK ? ns : EST_CHUNK;
  double *zb = malloc((size_t)chunk * n1 * sizeof *zb);
  double *z = malloc((size_t)chunk * n1 * sizeof *z);
  double *y = malloc((size_t)chunk * no * sizeof *y);
  double *work = malloc((size_t)2 * chunk * m->max_units * sizeof *work);
  double *m2 = calloc((size_t)n_alpha * no, sizeof *m2);
  int rc = -1;
  if (!zb || !z || !y || !work || !m2)
    goto done;
  for (size_t t = 0; t < (size_t)n_alpha * no; t++)
    E[t] = 0.0;
  long seen = 0;
  for (int s0 = 0; s0 < ns; s0 += chunk) {
    if (eng_should_stop()) {
      rc = ENG_STOPPED;
      goto done;
    }
    int nc = ns - s0 < chunk ? ns - s0 : chunk;
    if (rows) {
      /* zb = (W1 x + b) - x_i W1[:,i], from the precomputed rows */
      for (int s = 0; s < nc; s++) {
        double xi = m->samples[(size_t)rows[s0 + s] * k + feature];
        const double *zp = z1pre + (size_t)(s0 + s) * n1;
        for (int j = 0; j < n1; j++)
          zb[(size_t)s * n1 + j] = zp[j] - xi * wi[(size_t)j * k];
      }
    } else {
      first_rows(m, feature, m->samples + (size_t)s0 * k, nc, zb);
    }
    for (int a = 0; a < n_alpha; a++) {
      /* per alpha, not per chunk: with few samples there are only one or
       * two chunks, and a cancelled grid of thousands of alphas must not
       * run to its end */
      if (eng_should_stop()) {
        rc = ENG_STOPPED;
        goto done;
      }
      outputs_at(m, feature, alpha[a], zb, nc, z, y, work);
      eng_merge_chunk(y, nc, no, seen, E + (size_t)a * no, m2 + (size_t)a * no);
    }
    seen += nc;
  }
  if (se)
    eng_stderr(m2, (size_t)n_alpha * no, ns, se);
  rc = 0;
done:
  free(zb);
  free(z);
  free(y);
  free(work);
  free(m2);
  return rc;
}

int eng_montecarlo(const struct eng_model *m, int feature, const double *alpha,
                   int n_alpha, double *E, double *se)
{
  if (!m || feature < 0 || feature >= m->k || n_alpha < 0 ||
      (n_alpha > 0 && (!alpha || !E)) || m->n_samples < 1)
    return -1;
  if (n_alpha == 0)
    return 0;
  if (m->rnn)
    return eng_rnn_montecarlo(m, feature, alpha, n_alpha, E, se);
  return mc_core(m, feature, alpha, n_alpha, NULL, NULL, m->n_samples, E, se);
}

int eng_montecarlo_diag(const struct eng_model *m, int feature, const double *alpha,
                        int n_alpha, double *E, double *se)
{
  if (!m || feature < 0 || feature >= m->k || n_alpha < 1 || !alpha || !E ||
      m->n_diag < 1)
    return -1;
  return mc_core(m, feature, alpha, n_alpha, m->diag_rows, m->diag_z1, m->n_diag, E, se);
}

/* Covariance of the Monte Carlo means across the grid: every grid value is
 * averaged over the same samples, so their errors are correlated,
 * Cov(E_a, E_b) = sum_n d_na d_nb / (N (N - 1)) with d_na = f(x_n; x_i = a)
 * - E_a (the diagonal is se^2).  Two passes: E (from eng_montecarlo)
 * centres the deviations, which are stacked per output (samples x grid)
 * and multiplied by DSYRK.  Chunks of samples keep the deviation block
 * under MC_COV_WORK doubles. */
#define MC_COV_WORK (4L * 1024 * 1024)
int eng_montecarlo_cov(const struct eng_model *m, int feature, const double *alpha,
                       int n_alpha, const double *E, int o0, int n_sel, double *cov)
{
  if (!m || m->rnn || feature < 0 || feature >= m->k || n_alpha < 1 || !alpha || !E || !cov ||
      o0 < 0 || n_sel < 1 || o0 + n_sel > m->n_out || m->n_samples < 2)
    return -1;
  int n1 = m->n1, k = m->k, no = m->n_out, ns = m->n_samples;
  long fit = MC_COV_WORK / ((long)n_sel * n_alpha);
  int chunk = fit < 1 ? 1 : fit < EST_CHUNK ? (int)fit : EST_CHUNK;
  if (chunk > ns)
    chunk = ns;
  size_t na2 = (size_t)n_alpha * n_alpha;
  double *zb = malloc((size_t)chunk * n1 * sizeof *zb);
  double *z = malloc((size_t)chunk * n1 * sizeof *z);
  double *y = malloc((size_t)chunk * no * sizeof *y);
  double *work = malloc((size_t)2 * chunk * m->max_units * sizeof *work);
  double *dev = malloc((size_t)n_sel * chunk * n_alpha * sizeof *dev);
  int rc = -1;
  if (!zb || !z || !y || !work || !dev)
    goto done;
  memset(cov, 0, (size_t)n_sel * na2 * sizeof *cov);
  for (int s0 = 0; s0 < ns; s0 += chunk) {
    int nc = ns - s0 < chunk ? ns - s0 : chunk;
    first_rows(m, feature, m->samples + (size_t)s0 * k, nc, zb);
    for (int a = 0; a < n_alpha; a++) {
      if (eng_should_stop()) {
        rc = ENG_STOPPED;
        goto done;
      }
      outputs_at(m, feature, alpha[a], zb, nc, z, y, work);
      for (int o = 0; o < n_sel; o++)
        for (int s = 0; s < nc; s++)
          dev[((size_t)o * nc + s) * n_alpha + a] =
              y[(size_t)s * no + o0 + o] - E[(size_t)a * no + o0 + o];
    }
    for (int o = 0; o < n_sel; o++)
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n_alpha, nc, 1.0,
                  dev + (size_t)o * nc * n_alpha, n_alpha, 1.0, cov + (size_t)o * na2, n_alpha);
  }
  double scale = 1.0 / ((double)ns * (ns - 1));
  for (int o = 0; o < n_sel; o++) {
    double *c = cov + (size_t)o * na2;
    for (int a = 0; a < n_alpha; a++)
      for (int b = a; b < n_alpha; b++) {
        double v = c[(size_t)a * n_alpha + b] * scale;
        c[(size_t)a * n_alpha + b] = v;
        c[(size_t)b * n_alpha + a] = v;
      }
  }
  rc = 0;
done:
  free(zb);
  free(z);
  free(y);
  free(work);
  free(dev);
  return rc;
}
