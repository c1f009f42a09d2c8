/*
 * gradient.c -- exact input gradients d y_o / d x of one output at many
 * input rows (reverse mode), and the quadrature nodes of integrated
 * gradients.  Used by the explanations the users compare causal
 * attributions with (saliency, gradient x input, integrated gradients).
 *
 * Reverse mode costs one forward and one backward pass per row for one
 * output, whatever the number of inputs (forward mode would carry k
 * tangents).  Rows go through in chunks of GRAD_CHUNK: the activations
 * of every layer (and the pre-activations where a backward rule needs
 * them) are kept for the backward pass, every product is a GEMM over the
 * chunk, and the element-wise steps are vmath.c's vectorized loops.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "engine/internal.h"

/* Rows (or integrated gradients' (row, step) pairs) per pass: 256 keeps
 * a chunk's activations of the MNIST-scale network (960 per row) in a
 * core's L2 for the element-wise steps and the GEMMs' packing, and is
 * still wide enough that packing the weights once per GEMM costs little;
 * integrated gradients 1000 x 64 there measured 1.18 s CPU with 1024,
 * 1.12 with 512, 1.08 with 256, 1.14 with 128 (best of 9, shared core). */
#define GRAD_CHUNK 256

/* gz = J^T g through the activation of layer ly, for nc rows of width
 * n_out: z the pre-activations, h the activations.  Element-wise rules
 * take the derivative from h where it is cheaper than from z (sigmoid
 * h(1-h), tanh 1-h^2: no exp per unit, which was most of the time of a
 * gradient on a sigmoid network).  -1 for an activation with no rule. */
static int act_backward(const struct eng_layer *ly, const double *z, const double *h,
                        const double *g, double *gz, int nc)
{
  int w = ly->n_out;
  size_t n = (size_t)nc * w;
  switch (ly->act) {
  case ENG_ACT_SOFTMAX:
    /* J^T g = s * (g - s.g) (J symmetric) */
    for (int r = 0; r < nc; r++) {
      const double *s = h + (size_t)r * w, *gr = g + (size_t)r * w;
      double *o = gz + (size_t)r * w, sg = 0.0;
      for (int j = 0; j < w; j++)
        sg += s[j] * gr[j];
      for (int j = 0; j < w; j++)
        o[j] = s[j] * (gr[j] - sg);
    }
    return 0;
  case ENG_ACT_LOG_SOFTMAX:
    /* y = z - lse(z): J = I - 1 s^T, J^T g = g - s (1.g), s = e^y */
    for (int r = 0; r < nc; r++) {
      const double *hr = h + (size_t)r * w, *gr = g + (size_t)r * w;
      double *o = gz + (size_t)r * w, sum = 0.0;
      for (int j = 0; j < w; j++)
        sum += gr[j];
      for (int j = 0; j < w; j++)
        o[j] = gr[j] - exp(hr[j]) * sum;
    }
    return 0;
  case ENG_ACT_IDENTITY:
    memcpy(gz, g, sizeof(double) * n);
    return 0;
  case ENG_ACT_SIGMOID:
    eng_vsigmoid_back(gz, h, g, n);
    return 0;
  case ENG_ACT_TANH:
    eng_vtanh_back(gz, h, g, n);
    return 0;
  case ENG_ACT_RELU:
    eng_vrelu_back(gz, h, g, n);
    return 0;
  default: {
    const struct eng_act_info *ai = eng_act_info(ly->act);
    if (ai == NULL || ai->eval == NULL)
      return -1;
    for (size_t t = 0; t < n; t++) {
      double f, d1, d2;
      ai->eval(z[t], &f, &d1, &d2);
      gz[t] = d1 * g[t];
    }
    return 0;
  }
  }
}

/* Whether the backward rule of act needs the pre-activations: only the
 * table's element-wise rules do; the others take what they need from the
 * activations, so for them the forward pass writes each layer's GEMM
 * straight into H and applies the activation in place (no copy of Z). */
static int needs_z(enum eng_act a)
{
  switch (a) {
  case ENG_ACT_IDENTITY:
  case ENG_ACT_RELU:
  case ENG_ACT_SIGMOID:
  case ENG_ACT_TANH:
  case ENG_ACT_SOFTMAX:
  case ENG_ACT_LOG_SOFTMAX:
    return 0;
  default:
    return 1;
  }
}

/* Workspace of a gradient pass over chunks of up to `chunk` rows: Z and H
 * the pre-activations and activations of every layer, g and gz the
 * backward vectors. */
struct grad_ws {
  int chunk;
  double *Z, *H, *g, *gz;
};

static int ws_init(struct grad_ws *ws, const struct eng_model *m, int chunk)
{
  size_t tot = 0;
  for (int l = 0; l < m->net.n_layers; l++)
    tot += (size_t)m->net.layers[l].n_out;
  size_t wide = (size_t)(m->max_units > m->k ? m->max_units : m->k);
  ws->chunk = chunk;
  ws->Z = malloc(sizeof(double) * tot * (size_t)chunk);
  ws->H = malloc(sizeof(double) * tot * (size_t)chunk);
  ws->g = malloc(sizeof(double) * wide * (size_t)chunk);
  ws->gz = malloc(sizeof(double) * wide * (size_t)chunk);
  return ws->Z && ws->H && ws->g && ws->gz ? 0 : -1;
}

static void ws_free(struct grad_ws *ws)
{
  free(ws->Z);
  free(ws->H);
  free(ws->g);
  free(ws->gz);
}

/* Where the callers put the first layer's pre-activations (nc x n1, bias
 * included) before pass_from_z1: Z's first block, or H's when the first
 * activation's backward rule does not need them. */
static double *z1_slot(const struct eng_model *m, struct grad_ws *ws)
{
  return needs_z(m->net.layers[0].act) ? ws->Z : ws->H;
}

/* The pass both gradient paths share.  z1_slot() holds the first layer's
 * pre-activations of nc rows (or, with act1_done, H's first block already
 * holds its activations: callers may apply them row by row while the row
 * is in cache, when needs_z() is false for the first activation); the
 * rest of the network runs forward (y, if not NULL, gets the nc x n_out
 * outputs), then backward from e_output down to d y_output / d h1
 * (nc x n1) in ws->g: the first activation's backward rule is the
 * callers' too, for the same reason.  Each layer after the first is one
 * GEMM into H (into Z when its backward rule needs the pre-activations),
 * then bias and activation in one pass (vmath.c's for sigmoid and tanh).
 * Returns 0, or -1 for an activation with no backward rule. */
static int pass_from_z1(const struct eng_model *m, struct grad_ws *ws, int nc, int output,
                        double *y, int act1_done)
{
  const struct eng_net *net = &m->net;
  int nl = net->n_layers, no = m->n_out, chunk = ws->chunk;
  const double *in = NULL;
  size_t off = 0;
  for (int l = 0; l < nl; l++) {
    const struct eng_layer *ly = &net->layers[l];
    double *z = ws->Z + off * chunk, *h = ws->H + off * chunk;
    size_t n = (size_t)nc * ly->n_out;
    int keep = needs_z(ly->act);
    if (l > 0) {
      double *dst = keep ? z : h;
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nc, ly->n_out, ly->n_in, 1.0, in,
                  ly->n_in, ly->W, ly->n_in, 0.0, dst, ly->n_out);
      if (ly->act == ENG_ACT_SIGMOID || ly->act == ENG_ACT_TANH) {
        (ly->act == ENG_ACT_SIGMOID ? eng_vsigmoid_rows : eng_vtanh_rows)(h, ly->b, nc,
                                                                          ly->n_out);
        in = h;
        off += (size_t)ly->n_out;
        continue;
      }
      eng_vadd_rows(dst, ly->b, nc, ly->n_out);
    } else if (act1_done) {
      in = h;
      off += (size_t)ly->n_out;
      continue;
    }
    if (keep)
      memcpy(h, z, sizeof(double) * n);
    eng_act_rows(ly->act, h, nc, ly->n_out);
    in = h;
    off += (size_t)ly->n_out;
  }
  if (y != NULL)
    memcpy(y, in, sizeof(double) * (size_t)nc * no);
  memset(ws->g, 0, sizeof(double) * (size_t)nc * no);
  for (int r = 0; r < nc; r++)
    ws->g[(size_t)r * no + output] = 1.0;
  for (int l = nl - 1; l > 0; l--) {
    const struct eng_layer *ly = &net->layers[l];
    int w = ly->n_out;
    off -= (size_t)w;
    if (act_backward(ly, ws->Z + off * chunk, ws->H + off * chunk, ws->g, ws->gz, nc) != 0)
      return -1;
    /* g_prev = gz W: (nc x w) (w x n_in) */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nc, ly->n_in, w, 1.0, ws->gz, w,
                ly->W, ly->n_in, 0.0, ws->g, ly->n_in);
  }
  return 0;
}

int eng_gradient(const struct eng_model *m, const double *x, int n, int output, double *G,
                 double *y)
{
  if (!m || m->rnn || output < 0 || output >= m->n_out || n < 0 || (n > 0 && (!x || !G)))
    return -1;
  const struct eng_layer *l1 = &m->net.layers[0];
  int k = m->k, n1 = m->n1;
  struct grad_ws ws;
  int rc = -1;
  if (ws_init(&ws, m, n < GRAD_CHUNK ? (n > 0 ? n : 1) : GRAD_CHUNK) != 0)
    goto done;
  for (int r0 = 0; r0 < n; r0 += ws.chunk) {
    if (eng_should_stop()) {
      rc = ENG_STOPPED;
      goto done;
    }
    int nc = n - r0 < ws.chunk ? n - r0 : ws.chunk;
    double *z1 = z1_slot(m, &ws);
    for (int r = 0; r < nc; r++)
      memcpy(z1 + (size_t)r * n1, l1->b, sizeof(double) * (size_t)n1);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nc, n1, k, 1.0, x + (size_t)r0 * k, k,
                l1->W, k, 1.0, z1, n1);
    if (pass_from_z1(m, &ws, nc, output, y ? y + (size_t)r0 * m->n_out : NULL, 0) != 0 ||
        act_backward(l1, ws.Z, ws.H, ws.g, ws.gz, nc) != 0)
      goto done; /* a vector activation with no rule here */
    /* d y / d x = (d y / d z1) W1 */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nc, k, n1, 1.0, ws.gz, n1, l1->W, k,
                0.0, G + (size_t)r0 * k, k);
  }
  rc = 0;
done:
  ws_free(&ws);
  return rc;
}

/* Integrated gradients without the first layer's big products.  Along
 * the path b + t (x - b) the first pre-activation is z_b + t (z_x - z_b),
 * so it costs two products per row, not one per step; and since
 * d y / d x = (d y / d z1) W1, the weighted sum over the steps can be
 * taken on d y / d z1 first and multiplied by W1 once per row.  An input
 * transform needs nothing here: the model folds it into W1 and the first
 * bias (model_engine_net), so it is part of that affine layer.  For the
 * MNIST-scale network this removes 70% of the work of a plain gradient
 * per step.  The (row, step) pairs go through the other layers in chunks
 * of GRAD_CHUNK, as GEMMs; the first layer's interpolation, activation,
 * backward rule and weighted sum are done pair by pair while the pair's
 * row is in cache. */
int eng_integrated_gradients(const struct eng_model *m, const double *x, int rows,
                             const double *base, const double *t, const double *w, int steps,
                             int output, double *attr)
{
  if (!m || m->rnn || output < 0 || output >= m->n_out || rows < 0 || steps < 1 || !base || !t || !w ||
      (rows > 0 && (!x || !attr)))
    return -1;
  if (rows == 0)
    return 0;
  const struct eng_layer *l1 = &m->net.layers[0];
  int k = m->k, n1 = m->n1, chunk = GRAD_CHUNK;
  struct grad_ws ws;
  double *zx = malloc(sizeof(double) * (size_t)rows * n1);  /* z1 at x, then z_x - z_b */
  double *zb = malloc(sizeof(double) * (size_t)n1);         /* z1 at the baseline */
  double *V = calloc((size_t)rows * n1, sizeof(double));    /* sum_j w_j dy/dz1 */
  int *prow = malloc(sizeof(int) * (size_t)chunk);
  double *pw = malloc(sizeof(double) * (size_t)chunk);
  int rc = -1;
  if (ws_init(&ws, m, chunk) != 0 || !zx || !zb || !V || !prow || !pw)
    goto done;
  for (int r = 0; r < rows; r++)
    memcpy(zx + (size_t)r * n1, l1->b, sizeof(double) * (size_t)n1);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n1, k, 1.0, x, k, l1->W, k, 1.0,
              zx, n1);
  memcpy(zb, l1->b, sizeof(double) * (size_t)n1);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, n1, k, 1.0, l1->W, k, base, 1, 1.0, zb, 1);
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < n1; j++)
      zx[(size_t)r * n1 + j] -= zb[j];
  long total = (long)rows * steps;
  int act1_done = !needs_z(l1->act);
  for (long p0 = 0; p0 < total; p0 += chunk) {
    if (eng_should_stop()) {
      rc = ENG_STOPPED;
      goto done;
    }
    int nc = total - p0 < chunk ? (int)(total - p0) : chunk;
    /* first layer: interpolated pre-activations, and their activations
     * while the pair's row is in cache when the backward rule needs no
     * pre-activations */
    double *z1 = z1_slot(m, &ws);
    for (int c = 0; c < nc; c++) {
      long p = p0 + c;
      int r = (int)(p / steps), j = (int)(p % steps);
      prow[c] = r;
      pw[c] = w[j];
      eng_vline(z1 + (size_t)c * n1, zb, t[j], zx + (size_t)r * n1, n1);
      if (act1_done)
        eng_act_rows(l1->act, z1 + (size_t)c * n1, 1, n1);
    }
    if (pass_from_z1(m, &ws, nc, output, NULL, act1_done) != 0)
      goto done;
    /* dy/dz1 of each pair (from dy/dh1 in ws.g), weighted into its row's
     * sum while in cache */
    for (int c = 0; c < nc; c++) {
      size_t o = (size_t)c * n1;
      if (act_backward(l1, ws.Z + o, ws.H + o, ws.g + o, ws.gz, 1) != 0)
        goto done;
      eng_vaxpy(V + (size_t)prow[c] * n1, pw[c], ws.gz, n1);
    }
  }
  /* attr = (x - b) * (V W1), one GEMM for every row */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, k, n1, 1.0, V, n1, l1->W, k, 0.0,
              attr, k);
  for (int r = 0; r < rows; r++)
    for (int i = 0; i < k; i++)
      attr[(size_t)r * k + i] *= x[(size_t)r * k + i] - base[i];
  rc = 0;
done:
  ws_free(&ws);
  free(zx);
  free(zb);
  free(V);
  free(prow);
  free(pw);
  return rc;
}

/* Gauss-Legendre nodes and weights on [0, 1] by Newton's method on P_n
 * from the Chebyshev guesses (converges to machine precision in a few
 * steps for every n we allow); n >= 2, eng_quadrature handles n = 1. */
static void gauss_legendre(int n, double *t, double *w)
{
  for (int i = 0; i < (n + 1) / 2; i++) {
    double xr = cos(M_PI * (i + 0.75) / (n + 0.5)), dp = 1.0;
    for (int it = 0; it < 100; it++) {
      double p0 = 1.0, p1 = xr;
      for (int j = 2; j <= n; j++) {
        double p2 = ((2.0 * j - 1.0) * xr * p1 - (j - 1.0) * p0) / j;
        p0 = p1;
        p1 = p2;
      }
      dp = n * (xr * p1 - p0) / (xr * xr - 1.0);
      double dx = p1 / dp;
      xr -= dx;
      if (fabs(dx) < 1e-16)
        break;
    }
    double wi = 2.0 / ((1.0 - xr * xr) * dp * dp);
    /* map [-1, 1] to [0, 1]: ascending nodes */
    t[i] = 0.5 * (1.0 - xr);
    t[n - 1 - i] = 0.5 * (1.0 + xr);
    w[i] = w[n - 1 - i] = 0.5 * wi;
  }
}

int eng_quadrature(enum eng_rule rule, int n, double *t, double *w)
{
  if (n < 1 || !t || !w || (rule == ENG_RULE_TRAPEZOID && n < 2))
    return -1;
  switch (rule) {
  case ENG_RULE_GAUSS_LEGENDRE:
    if (n == 1) {
      t[0] = 0.5;
      w[0] = 1.0;
    } else {
      gauss_legendre(n, t, w);
    }
    return 0;
  case ENG_RULE_RIEMANN_LEFT:
  case ENG_RULE_RIEMANN_RIGHT:
  case ENG_RULE_RIEMANN_MIDDLE: {
    double shift = rule == ENG_RULE_RIEMANN_LEFT ? 0.0 : rule == ENG_RULE_RIEMANN_RIGHT ? 1.0 : 0.5;
    for (int j = 0; j < n; j++) {
      t[j] = (j + shift) / n;
      w[j] = 1.0 / n;
    }
    return 0;
  }
  case ENG_RULE_TRAPEZOID:
    for (int j = 0; j < n; j++) {
      t[j] = (double)j / (n - 1);
      w[j] = (j == 0 || j == n - 1 ? 0.5 : 1.0) / (n - 1);
    }
    return 0;
  }
  return -1;
}

int eng_connection_weights(const struct eng_model *m, int output, double *olden,
                           double *garson)
{
  if (!m || m->rnn || output < 0 || output >= m->n_out || !olden || !garson)
    return -1;
  return eng_net_connection_weights(&m->net, output, olden, garson);
}

int eng_net_connection_weights(const struct eng_net *net, int output, double *olden,
                               double *garson)
{
  if (!net || net->n_layers < 1 || output < 0 ||
      output >= net->layers[net->n_layers - 1].n_out || !olden || !garson)
    return -1;
  int nl = net->n_layers, k = net->layers[0].n_in;
  size_t wide = (size_t)k;
  for (int l = 0; l < nl; l++)
    wide = (size_t)net->layers[l].n_out > wide ? (size_t)net->layers[l].n_out : wide;
  double *r = calloc(wide, sizeof *r), *a = calloc(wide, sizeof *a);
  double *rn = calloc(wide, sizeof *rn), *an = calloc(wide, sizeof *an);
  if (!r || !a || !rn || !an) {
    free(r);
    free(a);
    free(rn);
    free(an);
    return -1;
  }
  /* r = e_o^T W_L ... W_l and a = e_o^T |W_L| ... |W_l|, from the top down
   * to layer 2 for a, layer 1 for r */
  r[output] = a[output] = 1.0;
  for (int l = nl - 1; l >= 0; l--) {
    const struct eng_layer *ly = &net->layers[l];
    if (l == 0) {
      /* Garson: each first-layer unit j shares its path weight a_j among
       * the inputs in proportion to |W1[j, i]| */
      for (int i = 0; i < k; i++)
        garson[i] = 0.0;
      for (int j = 0; j < ly->n_out; j++) {
        double row = 0.0;
        for (int i = 0; i < k; i++)
          row += fabs(ly->W[(size_t)j * k + i]);
        if (row > 0.0)
          for (int i = 0; i < k; i++)
            garson[i] += a[j] * fabs(ly->W[(size_t)j * k + i]) / row;
      }
    }
    for (int i = 0; i < ly->n_in; i++) {
      double s = 0.0, sa = 0.0;
      for (int j = 0; j < ly->n_out; j++) {
        double wji = ly->W[(size_t)j * ly->n_in + i];
        s += r[j] * wji;
        sa += a[j] * fabs(wji);
      }
      rn[i] = s;
      an[i] = sa;
    }
    memcpy(r, rn, sizeof(double) * (size_t)ly->n_in);
    memcpy(a, an, sizeof(double) * (size_t)ly->n_in);
  }
  memcpy(olden, r, sizeof(double) * (size_t)k);
  double total = 0.0;
  for (int i = 0; i < k; i++)
    total += garson[i];
  for (int i = 0; i < k; i++)
    garson[i] = total > 0.0 ? garson[i] / total : 0.0;
  free(r);
  free(a);
  free(rn);
  free(an);
  return 0;
}
