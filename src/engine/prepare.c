/*
 * prepare.c -- the prepared model: copy of the network and data, the
 * covariance factor, per-model precomputation, forward pass, output range
 * and spread.
 *
 * DESIGN.  Every estimator works with a factor L (k x r) of the covariance,
 * S ~= L L^T, from one symmetric eigendecomposition: L = V sqrt(lambda) over
 * the eigenvalues that are positive beyond rounding (lambda > 1e-12 of the
 * largest; what is dropped changes any trace by at most that share).  Low-
 * rank mode keeps only the leading components covering a share of the total
 * variance.  The first layer times the factor, W1 L, is kept because every
 * taylor call starts from it (W1 L_i = W1 L - W1 e_i L[i,:]).  When the factor
 * has more columns than the first layer has units, taylor.c replaces that
 * block by an n1 x (n1 + 1) factor with the same Gram matrix, built in
 * O(n1^2) per feature from the QR decomposition of (W1 L)^T kept here.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include <lapacke.h>
#include "engine/internal.h"

/* Relative cut below which an eigenvalue of the covariance counts as zero. */
#define EIG_REL_TOL 1e-12
/* Rows per GEMM batch in the plain forward pass. */
#define FWD_CHUNK 256

void eng_init(void)
{
  openblas_set_num_threads(1);
}

static void seterr(char *errbuf, size_t errlen, const char *msg)
{
  if (errbuf && errlen)
    snprintf(errbuf, errlen, "%s", msg);
}

void eng_model_free(struct eng_model *m)
{
  if (!m)
    return;
  if (m->net.layers) {
    for (int l = 0; l < m->net.n_layers; l++) {
      free(m->net.layers[l].W);
      free(m->net.layers[l].b);
    }
    free(m->net.layers);
  }
  free(m->mean);
  free(m->samples);
  free(m->L);
  free(m->W1L);
  free(m->qr);
  free(m->tau);
  free(m->spread);
  free(m->diag_rows);
  free(m->diag_z1);
  eng_rnn_free(m->rnn);
  free(m->lag_per);
  free(m);
}

/* malloc that counts into m->bytes; n doubles, n may be 0. */
static double *mdup(struct eng_model *m, const double *src, size_t n)
{
  double *p = malloc((n ? n : 1) * sizeof *p);
  if (!p)
    return NULL;
  if (src && n)
    memcpy(p, src, n * sizeof *p);
  m->bytes += n * sizeof *p;
  return p;
}

/* The reliability check's subsample: every sample when there are at most
 * ACED_MC_DIAG_SAMPLES, else that many evenly strided over the stored order
 * (deterministic, and spread over the whole sample if it was stored sorted),
 * with their first pre-activations W1 x + b. */
static int make_diag_subsample(struct eng_model *m)
{
  int ns = m->n_samples, k = m->k, n1 = m->n1;
  int nd = ns < ACED_MC_DIAG_SAMPLES ? ns : ACED_MC_DIAG_SAMPLES;
  const struct eng_layer *l1 = &m->net.layers[0];
  m->diag_rows = malloc((size_t)nd * sizeof *m->diag_rows);
  m->diag_z1 = mdup(m, NULL, (size_t)nd * n1);
  double *x = malloc((size_t)nd * k * sizeof *x);
  if (!m->diag_rows || !m->diag_z1 || !x) {
    free(x);
    return -1;
  }
  m->bytes += (size_t)nd * sizeof *m->diag_rows;
  for (int s = 0; s < nd; s++) {
    m->diag_rows[s] = (int)((long long)s * ns / nd);
    memcpy(x + (size_t)s * k, m->samples + (size_t)m->diag_rows[s] * k, (size_t)k * sizeof *x);
    memcpy(m->diag_z1 + (size_t)s * n1, l1->b, (size_t)n1 * sizeof *x);
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nd, n1, k, 1.0, x, k, l1->W, k, 1.0,
              m->diag_z1, n1);
  free(x);
  m->n_diag = nd;
  return 0;
}

static int check_input(const struct eng_model_input *in, char *errbuf,
                       size_t errlen)
{
  const struct eng_net *net = in ? in->net : NULL;
  if (!net || net->n_layers < 1 || net->n_layers > ACED_MAX_LAYERS ||
      !net->layers) {
    seterr(errbuf, errlen, "network has no layers");
    return -1;
  }
  for (int l = 0; l < net->n_layers; l++) {
    const struct eng_layer *ly = &net->layers[l];
    if (ly->n_in < 1 || ly->n_out < 1 || ly->n_in > ACED_MAX_UNITS ||
        ly->n_out > ACED_MAX_UNITS || !ly->W || !ly->b) {
      seterr(errbuf, errlen, "bad layer shape");
      return -1;
    }
    if (l > 0 && ly->n_in != net->layers[l - 1].n_out) {
      seterr(errbuf, errlen, "layer widths do not chain");
      return -1;
    }
    if ((int)ly->act < 0 || ly->act >= ENG_ACT__COUNT) {
      seterr(errbuf, errlen, "unknown activation");
      return -1;
    }
  }
  if (in->k != net->layers[0].n_in || !in->mean || !in->cov) {
    seterr(errbuf, errlen, "inputs do not match the first layer");
    return -1;
  }
  if (in->n_samples < 0 || (in->n_samples > 0 && !in->samples)) {
    seterr(errbuf, errlen, "bad samples");
    return -1;
  }
  return 0;
}

/* Eigendecomposition of the covariance into m->L (k x r). */
int eng_make_factor(struct eng_model *m, const double *cov, double share, char *errbuf,
                    size_t errlen)
{
  int k = m->k;
  double *a = malloc((size_t)k * k * sizeof *a);
  double *w = malloc((size_t)k * sizeof *w);
  if (!a || !w) {
    free(a);
    free(w);
    seterr(errbuf, errlen, "out of memory");
    return -1;
  }
  memcpy(a, cov, (size_t)k * k * sizeof *a);
  lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', k, a, k, w);
  if (info != 0) {
    free(a);
    free(w);
    seterr(errbuf, errlen, "covariance eigendecomposition failed");
    return -1;
  }
  /* Eigenvalues ascend; column j of a (row-major) is eigenvector j. */
  double lmax = w[k - 1];
  int r = 0;
  double total = 0.0;
  for (int j = k - 1; j >= 0 && lmax > 0.0 && w[j] > EIG_REL_TOL * lmax; j--) {
    r++;
    total += w[j];
  }
  if (share > 0.0 && share < 1.0 && r > 0) {
    double acc = 0.0;
    int keep = 0;
    for (int j = k - 1; j >= k - r; j--) {
      acc += w[j];
      keep++;
      if (acc >= share * total)
        break;
    }
    r = keep;
  }
  m->r = r;
  m->L = mdup(m, NULL, (size_t)k * r);
  if (!m->L) {
    free(a);
    free(w);
    seterr(errbuf, errlen, "out of memory");
    return -1;
  }
  for (int q = 0; q < r; q++) {
    int j = k - 1 - q;
    double sl = sqrt(w[j]);
    for (int p = 0; p < k; p++)
      m->L[(size_t)p * r + q] = a[(size_t)p * k + j] * sl;
  }
  free(a);
  free(w);
  return 0;
}

/* A recurrent model: the network, mean, samples and factor; no
 * first-layer blocks (recurrent.c works from the factor itself). */
static int rnn_prepare(const struct eng_model_input *in, struct eng_model **out,
                       char *errbuf, size_t errlen)
{
  const struct eng_rnn *net = in->rnn;
  if (net->T < 1 || net->input_size < 1 || in->k != net->T * net->input_size || !in->mean ||
      !in->cov || in->n_samples < 0 || (in->n_samples > 0 && !in->samples)) {
    seterr(errbuf, errlen, "inputs do not match the recurrent network");
    return -1;
  }
  struct eng_model *m = calloc(1, sizeof *m);
  if (!m)
    goto oom;
  m->bytes = sizeof *m;
  m->k = in->k;
  if ((m->rnn = eng_rnn_copy(net, &m->bytes)) == NULL) {
    eng_model_free(m);
    seterr(errbuf, errlen, "bad recurrent network (shapes, or out of memory)");
    return -1;
  }
  m->n_out = eng_rnn_outputs(m->rnn);
  m->mean = mdup(m, in->mean, (size_t)m->k);
  if (!m->mean)
    goto oom;
  m->n_samples = in->n_samples;
  if (m->n_samples > 0 && !(m->samples = mdup(m, in->samples, (size_t)m->n_samples * m->k)))
    goto oom;
  if (eng_make_factor(m, in->cov, in->lowrank_share, errbuf, errlen) != 0) {
    eng_model_free(m);
    return -1;
  }
  if (eng_rnn_prepare_rest(m, in) != 0 || eng_rnn_lag_compute(m) != 0)
    goto oom;
  *out = m;
  return 0;
oom:
  eng_model_free(m);
  seterr(errbuf, errlen, "out of memory");
  return -1;
}

int eng_model_prepare(const struct eng_model_input *in, struct eng_model **out,
                      char *errbuf, size_t errlen)
{
  if (!out) {
    seterr(errbuf, errlen, "no output");
    return -1;
  }
  *out = NULL;
  if (in && in->rnn)
    return rnn_prepare(in, out, errbuf, errlen);
  if (check_input(in, errbuf, errlen) != 0)
    return -1;
  const struct eng_net *net = in->net;
  struct eng_model *m = calloc(1, sizeof *m);
  if (!m)
    goto oom;
  m->bytes = sizeof *m;
  m->k = in->k;
  m->net.n_layers = net->n_layers;
  m->net.layers = calloc((size_t)net->n_layers, sizeof *m->net.layers);
  if (!m->net.layers)
    goto oom;
  m->bytes += (size_t)net->n_layers * sizeof *m->net.layers;
  for (int l = 0; l < net->n_layers; l++) {
    const struct eng_layer *src = &net->layers[l];
    struct eng_layer *dst = &m->net.layers[l];
    *dst = *src;
    dst->W = mdup(m, src->W, (size_t)src->n_out * src->n_in);
    dst->b = mdup(m, src->b, (size_t)src->n_out);
    if (!dst->W || !dst->b) {
      /* keep the free path consistent */
      if (!dst->W)
        free(dst->b);
      else
        free(dst->W);
      dst->W = dst->b = NULL;
      goto oom;
    }
    if (src->n_out > m->max_units)
      m->max_units = src->n_out;
  }
  m->n1 = net->layers[0].n_out;
  m->n_out = net->layers[net->n_layers - 1].n_out;
  m->mean = mdup(m, in->mean, (size_t)m->k);
  if (!m->mean)
    goto oom;
  m->n_samples = in->n_samples;
  if (m->n_samples > 0) {
    m->samples = mdup(m, in->samples, (size_t)m->n_samples * m->k);
    if (!m->samples)
      goto oom;
  }
  if (eng_make_factor(m, in->cov, in->lowrank_share, errbuf, errlen) != 0)
    goto fail;

  int n1 = m->n1, r = m->r, k = m->k;
  m->W1L = mdup(m, NULL, (size_t)n1 * r);
  if (!m->W1L)
    goto oom;
  if (r > 0)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n1, r, k, 1.0,
                m->net.layers[0].W, k, m->L, r, 0.0, m->W1L, r);
  if (r > n1 + 1) {
    /* W1L row-major n1 x r is (W1 L)^T column-major r x n1, lda r. */
    m->qr = mdup(m, m->W1L, (size_t)n1 * r);
    m->tau = mdup(m, NULL, (size_t)n1);
    if (!m->qr || !m->tau)
      goto oom;
    if (LAPACKE_dgeqrf(LAPACK_COL_MAJOR, r, n1, m->qr, r, m->tau) != 0) {
      seterr(errbuf, errlen, "QR of the first-layer factor failed");
      goto fail;
    }
  }

  if (m->n_samples > 0 && make_diag_subsample(m) != 0)
    goto oom;

  const struct eng_act_info *last = eng_act_info(m->net.layers[m->net.n_layers - 1].act);
  m->out_lo = last->lo;
  m->out_hi = last->hi;

  m->spread = mdup(m, NULL, (size_t)m->n_out);
  if (!m->spread)
    goto oom;
  int no = m->n_out;
  if (m->n_samples > 1) {
    double *y = malloc((size_t)m->n_samples * no * sizeof *y);
    if (!y)
      goto oom;
    eng_forward(m, m->samples, m->n_samples, y);
    eng_column_sd(y, m->n_samples, no, m->spread);
    free(y);
  } else {
    /* Linearised: tangent pass at the mean with the full factor. */
    const struct eng_layer *l1 = &m->net.layers[0];
    double *z1 = malloc((size_t)n1 * sizeof *z1);
    double *val = malloc((size_t)no * 3 * sizeof *val);
    if (!z1 || !val) {
      free(z1);
      free(val);
      goto oom;
    }
    memcpy(z1, l1->b, (size_t)n1 * sizeof *z1);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, n1, k, 1.0, l1->W, k, m->mean, 1,
                1.0, z1, 1);
    int rc = eng_tangent_pass(m, m->W1L, r, z1, 1, val, val + no, val + 2 * no);
    if (rc == 0)
      for (int o = 0; o < no; o++)
        m->spread[o] = sqrt(val[2 * no + o]);
    free(z1);
    free(val);
    if (rc != 0)
      goto oom;
  }
  *out = m;
  return 0;
oom:
  seterr(errbuf, errlen, "out of memory");
fail:
  eng_model_free(m);
  return -1;
}

int eng_model_inputs(const struct eng_model *m) { return m->k; }
int eng_model_outputs(const struct eng_model *m) { return m->n_out; }
int eng_model_rank(const struct eng_model *m) { return m->r; }
int eng_model_samples(const struct eng_model *m) { return m->n_samples; }
size_t eng_model_bytes(const struct eng_model *m) { return m->bytes; }

void eng_output_range(const struct eng_model *m, double *lo, double *hi)
{
  if (lo)
    *lo = m->out_lo;
  if (hi)
    *hi = m->out_hi;
}

const double *eng_output_spread(const struct eng_model *m)
{
  return m->spread;
}

void eng_column_sd(const double *y, int n, int no, double *spread)
{
  for (int o = 0; o < no; o++) {
    double mu = 0.0, ss = 0.0;
    for (int s = 0; s < n; s++)
      mu += y[(size_t)s * no + o];
    mu /= n;
    for (int s = 0; s < n; s++) {
      double d = y[(size_t)s * no + o] - mu;
      ss += d * d;
    }
    spread[o] = sqrt(ss / (n - 1));
  }
}

void eng_forward_from(const struct eng_model *m, int l0, const double *h,
                      int n, double *y, double *work)
{
  const double *cur = h;
  double *buf[2] = {work, work + (size_t)n * m->max_units};
  int nl = m->net.n_layers;
  for (int l = l0; l < nl; l++) {
    const struct eng_layer *ly = &m->net.layers[l];
    double *z = l == nl - 1 ? y : buf[l & 1];
    for (int i = 0; i < n; i++)
      memcpy(z + (size_t)i * ly->n_out, ly->b, (size_t)ly->n_out * sizeof *z);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, ly->n_out, ly->n_in,
                1.0, cur, ly->n_in, ly->W, ly->n_in, 1.0, z, ly->n_out);
    eng_act_rows(ly->act, z, n, ly->n_out);
    cur = z;
  }
  if (l0 >= nl) /* nothing to do: copy through */
    memcpy(y, h, (size_t)n * m->n_out * sizeof *y);
}

int eng_forward(const struct eng_model *m, const double *x, int n, double *y)
{
  if (!m || n < 0 || (n > 0 && (!x || !y)))
    return -1;
  if (n == 0)
    return 0;
  if (m->rnn)
    return eng_rnn_forward(m->rnn, x, n, y);
  int chunk = n < FWD_CHUNK ? n : FWD_CHUNK;
  double *work = malloc((size_t)2 * chunk * m->max_units * sizeof *work);
  if (!work)
    return -1;
  for (int i = 0; i < n; i += chunk) {
    int nc = n - i < chunk ? n - i : chunk;
    eng_forward_from(m, 0, x + (size_t)i * m->k, nc, y + (size_t)i * m->n_out,
                     work);
  }
  free(work);
  return 0;
}
