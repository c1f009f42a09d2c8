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

/* Apply activation `act` to one layer's block of nb alphas.
 * z, qz: n x nb (qz NULL means zero).  Tangents of alpha a, unit j, column
 * q at tz[j * ldt + a * bs + q].  Outputs x, q: n x nb; tout (NULL when not
 * wanted): n x (nb * c), block a at columns a*c.  scratch: 2n + c doubles. */
static void layer_act(enum eng_act act, int n, int nb, int c, const double *z,
                      const double *qz, const double *tz, size_t ldt, size_t bs,
                      double *x, double *q, double *tout, double *scratch)
{
  size_t ldo = (size_t)nb * c;
  if (act != ENG_ACT_SOFTMAX) {
    void (*ev)(double, double *, double *, double *) = eng_act_info(act)->eval;
    for (int j = 0; j < n; j++)
      for (int a = 0; a < nb; a++) {
        double f, d1, d2, rs = 0.0;
        const double *row = tz + j * ldt + a * bs;
        ev(z[(size_t)j * nb + a], &f, &d1, &d2);
        if (tout) {
          double *o = tout + j * ldo + (size_t)a * c;
          for (int k = 0; k < c; k++) {
            rs += row[k] * row[k];
            o[k] = d1 * row[k];
          }
        } else {
          for (int k = 0; k < c; k++)
            rs += row[k] * row[k];
        }
        x[(size_t)j * nb + a] = f;
        q[(size_t)j * nb + a] = (qz ? d1 * qz[(size_t)j * nb + a] : 0.0) + d2 * rs;
      }
    return;
  }
  double *s = scratch, *acc = scratch + n, *st = scratch + 2 * n;
  for (int a = 0; a < nb; a++) {
    for (int j = 0; j < n; j++)
      s[j] = z[(size_t)j * nb + a];
    eng_softmax(s, n, s);
    double sq = 0.0;
    if (qz)
      for (int j = 0; j < n; j++)
        sq += s[j] * qz[(size_t)j * nb + a];
    for (int k = 0; k < c; k++)
      st[k] = 0.0;
    for (int j = 0; j < n; j++) {
      const double *row = tz + j * ldt + a * bs;
      for (int k = 0; k < c; k++)
        st[k] += s[j] * row[k];
    }
    double sacc = 0.0;
    for (int j = 0; j < n; j++) {
      const double *row = tz + j * ldt + a * bs;
      double *o = tout ? tout + j * ldo + (size_t)a * c : NULL;
      double ac = 0.0;
      for (int k = 0; k < c; k++) {
        double u = row[k] - st[k];
        ac += u * u;
        if (o)
          o[k] = s[j] * u;
      }
      acc[j] = ac;
      sacc += s[j] * ac;
    }
    for (int j = 0; j < n; j++) {
      x[(size_t)j * nb + a] = s[j];
      q[(size_t)j * nb + a] =
          s[j] * ((qz ? qz[(size_t)j * nb + a] : 0.0) - sq) + s[j] * (acc[j] - sacc);
    }
  }
}

int eng_tangent_pass(const struct eng_model *m, const double *tz1, int c,
                     const double *z1, int n_alpha, double *val, double *q,
                     double *jl)
{
  int nl = m->net.n_layers, n1 = m->n1, no = m->n_out, mu = m->max_units;
  if (jl && n_alpha != 1)
    return -1;
  long per = (long)mu * (c > 0 ? c : 1);
  int nb = TP_BATCH;
  if (nb > n_alpha)
    nb = n_alpha;
  while (nb > 1 && per * nb > TP_BUF_CAP)
    nb--;
  size_t tsz = (size_t)mu * nb * (c > 0 ? c : 1);
  size_t vsz = (size_t)mu * nb;
  double *tb[2], *xb[2], *qb[2], *zb, *qzb, *scratch;
  double *mem = malloc((2 * tsz + 6 * vsz + 2 * (size_t)mu + c + 1) * sizeof *mem);
  if (!mem)
    return -1;
  tb[0] = mem;
  tb[1] = tb[0] + tsz;
  xb[0] = tb[1] + tsz;
  xb[1] = xb[0] + vsz;
  qb[0] = xb[1] + vsz;
  qb[1] = qb[0] + vsz;
  zb = qb[1] + vsz;
  qzb = zb + vsz;
  scratch = qzb + vsz;

  for (int a0 = 0; a0 < n_alpha; a0 += nb) {
    int nbb = n_alpha - a0 < nb ? n_alpha - a0 : nb;
    size_t ldo = (size_t)nbb * c;
    /* layer 1: shared tangent block, pre-activations given */
    for (int j = 0; j < n1; j++)
      for (int a = 0; a < nbb; a++)
        zb[(size_t)j * nbb + a] = z1[(size_t)(a0 + a) * n1 + j];
    int cur = 0;
    int want_t = nl > 1 || jl;
    const struct eng_layer *ly = &m->net.layers[0];
    layer_act(ly->act, n1, nbb, c, zb, NULL, tz1, (size_t)c, 0, xb[cur],
              qb[cur], want_t ? tb[cur] : NULL, scratch);
    for (int l = 1; l < nl; l++) {
      ly = &m->net.layers[l];
      int nxt = cur ^ 1, n = ly->n_out;
      for (int j = 0; j < n; j++)
        for (int a = 0; a < nbb; a++)
          zb[(size_t)j * nbb + a] = ly->b[j];
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, nbb, ly->n_in,
                  1.0, ly->W, ly->n_in, xb[cur], nbb, 1.0, zb, nbb);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, nbb, ly->n_in,
                  1.0, ly->W, ly->n_in, qb[cur], nbb, 0.0, qzb, nbb);
      double *tz = tb[nxt];
      if (c > 0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, (int)ldo,
                    ly->n_in, 1.0, ly->W, ly->n_in, tb[cur], (int)ldo, 0.0, tz,
                    (int)ldo);
      /* in place is safe: each row of tz is read before it is written */
      want_t = l < nl - 1 || jl;
      layer_act(ly->act, n, nbb, c, zb, qzb, tz, ldo, (size_t)c, xb[nxt],
                qb[nxt], want_t ? tz : NULL, scratch);
      cur = nxt;
    }
    for (int o = 0; o < no; o++)
      for (int a = 0; a < nbb; a++) {
        val[(size_t)(a0 + a) * no + o] = xb[cur][(size_t)o * nbb + a];
        q[(size_t)(a0 + a) * no + o] = qb[cur][(size_t)o * nbb + a];
      }
    if (jl)
      for (int o = 0; o < no; o++) {
        double s = 0.0;
        for (int k = 0; k < c; k++)
          s += tb[cur][(size_t)o * c + k] * tb[cur][(size_t)o * c + k];
        jl[o] = s;
      }
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
