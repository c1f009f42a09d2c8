/*
 * recurrent.c -- recurrent networks (GRU, LSTM, Elman) as functions of the
 * flattened sequence: cells, copies, and the passes the estimators of
 * recurrent_est.c run (Monte Carlo over the stored sequences with the
 * prefix states reused for every alpha, Eq. 4 with the exact Hessian trace
 * on the time-unrolled network, finite differences, and the re-simulation
 * of Algorithm 2 when the outputs feed back).  The time lag is in
 * recurrent_lag.c, the vectorized cells of plain passes in vmath.c.
 *
 * DESIGN
 *
 * One step function serves every pass.  It carries a batch of n value
 * rows and, for the second-order passes (n == 1), 2r tangent rows: rows
 * 0..r-1 the first directional derivatives along the r directions, rows
 * r..2r-1 the second ones (forward mode over forward mode, "hyper-dual"
 * numbers with both parts along the same direction).  Linear maps act on
 * all of them with one GEMM each (the biases only on the values); each
 * element-wise map f sends (v, d, dd) to (f(v), f'(v) d, f''(v) d^2 +
 * f'(v) dd) and each product ab to (ab, a'b + ab', a''b + 2a'b' + ab'').
 * The sum of the second rows over the directions v_r = columns of a factor
 * of the covariance is sum_r v_r^T H v_r = trace(H S): Eq. 4's term,
 * exactly, without forming H.
 *
 * The state of a sequence is, per layer, h (and c for the LSTM).  The
 * past does not depend on do(x_i^t = a): montecarlo runs steps 0..t-1 of
 * each chunk of sequences once and, per alpha, only steps t..T-1 from a
 * copy of that state.  With feedback, the input of step s + 1 > t is the
 * head's output at step s.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include <lapacke.h>
#include "engine/internal.h"

/* Sequences per batch: the GEMMs of a step have this many rows. */
#define RNN_CHUNK 256

static const char *const cell_names[ENG_CELL__COUNT] = {"gru", "lstm", "rnn_tanh", "rnn_relu"};

const char *eng_cell_name(enum eng_cell c)
{
  return (int)c >= 0 && c < ENG_CELL__COUNT ? cell_names[c] : NULL;
}

int eng_cell_from_name(const char *name, enum eng_cell *out)
{
  for (int c = 0; name && c < ENG_CELL__COUNT; c++)
    if (strcmp(name, cell_names[c]) == 0) {
      *out = (enum eng_cell)c;
      return 0;
    }
  return -1;
}

int eng_cell_gates(enum eng_cell c)
{
  return c == ENG_CELL_GRU ? 3 : c == ENG_CELL_LSTM ? 4 : 1;
}

int rnn_head_out(const struct eng_rnn *r)
{
  return r->head.layers[r->head.n_layers - 1].n_out;
}

int eng_rnn_outputs(const struct eng_rnn *r)
{
  return r->every ? r->T * rnn_head_out(r) : rnn_head_out(r);
}

const struct eng_rnn *eng_model_rnn(const struct eng_model *m)
{
  return m ? m->rnn : NULL;
}

/* ------------------------------------------------------------------ */
/* Copies.                                                             */

void eng_rnn_free(struct eng_rnn *r)
{
  if (!r)
    return;
  for (int l = 0; r->layers && l < r->n_layers; l++) {
    free(r->layers[l].W_ih);
    free(r->layers[l].W_hh);
    free(r->layers[l].b_ih);
    free(r->layers[l].b_hh);
  }
  free(r->layers);
  for (int l = 0; r->head.layers && l < r->head.n_layers; l++) {
    free(r->head.layers[l].W);
    free(r->head.layers[l].b);
  }
  free(r->head.layers);
  free(r);
}

static double *dup(const double *src, size_t n, size_t *bytes)
{
  double *p = malloc((n ? n : 1) * sizeof *p);
  if (p && n)
    memcpy(p, src, n * sizeof *p);
  *bytes += n * sizeof *p;
  return p;
}

/* A deep copy, checked: NULL when the shapes do not chain or memory ran
 * out. */
struct eng_rnn *eng_rnn_copy(const struct eng_rnn *src, size_t *bytes)
{
  if (!src || src->n_layers < 1 || src->n_layers > ACED_MAX_LAYERS || src->T < 1 ||
      src->input_size < 1 || src->hidden_size < 1 || src->hidden_size > ACED_MAX_UNITS ||
      !src->layers || src->head.n_layers < 1 || src->head.n_layers > ACED_MAX_LAYERS ||
      !src->head.layers || (int)src->cell < 0 || src->cell >= ENG_CELL__COUNT)
    return NULL;
  int H = src->hidden_size, G = eng_cell_gates(src->cell) * H;
  for (int l = 0; l < src->n_layers; l++)
    if (src->layers[l].n_in != (l ? H : src->input_size))
      return NULL;
  for (int l = 0; l < src->head.n_layers; l++) {
    const struct eng_layer *ly = &src->head.layers[l];
    if (ly->n_in != (l ? src->head.layers[l - 1].n_out : H) || ly->n_out < 1 ||
        ly->n_out > ACED_MAX_UNITS || (int)ly->act < 0 || ly->act >= ENG_ACT__COUNT)
      return NULL;
  }
  if (src->feedback && rnn_head_out(src) != src->input_size)
    return NULL;
  struct eng_rnn *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  *r = *src;
  r->layers = calloc((size_t)src->n_layers, sizeof *r->layers);
  r->head.layers = calloc((size_t)src->head.n_layers, sizeof *r->head.layers);
  if (!r->layers || !r->head.layers) {
    free(r->layers);
    free(r->head.layers);
    free(r);
    return NULL;
  }
  int bad = 0;
  for (int l = 0; l < src->n_layers; l++) {
    const struct eng_rnn_layer *s = &src->layers[l];
    struct eng_rnn_layer *d = &r->layers[l];
    d->n_in = s->n_in;
    d->W_ih = dup(s->W_ih, (size_t)G * s->n_in, bytes);
    d->W_hh = dup(s->W_hh, (size_t)G * H, bytes);
    d->b_ih = dup(s->b_ih, (size_t)G, bytes);
    d->b_hh = dup(s->b_hh, (size_t)G, bytes);
    bad |= !d->W_ih || !d->W_hh || !d->b_ih || !d->b_hh;
  }
  for (int l = 0; l < src->head.n_layers; l++) {
    const struct eng_layer *s = &src->head.layers[l];
    struct eng_layer *d = &r->head.layers[l];
    *d = *s;
    d->W = dup(s->W, (size_t)s->n_out * s->n_in, bytes);
    d->b = dup(s->b, (size_t)s->n_out, bytes);
    bad |= !d->W || !d->b;
  }
  if (bad) {
    eng_rnn_free(r);
    return NULL;
  }
  return r;
}

/* ------------------------------------------------------------------ */
/* Passes: n value rows and, when r > 0 (n == 1), 2r tangent rows.     */


static int state_width(const struct eng_rnn *r)
{
  return r->n_layers * r->hidden_size * (r->cell == ENG_CELL_LSTM ? 2 : 1);
}

void rnn_pass_free(struct rnn_pass *p)
{
  free(p->v);
  free(p->t);
  free(p->gi);
  free(p->gh);
  free(p->tgi);
  free(p->tgh);
  free(p->hv);
  free(p->ht);
  free(p->yv);
  free(p->yt);
  memset(p, 0, sizeof *p);
}

int rnn_pass_init(struct rnn_pass *p, const struct eng_rnn *net, int n, int r)
{
  memset(p, 0, sizeof *p);
  p->net = net;
  p->n = n;
  p->r = r;
  p->H = net->hidden_size;
  p->G = eng_cell_gates(net->cell) * p->H;
  p->S = state_width(net);
  p->O = rnn_head_out(net);
  p->wmax = p->H > net->input_size ? p->H : net->input_size;
  for (int l = 0; l < net->head.n_layers; l++)
    if (net->head.layers[l].n_out > p->wmax)
      p->wmax = net->head.layers[l].n_out;
  size_t tr = (size_t)2 * r;
  p->v = calloc((size_t)n * p->S, sizeof *p->v);
  p->t = calloc(tr * p->S + 1, sizeof *p->t);
  p->gi = malloc((size_t)n * p->G * sizeof *p->gi);
  p->gh = malloc((size_t)n * p->G * sizeof *p->gh);
  p->tgi = malloc((tr * p->G + 1) * sizeof *p->tgi);
  p->tgh = malloc((tr * p->G + 1) * sizeof *p->tgh);
  p->hv = malloc((size_t)2 * n * p->wmax * sizeof *p->hv);
  p->ht = malloc((2 * tr * p->wmax + 1) * sizeof *p->ht);
  p->yv = malloc((size_t)n * p->O * sizeof *p->yv);
  p->yt = malloc((tr * p->O + 1) * sizeof *p->yt);
  if (!p->v || !p->t || !p->gi || !p->gh || !p->tgi || !p->tgh || !p->hv || !p->ht ||
      !p->yv || !p->yt) {
    rnn_pass_free(p);
    return -1;
  }
  return 0;
}

void rnn_pass_reset(struct rnn_pass *p)
{
  memset(p->v, 0, (size_t)p->n * p->S * sizeof *p->v);
  memset(p->t, 0, (size_t)2 * p->r * p->S * sizeof *p->t);
}

/* Y (rows x m) = X (rows x k, leading dim ldx) W^T (W m x k) [+ b]. */
static void linear(int rows, int m, int k, const double *X, int ldx, const double *W,
                   const double *b, double *Y, int ldy)
{
  if (rows == 0)
    return;
  if (b)
    for (int i = 0; i < rows; i++)
      memcpy(Y + (size_t)i * ldy, b, (size_t)m * sizeof *Y);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, m, k, 1.0, X, ldx, W, k,
              b ? 1.0 : 0.0, Y, ldy);
}

static inline double sigm(double z)
{
  return z >= 0.0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

/* f, f', f'' of the gate non-linearities. */
static inline void sig3(double z, double *f, double *d1, double *d2)
{
  double s = sigm(z);
  *f = s;
  *d1 = s * (1.0 - s);
  *d2 = *d1 * (1.0 - 2.0 * s);
}
static inline void tanh3(double z, double *f, double *d1, double *d2)
{
  double t = tanh(z);
  *f = t;
  *d1 = 1.0 - t * t;
  *d2 = -2.0 * t * *d1;
}
static inline void relu3(double z, double *f, double *d1, double *d2)
{
  *f = z > 0.0 ? z : 0.0;
  *d1 = z > 0.0 ? 1.0 : 0.0;
  *d2 = 0.0;
}

/* Hyper-dual helpers over the 2r tangent rows of one unit: column j of a
 * 2r x ld block; d = rows 0..r-1, dd = rows r..2r-1. */
#define D1(a, q, j, ld) (a)[(size_t)(q) * (ld) + (j)]
#define D2(a, q, j, ld, r) (a)[(size_t)((q) + (r)) * (ld) + (j)]

/* One step of layer l: input u (n x n_in values at ldu, 2r x n_in
 * tangents at ldut), state in p->v / p->t updated in place. */
static void layer_step(struct rnn_pass *p, int l, const double *u, int ldu, const double *ut,
                       int ldut)
{
  const struct eng_rnn *net = p->net;
  const struct eng_rnn_layer *L = &net->layers[l];
  const int H = p->H, G = p->G, S = p->S, n = p->n, r = p->r;
  const int lstm = net->cell == ENG_CELL_LSTM;
  const int off = l * H * (lstm ? 2 : 1);
  linear(n, G, L->n_in, u, ldu, L->W_ih, L->b_ih, p->gi, G);
  linear(n, G, H, p->v + off, S, L->W_hh, L->b_hh, p->gh, G);
  if (r > 0) {
    linear(2 * r, G, L->n_in, ut, ldut, L->W_ih, NULL, p->tgi, G);
    linear(2 * r, G, H, p->t + off, S, L->W_hh, NULL, p->tgh, G);
  }
  if (r == 0) {
    eng_cells_plain(p, off);
    return;
  }
  for (int s = 0; s < n; s++) {
    double *h = p->v + (size_t)s * S + off, *c = h + H;
    const double *gi = p->gi + (size_t)s * G, *gh = p->gh + (size_t)s * G;
    for (int j = 0; j < H; j++) {
      /* second order (n == 1) */
      double *th = p->t + off, *tc = th + H;
      const double *ti = p->tgi, *tg = p->tgh;
      switch (net->cell) {
      case ENG_CELL_GRU: {
        double rg, r1, r2, zg, z1, z2, ng, n1, n2;
        double ghn = gh[2 * H + j];
        sig3(gi[j] + gh[j], &rg, &r1, &r2);
        sig3(gi[H + j] + gh[H + j], &zg, &z1, &z2);
        tanh3(gi[2 * H + j] + rg * ghn, &ng, &n1, &n2);
        double hv = h[j];
        for (int q = 0; q < r; q++) {
          double dar = D1(ti, q, j, G) + D1(tg, q, j, G);
          double ddar = D2(ti, q, j, G, r) + D2(tg, q, j, G, r);
          double daz = D1(ti, q, H + j, G) + D1(tg, q, H + j, G);
          double ddaz = D2(ti, q, H + j, G, r) + D2(tg, q, H + j, G, r);
          double dr = r1 * dar, ddr = r2 * dar * dar + r1 * ddar;
          double dz = z1 * daz, ddz = z2 * daz * daz + z1 * ddaz;
          double dghn = D1(tg, q, 2 * H + j, G), ddghn = D2(tg, q, 2 * H + j, G, r);
          double dan = D1(ti, q, 2 * H + j, G) + dr * ghn + rg * dghn;
          double ddan = D2(ti, q, 2 * H + j, G, r) + ddr * ghn + 2.0 * dr * dghn + rg * ddghn;
          double dn = n1 * dan, ddn = n2 * dan * dan + n1 * ddan;
          double dh = D1(th, q, j, S), ddh = D2(th, q, j, S, r);
          D1(th, q, j, S) = dn + dz * (hv - ng) + zg * (dh - dn);
          D2(th, q, j, S, r) = ddn + ddz * (hv - ng) + 2.0 * dz * (dh - dn) + zg * (ddh - ddn);
        }
        h[j] = ng + zg * (hv - ng);
        break;
      }
      case ENG_CELL_LSTM: {
        double ig, i1, i2, fg, f1, f2, gg, g1, g2, og, o1, o2;
        sig3(gi[j] + gh[j], &ig, &i1, &i2);
        sig3(gi[H + j] + gh[H + j], &fg, &f1, &f2);
        tanh3(gi[2 * H + j] + gh[2 * H + j], &gg, &g1, &g2);
        sig3(gi[3 * H + j] + gh[3 * H + j], &og, &o1, &o2);
        double cv = fg * c[j] + ig * gg, tcv, t1, t2;
        tanh3(cv, &tcv, &t1, &t2);
        for (int q = 0; q < r; q++) {
          double a[4], aa[4];
          for (int g = 0; g < 4; g++) {
            a[g] = D1(ti, q, g * H + j, G) + D1(tg, q, g * H + j, G);
            aa[g] = D2(ti, q, g * H + j, G, r) + D2(tg, q, g * H + j, G, r);
          }
          double di = i1 * a[0], ddi = i2 * a[0] * a[0] + i1 * aa[0];
          double df = f1 * a[1], ddf = f2 * a[1] * a[1] + f1 * aa[1];
          double dg = g1 * a[2], ddg = g2 * a[2] * a[2] + g1 * aa[2];
          double dout = o1 * a[3], ddo = o2 * a[3] * a[3] + o1 * aa[3];
          double dc = D1(tc, q, j, S), ddc = D2(tc, q, j, S, r);
          double dcn = df * c[j] + fg * dc + di * gg + ig * dg;
          double ddcn = ddf * c[j] + 2.0 * df * dc + fg * ddc + ddi * gg + 2.0 * di * dg +
                        ig * ddg;
          double dt = t1 * dcn, ddt = t2 * dcn * dcn + t1 * ddcn;
          D1(tc, q, j, S) = dcn;
          D2(tc, q, j, S, r) = ddcn;
          D1(th, q, j, S) = dout * tcv + og * dt;
          D2(th, q, j, S, r) = ddo * tcv + 2.0 * dout * dt + og * ddt;
        }
        c[j] = cv;
        h[j] = og * tcv;
        break;
      }
      default: {
        double f, f1, f2;
        if (net->cell == ENG_CELL_RNN_TANH)
          tanh3(gi[j] + gh[j], &f, &f1, &f2);
        else
          relu3(gi[j] + gh[j], &f, &f1, &f2);
        for (int q = 0; q < r; q++) {
          double a = D1(ti, q, j, G) + D1(tg, q, j, G);
          double aa = D2(ti, q, j, G, r) + D2(tg, q, j, G, r);
          D1(th, q, j, S) = f1 * a;
          D2(th, q, j, S, r) = f2 * a * a + f1 * aa;
        }
        h[j] = f;
      }
      }
    }
  }
}

/* One time step: x is n x input_size at ldx, xt (2r x input_size at ldxt)
 * its tangents or NULL when r == 0. */
static void step(struct rnn_pass *p, const double *x, int ldx, const double *xt, int ldxt)
{
  const int lstm = p->net->cell == ENG_CELL_LSTM;
  for (int l = 0; l < p->net->n_layers; l++) {
    if (l == 0) {
      layer_step(p, 0, x, ldx, xt, ldxt);
    } else {
      int prev = (l - 1) * p->H * (lstm ? 2 : 1);
      /* the input (the hidden state below) is read before the layer's
       * own state changes, and is not changed by it */
      layer_step(p, l, p->v + prev, p->S, p->t + prev, p->S);
    }
  }
}

/* Head element-wise activation on values (n x w) and tangents (2r x w). */
static void head_act(enum eng_act act, double *z, int n, double *t, int r, int w)
{
  if (r == 0) {
    eng_act_rows(act, z, n, w);
    return;
  }
  if (act == ENG_ACT_SOFTMAX || act == ENG_ACT_LOG_SOFTMAX) {
    /* n == 1.  s = softmax(z); with m1 = <s, z'>, s' = s (z' - m1);
     * m2 = <s', z'> + <s, z''>, s'' = s' (z' - m1) + s (z'' - m2).
     * log_softmax: y' = z' - m1, y'' = z'' - m2. */
    double *s = malloc((size_t)w * sizeof *s);
    double *s1 = malloc((size_t)w * sizeof *s1);
    if (!s || !s1) { /* cannot happen at these sizes without memory; mark */
      free(s);
      free(s1);
      for (int i = 0; i < w; i++)
        z[i] = NAN;
      return;
    }
    eng_softmax(z, w, s);
    for (int q = 0; q < r; q++) {
      double *d = t + (size_t)q * w, *dd = t + (size_t)(q + r) * w;
      double m1 = 0.0, m2 = 0.0;
      for (int i = 0; i < w; i++)
        m1 += s[i] * d[i];
      for (int i = 0; i < w; i++)
        s1[i] = s[i] * (d[i] - m1);
      for (int i = 0; i < w; i++)
        m2 += s1[i] * d[i] + s[i] * dd[i];
      for (int i = 0; i < w; i++) {
        if (act == ENG_ACT_SOFTMAX) {
          dd[i] = s1[i] * (d[i] - m1) + s[i] * (dd[i] - m2);
          d[i] = s1[i];
        } else {
          dd[i] = dd[i] - m2;
          d[i] = d[i] - m1;
        }
      }
    }
    if (act == ENG_ACT_SOFTMAX)
      memcpy(z, s, (size_t)w * sizeof *z);
    else
      eng_log_softmax(z, w, z, s);
    free(s);
    free(s1);
    return;
  }
  const struct eng_act_info *ai = eng_act_info(act);
  for (int i = 0; i < w; i++) {
    double f, f1, f2;
    ai->eval(z[i], &f, &f1, &f2);
    for (int q = 0; q < r; q++) {
      double *d = t + (size_t)q * w + i, *dd = t + (size_t)(q + r) * w + i;
      *dd = f2 * *d * *d + f1 * *dd;
      *d = f1 * *d;
    }
    z[i] = f;
  }
}

/* The head on the top hidden state: p->yv (n x O), p->yt (2r x O). */
static void head_on(struct rnn_pass *p, const double *cv, int ldv)
{
  const struct eng_net *hd = &p->net->head;
  const int lstm = p->net->cell == ENG_CELL_LSTM;
  const int top = (p->net->n_layers - 1) * p->H * (lstm ? 2 : 1);
  const double *ct = p->t + top;
  int w = p->H;
  size_t half_v = (size_t)p->n * p->wmax, half_t = (size_t)2 * p->r * p->wmax;
  for (int l = 0; l < hd->n_layers; l++) {
    const struct eng_layer *ly = &hd->layers[l];
    int last = l == hd->n_layers - 1;
    double *zv = last ? p->yv : p->hv + (l & 1) * half_v;
    double *zt = last ? p->yt : p->ht + (l & 1) * half_t;
    linear(p->n, ly->n_out, w, cv, ldv, ly->W, ly->b, zv, ly->n_out);
    if (p->r)
      linear(2 * p->r, ly->n_out, w, ct, ldv, ly->W, NULL, zt, ly->n_out);
    head_act(ly->act, zv, p->n, zt, p->r, ly->n_out);
    cv = zv;
    ct = zt;
    ldv = w = ly->n_out;
  }
}

static void head(struct rnn_pass *p)
{
  const int lstm = p->net->cell == ENG_CELL_LSTM;
  head_on(p, p->v + (p->net->n_layers - 1) * p->H * (lstm ? 2 : 1), p->S);
}

void rnn_head_rows(struct rnn_pass *p, const double *h, int ldh)
{
  head_on(p, h, ldh);
}

/* ------------------------------------------------------------------ */
/* Teacher-forced forward.                                             */

/* Run steps t0..t1-1 of a pass whose state is that after step t0 - 1,
 * inputs from x (n x K) and tangents xt (2r x K, or NULL); outputs (and
 * their tangents) of the flattened function into y (n x n_out) and yt
 * (2r x n_out). */
void rnn_run_forced(struct rnn_pass *p, int t0, int t1, const double *x, const double *xt, double *y,
                       double *yt)
{
  const struct eng_rnn *net = p->net;
  const int ni = net->input_size, K = net->T * ni, O = p->O;
  const int no = eng_rnn_outputs(net);
  for (int s = t0; s < t1; s++) {
    step(p, x + (size_t)s * ni, K, xt ? xt + (size_t)s * ni : NULL, K);
    if (net->every || s == net->T - 1) {
      head(p);
      int col = net->every ? s * O : 0;
      for (int i = 0; i < p->n; i++)
        memcpy(y + (size_t)i * no + col, p->yv + (size_t)i * O, (size_t)O * sizeof *y);
      for (int q = 0; q < 2 * p->r; q++)
        memcpy(yt + (size_t)q * no + col, p->yt + (size_t)q * O, (size_t)O * sizeof *yt);
    }
  }
}

int eng_rnn_forward(const struct eng_rnn *net, const double *x, int n, double *y)
{
  if (!net || n < 0 || (n > 0 && (!x || !y)))
    return -1;
  if (n == 0)
    return 0;
  const int K = net->T * net->input_size, no = eng_rnn_outputs(net);
  int chunk = n < RNN_CHUNK ? n : RNN_CHUNK;
  struct rnn_pass p;
  if (rnn_pass_init(&p, net, chunk, 0) != 0)
    return -1;
  for (int s0 = 0; s0 < n; s0 += chunk) {
    int nc = n - s0 < chunk ? n - s0 : chunk;
    p.n = nc;
    rnn_pass_reset(&p);
    rnn_run_forced(&p, 0, net->T, x + (size_t)s0 * K, NULL, y + (size_t)s0 * no, NULL);
  }
  rnn_pass_free(&p);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Interventions: prefix once, the rest per alpha.                     */

/* For a chunk of nc sequences xs (nc x K) with state `pre` after steps
 * 0..t-1 (nc x S): run steps t..T-1 with x_i^t = alpha (re-simulating
 * the inputs after t from the head when the net feeds back), writing the
 * outputs of steps >= t into y (nc x n_out; columns of earlier steps are
 * left alone) and, when xo is not NULL, the sequences as they were run
 * into xo (nc x K). */
void rnn_run_intervened(struct rnn_pass *p, const double *pre, const double *xs, int t, int i,
                           double alpha, double *xin, double *y, double *xo)
{
  const struct eng_rnn *net = p->net;
  const int ni = net->input_size, K = net->T * ni, O = p->O, nc = p->n;
  const int no = eng_rnn_outputs(net);
  memcpy(p->v, pre, (size_t)nc * p->S * sizeof *p->v);
  if (xo)
    for (int s = 0; s < nc; s++)
      memcpy(xo + (size_t)s * K, xs + (size_t)s * K, (size_t)K * sizeof *xo);
  for (int s = 0; s < nc; s++) {
    memcpy(xin + (size_t)s * ni, xs + (size_t)s * K + (size_t)t * ni, (size_t)ni * sizeof *xin);
    xin[(size_t)s * ni + i] = alpha;
  }
  for (int u = t; u < net->T; u++) {
    if (u > t && net->feedback) {
      memcpy(xin, p->yv, (size_t)nc * ni * sizeof *xin); /* O == ni */
      step(p, xin, ni, NULL, 0);
    } else if (u > t) {
      step(p, xs + (size_t)u * ni, K, NULL, 0);
    } else {
      step(p, xin, ni, NULL, 0);
    }
    if (xo && (u == t || net->feedback))
      for (int s = 0; s < nc; s++)
        memcpy(xo + (size_t)s * K + (size_t)u * ni, xin + (size_t)s * ni,
               (size_t)ni * sizeof *xo);
    if (net->every || net->feedback || u == net->T - 1) {
      head(p);
      if (net->every || u == net->T - 1) {
        int col = net->every ? u * O : 0;
        for (int s = 0; s < nc; s++)
          memcpy(y + (size_t)s * no + col, p->yv + (size_t)s * O, (size_t)O * sizeof *y);
      }
    }
  }
}

/* The state after steps 0..t-1 of nc sequences, into p->v; with every,
 * the outputs of those steps into y. */
void rnn_run_prefix(struct rnn_pass *p, const double *xs, int t, double *y)
{
  const struct eng_rnn *net = p->net;
  const int ni = net->input_size, K = net->T * ni, O = p->O;
  const int no = eng_rnn_outputs(net);
  rnn_pass_reset(p);
  for (int u = 0; u < t; u++) {
    step(p, xs + (size_t)u * ni, K, NULL, 0);
    if (net->every) {
      head(p);
      for (int s = 0; s < p->n; s++)
        memcpy(y + (size_t)s * no + (size_t)u * O, p->yv + (size_t)s * O,
               (size_t)O * sizeof *y);
    }
  }
}

