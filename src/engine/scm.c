/*
 * scm.c -- linear structural equations among the inputs, and total
 * effects through them (issue 14; Bachu et al., "Beyond direct effects").
 *
 * DESIGN
 *
 * Given a DAG over the k inputs, each input j with parents P is
 *   x_j = c_j + sum_{p in P} B[p][j] x_p + r_j,
 * fitted by least squares: on the samples (LAPACK dgelsd on the centred
 * parents, minimum-norm when they are collinear), or, for a model with
 * only a mean and covariance, from those (the population normal
 * equations, the same estimator).  Each sample's residuals r are kept, so
 * do(x_i = a) re-generates the descendants of i in topological order from
 * the equations plus the sample's own residuals (eng_scm_do), and the
 * non-descendants stay as observed.  Re-generating at the observed x_i
 * gives the sample back.
 *
 * The equations are linear, so the re-generated inputs are affine in a:
 *   x'(a) = x + (a - x_i) t,   t = d x / d x_i  (eng_scm_total),
 * t_i = 1, t_j = sum_p B[p][j] t_p in topological order, 0 off the
 * descendants.  Writing u = x - x_i (t - e_i) (the inputs with i's
 * influence taken out of its descendants; u_i = x_i), x'(a) = B u with
 * u_i = a, where B = I + (t - e_i) e_i^T.  So the total effect of i on
 * the network f is the *direct* effect of i on f o B with inputs u:
 * eng_scm_view prepares that model (layer 0's column i becomes W1 t; the
 * samples u, mean B^-1 mu and covariance B^-1 S B^-T), and every
 * estimator (taylor with the interventional mean mu + (a - mu_i) t and
 * covariance A S A^T, A = I - t e_i^T; finite differences; montecarlo
 * over the re-generated samples) and diagnostic runs on it unchanged.
 * Since f o B at u is f at x, the view has the model's output spread.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "engine/internal.h"

struct eng_scm {
  int k, n_edges, n;
  int (*edges)[2];
  double *weight;   /* per edge, as given */
  double *B;        /* k x k, B[p*k + j]: weight of p in j's equation */
  double *c;        /* k intercepts */
  int *order;       /* topological order */
  int *pstart, *par; /* parents of j: par[pstart[j] .. pstart[j+1]) */
  double *resid;    /* n x k residuals of the fitted samples (0 for roots: r = x - c) */
  const double *samples; /* borrowed: the fitted samples */
};

static int fail(char *errbuf, size_t errlen, const char *msg)
{
  if (errbuf && errlen) {
    strncpy(errbuf, msg, errlen - 1);
    errbuf[errlen - 1] = '\0';
  }
  return -1;
}

void eng_scm_free(struct eng_scm *s)
{
  if (s == NULL)
    return;
  free(s->edges);
  free(s->weight);
  free(s->B);
  free(s->c);
  free(s->order);
  free(s->pstart);
  free(s->par);
  free(s->resid);
  free(s);
}

/* Least squares for node j with p parents: beta (p).  From the samples
 * (centred with mu) when n > 0, else from the covariance. */
static int fit_node(const struct eng_scm *s, int j, const double *mu, const double *cov,
                    double *beta)
{
  const int k = s->k, n = s->n, p = s->pstart[j + 1] - s->pstart[j];
  const int *P = s->par + s->pstart[j];
  lapack_int rank;
  int rows = n > 0 ? n : p, ldb = rows > p ? rows : p;
  double *A = malloc(sizeof(double) * (size_t)rows * p);
  double *b = calloc((size_t)ldb, sizeof(double));
  double *sv = malloc(sizeof(double) * (size_t)p);
  if (!A || !b || !sv) {
    free(A);
    free(b);
    free(sv);
    return -1;
  }
  if (n > 0) {
    for (int r = 0; r < n; r++) {
      const double *x = s->samples + (size_t)r * k;
      for (int q = 0; q < p; q++)
        A[(size_t)r * p + q] = x[P[q]] - mu[P[q]];
      b[r] = x[j] - mu[j];
    }
  } else {
    for (int a = 0; a < p; a++) {
      for (int q = 0; q < p; q++)
        A[(size_t)a * p + q] = cov[(size_t)P[a] * k + P[q]];
      b[a] = cov[(size_t)P[a] * k + j];
    }
  }
  /* rcond: singular values below 1e-12 of the largest are treated as
   * zero, so exactly collinear parents share their weight (minimum norm)
   * instead of cancelling with huge opposite weights. */
  lapack_int info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, rows, p, 1, A, p, b, 1, sv, 1e-12, &rank);
  if (info == 0)
    memcpy(beta, b, sizeof(double) * (size_t)p);
  free(A);
  free(b);
  free(sv);
  return info == 0 ? 0 : -1;
}

int eng_scm_fit(int k, const int (*edges)[2], int n_edges, const int *order, int n,
                const double *samples, const double *mean, const double *cov,
                struct eng_scm **out, char *errbuf, size_t errlen)
{
  *out = NULL;
  if (k <= 0 || n_edges < 0 || (n > 0 && samples == NULL) || (n <= 0 && (!mean || !cov)))
    return fail(errbuf, errlen, "scm: bad arguments");
  struct eng_scm *s = calloc(1, sizeof *s);
  if (s == NULL)
    return fail(errbuf, errlen, "out of memory");
  s->k = k;
  s->n_edges = n_edges;
  s->n = n > 0 ? n : 0;
  s->samples = s->n ? samples : NULL;
  s->edges = malloc(sizeof *s->edges * (size_t)(n_edges ? n_edges : 1));
  s->weight = calloc((size_t)(n_edges ? n_edges : 1), sizeof(double));
  s->B = calloc((size_t)k * k, sizeof(double));
  s->c = calloc((size_t)k, sizeof(double));
  s->order = malloc(sizeof(int) * (size_t)k);
  s->pstart = calloc((size_t)k + 1, sizeof(int));
  s->par = malloc(sizeof(int) * (size_t)(n_edges ? n_edges : 1));
  double *mu = calloc((size_t)k, sizeof(double));
  double *beta = malloc(sizeof(double) * (size_t)k);
  if (s->n)
    s->resid = malloc(sizeof(double) * (size_t)s->n * k);
  if (!s->edges || !s->weight || !s->B || !s->c || !s->order || !s->pstart || !s->par || !mu ||
      !beta || (s->n && !s->resid))
    goto oom;
  memcpy(s->order, order, sizeof(int) * (size_t)k);
  for (int e = 0; e < n_edges; e++) {
    if (edges[e][0] < 0 || edges[e][0] >= k || edges[e][1] < 0 || edges[e][1] >= k)
      goto bad;
    s->edges[e][0] = edges[e][0];
    s->edges[e][1] = edges[e][1];
    s->pstart[edges[e][1] + 1]++;
  }
  for (int j = 0; j < k; j++)
    s->pstart[j + 1] += s->pstart[j];
  {
    int *fill = calloc((size_t)k, sizeof(int));
    if (fill == NULL)
      goto oom;
    for (int e = 0; e < n_edges; e++) {
      int j = edges[e][1];
      s->par[s->pstart[j] + fill[j]++] = edges[e][0];
    }
    free(fill);
  }
  /* the means the equations are centred at: the samples' own */
  if (s->n) {
    for (int r = 0; r < s->n; r++)
      for (int j = 0; j < k; j++)
        mu[j] += samples[(size_t)r * k + j];
    for (int j = 0; j < k; j++)
      mu[j] /= s->n;
  } else {
    memcpy(mu, mean, sizeof(double) * (size_t)k);
  }
  for (int j = 0; j < k; j++) {
    int p = s->pstart[j + 1] - s->pstart[j];
    double cj = mu[j];
    if (p > 0) {
      if (fit_node(s, j, mu, cov, beta) != 0)
        goto lsq;
      for (int q = 0; q < p; q++) {
        int pp = s->par[s->pstart[j] + q];
        s->B[(size_t)pp * k + j] = beta[q];
        cj -= beta[q] * mu[pp];
      }
    }
    s->c[j] = cj;
  }
  for (int e = 0; e < n_edges; e++)
    s->weight[e] = s->B[(size_t)edges[e][0] * k + edges[e][1]];
  /* residuals of every sample: r_j = x_j - c_j - sum_p B[p][j] x_p */
  for (int r = 0; r < s->n; r++) {
    const double *x = samples + (size_t)r * k;
    double *res = s->resid + (size_t)r * k;
    for (int j = 0; j < k; j++) {
      double v = x[j] - s->c[j];
      for (int q = s->pstart[j]; q < s->pstart[j + 1]; q++)
        v -= s->B[(size_t)s->par[q] * k + j] * x[s->par[q]];
      res[j] = v;
    }
  }
  free(mu);
  free(beta);
  *out = s;
  return 0;
bad:
  free(mu);
  free(beta);
  eng_scm_free(s);
  return fail(errbuf, errlen, "scm: edge out of range");
lsq:
  free(mu);
  free(beta);
  eng_scm_free(s);
  return fail(errbuf, errlen, "scm: least squares failed (LAPACK dgelsd)");
oom:
  free(mu);
  free(beta);
  eng_scm_free(s);
  return fail(errbuf, errlen, "out of memory");
}

double eng_scm_weight(const struct eng_scm *s, int e)
{
  return s && e >= 0 && e < s->n_edges ? s->weight[e] : NAN;
}

/* Which features descend from `feature` (itself included): desc[k]. */
static void descendants(const struct eng_scm *s, int feature, char *desc)
{
  const int k = s->k;
  memset(desc, 0, (size_t)k);
  desc[feature] = 1;
  for (int t = 0; t < k; t++) {
    int j = s->order[t];
    if (desc[j])
      continue;
    for (int q = s->pstart[j]; q < s->pstart[j + 1]; q++)
      if (desc[s->par[q]]) {
        desc[j] = 1;
        break;
      }
  }
}

int eng_scm_do(const struct eng_scm *s, int feature, double a, const double *x, int n,
               double *out)
{
  if (s == NULL || feature < 0 || feature >= s->k)
    return -1;
  const int k = s->k;
  const double *R = NULL;
  if (x == NULL) {
    if (s->n == 0)
      return -1;
    x = s->samples;
    n = s->n;
    R = s->resid;
  }
  char *desc = malloc((size_t)k);
  if (desc == NULL)
    return -1;
  descendants(s, feature, desc);
  for (int r = 0; r < n; r++) {
    const double *xr = x + (size_t)r * k;
    double *o = out + (size_t)r * k;
    memcpy(o, xr, sizeof(double) * (size_t)k);
    o[feature] = a;
    for (int t = 0; t < k; t++) {
      int j = s->order[t];
      if (j == feature || !desc[j])
        continue;
      /* the row's own residual: kept for the fitted samples, else
       * computed from the row as observed */
      double res;
      if (R != NULL) {
        res = R[(size_t)r * k + j];
      } else {
        res = xr[j] - s->c[j];
        for (int q = s->pstart[j]; q < s->pstart[j + 1]; q++)
          res -= s->B[(size_t)s->par[q] * k + j] * xr[s->par[q]];
      }
      double v = s->c[j] + res;
      for (int q = s->pstart[j]; q < s->pstart[j + 1]; q++)
        v += s->B[(size_t)s->par[q] * k + j] * o[s->par[q]];
      o[j] = v;
    }
  }
  free(desc);
  return 0;
}

int eng_scm_total(const struct eng_scm *s, int feature, double *t)
{
  if (s == NULL || feature < 0 || feature >= s->k)
    return -1;
  const int k = s->k;
  memset(t, 0, sizeof(double) * (size_t)k);
  t[feature] = 1.0;
  for (int q = 0; q < k; q++) {
    int j = s->order[q];
    if (j == feature)
      continue;
    double v = 0;
    for (int e = s->pstart[j]; e < s->pstart[j + 1]; e++)
      v += s->B[(size_t)s->par[e] * k + j] * t[s->par[e]];
    t[j] = v;
  }
  return 0;
}

int eng_scm_view(const struct eng_scm *s, const struct eng_model_input *in, int feature,
                 struct eng_model **out, char *errbuf, size_t errlen)
{
  *out = NULL;
  if (errbuf && errlen)
    errbuf[0] = '\0';
  if (s == NULL || in == NULL || in->k != s->k || feature < 0 || feature >= s->k)
    return fail(errbuf, errlen, "scm view: bad arguments");
  const int k = s->k, i = feature;
  const struct eng_layer *L0 = &in->net->layers[0];
  const int n1 = L0->n_out;
  double *t = malloc(sizeof(double) * (size_t)k);
  double *mean = malloc(sizeof(double) * (size_t)k);
  double *cov = malloc(sizeof(double) * (size_t)k * k);
  double *W = malloc(sizeof(double) * (size_t)n1 * k);
  struct eng_layer *layers = malloc(sizeof *layers * (size_t)in->net->n_layers);
  double *u = NULL;
  int rc = -1;
  if (!t || !mean || !cov || !W || !layers)
    goto out;
  eng_scm_total(s, i, t);
  /* f o B: layer 0's column i becomes W1 t */
  memcpy(W, L0->W, sizeof(double) * (size_t)n1 * k);
  for (int r = 0; r < n1; r++) {
    const double *w = L0->W + (size_t)r * k;
    W[(size_t)r * k + i] = cblas_ddot(k, w, 1, t, 1);
  }
  memcpy(layers, in->net->layers, sizeof *layers * (size_t)in->net->n_layers);
  layers[0].W = W;
  struct eng_net net = {.n_layers = in->net->n_layers, .layers = layers};
  /* u = B^-1 x, B^-1 = I - d e_i^T with d = t - e_i (d_i = 0) */
  for (int j = 0; j < k; j++)
    mean[j] = j == i ? in->mean[j] : in->mean[j] - t[j] * in->mean[i];
  const double *S = in->cov;
  for (int a = 0; a < k; a++) {
    double da = a == i ? 0.0 : t[a];
    for (int b = 0; b < k; b++) {
      double db = b == i ? 0.0 : t[b];
      cov[(size_t)a * k + b] = S[(size_t)a * k + b] - da * S[(size_t)i * k + b] -
                               db * S[(size_t)a * k + i] + da * db * S[(size_t)i * k + i];
    }
  }
  int ns = in->n_samples;
  if (ns > 0) {
    if ((u = malloc(sizeof(double) * (size_t)ns * k)) == NULL)
      goto out;
    if (s->n == ns && s->samples == in->samples) {
      /* the re-generated samples at x_i = 0, then u_i = x_i */
      if (eng_scm_do(s, i, 0.0, NULL, 0, u) != 0)
        goto out;
      for (int r = 0; r < ns; r++)
        u[(size_t)r * k + i] = in->samples[(size_t)r * k + i];
    } else {
      for (int r = 0; r < ns; r++) {
        const double *x = in->samples + (size_t)r * k;
        for (int j = 0; j < k; j++)
          u[(size_t)r * k + j] = j == i ? x[j] : x[j] - t[j] * x[i];
      }
    }
  }
  struct eng_model_input vin = *in;
  vin.net = &net;
  vin.mean = mean;
  vin.cov = cov;
  vin.samples = u;
  rc = eng_model_prepare(&vin, out, errbuf, errlen);
out:
  if (rc != 0 && (!errbuf || !errbuf[0]))
    fail(errbuf, errlen, "out of memory");
  free(t);
  free(mean);
  free(cov);
  free(W);
  free(layers);
  free(u);
  return rc;
}
