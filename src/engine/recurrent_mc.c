/*
 * recurrent_mc.c -- Monte Carlo of an LSTM without feedback, fused: the
 * same expectations as the general pass of recurrent_est.c (the same
 * chunks of sequences, merged in the same order; the gate sums are
 * associated differently, so values agree to rounding, about 1e-16), in
 * fewer operations per sequence-step.
 *
 * Per chunk of sequences the state after steps 0..t-1 is computed once,
 * as in the general pass, and by the same fused steps:
 *
 * - each sequence's row is [x_u | h | c], so one GEMM with K = input +
 *   hidden against [W_ih | W_hh] gives every gate pre-activation of a
 *   step; the two biases are summed once and added by the cell pass;
 * - the intervened step's pre-activations without the intervention,
 *   [x_t | h_(t-1)] [W_ih | W_hh]^T, do not depend on alpha: computed
 *   once per chunk, each alpha adds the rank-one term
 *   (alpha - x_i^t) W_ih[:, i] instead of running the step's GEMM;
 * - the cells of a step are one pass over the gate block
 *   (eng_lstm_cells, vmath.c), the state updated in place in the rows
 *   the next GEMM reads: no copies between steps but the next inputs'.
 *
 * BENCHMARKS.md (section recurrent) has the CPU per sequence-step before
 * and after, measured with bench/bench_rnn_step.c.
 */
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "engine/internal.h"

/* Sequences per batch, as in recurrent.c and recurrent_est.c (the same
 * chunks, so the running means merge in the same order). */
#define RNN_CHUNK 256

/* The inputs of step u of nc sequences xs (ld K) into the first ni
 * columns of the rows (ld LD): a loop, as ni is small and a call to memcpy
 * per row costs more. */
static void put_inputs(double *row, int LD, const double *xs, int K, int u, int ni, int nc)
{
  for (int s = 0; s < nc; s++) {
    const double *xu = xs + (size_t)s * K + (size_t)u * ni;
    double *ru = row + (size_t)s * LD;
    for (int c = 0; c < ni; c++)
      ru[c] = xu[c];
  }
}

int rnn_montecarlo_fast(const struct eng_model *m, int feature, const double *alpha,
                        int n_alpha, double *E, double *se)
{
  const struct eng_rnn *net = m->rnn;
  if (net->cell != ENG_CELL_LSTM || net->n_layers != 1 || net->feedback || net->every)
    return 1;
  const struct eng_rnn_layer *L = &net->layers[0];
  const int ni = net->input_size, H = net->hidden_size, G = 4 * H, T = net->T;
  const int K = m->k, no = m->n_out, ns = m->n_samples;
  const int t = feature / ni, i = feature % ni;
  const int KW = ni + H, LD = ni + 2 * H; /* GEMM depth; row [x | h | c] */
  int chunk = ns < RNN_CHUNK ? ns : RNN_CHUNK;
  struct rnn_pass p;
  if (rnn_pass_init(&p, net, chunk, 0) != 0)
    return -1;
  double *W = malloc((size_t)G * KW * sizeof *W);           /* [W_ih | W_hh] */
  double *b = malloc((size_t)G * sizeof *b);                /* b_ih + b_hh */
  double *wi = malloc((size_t)G * sizeof *wi);              /* W_ih[:, i] */
  double *row0 = malloc((size_t)chunk * LD * sizeof *row0); /* [x_t | state after t-1] */
  double *row = malloc((size_t)chunk * LD * sizeof *row);
  double *zt = malloc((size_t)chunk * G * sizeof *zt); /* step t without the intervention */
  double *z = malloc((size_t)chunk * G * sizeof *z);
  double *m2 = calloc((size_t)n_alpha * no, sizeof *m2);
  int rc = -1;
  if (!W || !b || !wi || !row0 || !row || !zt || !z || !m2)
    goto done;
  for (int g = 0; g < G; g++) {
    memcpy(W + (size_t)g * KW, L->W_ih + (size_t)g * ni, (size_t)ni * sizeof *W);
    memcpy(W + (size_t)g * KW + ni, L->W_hh + (size_t)g * H, (size_t)H * sizeof *W);
    b[g] = L->b_ih[g] + L->b_hh[g];
    wi[g] = L->W_ih[(size_t)g * ni + i];
  }
  for (size_t u = 0; u < (size_t)n_alpha * no; u++)
    E[u] = 0.0;
  long seen = 0;
  for (int s0 = 0; s0 < ns; s0 += chunk) {
    const int nc = ns - s0 < chunk ? ns - s0 : chunk;
    const double *xs = m->samples + (size_t)s0 * K;
    p.n = nc;
    memset(row0, 0, (size_t)nc * LD * sizeof *row0); /* h = c = 0 */
    for (int u = 0; u <= t; u++) {
      put_inputs(row0, LD, xs, K, u, ni, nc);
      if (u < t) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nc, G, KW, 1.0, row0, LD, W, KW,
                    0.0, z, G);
        eng_lstm_cells(nc, H, z, G, b, row0 + ni, LD);
      }
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nc, G, KW, 1.0, row0, LD, W, KW, 0.0,
                zt, G);
    for (int a = 0; a < n_alpha; a++) {
      if (eng_should_stop()) {
        rc = ENG_STOPPED;
        goto done;
      }
      /* step t: the rank-one change of x_i^t */
      for (int s = 0; s < nc; s++) {
        const double d = alpha[a] - row0[(size_t)s * LD + i];
        const double *zs = zt + (size_t)s * G;
        double *zd = z + (size_t)s * G;
        for (int g = 0; g < G; g++)
          zd[g] = zs[g] + d * wi[g];
      }
      memcpy(row, row0, (size_t)nc * LD * sizeof *row);
      eng_lstm_cells(nc, H, z, G, b, row + ni, LD);
      for (int u = t + 1; u < T; u++) {
        put_inputs(row, LD, xs, K, u, ni, nc);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nc, G, KW, 1.0, row, LD, W, KW,
                    0.0, z, G);
        eng_lstm_cells(nc, H, z, G, b, row + ni, LD);
      }
      rnn_head_rows(&p, row + ni, LD);
      eng_merge_chunk(p.yv, nc, no, seen, E + (size_t)a * no, m2 + (size_t)a * no);
    }
    seen += nc;
  }
  if (se)
    eng_stderr(m2, (size_t)n_alpha * no, ns, se);
  rc = 0;
done:
  rnn_pass_free(&p);
  free(W);
  free(b);
  free(wi);
  free(row0);
  free(row);
  free(zt);
  free(z);
  free(m2);
  return rc;
}
