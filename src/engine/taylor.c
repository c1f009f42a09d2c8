/*
 * taylor.c -- paper Eq. 4, E = f(mu_a) + 1/2 trace(H(mu_a) S_i), exactly,
 * without forming H.
 *
 * DESIGN.  With S_i = L_i L_i^T, trace(H S_i) = sum_r v_r^T H v_r over the
 * columns v_r of L_i, and forward-mode propagation gives each second
 * directional derivative exactly.  Through a layer x' = act(W x + b) we
 * carry the value x, the tangents T (units x c) and Q, the second
 * directional derivatives summed over the tangents:
 *   z = W x + b,  Tz = W T,  Qz = W Q,
 *   x' = act(z),  T' = act'(z) Tz (row-wise),
 *   Q' = act'(z) Qz + act''(z) rowsum(Tz^2).
 * Softmax uses its Jacobian J v = s (v - s.v) and its second derivative
 * along t, s (u^2 - s.u^2) with u = t - s.t.  At the output E = x + Q/2.
 *
 * What is shared: the first layer's tangent block W1 L_i does not depend on
 * alpha, so it is built once per call, and the first pre-activation moves
 * only along column i of W1.  When the factor has more columns r than the
 * first layer has units n1, the block is replaced by U (n1 x (n1 + 1)) with
 * U U^T = (W1 L_i)(W1 L_i)^T: with (W1 L)^T = Q R and Q^T l_i = (c, d) (l_i
 * row i of L, c the first n1 entries), W1 L_i = (R^T - w c^T) Q1^T - w d^T Q2^T
 * so U = [R^T - w c^T, |d| w] with w = W1 e_i.  Every later layer then
 * multiplies n1 + 1 columns instead of r.  Several alphas are batched into
 * one GEMM per layer (their tangent blocks side by side).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "engine/internal.h"

/* Alphas per batch, and the cap on one tangent buffer (doubles). */
#define TP_BATCH 4
#define TP_BUF_CAP (4L * 1024 * 1024)

/* Activation of one layer for one alpha.  z, qz (NULL: zero): n values;
 * the pre-activation tangents are tz (n x c, leading dimension ldt), whose
 * rowsum of squares is rs (n values, NULL: computed here).  Fills x, q and
 * jd: the derivative act'(z) for element-wise activations, the softmax s
 * for softmax (its Jacobian is diag(s) - s s^T); and e: the contraction
 * that gives rowsum((J Tz)^2) as jd^2 e (element-wise: e = rs; softmax:
 * e_j = sum_q (Tz_jq - s.Tz_q)^2).  scratch: 2n + c doubles. */
static void act_one(enum eng_act act, int n, int c, const double *z,
                    const double *qz, const double *tz, int ldt,
                    const double *rs, double *x, double *q, double *jd,
                    double *e, double *scratch)
{
  if (act != ENG_ACT_SOFTMAX) {
    void (*ev)(double, double *, double *, double *) = eng_act_info(act)->eval;
    for (int j = 0; j < n; j++) {
      double f, d1, d2, r = 0.0;
      if (rs)
        r = rs[j];
      else
        for (int k = 0; k < c; k++)
          r += tz[(size_t)j * ldt + k] * tz[(size_t)j * ldt + k];
      ev(z[j], &f, &d1, &d2);
      x[j] = f;
      jd[j] = d1;
      e[j] = r;
      q[j] = (qz ? d1 * qz[j] : 0.0) + d2 * r;
    }
    return;
  }
  /* softmax: J v = s (v - s.v); second derivative along t:
   * s (u^2 - s.u^2), u = t - s.t; summed over the tangents:
   * s_j (e_j - s.e) with e_j = sum_q u_jq^2
   *                          = rs_j - 2 (Tz st)_j + |st|^2, st = Tz^T s. */
  double *tst = scratch, *st = scratch + n;
  eng_softmax(z, n, jd);
  double sq = 0.0, stst = 0.0, se = 0.0;
  if (qz)
    for (int j = 0; j < n; j++)
      sq += jd[j] * qz[j];
  if (c > 0) {
    cblas_dgemv(CblasRowMajor, CblasTrans, n, c, 1.0, tz, ldt, jd, 1, 0.0, st, 1);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, n, c, 1.0, tz, ldt, st, 1, 0.0, tst, 1);
    for (int k = 0; k < c; k++)
      stst += st[k] * st[k];
  } else {
    for (int j = 0; j < n; j++)
      tst[j] = 0.0;
  }
  for (int j = 0; j < n; j++) {
    double r = 0.0;
    if (rs)
      r = rs[j];
    else
      for (int k = 0; k < c; k++)
        r += tz[(size_t)j * ldt + k] * tz[(size_t)j * ldt + k];
    e[j] = r - 2.0 * tst[j] + stst;
    if (e[j] < 0.0)
      e[j] = 0.0;
    se += jd[j] * e[j];
  }
  for (int j = 0; j < n; j++) {
    x[j] = jd[j];
    q[j] = jd[j] * ((qz ? qz[j] : 0.0) - sq) + jd[j] * (e[j] - se);
  }
}

/* A = W J (n x n_in), J the Jacobian of the previous layer's activation. */
static void w_times_j(enum eng_act act, const double *W, int n, int n_in,
                      const double *jd, double *A, double *ws)
{
  for (int r = 0; r < n; r++) {
    const double *w = W + (size_t)r * n_in;
    double *o = A + (size_t)r * n_in;
    for (int j = 0; j < n_in; j++)
      o[j] = w[j] * jd[j];
  }
  if (act == ENG_ACT_SOFTMAX) {
    /* W (diag(s) - s s^T) = W diag(s) - (W s) s^T */
    cblas_dgemv(CblasRowMajor, CblasNoTrans, n, n_in, 1.0, W, n_in, jd, 1, 0.0,
                ws, 1);
    cblas_dger(CblasRowMajor, n, n_in, -1.0, ws, 1, jd, 1, A, n_in);
  }
}

/* The pass never forms the post-activation tangents J Tz: the next layer
 * multiplies by W J instead (a small matrix), so the only big products are
 * (W2 J1) U, stacked over the batch of alphas since U is shared, and then
 * (W J) Tz per alpha. */
int eng_tangent_pass(const struct eng_model *m, const double *tz1, int c,
                     const double *z1, int n_alpha, double *val, double *q,
                     double *jl)
{
  int nl = m->net.n_layers, n1 = m->n1, no = m->n_out, mu = m->max_units;
  if (jl && n_alpha != 1)
    return -1;
  if (n_alpha < 1)
    return 0;
  long per = (long)mu * (c > 0 ? c : 1);
  int nb = TP_BATCH;
  if (nb > n_alpha)
    nb = n_alpha;
  while (nb > 1 && per * nb > TP_BUF_CAP)
    nb--;
  size_t tsz = (size_t)nb * per;           /* one tangent buffer */
  size_t asz = (size_t)nb * mu * mu;       /* stacked W J */
  size_t vsz = (size_t)nb * mu;            /* per-alpha vectors */
  double *mem = malloc((2 * tsz + asz + 7 * vsz + 3 * (size_t)mu + c + 1) *
                       sizeof *mem);
  if (!mem)
    return -1;
  double *tb[2] = {mem, mem + tsz};
  double *ab = tb[1] + tsz;
  double *xb[2] = {ab + asz, ab + asz + vsz};
  double *qb[2] = {xb[1] + vsz, xb[1] + 2 * vsz};
  double *jd = qb[1] + vsz, *eb = jd + vsz, *zb = eb + vsz;
  double *rs1 = zb + vsz, *scratch = rs1 + mu;

  for (int j = 0; j < n1; j++) {
    double r = 0.0;
    for (int k = 0; k < c; k++)
      r += tz1[(size_t)j * c + k] * tz1[(size_t)j * c + k];
    rs1[j] = r;
  }
  for (int a0 = 0; a0 < n_alpha; a0 += nb) {
    int nbb = n_alpha - a0 < nb ? n_alpha - a0 : nb;
    int cur = 0, n_prev = n1;
    const struct eng_layer *ly = &m->net.layers[0];
    for (int a = 0; a < nbb; a++)
      act_one(ly->act, n1, c, z1 + (size_t)(a0 + a) * n1, NULL, tz1, c, rs1,
              xb[0] + (size_t)a * mu, qb[0] + (size_t)a * mu,
              jd + (size_t)a * mu, eb + (size_t)a * mu, scratch);
    for (int l = 1; l < nl; l++) {
      const struct eng_layer *prev = ly;
      ly = &m->net.layers[l];
      int n = ly->n_out, nxt = cur ^ 1;
      size_t blk = (size_t)n * c; /* one alpha's tangent block */
      if (c > 0) {
        if (l == 1) {
          for (int a = 0; a < nbb; a++)
            w_times_j(prev->act, ly->W, n, n_prev, jd + (size_t)a * mu,
                      ab + (size_t)a * n * n_prev, scratch);
          cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nbb * n, c,
                      n_prev, 1.0, ab, n_prev, tz1, c, 0.0, tb[nxt], c);
        } else {
          for (int a = 0; a < nbb; a++) {
            w_times_j(prev->act, ly->W, n, n_prev, jd + (size_t)a * mu, ab,
                      scratch);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, c,
                        n_prev, 1.0, ab, n_prev, tb[cur] + (size_t)a * n_prev * c,
                        c, 0.0, tb[nxt] + (size_t)a * blk, c);
          }
        }
      }
      /* values and Q: Z = X W^T + b, Qz = Q W^T (nbb rows, stride mu) */
      for (int a = 0; a < nbb; a++)
        memcpy(zb + (size_t)a * mu, ly->b, (size_t)n * sizeof *zb);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nbb, n, n_prev, 1.0,
                  xb[cur], mu, ly->W, n_prev, 1.0, zb, mu);
      double *qz = xb[cur]; /* X is no longer needed: reuse for Qz */
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nbb, n, n_prev, 1.0,
                  qb[cur], mu, ly->W, n_prev, 0.0, qb[nxt], mu);
      memcpy(qz, qb[nxt], (size_t)nbb * mu * sizeof *qz);
      for (int a = 0; a < nbb; a++)
        act_one(ly->act, n, c, zb + (size_t)a * mu, qz + (size_t)a * mu,
                tb[nxt] + (size_t)a * blk, c, NULL, xb[nxt] + (size_t)a * mu,
                qb[nxt] + (size_t)a * mu, jd + (size_t)a * mu,
                eb + (size_t)a * mu, scratch);
      cur = nxt;
      n_prev = n;
    }
    for (int a = 0; a < nbb; a++)
      for (int o = 0; o < no; o++) {
        val[(size_t)(a0 + a) * no + o] = xb[cur][(size_t)a * mu + o];
        q[(size_t)(a0 + a) * no + o] = qb[cur][(size_t)a * mu + o];
      }
    if (jl)
      for (int o = 0; o < no; o++)
        jl[o] = jd[o] * jd[o] * eb[o];
  }
  free(mem);
  return 0;
}

/* The first layer's tangent block for feature i: W1 L_i (n1 x r), or its
 * compressed equivalent (n1 x (n1 + 1)).  Returns the block, *c its width. */
static double *first_block(const struct eng_model *m, int i, int *c)
{
  int n1 = m->n1, r = m->r, k = m->k;
  const double *W1 = m->net.layers[0].W;
  const double *li = m->L + (size_t)i * r;
  if (!m->qr) {
    double *t = malloc(((size_t)n1 * r + 1) * sizeof *t);
    if (!t)
      return NULL;
    memcpy(t, m->W1L, (size_t)n1 * r * sizeof *t);
    for (int j = 0; j < n1; j++) {
      double w = W1[(size_t)j * k + i];
      if (w != 0.0)
        cblas_daxpy(r, -w, li, 1, t + (size_t)j * r, 1);
    }
    *c = r;
    return t;
  }
  /* v = Q^T l_i by the Householder reflectors H_1 .. H_n1 in order. */
  double *v = malloc((size_t)r * sizeof *v);
  double *u = malloc(((size_t)n1 * (n1 + 1)) * sizeof *u);
  if (!v || !u) {
    free(v);
    free(u);
    return NULL;
  }
  memcpy(v, li, (size_t)r * sizeof *v);
  for (int j = 0; j < n1; j++) {
    const double *h = m->qr + (size_t)j * r; /* column j */
    double dot = v[j];
    for (int p = j + 1; p < r; p++)
      dot += h[p] * v[p];
    dot *= m->tau[j];
    v[j] -= dot;
    for (int p = j + 1; p < r; p++)
      v[p] -= dot * h[p];
  }
  double d2 = 0.0;
  for (int p = n1; p < r; p++)
    d2 += v[p] * v[p];
  double d = sqrt(d2);
  int cc = n1 + 1;
  for (int j = 0; j < n1; j++) {
    double w = W1[(size_t)j * k + i];
    double *row = u + (size_t)j * cc;
    const double *rcol = m->qr + (size_t)j * r; /* R(a, j) = rcol[a], a <= j */
    for (int a = 0; a <= j; a++)
      row[a] = rcol[a] - w * v[a];
    for (int a = j + 1; a < n1; a++)
      row[a] = -w * v[a];
    row[n1] = d * w;
  }
  free(v);
  *c = cc;
  return u;
}

int eng_taylor(const struct eng_model *m, int feature, const double *alpha,
               int n_alpha, double *E, double *second)
{
  if (!m || feature < 0 || feature >= m->k || n_alpha < 0 ||
      (n_alpha > 0 && (!alpha || !E)))
    return -1;
  if (n_alpha == 0)
    return 0;
  int n1 = m->n1, k = m->k, no = m->n_out, c = 0;
  const struct eng_layer *l1 = &m->net.layers[0];
  double *tz1 = first_block(m, feature, &c);
  double *z1 = malloc((size_t)n_alpha * n1 * sizeof *z1);
  double *base = malloc((size_t)n1 * sizeof *base);
  double *q = malloc((size_t)n_alpha * no * sizeof *q);
  int rc = -1;
  if (!tz1 || !z1 || !base || !q)
    goto done;
  memcpy(base, l1->b, (size_t)n1 * sizeof *base);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, n1, k, 1.0, l1->W, k, m->mean, 1,
              1.0, base, 1);
  for (int j = 0; j < n1; j++)
    base[j] -= l1->W[(size_t)j * k + feature] * m->mean[feature];
  for (int a = 0; a < n_alpha; a++)
    for (int j = 0; j < n1; j++)
      z1[(size_t)a * n1 + j] = base[j] + alpha[a] * l1->W[(size_t)j * k + feature];
  rc = eng_tangent_pass(m, tz1, c, z1, n_alpha, E, q, NULL);
  if (rc == 0)
    for (size_t t = 0; t < (size_t)n_alpha * no; t++) {
      double h = 0.5 * q[t];
      E[t] += h;
      if (second)
        second[t] = h;
    }
done:
  free(tz1);
  free(z1);
  free(base);
  free(q);
  return rc;
}
