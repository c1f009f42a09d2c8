/*
 * gradient.c -- exact input gradients d y_o / d x of one output at many
 * input rows (reverse mode), and the quadrature nodes of integrated
 * gradients.  Used by the explanations the users compare causal
 * attributions with (saliency, gradient x input, integrated gradients).
 *
 * Reverse mode costs one forward and one backward pass per row for one
 * output, whatever the number of inputs (forward mode would carry k
 * tangents).  Rows go through in chunks of GRAD_CHUNK: the pre-activations
 * of every layer are kept for the backward pass, and every product is a
 * GEMM over the chunk.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "engine/internal.h"

#define GRAD_CHUNK 256

int eng_gradient(const struct eng_model *m, const double *x, int n, int output, double *G,
                 double *y)
{
  if (!m || output < 0 || output >= m->n_out || n < 0 || (n > 0 && (!x || !G)))
    return -1;
  const struct eng_net *net = &m->net;
  int nl = net->n_layers, k = m->k, no = m->n_out;
  size_t tot = 0; /* units over all layers */
  for (int l = 0; l < nl; l++)
    tot += (size_t)net->layers[l].n_out;
  int chunk = n < GRAD_CHUNK ? (n > 0 ? n : 1) : GRAD_CHUNK;
  /* Z: pre-activations, H: activations, per layer, chunk rows each;
   * g, gz: the backward vectors (widest layer or k) */
  size_t wide = (size_t)(m->max_units > k ? m->max_units : k);
  double *Z = malloc(sizeof(double) * tot * (size_t)chunk);
  double *H = malloc(sizeof(double) * tot * (size_t)chunk);
  double *g = malloc(sizeof(double) * wide * (size_t)chunk);
  double *gz = malloc(sizeof(double) * wide * (size_t)chunk);
  int rc = -1;
  if (!Z || !H || !g || !gz)
    goto done;
  for (int r0 = 0; r0 < n; r0 += chunk) {
    if (eng_should_stop()) {
      rc = ENG_STOPPED;
      goto done;
    }
    int nc = n - r0 < chunk ? n - r0 : chunk;
    const double *in = x + (size_t)r0 * k;
    size_t off = 0;
    /* forward, keeping z and h of every layer */
    for (int l = 0; l < nl; l++) {
      const struct eng_layer *ly = &net->layers[l];
      double *z = Z + off * chunk, *h = H + off * chunk;
      for (int r = 0; r < nc; r++)
        memcpy(z + (size_t)r * ly->n_out, ly->b, sizeof(double) * (size_t)ly->n_out);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nc, ly->n_out, ly->n_in, 1.0, in,
                  ly->n_in, ly->W, ly->n_in, 1.0, z, ly->n_out);
      memcpy(h, z, sizeof(double) * (size_t)nc * ly->n_out);
      eng_act_rows(ly->act, h, nc, ly->n_out);
      in = h;
      off += (size_t)ly->n_out;
    }
    if (y != NULL)
      memcpy(y + (size_t)r0 * no, in, sizeof(double) * (size_t)nc * no);
    /* backward from e_output */
    memset(g, 0, sizeof(double) * (size_t)nc * no);
    for (int r = 0; r < nc; r++)
      g[(size_t)r * no + output] = 1.0;
    for (int l = nl - 1; l >= 0; l--) {
      const struct eng_layer *ly = &net->layers[l];
      int w = ly->n_out;
      off -= (size_t)w;
      const double *z = Z + off * chunk, *h = H + off * chunk;
      const struct eng_act_info *ai = eng_act_info(ly->act);
      if (ly->act == ENG_ACT_SOFTMAX) {
        /* J^T g = s * (g - s.g) (J symmetric) */
        for (int r = 0; r < nc; r++) {
          const double *s = h + (size_t)r * w;
          double *gr = g + (size_t)r * w, *o = gz + (size_t)r * w, sg = 0.0;
          for (int j = 0; j < w; j++)
            sg += s[j] * gr[j];
          for (int j = 0; j < w; j++)
            o[j] = s[j] * (gr[j] - sg);
        }
      } else if (ly->act == ENG_ACT_LOG_SOFTMAX) {
        /* y = z - lse(z): J = I - 1 s^T, J^T g = g - s (1.g), s = e^y */
        for (int r = 0; r < nc; r++) {
          const double *hr = h + (size_t)r * w;
          double *gr = g + (size_t)r * w, *o = gz + (size_t)r * w, sum = 0.0;
          for (int j = 0; j < w; j++)
            sum += gr[j];
          for (int j = 0; j < w; j++)
            o[j] = gr[j] - exp(hr[j]) * sum;
        }
      } else if (ai != NULL && ai->eval != NULL) {
        for (size_t t = 0; t < (size_t)nc * w; t++) {
          double f, d1, d2;
          ai->eval(z[t], &f, &d1, &d2);
          gz[t] = d1 * g[t];
        }
      } else {
        goto done; /* a vector activation with no rule here */
      }
      /* g_prev = gz W: (nc x w) (w x n_in) */
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nc, ly->n_in, w, 1.0, gz, w,
                  ly->W, ly->n_in, 0.0, g, ly->n_in);
    }
    memcpy(G + (size_t)r0 * k, g, sizeof(double) * (size_t)nc * k);
  }
  rc = 0;
done:
  free(Z);
  free(H);
  free(g);
  free(gz);
  return rc;
}

/* Gauss-Legendre nodes and weights on [0, 1] by Newton's method on P_n
 * from the Chebyshev guesses (converges to machine precision in a few
 * steps for every n we allow). */
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
      if (n == 1) {
        p1 = xr;
        p0 = 1.0;
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
