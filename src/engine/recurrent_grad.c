/*
 * recurrent_grad.c -- exact derivatives of a recurrent network by reverse
 * mode through its cells and head, batched over rows: the tape the time
 * lag of Proposition 3 uses (recurrent_lag.c, one row), and the gradient,
 * integrated gradients and ablation of the explanations route.
 *
 * DESIGN
 *
 * A tape holds, for n rows and the steps t0..t1-1 of one run, every
 * layer's state before the step and its gates as the plain passes leave
 * them (eng_cells_plain of vmath.c, run on the tape's own buffers: the
 * same vectorized non-linearities as every forward pass), and the head's
 * pre-activations and activations at the steps it was applied.  Forward
 * and backward are one GEMM per layer and step over the n rows; the
 * backward pass needs no transcendental function: every derivative is a
 * polynomial in the taped activations.  The running state has the plain
 * passes' layout, n rows of S (per layer h, then c for the LSTM).
 *
 * Which function is differentiated.  Teacher forced (no feedback), y is
 * the flattened function of engine.h and one forward and one backward
 * pass give dy/dx at every step.  With feedback, an intervention on
 * x_i^t re-simulates the steps after t from the head (Algorithm 2): the
 * attribution of (t, i) is of F_t, the output of the sequence run as
 * given up to step t and fed back after it, which is what the estimators
 * average.  Its trajectory after t differs from step to step, so each t
 * has its own run from the teacher-forced state before t (kept and
 * advanced one step at a time) and its own backward pass, where the
 * gradient reaching the input of step u > t goes on through the head at
 * step u - 1 into the top hidden state: T runs of T - t steps per row.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "engine/internal.h"

static int head_width(const struct eng_rnn *r)
{
  int hw = 0;
  for (int l = 0; l < r->head.n_layers; l++)
    hw += r->head.layers[l].n_out;
  return hw;
}

static int head_widest(const struct eng_rnn *r)
{
  int w = r->hidden_size;
  for (int l = 0; l < r->head.n_layers; l++)
    w = r->head.layers[l].n_out > w ? r->head.layers[l].n_out : w;
  return w;
}

double rnn_tape_per_row(const struct eng_rnn *r, int steps)
{
  const int H = r->hidden_size, G = eng_cell_gates(r->cell) * H;
  const int hw = head_width(r);
  return (double)steps * (r->n_layers * (2.0 * G + 2.0 * H) + 2.0 * hw + H);
}

void rnn_tape_free(struct rnn_tape *tp)
{
  free(tp->hp);
  free(tp->cp);
  free(tp->gi);
  free(tp->gh);
  free(tp->hz);
  free(tp->ha);
  free(tp->h);
  free(tp->gs);
  free(tp->da);
  free(tp->gin);
  free(tp->hb);
  free(tp->gfb);
  memset(tp, 0, sizeof *tp);
}

int rnn_tape_init(struct rnn_tape *tp, const struct eng_rnn *r, int cap, int steps)
{
  memset(tp, 0, sizeof *tp);
  tp->net = r;
  tp->cap = tp->n = cap;
  tp->steps = steps;
  tp->nl = r->n_layers;
  tp->H = r->hidden_size;
  tp->G = eng_cell_gates(r->cell) * tp->H;
  tp->O = rnn_head_out(r);
  tp->ni = r->input_size;
  tp->w = tp->ni > tp->H ? tp->ni : tp->H;
  tp->S = tp->nl * tp->H * (r->cell == ENG_CELL_LSTM ? 2 : 1);
  tp->hw = head_width(r);
  tp->wide = head_widest(r);
  if (tp->wide < tp->w)
    tp->wide = tp->w;
  size_t cells = (size_t)steps * tp->nl * cap;
  tp->hp = malloc(cells * tp->H * sizeof *tp->hp);
  tp->cp = malloc(cells * tp->H * sizeof *tp->cp);
  tp->gi = malloc(cells * tp->G * sizeof *tp->gi);
  tp->gh = malloc(cells * tp->G * sizeof *tp->gh);
  tp->hz = malloc((size_t)steps * cap * tp->hw * sizeof *tp->hz);
  tp->ha = malloc((size_t)steps * cap * (tp->hw + tp->H) * sizeof *tp->ha);
  tp->h = calloc((size_t)cap * tp->S, sizeof *tp->h);
  tp->gs = malloc((size_t)2 * tp->nl * cap * tp->H * sizeof *tp->gs);
  tp->da = malloc((size_t)2 * cap * tp->G * sizeof *tp->da);
  tp->gin = malloc((size_t)cap * tp->w * sizeof *tp->gin);
  tp->hb = malloc((size_t)2 * cap * tp->wide * sizeof *tp->hb);
  tp->gfb = malloc((size_t)cap * tp->O * sizeof *tp->gfb);
  if (!tp->gfb || !tp->hp || !tp->cp || !tp->gi || !tp->gh || !tp->hz || !tp->ha || !tp->h ||
      !tp->gs || !tp->da || !tp->gin || !tp->hb) {
    rnn_tape_free(tp);
    return -1;
  }
  return 0;
}

/* The offset of layer l's h in a row of the running state (c follows). */
static int st_off(const struct rnn_tape *tp, int l)
{
  return l * (int)(tp->S / tp->nl);
}

void rnn_tape_state_get(const struct rnn_tape *tp, double *dst)
{
  memcpy(dst, tp->h, (size_t)tp->cap * tp->S * sizeof *dst);
}

void rnn_tape_state_set(struct rnn_tape *tp, const double *src)
{
  if (src)
    memcpy(tp->h, src, (size_t)tp->cap * tp->S * sizeof *src);
  else
    memset(tp->h, 0, (size_t)tp->cap * tp->S * sizeof *tp->h);
}

/* Offsets of taped blocks: (step index, layer) -> n rows of width wd. */
static size_t at(const struct rnn_tape *tp, int u, int l, int wd)
{
  return (((size_t)u * tp->nl + l) * tp->cap) * wd;
}

/* The head at tape step u on the top state: hz / ha rows. */
static void head_forward(struct rnn_tape *tp, int u)
{
  const struct eng_rnn *r = tp->net;
  const int n = tp->n, lda = tp->hw + tp->H;
  double *z = tp->hz + (size_t)u * tp->cap * tp->hw;
  double *a = tp->ha + (size_t)u * tp->cap * lda;
  const double *top = tp->h + st_off(tp, tp->nl - 1);
  for (int s = 0; s < n; s++)
    memcpy(a + (size_t)s * lda, top + (size_t)s * tp->S, (size_t)tp->H * sizeof *a);
  int zo = 0, ao = 0;
  for (int l = 0; l < r->head.n_layers; l++) {
    const struct eng_layer *ly = &r->head.layers[l];
    for (int s = 0; s < n; s++)
      memcpy(z + (size_t)s * tp->hw + zo, ly->b, (size_t)ly->n_out * sizeof *z);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, ly->n_out, ly->n_in, 1.0, a + ao,
                lda, ly->W, ly->n_in, 1.0, z + zo, tp->hw);
    for (int s = 0; s < n; s++) {
      double *dst = a + (size_t)s * lda + ao + ly->n_in;
      memcpy(dst, z + (size_t)s * tp->hw + zo, (size_t)ly->n_out * sizeof *dst);
      eng_act_rows(ly->act, dst, 1, ly->n_out);
    }
    zo += ly->n_out;
    ao += ly->n_in;
  }
}

/* The head's output at tape step u, row s. */
static const double *head_out(const struct rnn_tape *tp, int u, int s)
{
  const int lda = tp->hw + tp->H;
  return tp->ha + ((size_t)u * tp->cap + s) * lda + (lda - tp->O);
}

void rnn_tape_run(struct rnn_tape *tp, const double *x, int t0, int t1, int fb, int head_last)
{
  const struct eng_rnn *r = tp->net;
  const int n = tp->n, nl = tp->nl, H = tp->H, G = tp->G, S = tp->S, ni = tp->ni;
  const int K = r->T * ni, lstm = r->cell == ENG_CELL_LSTM, lda = tp->hw + tp->H;
  /* a pass over the tape's buffers, for eng_cells_plain */
  struct rnn_pass p = {.net = r, .n = n, .H = H, .G = G, .S = S, .v = tp->h};
  tp->t0 = t0;
  tp->t1 = t1;
  tp->fb = fb;
  for (int s = t0; s < t1; s++) {
    const int u = s - t0;
    for (int l = 0; l < nl; l++) {
      const struct eng_rnn_layer *L = &r->layers[l];
      const int off = st_off(tp, l);
      double *gi = tp->gi + at(tp, u, l, G), *gh = tp->gh + at(tp, u, l, G);
      double *hp = tp->hp + at(tp, u, l, H), *cp = tp->cp + at(tp, u, l, H);
      /* the layer's input: x, the head's output at the step before, or
       * the state of the layer below (read before this layer changes) */
      const double *in = l ? tp->h + st_off(tp, l - 1)
                         : fb && s > t0 ? tp->ha + (size_t)(u - 1) * tp->cap * lda + (lda - tp->O)
                                        : x + (size_t)s * ni;
      const int ldin = l ? S : fb && s > t0 ? lda : K;
      for (int q = 0; q < n; q++) {
        memcpy(gi + (size_t)q * G, L->b_ih, (size_t)G * sizeof *gi);
        memcpy(gh + (size_t)q * G, L->b_hh, (size_t)G * sizeof *gh);
        memcpy(hp + (size_t)q * H, tp->h + (size_t)q * S + off, (size_t)H * sizeof *hp);
        if (lstm)
          memcpy(cp + (size_t)q * H, tp->h + (size_t)q * S + off + H, (size_t)H * sizeof *cp);
      }
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, G, L->n_in, 1.0, in, ldin, L->W_ih,
                  L->n_in, 1.0, gi, G);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, G, H, 1.0, tp->h + off, S, L->W_hh,
                  H, 1.0, gh, G);
      /* the plain passes' cells; what they leave in gi and gh is what
       * rnn_tape_backward reads (see there) */
      p.gi = gi;
      p.gh = gh;
      eng_cells_plain(&p, off);
      if (r->cell == ENG_CELL_RNN_TANH || r->cell == ENG_CELL_RNN_RELU)
        for (int q = 0; q < n; q++) /* the new h: its derivative's argument */
          memcpy(gh + (size_t)q * G, tp->h + (size_t)q * S + off, (size_t)H * sizeof *gh);
    }
    if ((fb && s < t1 - 1) || (head_last && s == t1 - 1))
      head_forward(tp, u);
  }
}

double rnn_tape_output(const struct rnn_tape *tp, int s, int o)
{
  return head_out(tp, tp->t1 - 1 - tp->t0, s)[o];
}

/* Backwards through the head at tape step u: g (n x O, overwritten) is
 * the gradient at its output; the top hidden state's gradient gets it. */
static void head_backward(struct rnn_tape *tp, int u, double *g)
{
  const struct eng_rnn *r = tp->net;
  const int n = tp->n, lda = tp->hw + tp->H, nh = r->head.n_layers, wd = tp->wide;
  const double *z0 = tp->hz + (size_t)u * tp->cap * tp->hw;
  const double *a0 = tp->ha + (size_t)u * tp->cap * lda;
  int zo = tp->hw, ao = lda - tp->O;
  double *cur = tp->hb, *nxt = tp->hb + (size_t)tp->cap * wd;
  for (int s = 0; s < n; s++)
    memcpy(cur + (size_t)s * wd, g + (size_t)s * tp->O, (size_t)tp->O * sizeof *cur);
  for (int l = nh - 1; l >= 0; l--) {
    const struct eng_layer *ly = &r->head.layers[l];
    zo -= ly->n_out;
    ao -= ly->n_in;
    for (int s = 0; s < n; s++) {
      const double *z = z0 + (size_t)s * tp->hw + zo;
      const double *y = a0 + (size_t)s * lda + ao + ly->n_in;
      double *gr = cur + (size_t)s * wd, dot = 0.0, sum = 0.0;
      if (ly->act == ENG_ACT_SOFTMAX) {
        for (int j = 0; j < ly->n_out; j++)
          dot += gr[j] * y[j];
        for (int j = 0; j < ly->n_out; j++)
          gr[j] = y[j] * (gr[j] - dot);
      } else if (ly->act == ENG_ACT_LOG_SOFTMAX) {
        for (int j = 0; j < ly->n_out; j++)
          sum += gr[j];
        for (int j = 0; j < ly->n_out; j++)
          gr[j] -= exp(y[j]) * sum;
      } else {
        const struct eng_act_info *ai = eng_act_info(ly->act);
        for (int j = 0; j < ly->n_out; j++) {
          double f, d1, d2;
          ai->eval(z[j], &f, &d1, &d2);
          gr[j] *= d1;
        }
      }
    }
    if (l) {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, ly->n_in, ly->n_out, 1.0, cur,
                  wd, ly->W, ly->n_in, 0.0, nxt, wd);
      double *tmp = cur;
      cur = nxt;
      nxt = tmp;
    } else {
      /* into the top layer's hidden-state gradient */
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, ly->n_in, ly->n_out, 1.0, cur,
                  wd, ly->W, ly->n_in, 1.0, tp->gs + (size_t)(tp->nl - 1) * tp->cap * tp->H,
                  tp->H);
    }
  }
}

void rnn_tape_backward(struct rnn_tape *tp, const double *gy, double *gx)
{
  const struct eng_rnn *r = tp->net;
  const int n = tp->n, nl = tp->nl, H = tp->H, G = tp->G, w = tp->w, ni = tp->ni;
  const int K = r->T * ni, steps = tp->t1 - tp->t0;
  double *gh_ = tp->gs, *gc = tp->gs + (size_t)nl * tp->cap * H;
  double *da = tp->da, *db = tp->da + (size_t)tp->cap * G, *gfb = tp->gfb;
  memset(tp->gs, 0, (size_t)2 * nl * tp->cap * H * sizeof *tp->gs);
  memcpy(gfb, gy, (size_t)n * tp->O * sizeof *gfb);
  head_backward(tp, steps - 1, gfb);
  for (int u = steps - 1; u >= 0; u--) {
    const int s = tp->t0 + u;
    if (tp->fb && u < steps - 1)
      head_backward(tp, u, gfb); /* the input of step s + 1 was this head's output */
    for (int l = nl - 1; l >= 0; l--) {
      const struct eng_rnn_layer *L = &r->layers[l];
      /* the taped gates, as eng_cells_plain left them: GRU gi = (r, z, -),
       * gh = (n, -, W_hn h + b_hn); LSTM gi = (i, f, g, o), gh = tanh(c);
       * Elman gh = the new h */
      for (int q = 0; q < n; q++) {
        const double *ga = tp->gi + at(tp, u, l, G) + (size_t)q * G;
        const double *gb = tp->gh + at(tp, u, l, G) + (size_t)q * G;
        const double *hp = tp->hp + at(tp, u, l, H) + (size_t)q * H;
        const double *cp = tp->cp + at(tp, u, l, H) + (size_t)q * H;
        double *gq = gh_ + ((size_t)l * tp->cap + q) * H, *c = gc + ((size_t)l * tp->cap + q) * H;
        double *a = da + (size_t)q * G, *b = db + (size_t)q * G;
        for (int j = 0; j < H; j++) {
          if (r->cell == ENG_CELL_GRU) {
            double rg = ga[j], zg = ga[H + j], ng = gb[j];
            double dn = gq[j] * (1.0 - zg), dz = gq[j] * (hp[j] - ng);
            double dan = dn * (1.0 - ng * ng), dr = dan * gb[2 * H + j];
            a[j] = b[j] = dr * rg * (1.0 - rg);
            a[H + j] = b[H + j] = dz * zg * (1.0 - zg);
            a[2 * H + j] = dan;
            b[2 * H + j] = dan * rg;
            gq[j] *= zg; /* the direct path h_prev -> h */
          } else if (r->cell == ENG_CELL_LSTM) {
            double ig = ga[j], fg = ga[H + j], gg = ga[2 * H + j], og = ga[3 * H + j], tc = gb[j];
            double dc = c[j] + gq[j] * og * (1.0 - tc * tc);
            a[j] = dc * gg * ig * (1.0 - ig);
            a[H + j] = dc * cp[j] * fg * (1.0 - fg);
            a[2 * H + j] = dc * ig * (1.0 - gg * gg);
            a[3 * H + j] = gq[j] * tc * og * (1.0 - og);
            c[j] = dc * fg;
            gq[j] = 0.0;
          } else {
            double h = gb[j];
            a[j] = gq[j] * (r->cell == ENG_CELL_RNN_TANH ? 1.0 - h * h : h > 0.0 ? 1.0 : 0.0);
            gq[j] = 0.0;
          }
        }
      }
      /* to h_prev of this layer, and to the layer's input */
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, H, G, 1.0,
                  r->cell == ENG_CELL_GRU ? db : da, G, L->W_hh, H, 1.0,
                  gh_ + (size_t)l * tp->cap * H, H);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, L->n_in, G, 1.0, da, G, L->W_ih,
                  L->n_in, 0.0, tp->gin, w);
      if (l) {
        double *below = gh_ + (size_t)(l - 1) * tp->cap * H;
        for (int q = 0; q < n; q++)
          for (int j = 0; j < H; j++)
            below[(size_t)q * H + j] += tp->gin[(size_t)q * w + j];
      } else if (tp->fb && u > 0) {
        for (int q = 0; q < n; q++)
          memcpy(gfb + (size_t)q * tp->O, tp->gin + (size_t)q * w, (size_t)ni * sizeof *gfb);
      } else {
        for (int q = 0; q < n; q++)
          memcpy(gx + (size_t)q * K + (size_t)s * ni, tp->gin + (size_t)q * w,
                 (size_t)ni * sizeof *gx);
      }
    }
  }
}

/* ------------------------------------------------------------------ */
/* The explanations' derivatives.                                      */

/* Rows per tape: as many as fit ACED_GRAD_TAPE_DOUBLES, at least one. */
static int tape_rows(const struct eng_rnn *r, int steps, int n)
{
  double per = rnn_tape_per_row(r, steps);
  long c = per > 0 ? (long)(ACED_GRAD_TAPE_DOUBLES / per) : n;
  c = c < 1 ? 1 : c > n ? n : c;
  return (int)c;
}

static void col_step(const struct eng_rnn *r, int col, int *s_out, int *o)
{
  const int O = rnn_head_out(r);
  *s_out = r->every ? col / O : r->T - 1;
  *o = r->every ? col % O : col;
}

int eng_rnn_gradient(const struct eng_rnn *r, const double *x, int n, int col, double *G,
                     double *Fy)
{
  if (!r || n < 0 || col < 0 || col >= eng_rnn_outputs(r) || (n > 0 && !x))
    return -1;
  if (n == 0)
    return 0;
  int s_out, o;
  col_step(r, col, &s_out, &o);
  const int T = r->T, ni = r->input_size, K = T * ni, t1 = s_out + 1, O = rnn_head_out(r);
  if (rnn_tape_per_row(r, t1) > (double)ACED_LAG_TAPE_MAX)
    return -3; /* one sequence's tape is too large (limits.h) */
  const int chunk = tape_rows(r, t1, n);
  struct rnn_tape tp;
  if (rnn_tape_init(&tp, r, chunk, t1) != 0)
    return -1;
  size_t sw = (size_t)2 * tp.nl * chunk * tp.H;
  double *pre = malloc(sw * sizeof *pre), *gy = calloc((size_t)chunk * O, sizeof *gy);
  int rc = -1;
  if (!pre || !gy)
    goto done;
  for (int q = 0; q < chunk; q++)
    gy[(size_t)q * O + o] = 1.0;
  for (int s0 = 0; s0 < n; s0 += chunk) {
    if (eng_should_stop()) {
      rc = ENG_STOPPED;
      goto done;
    }
    const int nc = n - s0 < chunk ? n - s0 : chunk;
    const double *xs = x + (size_t)s0 * K;
    double *gs = G ? G + (size_t)s0 * K : NULL;
    tp.n = nc;
    if (gs)
      memset(gs, 0, (size_t)nc * K * sizeof *gs);
    if (!r->feedback) {
      rnn_tape_state_set(&tp, NULL);
      rnn_tape_run(&tp, xs, 0, t1, 0, 1);
      if (gs)
        rnn_tape_backward(&tp, gy, gs);
      for (int q = 0; Fy && q < nc; q++)
        for (int t = 0; t < T; t++)
          Fy[(size_t)(s0 + q) * T + t] = rnn_tape_output(&tp, q, o);
      continue;
    }
    rnn_tape_state_set(&tp, NULL);
    rnn_tape_state_get(&tp, pre);
    for (int t = 0; t < t1; t++) {
      if (eng_should_stop()) {
        rc = ENG_STOPPED;
        goto done;
      }
      rnn_tape_state_set(&tp, pre);
      rnn_tape_run(&tp, xs, t, t1, 1, 1);
      if (gs)
        rnn_tape_backward(&tp, gy, gs);
      for (int q = 0; Fy && q < nc; q++)
        Fy[(size_t)(s0 + q) * T + t] = rnn_tape_output(&tp, q, o);
      if (t + 1 < t1) { /* the teacher-forced state before step t + 1 */
        rnn_tape_state_set(&tp, pre);
        rnn_tape_run(&tp, xs, t, t + 1, 0, 0);
        rnn_tape_state_get(&tp, pre);
      }
    }
    /* steps after the output's: the intervention does not reach it */
    for (int q = 0; Fy && q < nc; q++)
      for (int t = t1; t < T; t++)
        Fy[(size_t)(s0 + q) * T + t] = Fy[(size_t)(s0 + q) * T + s_out];
  }
  rc = 0;
done:
  rnn_tape_free(&tp);
  free(pre);
  free(gy);
  return rc;
}

int eng_rnn_integrated_gradients(const struct eng_rnn *r, const double *x, int rows,
                                 const double *base, const double *t, const double *w, int steps,
                                 int col, double *attr)
{
  if (!r || rows < 0 || steps < 1 || !base || !t || !w || (rows > 0 && (!x || !attr)))
    return -1;
  const int K = r->T * r->input_size;
  /* all the nodes of a few rows in one call: the tape batches them */
  int per = 256 / steps;
  per = per < 1 ? 1 : per > rows ? (rows ? rows : 1) : per;
  double *P = malloc((size_t)per * steps * K * sizeof *P);
  double *Gp = malloc((size_t)per * steps * K * sizeof *Gp);
  int rc = P && Gp ? 0 : -1;
  for (int r0 = 0; r0 < rows && rc == 0; r0 += per) {
    const int nr = rows - r0 < per ? rows - r0 : per;
    for (int q = 0; q < nr; q++)
      for (int j = 0; j < steps; j++) {
        const double *xr = x + (size_t)(r0 + q) * K;
        double *pt = P + ((size_t)q * steps + j) * K;
        for (int c = 0; c < K; c++)
          pt[c] = base[c] + t[j] * (xr[c] - base[c]);
      }
    rc = eng_rnn_gradient(r, P, nr * steps, col, Gp, NULL);
    for (int q = 0; q < nr && rc == 0; q++) {
      const double *xr = x + (size_t)(r0 + q) * K;
      double *ar = attr + (size_t)(r0 + q) * K;
      for (int c = 0; c < K; c++) {
        double acc = 0.0;
        for (int j = 0; j < steps; j++)
          acc += w[j] * Gp[((size_t)q * steps + j) * K + c];
        ar[c] = (xr[c] - base[c]) * acc;
      }
    }
  }
  free(P);
  free(Gp);
  return rc;
}

int eng_rnn_ablation(const struct eng_rnn *r, const double *x, int rows, const double *base,
                     int col, double *attr)
{
  if (!r || rows < 0 || !base || col < 0 || col >= eng_rnn_outputs(r) || (rows > 0 && (!x || !attr)))
    return -1;
  if (rows == 0)
    return 0;
  int s_out, o;
  col_step(r, col, &s_out, &o);
  const int T = r->T, ni = r->input_size, K = T * ni, no = eng_rnn_outputs(r);
  const int chunk = rows < 256 ? rows : 256;
  double *Fy = malloc((size_t)rows * T * sizeof *Fy);
  double *y = malloc((size_t)chunk * no * sizeof *y);
  double *pre = NULL, *xin = malloc((size_t)chunk * ni * sizeof *xin);
  struct rnn_pass p;
  int have = 0, rc = -1;
  if (!Fy || !y || !xin || rnn_pass_init(&p, r, chunk, 0) != 0)
    goto done;
  have = 1;
  if ((pre = malloc((size_t)chunk * p.S * sizeof *pre)) == NULL)
    goto done;
  /* F_t(x): the output as the interventions run it, nothing changed */
  if ((rc = eng_rnn_gradient(r, x, rows, col, NULL, Fy)) != 0)
    goto done;
  rc = -1;
  memset(attr, 0, (size_t)rows * K * sizeof *attr);
  for (int s0 = 0; s0 < rows; s0 += chunk) {
    const int nc = rows - s0 < chunk ? rows - s0 : chunk;
    const double *xs = x + (size_t)s0 * K;
    p.n = nc;
    for (int t = 0; t <= s_out; t++) {
      if (eng_should_stop()) {
        rc = ENG_STOPPED;
        goto done;
      }
      rnn_run_prefix(&p, xs, t, y);
      memcpy(pre, p.v, (size_t)nc * p.S * sizeof *pre);
      for (int i = 0; i < ni; i++) {
        rnn_run_intervened(&p, pre, xs, t, i, base[t * ni + i], xin, y, NULL);
        for (int q = 0; q < nc; q++)
          attr[(size_t)(s0 + q) * K + (size_t)t * ni + i] =
              Fy[(size_t)(s0 + q) * T + t] - y[(size_t)q * no + col];
      }
    }
  }
  rc = 0;
done:
  if (have)
    rnn_pass_free(&p);
  free(Fy);
  free(y);
  free(pre);
  free(xin);
  return rc;
}
