/*
 * recurrent_lag.c -- the time lag of Proposition 3: how many steps back
 * the output at the last step still depends on its inputs.
 *
 * For a sequence x, g_k = max over outputs o and features i of
 * |d y_o^t / d x_i^(t-k)| with t the last step, by reverse mode (the tape
 * of recurrent_grad.c): one forward pass keeping every cell's
 * pre-activations, then one backward pass per output.  tau_x is the
 * largest k with g_k > threshold, and the threshold is ENG_LAG_RTOL times the largest g_k of that sequence:
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
#include "engine/internal.h"

int eng_rnn_lag_compute(struct eng_model *m)
{
  const struct eng_rnn *r = m->rnn;
  const int T = r->T, ni = r->input_size, no = rnn_head_out(r);
  if (rnn_tape_per_row(r, T) > (double)ACED_LAG_TAPE_MAX)
    return 0; /* too large to tape: no lag (limits.h) */
  struct rnn_tape tp;
  if (rnn_tape_init(&tp, r, 1, T) != 0)
    return -1;
  double *gy = calloc((size_t)no, sizeof *gy);
  double *gx = malloc((size_t)T * ni * sizeof *gx);
  double *g = malloc((size_t)T * sizeof *g);
  m->lag_per = calloc((size_t)T, sizeof *m->lag_per);
  int rc = -1;
  if (!gy || !gx || !g || !m->lag_per)
    goto done;
  m->bytes += (size_t)T * sizeof *m->lag_per;
  int n = m->n_samples < ENG_LAG_SEQUENCES ? m->n_samples : ENG_LAG_SEQUENCES;
  if (n < 1)
    n = 1;
  long tsum = 0; /* whole steps: the mean is then exact enough to round up */
  for (int s = 0; s < n; s++) {
    rnn_tape_state_set(&tp, NULL);
    rnn_tape_run(&tp, m->n_samples > 0 ? m->samples + (size_t)s * m->k : m->mean, 0, T, 0, 1);
    for (int k = 0; k < T; k++)
      g[k] = 0.0;
    for (int o = 0; o < no; o++) {
      gy[o] = 1.0;
      rnn_tape_backward(&tp, gy, gx);
      gy[o] = 0.0;
      for (int u = 0; u < T; u++)
        for (int i = 0; i < ni; i++) {
          double a = fabs(gx[(size_t)u * ni + i]);
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
  rnn_tape_free(&tp);
  free(gy);
  free(gx);
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
