/*
 * recurrent_est.c -- the estimators of a prepared recurrent model (see
 * recurrent.c for the passes they run): Monte Carlo over the stored
 * sequences with the prefix states computed once per chunk and reused for
 * every alpha, the interventional moments of Algorithm 2, Eq. 4 with the
 * exact Hessian trace on the time-unrolled network, finite differences,
 * the output spread, and the time lag of Proposition 3.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include <lapacke.h>
#include "engine/internal.h"

/* Sequences per batch, as in recurrent.c. */
#define RNN_CHUNK 256

int eng_rnn_montecarlo(const struct eng_model *m, int feature, const double *alpha,
                       int n_alpha, double *E, double *se)
{
  int rc = rnn_montecarlo_fast(m, feature, alpha, n_alpha, E, se);
  return rc != 1 ? rc : rnn_montecarlo_general(m, feature, alpha, n_alpha, E, se);
}

/* Every network: the passes of recurrent.c (rnn_montecarlo_fast, in
 * recurrent_mc.c, is the fused case of one LSTM layer). */
int rnn_montecarlo_general(const struct eng_model *m, int feature, const double *alpha,
                           int n_alpha, double *E, double *se)
{
  const struct eng_rnn *net = m->rnn;
  const int ni = net->input_size, K = m->k, no = m->n_out, ns = m->n_samples;
  const int t = feature / ni, i = feature % ni;
  int chunk = ns < RNN_CHUNK ? ns : RNN_CHUNK;
  struct rnn_pass p;
  if (rnn_pass_init(&p, net, chunk, 0) != 0)
    return -1;
  double *pre = malloc((size_t)chunk * p.S * sizeof *pre);
  double *y = malloc((size_t)chunk * no * sizeof *y);
  double *xin = malloc((size_t)chunk * ni * sizeof *xin);
  double *m2 = calloc((size_t)n_alpha * no, sizeof *m2);
  int rc = -1;
  if (!pre || !y || !xin || !m2)
    goto done;
  for (size_t u = 0; u < (size_t)n_alpha * no; u++)
    E[u] = 0.0;
  long seen = 0;
  for (int s0 = 0; s0 < ns; s0 += chunk) {
    int nc = ns - s0 < chunk ? ns - s0 : chunk;
    const double *xs = m->samples + (size_t)s0 * K;
    p.n = nc;
    rnn_run_prefix(&p, xs, t, y);
    memcpy(pre, p.v, (size_t)nc * p.S * sizeof *pre);
    for (int a = 0; a < n_alpha; a++) {
      if (eng_should_stop()) {
        rc = ENG_STOPPED;
        goto done;
      }
      rnn_run_intervened(&p, pre, xs, t, i, alpha[a], xin, y, NULL);
      eng_merge_chunk(y, nc, no, seen, E + (size_t)a * no, m2 + (size_t)a * no);
    }
    seen += nc;
  }
  if (se)
    eng_stderr(m2, (size_t)n_alpha * no, ns, se);
  rc = 0;
done:
  rnn_pass_free(&p);
  free(pre);
  free(y);
  free(xin);
  free(m2);
  return rc;
}

/* ------------------------------------------------------------------ */
/* The interventional mean and covariance factor (Algorithm 2).        */

/* For one alpha: mu (K) and a factor V (K x *rc, row-major, ld K at most)
 * of the interventional covariance of the flattened inputs.  Without
 * feedback (Corollary 2.1) the observational moments with x_j fixed: mu
 * with mu_j = alpha and the model's factor with row j zeroed.  With
 * feedback, the moments of the stored sequences re-simulated from step t
 * with x_i^t = alpha, factored by a symmetric eigendecomposition.  *V is
 * malloc'ed. */
static int intervened_moments(const struct eng_model *m, int feature, double alpha, double *mu,
                              double **V, int *rc_out)
{
  const struct eng_rnn *net = m->rnn;
  const int K = m->k;
  *V = NULL;
  if (!net->feedback) {
    memcpy(mu, m->mean, (size_t)K * sizeof *mu);
    mu[feature] = alpha;
    int r = m->r;
    double *v = malloc(((size_t)K * r + 1) * sizeof *v);
    if (!v)
      return -1;
    memcpy(v, m->L, (size_t)K * r * sizeof *v);
    for (int q = 0; q < r; q++)
      v[(size_t)feature * r + q] = 0.0;
    *V = v;
    *rc_out = r;
    return 0;
  }
  const int ni = net->input_size, ns = m->n_samples, t = feature / ni, i = feature % ni;
  const int no = m->n_out;
  int chunk = ns < RNN_CHUNK ? ns : RNN_CHUNK;
  struct rnn_pass p;
  if (rnn_pass_init(&p, net, chunk, 0) != 0)
    return -1;
  double *X = malloc((size_t)ns * K * sizeof *X);
  double *y = malloc((size_t)chunk * no * sizeof *y);
  double *xin = malloc((size_t)chunk * ni * sizeof *xin);
  double *S = calloc((size_t)K * K, sizeof *S);
  double *w = malloc((size_t)K * sizeof *w);
  int rc = -1;
  if (!X || !y || !xin || !S || !w)
    goto done;
  for (int s0 = 0; s0 < ns; s0 += chunk) {
    int nc = ns - s0 < chunk ? ns - s0 : chunk;
    p.n = nc;
    rnn_run_prefix(&p, m->samples + (size_t)s0 * K, t, y);
    double *pre = malloc((size_t)nc * p.S * sizeof *pre);
    if (!pre)
      goto done;
    memcpy(pre, p.v, (size_t)nc * p.S * sizeof *pre);
    rnn_run_intervened(&p, pre, m->samples + (size_t)s0 * K, t, i, alpha, xin, y,
                   X + (size_t)s0 * K);
    free(pre);
  }
  for (int c = 0; c < K; c++) {
    double a = 0.0;
    for (int s = 0; s < ns; s++)
      a += X[(size_t)s * K + c];
    mu[c] = a / ns;
  }
  for (int s = 0; s < ns; s++)
    for (int c = 0; c < K; c++)
      X[(size_t)s * K + c] -= mu[c];
  mu[feature] = alpha; /* exactly, not a mean of copies */
  if (ns > 1)
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, K, ns, 1.0 / (ns - 1), X, K, 0.0, S, K);
  if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', K, S, K, w) != 0)
    goto done;
  double lmax = w[K - 1];
  int r = 0;
  for (int j = K - 1; j >= 0 && lmax > 0.0 && w[j] > 1e-12 * lmax; j--)
    r++;
  double *v = malloc(((size_t)K * r + 1) * sizeof *v);
  if (!v)
    goto done;
  for (int q = 0; q < r; q++) {
    double sl = sqrt(w[K - 1 - q]);
    for (int c = 0; c < K; c++)
      v[(size_t)c * r + q] = S[(size_t)c * K + (K - 1 - q)] * sl;
  }
  *V = v;
  *rc_out = r;
  rc = 0;
done:
  rnn_pass_free(&p);
  free(X);
  free(y);
  free(xin);
  free(S);
  free(w);
  return rc;
}

/* Eq. 4's second-order pass: one value row and 2r tangent rows along the
 * columns of V (K x r), teacher forced at mu. */
struct second {
  struct rnn_pass p;
  int r;
  double *xt, *yt; /* 2r x K input tangents, 2r x n_out output tangents */
  double *v0, *t0; /* the state after the prefix (reuse) */
  double *y0;      /* outputs of the prefix steps (output_at every) */
};

static void second_free(struct second *s)
{
  rnn_pass_free(&s->p);
  free(s->xt);
  free(s->yt);
  free(s->v0);
  free(s->t0);
  free(s->y0);
}

static int second_init(struct second *s, const struct eng_model *m, const double *V, int r)
{
  const int K = m->k, no = m->n_out;
  memset(s, 0, sizeof *s);
  s->r = r;
  if (rnn_pass_init(&s->p, m->rnn, 1, r) != 0)
    return -1;
  s->xt = calloc((size_t)2 * r * K + 1, sizeof *s->xt);
  s->yt = calloc((size_t)2 * r * no + 1, sizeof *s->yt);
  s->v0 = malloc((size_t)s->p.S * sizeof *s->v0);
  s->t0 = malloc(((size_t)2 * r * s->p.S + 1) * sizeof *s->t0);
  s->y0 = calloc((size_t)no, sizeof *s->y0);
  if (!s->xt || !s->yt || !s->v0 || !s->t0 || !s->y0) {
    second_free(s);
    return -1;
  }
  for (int q = 0; q < r; q++)
    for (int c = 0; c < K; c++)
      s->xt[(size_t)q * K + c] = V[(size_t)c * r + q];
  return 0;
}

/* Steps 0..t-1 at mu once, kept for every alpha (the past does not depend
 * on an intervention at step t). */
static void second_prefix(struct second *s, const double *mu, int t)
{
  rnn_pass_reset(&s->p);
  rnn_run_forced(&s->p, 0, t, mu, s->xt, s->y0, s->yt);
  memcpy(s->v0, s->p.v, (size_t)s->p.S * sizeof *s->v0);
  memcpy(s->t0, s->p.t, (size_t)2 * s->r * s->p.S * sizeof *s->t0);
}

/* From the prefix state, steps t..T-1 at mu: val (n_out) gets f(mu) and
 * q2 (n_out) sum_q v_q^T H v_q. */
static void second_rest(struct second *s, const struct eng_model *m, const double *mu, int t,
                        double *val, double *q2)
{
  const int no = m->n_out, r = s->r;
  memcpy(s->p.v, s->v0, (size_t)s->p.S * sizeof *s->v0);
  memcpy(s->p.t, s->t0, (size_t)2 * r * s->p.S * sizeof *s->t0);
  memcpy(val, s->y0, (size_t)no * sizeof *val); /* steps before t (every) */
  rnn_run_forced(&s->p, t, m->rnn->T, mu, s->xt, val, s->yt);
  for (int o = 0; o < no; o++) {
    double a = 0.0;
    for (int q = 0; q < r; q++)
      a += s->yt[(size_t)(q + r) * no + o];
    q2[o] = a;
  }
}

/* Eq. 4 per alpha.  Without feedback the directions (the factor with row
 * `feature` zeroed) and the prefix pass are the same for every alpha: the
 * prefix runs once, each alpha only steps t..T-1.  With feedback the
 * moments come from re-simulated sequences, one factor per alpha. */
int eng_rnn_taylor(const struct eng_model *m, int feature, const double *alpha, int n_alpha,
                   double *E, double *second)
{
  const int K = m->k, no = m->n_out, t = feature / m->rnn->input_size;
  const int fb = m->rnn->feedback;
  double *mu = malloc((size_t)K * sizeof *mu);
  double *q2 = malloc((size_t)no * sizeof *q2);
  double *V = NULL;
  struct second s;
  int rc = -1, r, have = 0;
  if (!mu || !q2)
    goto done;
  for (int a = 0; a < n_alpha; a++) {
    if (eng_should_stop()) {
      rc = ENG_STOPPED;
      goto done;
    }
    if (fb || !have) {
      if (have)
        second_free(&s);
      free(V);
      have = 0;
      if (intervened_moments(m, feature, alpha[a], mu, &V, &r) != 0 ||
          second_init(&s, m, V, r) != 0)
        goto done;
      have = 1;
      second_prefix(&s, mu, fb ? 0 : t);
    }
    mu[feature] = alpha[a];
    second_rest(&s, m, mu, fb ? 0 : t, E + (size_t)a * no, q2);
    for (int o = 0; o < no; o++) {
      E[(size_t)a * no + o] += 0.5 * q2[o];
      if (second)
        second[(size_t)a * no + o] = 0.5 * q2[o];
    }
  }
  rc = 0;
done:
  if (have)
    second_free(&s);
  free(V);
  free(mu);
  free(q2);
  return rc;
}

int eng_rnn_finite_difference(const struct eng_model *m, int feature, const double *alpha,
                              int n_alpha, double eps, double *E)
{
  const int K = m->k, no = m->n_out;
  double *mu = malloc((size_t)K * sizeof *mu);
  int rc = -1;
  if (!mu)
    return -1;
  for (int a = 0; a < n_alpha; a++) {
    if (eng_should_stop()) {
      rc = ENG_STOPPED;
      goto done;
    }
    double *V;
    int r;
    if (intervened_moments(m, feature, alpha[a], mu, &V, &r) != 0)
      goto done;
    /* rows: mu, then mu + eps v_q, mu - eps v_q */
    double *X = malloc((size_t)(2 * r + 1) * K * sizeof *X);
    double *y = malloc((size_t)(2 * r + 1) * no * sizeof *y);
    if (!X || !y) {
      free(X);
      free(y);
      free(V);
      goto done;
    }
    memcpy(X, mu, (size_t)K * sizeof *X);
    for (int q = 0; q < r; q++)
      for (int c = 0; c < K; c++) {
        double d = eps * V[(size_t)c * r + q];
        X[(size_t)(1 + 2 * q) * K + c] = mu[c] + d;
        X[(size_t)(2 + 2 * q) * K + c] = mu[c] - d;
      }
    int frc = eng_rnn_forward(m->rnn, X, 2 * r + 1, y);
    for (int o = 0; o < no && frc == 0; o++) {
      double acc = 0.0;
      for (int q = 0; q < r; q++)
        acc += y[(size_t)(1 + 2 * q) * no + o] + y[(size_t)(2 + 2 * q) * no + o] - 2.0 * y[o];
      E[(size_t)a * no + o] = y[o] + 0.5 * acc / (eps * eps);
    }
    free(X);
    free(y);
    free(V);
    if (frc != 0)
      goto done;
  }
  rc = 0;
done:
  free(mu);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Preparation.                                                        */

int eng_rnn_prepare_rest(struct eng_model *m, const struct eng_model_input *in)
{
  const struct eng_rnn *net = m->rnn;
  const struct eng_act_info *last = eng_act_info(net->head.layers[net->head.n_layers - 1].act);
  m->out_lo = last->lo;
  m->out_hi = last->hi;
  int no = m->n_out;
  m->spread = malloc((size_t)no * sizeof *m->spread);
  if (!m->spread)
    return -1;
  m->bytes += (size_t)no * sizeof *m->spread;
  (void)in;
  if (m->n_samples > 1) {
    double *y = malloc((size_t)m->n_samples * no * sizeof *y);
    if (!y || eng_rnn_forward(net, m->samples, m->n_samples, y) != 0) {
      free(y);
      return -1;
    }
    eng_column_sd(y, m->n_samples, no, m->spread);
    free(y);
    return 0;
  }
  /* Linearised sqrt(diag(J S J^T)) at the mean: the first-order rows of
   * a pass along the columns of L. */
  const int K = m->k, r = m->r;
  struct rnn_pass p;
  if (rnn_pass_init(&p, net, 1, r) != 0)
    return -1;
  double *xt = calloc((size_t)2 * r * K + 1, sizeof *xt);
  double *yt = malloc(((size_t)2 * r * no + 1) * sizeof *yt);
  double *val = malloc((size_t)no * sizeof *val);
  if (!xt || !yt || !val) {
    free(xt);
    free(yt);
    free(val);
    rnn_pass_free(&p);
    return -1;
  }
  for (int q = 0; q < r; q++)
    for (int c = 0; c < K; c++)
      xt[(size_t)q * K + c] = m->L[(size_t)c * r + q];
  rnn_run_forced(&p, 0, net->T, m->mean, xt, val, yt);
  for (int o = 0; o < no; o++) {
    double a = 0.0;
    for (int q = 0; q < r; q++)
      a += yt[(size_t)q * no + o] * yt[(size_t)q * no + o];
    m->spread[o] = sqrt(a);
  }
  free(xt);
  free(yt);
  free(val);
  rnn_pass_free(&p);
  return 0;
}
