/*
 * recurrent_lag.c -- the time lag of Proposition 3: how many steps back
 * the output at the last step still depends on its inputs.
 *
 * For a sequence x, g_k = max over outputs o and features i of
 * |d y_o^t / d x_i^(t-k)| with t the last step, by reverse mode: one
 * forward pass keeping every cell's pre-activations, then one backward
 * pass per output.  tau_x is the largest k with g_k > threshold, and the
 * threshold is ENG_LAG_RTOL times the largest g_k of that sequence:
 * "> 0" in floating point.  Networks are trained in float32, whose 24-bit
 * significand resolves relative differences down to 6e-8; a step whose
 * strongest gradient is below a millionth of the strongest step's moves
 * the output by less than the precision its weights were fitted to, so it
 * is counted as no dependence.  tau is the mean of tau_x over the stored
 * sequences (at most ENG_LAG_SEQUENCES of them; the mean input when there
 * are none), per_lag[k] the mean of g_k.  Networks whose tape would
 * exceed ACED_LAG_TAPE_MAX get no lag.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "engine/internal.h"

/* y^T x for W (m x k) stored row-major: dst (k) += W^T v (m). */
static void add_wt(const double *W, int m, int k, const double *v, double *dst)
{
  cblas_dgemv(CblasRowMajor, CblasTrans, m, k, 1.0, W, k, v, 1, 1.0, dst, 1);
}

struct tape {
  int T, nl, H, G, ni;
  double *in;    /* T x nl x max(ni, H): each layer's input */
  double *hp;    /* T x nl x H: h before the step */
  double *cp;    /* T x nl x H: c before the step (LSTM) */
  double *gi;    /* T x nl x G: W_ih x + b_ih */
  double *gh;    /* T x nl x G: W_hh h + b_hh */
  double *hz;    /* head pre-activations, sum of head widths */
  double *ha;    /* head activations (inputs of each head layer then output) */
};

static double sg(double z)
{
  return z >= 0.0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

/* One sequence forward, taping (the head at the last step too); -1 when
 * out of memory. */
static int tape_forward(const struct eng_rnn *r, struct tape *tp, const double *x)
{
  const int nl = r->n_layers, H = tp->H, G = tp->G, w = tp->ni > H ? tp->ni : H;
  const int lstm = r->cell == ENG_CELL_LSTM;
  double *h = calloc((size_t)nl * H * 2, sizeof *h);
  if (h == NULL)
    return -1;
  double *c = h + (size_t)nl * H;
  for (int s = 0; s < tp->T; s++)
    for (int l = 0; l < nl; l++) {
      const struct eng_rnn_layer *L = &r->layers[l];
      size_t at = (size_t)s * nl + l;
      double *in = tp->in + at * w, *gi = tp->gi + at * G, *gh = tp->gh + at * G;
      double *hl = h + (size_t)l * H, *cl = c + (size_t)l * H;
      memcpy(in, l ? h + (size_t)(l - 1) * H : x + (size_t)s * tp->ni,
             (size_t)L->n_in * sizeof *in);
      memcpy(tp->hp + at * H, hl, (size_t)H * sizeof *hl);
      memcpy(tp->cp + at * H, cl, (size_t)H * sizeof *cl);
      memcpy(gi, L->b_ih, (size_t)G * sizeof *gi);
      memcpy(gh, L->b_hh, (size_t)G * sizeof *gh);
      cblas_dgemv(CblasRowMajor, CblasNoTrans, G, L->n_in, 1.0, L->W_ih, L->n_in, in, 1, 1.0,
                  gi, 1);
      cblas_dgemv(CblasRowMajor, CblasNoTrans, G, H, 1.0, L->W_hh, H, hl, 1, 1.0, gh, 1);
      for (int j = 0; j < H; j++) {
        if (r->cell == ENG_CELL_GRU) {
          double rg = sg(gi[j] + gh[j]), zg = sg(gi[H + j] + gh[H + j]);
          double ng = tanh(gi[2 * H + j] + rg * gh[2 * H + j]);
          hl[j] = ng + zg * (hl[j] - ng);
        } else if (lstm) {
          double ig = sg(gi[j] + gh[j]), fg = sg(gi[H + j] + gh[H + j]);
          double gg = tanh(gi[2 * H + j] + gh[2 * H + j]), og = sg(gi[3 * H + j] + gh[3 * H + j]);
          cl[j] = fg * cl[j] + ig * gg;
          hl[j] = og * tanh(cl[j]);
        } else {
          double a = gi[j] + gh[j];
          hl[j] = r->cell == ENG_CELL_RNN_TANH ? tanh(a) : (a > 0.0 ? a : 0.0);
        }
      }
    }
  /* head on the top state */
  const double *cur = h + (size_t)(nl - 1) * H;
  double *z = tp->hz, *a = tp->ha;
  memcpy(a, cur, (size_t)H * sizeof *a);
  for (int l = 0; l < r->head.n_layers; l++) {
    const struct eng_layer *ly = &r->head.layers[l];
    memcpy(z, ly->b, (size_t)ly->n_out * sizeof *z);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, ly->n_out, ly->n_in, 1.0, ly->W, ly->n_in, a, 1, 1.0,
                z, 1);
    a += ly->n_in;
    memcpy(a, z, (size_t)ly->n_out * sizeof *a);
    eng_act_rows(ly->act, a, 1, ly->n_out);
    z += ly->n_out;
  }
  free(h);
  return 0;
}

/* d y_o / d h_top into gtop (H), backwards through the head. */
static void head_backward(const struct eng_rnn *r, const struct tape *tp, int o, double *gtop,
                          double *buf)
{
  int nh = r->head.n_layers, zoff = 0, aoff = 0;
  for (int l = 0; l < nh; l++) {
    zoff += r->head.layers[l].n_out;
    aoff += r->head.layers[l].n_in;
  }
  const int wo = r->head.layers[nh - 1].n_out;
  double *g = buf; /* at most ACED_MAX_UNITS */
  memset(g, 0, (size_t)wo * sizeof *g);
  g[o] = 1.0;
  for (int l = nh - 1; l >= 0; l--) {
    const struct eng_layer *ly = &r->head.layers[l];
    zoff -= ly->n_out;
    aoff -= ly->n_in;
    const double *z = tp->hz + zoff, *y = tp->ha + aoff + ly->n_in;
    double dot = 0.0, sum = 0.0;
    if (ly->act == ENG_ACT_SOFTMAX) {
      for (int j = 0; j < ly->n_out; j++)
        dot += g[j] * y[j];
      for (int j = 0; j < ly->n_out; j++)
        g[j] = y[j] * (g[j] - dot);
    } else if (ly->act == ENG_ACT_LOG_SOFTMAX) {
      for (int j = 0; j < ly->n_out; j++)
        sum += g[j];
      for (int j = 0; j < ly->n_out; j++)
        g[j] -= exp(y[j]) * sum;
    } else {
      const struct eng_act_info *ai = eng_act_info(ly->act);
      for (int j = 0; j < ly->n_out; j++) {
        double f, d1, d2;
        ai->eval(z[j], &f, &d1, &d2);
        g[j] *= d1;
      }
    }
    double *prev = l ? buf + ACED_MAX_UNITS : gtop;
    memset(prev, 0, (size_t)ly->n_in * sizeof *prev);
    add_wt(ly->W, ly->n_out, ly->n_in, g, prev);
    if (l)
      memcpy(g, prev, (size_t)ly->n_in * sizeof *g);
  }
}

/* Backwards through time from gtop at the last step: gx (T x ni) gets
 * d y / d x. */
static void cells_backward(const struct eng_rnn *r, const struct tape *tp, const double *gtop,
                           double *gx, double *work)
{
  const int nl = r->n_layers, H = tp->H, G = tp->G, w = tp->ni > H ? tp->ni : H;
  double *gh_ = work, *gc = gh_ + (size_t)nl * H, *da = gc + (size_t)nl * H, *db = da + G;
  double *gin = db + G;
  memset(gh_, 0, (size_t)nl * H * 2 * sizeof *gh_);
  memcpy(gh_ + (size_t)(nl - 1) * H, gtop, (size_t)H * sizeof *gh_);
  for (int s = tp->T - 1; s >= 0; s--)
    for (int l = nl - 1; l >= 0; l--) {
      const struct eng_rnn_layer *L = &r->layers[l];
      size_t at = (size_t)s * nl + l;
      const double *gi = tp->gi + at * G, *ghh = tp->gh + at * G, *hp = tp->hp + at * H,
                   *cp = tp->cp + at * H;
      double *g = gh_ + (size_t)l * H, *c = gc + (size_t)l * H;
      for (int j = 0; j < H; j++) {
        if (r->cell == ENG_CELL_GRU) {
          double rg = sg(gi[j] + ghh[j]), zg = sg(gi[H + j] + ghh[H + j]);
          double ng = tanh(gi[2 * H + j] + rg * ghh[2 * H + j]);
          double dn = g[j] * (1.0 - zg), dz = g[j] * (hp[j] - ng);
          double dan = dn * (1.0 - ng * ng), dr = dan * ghh[2 * H + j];
          da[j] = db[j] = dr * rg * (1.0 - rg);
          da[H + j] = db[H + j] = dz * zg * (1.0 - zg);
          da[2 * H + j] = dan;
          db[2 * H + j] = dan * rg;
          g[j] *= zg; /* the direct path h_prev -> h */
        } else if (r->cell == ENG_CELL_LSTM) {
          double ig = sg(gi[j] + ghh[j]), fg = sg(gi[H + j] + ghh[H + j]);
          double gg = tanh(gi[2 * H + j] + ghh[2 * H + j]), og = sg(gi[3 * H + j] + ghh[3 * H + j]);
          double cn = fg * cp[j] + ig * gg, tc = tanh(cn);
          double dc = c[j] + g[j] * og * (1.0 - tc * tc);
          da[j] = dc * gg * ig * (1.0 - ig);
          da[H + j] = dc * cp[j] * fg * (1.0 - fg);
          da[2 * H + j] = dc * ig * (1.0 - gg * gg);
          da[3 * H + j] = g[j] * tc * og * (1.0 - og);
          c[j] = dc * fg;
          g[j] = 0.0;
        } else {
          double a = gi[j] + ghh[j], d;
          if (r->cell == ENG_CELL_RNN_TANH) {
            double t = tanh(a);
            d = 1.0 - t * t;
          } else {
            d = a > 0.0 ? 1.0 : 0.0;
          }
          da[j] = g[j] * d;
          g[j] = 0.0;
        }
      }
      const double *dh = r->cell == ENG_CELL_GRU ? db : da;
      add_wt(L->W_hh, G, H, dh, g); /* to h_prev of this layer */
      memset(gin, 0, (size_t)w * sizeof *gin);
      add_wt(L->W_ih, G, L->n_in, da, gin);
      if (l)
        for (int j = 0; j < H; j++)
          gh_[(size_t)(l - 1) * H + j] += gin[j];
      else
        memcpy(gx + (size_t)s * tp->ni, gin, (size_t)tp->ni * sizeof *gx);
    }
}

int eng_rnn_lag_compute(struct eng_model *m)
{
  const struct eng_rnn *r = m->rnn;
  struct tape tp;
  tp.T = r->T;
  tp.nl = r->n_layers;
  tp.H = r->hidden_size;
  tp.G = eng_cell_gates(r->cell) * tp.H;
  tp.ni = r->input_size;
  const int w = tp.ni > tp.H ? tp.ni : tp.H, T = r->T, no = rnn_head_out(r);
  size_t cells = (size_t)T * tp.nl;
  if ((double)cells * (2.0 * tp.G + 2.0 * tp.H + w) > (double)ACED_LAG_TAPE_MAX)
    return 0; /* too large to tape: no lag (limits.h) */
  int hw = 0;
  for (int l = 0; l < r->head.n_layers; l++)
    hw += r->head.layers[l].n_out;
  tp.in = malloc(cells * w * sizeof *tp.in);
  tp.hp = malloc(cells * tp.H * sizeof *tp.hp);
  tp.cp = malloc(cells * tp.H * sizeof *tp.cp);
  tp.gi = malloc(cells * tp.G * sizeof *tp.gi);
  tp.gh = malloc(cells * tp.G * sizeof *tp.gh);
  tp.hz = malloc((size_t)hw * sizeof *tp.hz);
  tp.ha = malloc((size_t)(hw + tp.H) * sizeof *tp.ha);
  double *buf = malloc((size_t)2 * ACED_MAX_UNITS * sizeof *buf);
  double *gtop = malloc((size_t)tp.H * sizeof *gtop);
  double *gx = malloc((size_t)T * tp.ni * sizeof *gx);
  double *work = malloc(((size_t)4 * tp.nl * tp.H + 2 * tp.G + w) * sizeof *work);
  double *g = malloc((size_t)T * sizeof *g);
  m->lag_per = calloc((size_t)T, sizeof *m->lag_per);
  int rc = -1;
  if (!tp.in || !tp.hp || !tp.cp || !tp.gi || !tp.gh || !tp.hz || !tp.ha || !buf || !gtop ||
      !gx || !work || !g || !m->lag_per)
    goto done;
  m->bytes += (size_t)T * sizeof *m->lag_per;
  int n = m->n_samples < ENG_LAG_SEQUENCES ? m->n_samples : ENG_LAG_SEQUENCES;
  if (n < 1)
    n = 1;
  long tsum = 0; /* whole steps: the mean is then exact enough to round up */
  for (int s = 0; s < n; s++) {
    if (tape_forward(r, &tp, m->n_samples > 0 ? m->samples + (size_t)s * m->k : m->mean) != 0)
      goto done;
    for (int k = 0; k < T; k++)
      g[k] = 0.0;
    for (int o = 0; o < no; o++) {
      head_backward(r, &tp, o, gtop, buf);
      cells_backward(r, &tp, gtop, gx, work);
      for (int u = 0; u < T; u++)
        for (int i = 0; i < tp.ni; i++) {
          double a = fabs(gx[(size_t)u * tp.ni + i]);
          if (a > g[T - 1 - u])
            g[T - 1 - u] = a;
        }
    }
    double gmax = 0.0;
    for (int k = 0; k < T; k++)
      gmax = g[k] > gmax ? g[k] : gmax;
    int tx = 0;
    for (int k = 0; k < T; k++) {
      m->lag_per[k] += g[k] / n;
      if (g[k] > ENG_LAG_RTOL * gmax)
        tx = k;
    }
    tsum += tx;
  }
  m->lag_tau = (double)tsum / n;
  m->lag_n = n;
  rc = 0;
done:
  free(tp.in);
  free(tp.hp);
  free(tp.cp);
  free(tp.gi);
  free(tp.gh);
  free(tp.hz);
  free(tp.ha);
  free(buf);
  free(gtop);
  free(gx);
  free(work);
  free(g);
  return rc;
}

int eng_rnn_lag(const struct eng_model *m, const double **per_lag, double *tau,
                double *threshold, int *n)
{
  if (!m || !m->rnn || !m->lag_per)
    return -1;
  *per_lag = m->lag_per;
  *tau = m->lag_tau;
  *threshold = ENG_LAG_RTOL;
  *n = m->lag_n;
  return 0;
}
