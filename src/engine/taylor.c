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
 * multiplies n1 + 1 columns instead of r.  Several alphas are batched
 * into one GEMM for layer 2, and tangent columns are processed in chunks so
 * the workspace stays bounded.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "engine/internal.h"

/* Alphas per batch; tangent columns per chunk; cap (doubles) on the
 * workspace that grows with them. */
#define TP_BATCH 4
#define TP_COLS 1024
#define TP_COLS_MIN 64
#define TP_WORK_CAP (8L * 1024 * 1024)

/* Add this chunk's share of e_j = sum_q ((J Tz)_jq / jd_j)^2 for one alpha:
 * element-wise activations: rowsum(Tz^2); softmax (J v = s (v - s.v)):
 * sum_q (Tz_jq - st_q)^2 = rs_j - 2 (Tz st)_j + |st|^2 with st = Tz^T s.
 * log_softmax (J v = v - s.v, jd holding s): the same sum, which is then
 * sum_q (J Tz)_jq^2 itself.
 * tz: n x cc, leading dimension ldt.  scratch: n + cc doubles. */
static void accum_e(enum eng_act act, int n, int cc, const double *tz, int ldt,
                    const double *jd, double *e, double *scratch)
{
  /* The row sums of squares by BLAS: a plain loop is one dependent
   * multiply-add after another (C does not reorder a floating-point sum),
   * four cycles each, which made this pass about a tenth of eq. 4's time
   * on a block the GEMM had just written; ddot keeps several partial sums
   * in vector registers. */
  if (act != ENG_ACT_SOFTMAX && act != ENG_ACT_LOG_SOFTMAX) {
    for (int j = 0; j < n; j++) {
      const double *row = tz + (size_t)j * ldt;
      e[j] += cblas_ddot(cc, row, 1, row, 1);
    }
    return;
  }
  double *tst = scratch, *st = scratch + n, stst = 0.0;
  cblas_dgemv(CblasRowMajor, CblasTrans, n, cc, 1.0, tz, ldt, jd, 1, 0.0, st, 1);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, n, cc, 1.0, tz, ldt, st, 1, 0.0, tst, 1);
  for (int k = 0; k < cc; k++)
    stst += st[k] * st[k];
  for (int j = 0; j < n; j++) {
    const double *row = tz + (size_t)j * ldt;
    e[j] += cblas_ddot(cc, row, 1, row, 1) - 2.0 * tst[j] + stst;
  }
}

/* A = W J (n x n_in), J the Jacobian of the previous layer's activation:
 * diag(jd), or for softmax diag(s) - s s^T (then W J = W diag(s) - (W s) s^T). */
static void w_times_j(enum eng_act act, const double *W, int n, int n_in,
                      const double *jd, double *A, double *ws)
{
  eng_vmul_rows(A, W, jd, n, n_in);
  if (act == ENG_ACT_SOFTMAX) {
    cblas_dgemv(CblasRowMajor, CblasNoTrans, n, n_in, 1.0, W, n_in, jd, 1, 0.0,
                ws, 1);
    cblas_dger(CblasRowMajor, n, n_in, -1.0, ws, 1, jd, 1, A, n_in);
  }
}

/* The pass runs in three sweeps per batch of alphas.
 *  A. values: z, x = act(z), the Jacobian (act' or softmax s) and act''
 *     for every layer; they do not depend on the tangents.
 *  B. tangents, in chunks of columns (tangent columns are independent, so
 *     only their row sums of squares e_l are accumulated): the first block is
 *     shared by all alphas, so layer 2 is one GEMM (W2 J1(a), stacked over a)
 *     times it; later layers are (W J(a)) Tz(a), alpha by alpha.  The
 *     post-activation tangents J Tz are never formed: the next layer takes
 *     W J, a small matrix, instead.
 *  C. Q: q_l = J_l (W_l q_{l-1}) + act''_l e_l (softmax: s (e - s.e);
 *     log_softmax: - s.e).
 * Memory is bounded by TP_WORK_CAP whatever the width of the factor. */
int eng_tangent_pass(const struct eng_model *m, const double *tz1, int c,
                     const double *z1, int n_alpha, double *val, double *q,
                     double *jl)
{
  int nl = m->net.n_layers, n1 = m->n1, no = m->n_out;
  if (jl && n_alpha != 1)
    return -1;
  if (n_alpha < 1)
    return 0;
  int off[ACED_MAX_LAYERS + 1], tot = 0, mu2 = 1, mu3 = 1;
  long wmax = 0; /* largest n_l x n_{l-1} for l >= 2 */
  for (int l = 0; l < nl; l++) {
    off[l] = tot;
    tot += m->net.layers[l].n_out;
    if (l >= 1 && m->net.layers[l].n_out > mu2)
      mu2 = m->net.layers[l].n_out;
    if (l >= 2 && m->net.layers[l].n_out > mu3)
      mu3 = m->net.layers[l].n_out;
    if (l >= 2 && (long)m->net.layers[l].n_out * m->net.layers[l].n_in > wmax)
      wmax = (long)m->net.layers[l].n_out * m->net.layers[l].n_in;
  }
  long w2 = nl > 1 ? (long)m->net.layers[1].n_out * n1 : 0;
  int cols = c < TP_COLS ? (c > 0 ? c : 1) : TP_COLS;
  while (cols > TP_COLS_MIN && 2L * mu2 * cols > TP_WORK_CAP)
    cols /= 2;
  int nb = TP_BATCH < n_alpha ? TP_BATCH : n_alpha;
  while (nb > 1 && nb * (2L * mu2 * cols + w2) > TP_WORK_CAP)
    nb--;
  /* stack: layer 2's tangents for the batch; pp: two blocks that later
   * layers of one alpha ping-pong between */
  size_t tsz = (size_t)nb * mu2 * cols, psz = (size_t)mu3 * cols;
  size_t asz = (size_t)(nb * w2 > wmax ? nb * w2 : wmax);
  size_t vsz = (size_t)nb * tot;
  double *mem = malloc((tsz + 2 * psz + asz + 5 * vsz + 2 * (size_t)m->max_units +
                        cols + 1 + (size_t)n1) * sizeof *mem);
  if (!mem)
    return -1;
  double *stack = mem, *pp[2] = {mem + tsz, mem + tsz + psz};
  double *ab = pp[1] + psz;
  double *X = ab + asz, *JD = X + vsz, *D2 = JD + vsz, *EE = D2 + vsz;
  double *QQ = EE + vsz, *scratch = QQ + vsz;
  double *e1 = scratch + 2 * (size_t)m->max_units + cols + 1;

  /* The first layer's tangents tz1 are the same for every alpha, and so,
   * for an element-wise activation, are their row sums of squares: taken
   * once here, not once per alpha and chunk, they spare a read of the
   * whole n1 x c block (2 MiB at MNIST scale) per alpha.  Softmax as a
   * first layer mixes in the alpha-dependent s, and keeps the per-alpha
   * sum below. */
  enum eng_act act1 = m->net.layers[0].act;
  int e1_shared = act1 != ENG_ACT_SOFTMAX && act1 != ENG_ACT_LOG_SOFTMAX;
  if (e1_shared)
    for (int j = 0; j < n1; j++)
      e1[j] = cblas_ddot(c, tz1 + (size_t)j * c, 1, tz1 + (size_t)j * c, 1);

  for (int a0 = 0; a0 < n_alpha; a0 += nb) {
    if (eng_should_stop()) {
      free(mem);
      return ENG_STOPPED;
    }
    int nbb = n_alpha - a0 < nb ? n_alpha - a0 : nb;
    /* A. values */
    for (int l = 0; l < nl; l++) {
      const struct eng_layer *ly = &m->net.layers[l];
      int n = ly->n_out;
      if (l == 0) {
        for (int a = 0; a < nbb; a++)
          memcpy(X + (size_t)a * tot, z1 + (size_t)(a0 + a) * n1,
                 (size_t)n1 * sizeof *X);
      } else {
        for (int a = 0; a < nbb; a++)
          memcpy(X + (size_t)a * tot + off[l], ly->b, (size_t)n * sizeof *X);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nbb, n, ly->n_in,
                    1.0, X + off[l - 1], tot, ly->W, ly->n_in, 1.0, X + off[l],
                    tot);
      }
      for (int a = 0; a < nbb; a++) {
        double *x = X + (size_t)a * tot + off[l];
        double *jd = JD + (size_t)a * tot + off[l];
        double *d2 = D2 + (size_t)a * tot + off[l];
        if (ly->act == ENG_ACT_SOFTMAX) {
          eng_softmax(x, n, x);
          memcpy(jd, x, (size_t)n * sizeof *jd);
        } else if (ly->act == ENG_ACT_LOG_SOFTMAX) {
          eng_log_softmax(x, n, x, jd); /* jd holds s, as for softmax */
        } else {
          void (*ev)(double, double *, double *, double *) =
              eng_act_info(ly->act)->eval;
          for (int j = 0; j < n; j++)
            ev(x[j], &x[j], &jd[j], &d2[j]);
        }
      }
    }
    /* B. tangents, chunk by chunk */
    for (size_t t = 0; t < vsz; t++)
      EE[t] = 0.0;
    if (e1_shared)
      for (int a = 0; a < nbb; a++)
        memcpy(EE + (size_t)a * tot, e1, (size_t)n1 * sizeof *EE);
    for (int c0 = 0; c0 < c; c0 += cols) {
      int cc = c - c0 < cols ? c - c0 : cols;
      const struct eng_layer *ly = &m->net.layers[0];
      if (!e1_shared)
        for (int a = 0; a < nbb; a++)
          accum_e(ly->act, n1, cc, tz1 + c0, c, JD + (size_t)a * tot,
                  EE + (size_t)a * tot, scratch);
      if (nl < 2)
        continue;
      /* Layer 2: one GEMM, (W2 J1(a)) stacked over the batch, times the
       * shared first block. */
      const struct eng_layer *l2 = &m->net.layers[1];
      int n2 = l2->n_out;
      size_t blk2 = (size_t)n2 * cc;
      for (int a = 0; a < nbb; a++)
        w_times_j(ly->act, l2->W, n2, n1, JD + (size_t)a * tot + off[0],
                  ab + (size_t)a * n2 * n1, scratch);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nbb * n2, cc, n1,
                  1.0, ab, n1, tz1 + c0, c, 0.0, stack, cc);
      /* Later layers alpha by alpha, each layer's block taken by the next
       * while it is still in cache (layer by layer over the batch, the
       * blocks of the other alphas came between). */
      for (int a = 0; a < nbb; a++) {
        const double *jda = JD + (size_t)a * tot;
        double *ea = EE + (size_t)a * tot;
        const double *src = stack + (size_t)a * blk2;
        accum_e(l2->act, n2, cc, src, cc, jda + off[1], ea + off[1], scratch);
        for (int l = 2; l < nl; l++) {
          const struct eng_layer *prev = &m->net.layers[l - 1];
          const struct eng_layer *cur = &m->net.layers[l];
          double *dst = pp[l & 1];
          w_times_j(prev->act, cur->W, cur->n_out, cur->n_in, jda + off[l - 1],
                    ab, scratch);
          cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cur->n_out, cc,
                      cur->n_in, 1.0, ab, cur->n_in, src, cc, 0.0, dst, cc);
          accum_e(cur->act, cur->n_out, cc, dst, cc, jda + off[l], ea + off[l],
                  scratch);
          src = dst;
        }
      }
    }
    /* C. second directional derivatives */
    for (int l = 0; l < nl; l++) {
      const struct eng_layer *ly = &m->net.layers[l];
      int n = ly->n_out;
      if (l == 0) {
        for (int a = 0; a < nbb; a++)
          for (int j = 0; j < n; j++)
            QQ[(size_t)a * tot + j] = 0.0;
      } else {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nbb, n, ly->n_in,
                    1.0, QQ + off[l - 1], tot, ly->W, ly->n_in, 0.0, QQ + off[l],
                    tot);
      }
      for (int a = 0; a < nbb; a++) {
        double *qv = QQ + (size_t)a * tot + off[l];
        const double *jd = JD + (size_t)a * tot + off[l];
        const double *d2 = D2 + (size_t)a * tot + off[l];
        double *e = EE + (size_t)a * tot + off[l];
        if (ly->act == ENG_ACT_SOFTMAX) {
          double sq = 0.0, se = 0.0;
          for (int j = 0; j < n; j++) {
            if (e[j] < 0.0) /* rounding in rs - 2 tst + |st|^2 */
              e[j] = 0.0;
            sq += jd[j] * qv[j];
            se += jd[j] * e[j];
          }
          for (int j = 0; j < n; j++)
            qv[j] = jd[j] * (qv[j] - sq) + jd[j] * (e[j] - se);
        } else if (ly->act == ENG_ACT_LOG_SOFTMAX) {
          /* y = z - lse(z): J q = q - s.q, and every output's Hessian is
           * -(diag(s) - s s^T), so sum_k v_k^T H v_k = -(sum_i s_i rs_i -
           * |st|^2) = -s.e (with e as accum_e leaves it, sum s = 1) */
          double sq = 0.0, se = 0.0;
          for (int j = 0; j < n; j++) {
            if (e[j] < 0.0)
              e[j] = 0.0;
            sq += jd[j] * qv[j];
            se += jd[j] * e[j];
          }
          for (int j = 0; j < n; j++)
            qv[j] = qv[j] - sq - se;
        } else {
          for (int j = 0; j < n; j++)
            qv[j] = jd[j] * qv[j] + d2[j] * e[j];
        }
      }
    }
    for (int a = 0; a < nbb; a++)
      for (int o = 0; o < no; o++) {
        val[(size_t)(a0 + a) * no + o] = X[(size_t)a * tot + off[nl - 1] + o];
        q[(size_t)(a0 + a) * no + o] = QQ[(size_t)a * tot + off[nl - 1] + o];
      }
    if (jl)
      for (int o = 0; o < no; o++) {
        /* log_softmax: e is already sum_q (J Tz)_oq^2 (jd holds s) */
        double d = m->net.layers[nl - 1].act == ENG_ACT_LOG_SOFTMAX ? 1.0 : JD[off[nl - 1] + o];
        jl[o] = d * d * EE[off[nl - 1] + o];
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
  if (m->rnn)
    return eng_rnn_taylor(m, feature, alpha, n_alpha, E, second);
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
