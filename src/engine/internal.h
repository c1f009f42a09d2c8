/*
 * internal.h -- what the engine's files share and nobody else sees.
 */
#ifndef ACED_ENGINE_INTERNAL_H
#define ACED_ENGINE_INTERNAL_H

#include <stddef.h>
#include "aced/engine.h"

/* ---- activations (activation.c) ----
 * Element-wise activations fill value, first and second derivative at z in
 * one call.  Softmax is vector-valued and has eval == NULL; the callers
 * that meet it use the softmax_* helpers below. */
struct eng_act_info {
  const char *name;
  void (*eval)(double z, double *f, double *d1, double *d2);
  double lo, hi; /* range of the value, for eng_output_range */
};
const struct eng_act_info *eng_act_info(enum eng_act a);

/* s = softmax(z) over n entries (max-shifted, so it cannot overflow). */
void eng_softmax(const double *z, int n, double *s);
/* y = log_softmax(z) = z - logsumexp(z) over n entries (max-shifted);
 * s = softmax(z) as well unless NULL.  y may be z; s must not be. */
void eng_log_softmax(const double *z, int n, double *y, double *s);

/* Non-zero when the calling thread's stop check (eng_set_stop) says to
 * stop; the long loops poll it and return ENG_STOPPED. */
int eng_should_stop(void);

/* Apply act to n rows of width `width` (row-major), in place. */
void eng_act_rows(enum eng_act a, double *z, int n, int width);

/* ---- the prepared model (prepare.c) ---- */
struct eng_model {
  struct eng_net net;   /* deep copy */
  int k, n_out, n1;     /* inputs, outputs, units of the first layer */
  int max_units;        /* widest layer output */
  double *mean;         /* k */
  int n_samples;
  double *samples;      /* n_samples x k */
  int r;                /* factor columns kept */
  double *L;            /* k x r, S ~= L L^T */
  double *W1L;          /* n1 x r, first layer times the factor */
  /* Compression (r > n1 + 1): QR of (W1 L)^T = Q R, column-major r x n1 with
   * lda = r as LAPACK leaves it (R in the upper triangle, reflectors below),
   * and the reflector scalars.  NULL when unused. */
  double *qr;
  double *tau;          /* n1 */
  double *spread;       /* n_out */
  double out_lo, out_hi;
  /* The reliability check's fixed subsample (diagnose.c): n_diag <=
   * ACED_MC_DIAG_SAMPLES evenly strided sample indices and their first
   * pre-activations W1 x + b (n_diag x n1), computed once here so that a
   * feature's check costs a few forward passes of the later layers only.
   * n_diag 0 without samples. */
  int n_diag;
  int *diag_rows;
  double *diag_z1;
  size_t bytes;
  struct eng_rnn *rnn;  /* a recurrent network (recurrent.c), else NULL */
  double *lag_per;      /* recurrent: T mean gradients by lag (recurrent_lag.c) */
  double lag_tau;
  int lag_n;
};

/* eng_montecarlo over the subsample above, with its standard error: the
 * Monte Carlo side of the taylor reliability check. */
int eng_montecarlo_diag(const struct eng_model *m, int feature, const double *alpha,
                        int n_alpha, double *E, double *se);

/* Forward rows starting at layer l0: h is n x (width of layer l0's input),
 * already the output of layer l0 - 1 (or the network input when l0 == 0);
 * y gets n x n_out.  work must hold 2 * n * max_units doubles. */
void eng_forward_from(const struct eng_model *m, int l0, const double *h,
                      int n, double *y, double *work);

/* Forward-mode second-order pass shared by eng_taylor and the linearised
 * spread.  tz1 (n1 x c, row-major) is the first layer's tangent block
 * W1 L_i, the same for every alpha; z1 (n_alpha x n1) holds the first
 * pre-activations, one row per alpha.  Fills val and q (n_alpha x n_out):
 * the outputs and the summed second directional derivatives.  When
 * jl is not NULL (n_alpha must be 1) it receives rowsum((J L)^2) at the
 * output, n_out values: the linearised variance. */
int eng_tangent_pass(const struct eng_model *m, const double *tz1, int c,
                     const double *z1, int n_alpha, double *val, double *q,
                     double *jl);

/* ---- recurrent networks (recurrent.c) ----
 * A prepared recurrent model has rnn set, k = T * input_size, the factor
 * L and samples as any model, and no net (n_layers 0).  The public
 * estimators dispatch to these when m->rnn is set; arguments are checked
 * by the callers. */
struct eng_rnn *eng_rnn_copy(const struct eng_rnn *src, size_t *bytes);
void eng_rnn_free(struct eng_rnn *r);
int eng_rnn_prepare_rest(struct eng_model *m, const struct eng_model_input *in);
int eng_rnn_montecarlo(const struct eng_model *m, int feature, const double *alpha,
                       int n_alpha, double *E, double *se);
int eng_rnn_taylor(const struct eng_model *m, int feature, const double *alpha, int n_alpha,
                   double *E, double *second);
int eng_rnn_finite_difference(const struct eng_model *m, int feature, const double *alpha,
                              int n_alpha, double eps, double *E);

/*
 * Recurrent estimators (recurrent_est.c) run passes of recurrent.c:
 * n value rows and, for second-order passes (n == 1), 2r tangent rows
 * (first derivatives, then second), over states of width S.
 */
struct rnn_pass {
  const struct eng_rnn *net;
  int n, r, H, G, S, O, wmax; /* wmax: widest head layer or input */
  double *v;                  /* n x S states */
  double *t;                  /* 2r x S tangents of the states */
  /* workspace */
  double *gi, *gh, *tgi, *tgh; /* n x G, 2r x G */
  double *hv, *ht;             /* head: 2 buffers of n x wmax, 2r x wmax */
  double *yv, *yt;             /* head output n x O, 2r x O */
};
int rnn_pass_init(struct rnn_pass *p, const struct eng_rnn *net, int n, int r);
void rnn_pass_free(struct rnn_pass *p);
void rnn_pass_reset(struct rnn_pass *p);
int rnn_head_out(const struct eng_rnn *r);
/* Teacher forced, steps t0..t1-1 (state: after step t0 - 1); the outputs
 * of those steps into y (n x n_out) and yt (2r x n_out). */
void rnn_run_forced(struct rnn_pass *p, int t0, int t1, const double *x, const double *xt,
                    double *y, double *yt);
/* The state after steps 0..t-1 of p->n sequences xs (n x K) into p->v;
 * with output_at every, the outputs of those steps into y. */
void rnn_run_prefix(struct rnn_pass *p, const double *xs, int t, double *y);
/* From state `pre` (after steps 0..t-1), steps t..T-1 with x_i^t = alpha
 * (re-simulated inputs after t with feedback); outputs of steps >= t into
 * y, the sequences as run into xo (NULL: not wanted); xin n x input_size
 * scratch. */
void rnn_run_intervened(struct rnn_pass *p, const double *pre, const double *xs, int t, int i,
                        double alpha, double *xin, double *y, double *xo);

/* Merge the means and sums of squared deviations of the no columns of a
 * chunk y (nc x no) into running means E and M2 over `seen` rows (Chan et
 * al.'s pairwise update: no cancellation). */
void eng_merge_chunk(const double *y, int nc, int no, long seen, double *E, double *m2);
/* se[u] = sqrt(m2[u] / (ns - 1)) / sqrt(ns), the standard error of a mean. */
void eng_stderr(const double *m2, size_t n, int ns, double *se);
/* spread[o] = standard deviation (divisor n - 1) of column o of y (n x no). */
void eng_column_sd(const double *y, int n, int no, double *spread);

/* The time lag (recurrent_lag.c), at prepare time.  The relative
 * threshold that makes "> 0" meaningful for gradients (see there). */
#define ENG_LAG_RTOL 1e-6
#define ENG_LAG_SEQUENCES ACED_LAG_SEQUENCES
int eng_rnn_lag_compute(struct eng_model *m);

/* Reverse mode through a recurrent network (recurrent_grad.c says how):
 * a tape of n <= cap rows over at most `steps` steps. */
struct rnn_tape {
  const struct eng_rnn *net;
  int cap, n, steps, t0, t1, fb;
  int nl, H, G, S, O, ni, w, hw, wide; /* S: a state row; w: max(input, hidden); hw: head units */
  double *hp, *cp, *gi, *gh;        /* per (step, layer): n rows each */
  double *hz, *ha;                  /* head per step: pre-activations, activations */
  double *h;                        /* running state, n x S as in struct rnn_pass */
  double *gs, *da, *gin, *hb, *gfb; /* backward workspace */
};
int rnn_tape_init(struct rnn_tape *tp, const struct eng_rnn *r, int cap, int steps);
void rnn_tape_free(struct rnn_tape *tp);
/* Doubles one row's tape of `steps` steps holds. */
double rnn_tape_per_row(const struct eng_rnn *r, int steps);
/* The running state (cap x S): copy out, set (NULL: 0). */
void rnn_tape_state_get(const struct rnn_tape *tp, double *dst);
void rnn_tape_state_set(struct rnn_tape *tp, const double *src);
/* Steps t0..t1-1 of the tp->n rows of x (n x T*input_size) from the
 * running state, taped; fb: the input of every step after t0 is the head's
 * output at the step before (the head then runs at those steps);
 * head_last: the head at step t1 - 1. */
void rnn_tape_run(struct rnn_tape *tp, const double *x, int t0, int t1, int fb, int head_last);
/* The head's output o at step t1 - 1 of row s. */
double rnn_tape_output(const struct rnn_tape *tp, int s, int o);
/* From gy (n x head outputs), the gradient at the head's output at step
 * t1 - 1, back to the inputs: gx (n x T*input_size) gets d/dx at the steps
 * whose inputs came from x (all of t0..t1-1, or t0 alone with fb); the
 * other columns are left alone. */
void rnn_tape_backward(struct rnn_tape *tp, const double *gy, double *gx);

/* In place over n values, vectorized (vmath.c: accuracy and why). */
void eng_vsigmoid(double *restrict x, int n);
void eng_vtanh(double *restrict x, int n);
/* x = f(x + b) for rows x width values, b one row (vmath.c). */
void eng_vsigmoid_rows(double *restrict x, const double *restrict b, int rows, int width);
void eng_vtanh_rows(double *restrict x, const double *restrict b, int rows, int width);
/* The element-wise steps of the gradient passes (vmath.c): gz = f'(z) g
 * from the activations h; x += b per row; y = W diag(d); z = a + t d;
 * y += a x. */
void eng_vsigmoid_back(double *restrict gz, const double *restrict h, const double *restrict g,
                       size_t n);
void eng_vtanh_back(double *restrict gz, const double *restrict h, const double *restrict g,
                    size_t n);
void eng_vrelu_back(double *restrict gz, const double *restrict h, const double *restrict g,
                    size_t n);
void eng_vadd_rows(double *restrict x, const double *restrict b, int rows, int width);
void eng_vmul_rows(double *restrict y, const double *restrict W, const double *restrict d,
                   int rows, int width);
void eng_vline(double *restrict z, const double *restrict a, double t, const double *restrict d,
               int n);
void eng_vaxpy(double *restrict y, double a, const double *restrict x, int n);
/* The cells of one layer at state offset off for the p->n value rows of a
 * pass without tangents: gates from p->gi + p->gh (p->gh is scratch
 * after), state updated in place (vmath.c). */
void eng_cells_plain(struct rnn_pass *p, int off);
/* LSTM cells of n rows in one pass: pre-activations z (n x 4H, ld ldz)
 * plus bias b, state rows hc = [h | c] (ld ldhc) in place (vmath.c). */
void eng_lstm_cells(int n, int H, const double *restrict z, int ldz, const double *restrict b,
                    double *restrict hc, int ldhc);
/* The head on hidden rows h (p->n x H, ld ldh): p->yv (n x O). */
void rnn_head_rows(struct rnn_pass *p, const double *h, int ldh);
/* Monte Carlo by the fused pass of recurrent_mc.c when it applies (one
 * LSTM layer, no feedback, output at the last step): 0 done, ENG_STOPPED,
 * -1 no memory, 1 does not apply (the caller runs the general pass). */
int rnn_montecarlo_fast(const struct eng_model *m, int feature, const double *alpha,
                        int n_alpha, double *E, double *se);
/* The general pass (recurrent_est.c), for every network. */
int rnn_montecarlo_general(const struct eng_model *m, int feature, const double *alpha,
                           int n_alpha, double *E, double *se);

/* The covariance factor m->L (k x r) from cov (prepare.c). */
int eng_make_factor(struct eng_model *m, const double *cov, double share, char *errbuf,
                    size_t errlen);

#endif
