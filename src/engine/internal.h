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

#endif
