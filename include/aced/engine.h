/*
 * engine.h -- the numerical engine: networks, interventional expectations
 * (Phase I), causal regressors (Phase II).  See ../shared/METHOD.md.
 *
 * The engine knows nothing of HTTP, JSON or SQL: it takes plain arrays and
 * returns plain arrays, so it can be unit-tested and benchmarked alone.
 * All matrices are contiguous row-major double arrays.
 *
 * Threading: a prepared `struct eng_model` is immutable and may be used by
 * any number of threads at once; every call allocates its own workspace.
 * Call eng_init() once at start-up: it pins BLAS to one thread so that a
 * pool of N workers uses N cores, not N x cores.
 *
 * Return values: 0 on success, -1 on failure (bad argument or out of
 * memory) with a message in errbuf where one is taken.
 */
#ifndef ACED_ENGINE_H
#define ACED_ENGINE_H

#include <stddef.h>
#include "aced/limits.h"

/* ---- activations: add one here, in engine/activation.c, and in the
 * name table; nothing else needs to change. ---- */
enum eng_act {
  ENG_ACT_IDENTITY,
  ENG_ACT_RELU,
  ENG_ACT_LEAKY_RELU, /* slope 0.01 below zero (PyTorch default) */
  ENG_ACT_ELU,        /* alpha 1.0 (PyTorch default) */
  ENG_ACT_SIGMOID,
  ENG_ACT_TANH,
  ENG_ACT_SOFTPLUS,   /* log(1 + e^z), beta 1 */
  ENG_ACT_GELU,       /* exact: z * Phi(z), Phi the standard normal CDF */
  ENG_ACT_SOFTMAX,    /* vector-valued; last layer only */
  ENG_ACT_LOG_SOFTMAX, /* z - logsumexp(z): vector-valued; last layer only */
  ENG_ACT__COUNT
};
const char *eng_act_name(enum eng_act a);
/* Returns 0 and sets *out when `name` is a known activation, else -1. */
int eng_act_from_name(const char *name, enum eng_act *out);

struct eng_layer {
  int n_in, n_out;
  double *W; /* n_out x n_in, row j feeds unit j */
  double *b; /* n_out */
  enum eng_act act;
};

/* A feedforward network: layers applied in order, y = act(W x + b). */
struct eng_net {
  int n_layers;
  struct eng_layer *layers;
};

struct eng_model; /* opaque */

void eng_init(void);

/* ---- recurrent networks (engine/recurrent.c) ----
 * Cells in PyTorch's layout and gate order: GRU r, z, n (the reset gate
 * multiplies W_hn h + b_hn), LSTM i, f, g, o, Elman tanh / relu.  Layer 0
 * takes input_size inputs, the layers above the hidden state below.  The
 * head (a feedforward net) maps the top hidden state to the outputs.
 * As a function, a recurrent net takes the flattened sequence
 * x[t * input_size + i] (T * input_size inputs, teacher forced: every
 * input as given) and gives the head at the last step (O outputs), or at
 * every step, y[s * O + o] (T * O outputs).  With feedback the head's
 * output at step s is the input at step s + 1 once an intervention has
 * changed the sequence (Algorithm 2): eng_montecarlo, eng_taylor and
 * eng_finite_difference re-simulate from the intervened step on. */
enum eng_cell { ENG_CELL_GRU, ENG_CELL_LSTM, ENG_CELL_RNN_TANH, ENG_CELL_RNN_RELU, ENG_CELL__COUNT };
const char *eng_cell_name(enum eng_cell c);
int eng_cell_from_name(const char *name, enum eng_cell *out);
int eng_cell_gates(enum eng_cell c); /* 3, 4, 1, 1 */

struct eng_rnn_layer {
  int n_in;               /* input_size (layer 0) or hidden_size */
  double *W_ih, *W_hh;    /* gates*hidden x n_in, gates*hidden x hidden */
  double *b_ih, *b_hh;    /* gates*hidden */
};
struct eng_rnn {
  enum eng_cell cell;
  int input_size, hidden_size, n_layers, T;
  struct eng_rnn_layer *layers;
  struct eng_net head;    /* hidden_size -> O */
  int every;              /* outputs at every step, else at the last */
  int feedback;           /* head output at s is the input at s + 1 (O == input_size) */
};
/* Outputs of the flattened function: T * O (every) or O. */
int eng_rnn_outputs(const struct eng_rnn *r);
/* Teacher-forced batched forward: x is n x (T * input_size), y is n x
 * eng_rnn_outputs(r). */
int eng_rnn_forward(const struct eng_rnn *r, const double *x, int n, double *y);
/* The prepared model's network, or NULL for a feedforward model. */
const struct eng_rnn *eng_model_rnn(const struct eng_model *m);
/* Proposition 3, computed when the model is prepared (engine/
 * recurrent_lag.c says how): *per_lag (T values) the mean over sequences
 * of max over outputs and features of |d y^t / d x^(t-k)|, t the last
 * step; *tau the mean over sequences of the largest k whose gradient
 * exceeds *threshold times that sequence's largest; *n the sequences
 * used.  -1 for a feedforward model, or when the lag was too large to
 * compute (ACED_LAG_TAPE_MAX). */
int eng_rnn_lag(const struct eng_model *m, const double **per_lag, double *tau,
                double *threshold, int *n);

/* ---- prepared model ---- */
struct eng_model_input {
  const struct eng_net *net; /* borrowed during prepare; copied */
  int k;                     /* inputs == net->layers[0].n_in */
  const double *mean;        /* k */
  const double *cov;         /* k x k, symmetric PSD */
  int n_samples;             /* 0 when none */
  const double *samples;     /* n_samples x k, or NULL */
  /* Low-rank mode: 0 (or >= 1) keeps the full factor; 0 < share < 1 keeps
   * the leading eigen-components covering that share of total variance. */
  double lowrank_share;
  /* A recurrent network instead of net (net is then ignored): k must be
   * T * input_size, samples are flattened sequences. */
  const struct eng_rnn *rnn;
};


/* Factor the covariance once (symmetric eigendecomposition, LAPACK) and
 * keep everything the estimators need.  Costs O(k^3); run it off the HTTP
 * threads. */
int eng_model_prepare(const struct eng_model_input *in, struct eng_model **out,
                      char *errbuf, size_t errlen);
void eng_model_free(struct eng_model *m);
int eng_model_inputs(const struct eng_model *m);
int eng_model_outputs(const struct eng_model *m);
int eng_model_rank(const struct eng_model *m);      /* columns kept in the factor */
int eng_model_samples(const struct eng_model *m);
size_t eng_model_bytes(const struct eng_model *m);  /* memory held */

/* Batched forward pass: x is n x k, y is n x n_out. */
int eng_forward(const struct eng_model *m, const double *x, int n, double *y);

/* The range an output can take given the last activation
 * (softmax/sigmoid [0,1], tanh [-1,1], log_softmax [-inf,0],
 * relu/softplus/elu lower bounds,
 * identity unbounded: -inf/+inf). */
void eng_output_range(const struct eng_model *m, double *lo, double *hi);

/* Spread of each output over the data: standard deviation of f(x_n) over
 * the samples when there are samples, else the linearised standard
 * deviation sqrt(diag(J S J^T)) at the mean.  n_out values. */
const double *eng_output_spread(const struct eng_model *m);

/* ---- stopping long calls ----
 * A worker running a job that is cancelled (or past its deadline) should
 * not finish a grid that may take minutes.  With a stop check set on the
 * calling thread, eng_taylor, eng_finite_difference, eng_montecarlo and
 * eng_taylor_diagnose call fn(cls) between grid points (or sample chunks)
 * and return ENG_STOPPED as soon as it returns non-zero.  Per thread, so
 * workers do not see each other's checks; NULL removes it. */
#define ENG_STOPPED (-2)
typedef int (*eng_stop_fn)(void *cls);
void eng_set_stop(eng_stop_fn fn, void *cls);

/* ---- Phase I: E[y | do(x_feature = alpha)] for every output at once ----
 * E is n_alpha x n_out. */

/* Paper Eq. 4 with the exact Hessian trace by forward-mode second
 * directional derivatives.  `second`, if not NULL, receives the
 * second-order term 1/2 trace(H S_i) (n_alpha x n_out). */
int eng_taylor(const struct eng_model *m, int feature, const double *alpha,
               int n_alpha, double *E, double *second);

/* Paper Appendix A.5: second directional derivatives by central
 * differences with step eps along each factor column. */
int eng_finite_difference(const struct eng_model *m, int feature,
                          const double *alpha, int n_alpha, double eps,
                          double *E);

/* Paper Eq. 2: mean over the stored samples with column `feature` set to
 * alpha; se (may be NULL) gets the standard error of that mean.  Fails
 * when the model has no samples. */
int eng_montecarlo(const struct eng_model *m, int feature, const double *alpha,
                   int n_alpha, double *E, double *se);

/* ---- reliability of taylor for one feature ----
 * Given taylor values E and second-order terms on a grid, judge each output.
 * Thresholds are documented in engine/diagnose.c. */
struct eng_diag {
  int out_of_range;      /* some E outside eng_output_range (with tolerance) */
  double min_value, max_value;
  double second_ratio;   /* max |second| / spread */
  double mc_gap_ratio;   /* max |taylor - montecarlo| / spread on a few
                            grid points; -1 when there are no samples */
  int reliable;
};
/* diag: n_out entries.  Runs montecarlo on ACED_MC_DIAG_POINTS grid points
 * when the model has samples. */
int eng_taylor_diagnose(const struct eng_model *m, int feature,
                        const double *alpha, int n_alpha, const double *E,
                        const double *second, struct eng_diag *diag);

/* ---- Phase II: Bayesian polynomial regressor (PRML ch. 3) ----
 * Basis: Legendre polynomials P_0..P_order of t = 2 (x - low)/(high - low) - 1.
 * For each order 0..max_order, alpha and beta are re-estimated by the
 * evidence approximation; the order with the highest log evidence is kept. */
#define ENG_ORDER_CAP ACED_ORDER_MAX_HARD
struct eng_regressor {
  int order;                          /* chosen order M (order+1 weights) */
  int max_order;                      /* orders 0..max_order were tried */
  double low, high;                   /* domain */
  double alpha, beta;                 /* prior and noise precision */
  double coef[ENG_ORDER_CAP + 1];     /* posterior mean m_N, Legendre basis */
  double cov[(ENG_ORDER_CAP + 1) * (ENG_ORDER_CAP + 1)]; /* A^-1, (order+1)^2 row-major */
  double log_evidence[ENG_ORDER_CAP + 1]; /* per order tried */
};
int eng_regressor_fit(const double *x, const double *t, int n, double low,
                      double high, int max_order, struct eng_regressor *r);
double eng_regressor_mean(const struct eng_regressor *r, double x);
/* The same mean from its parts alone: sum_j coef[j] P_j(t(x)), order
 * 0..ENG_ORDER_CAP.  Lets a cache keep a regressor's 100-odd bytes that
 * the mean needs instead of the whole struct. */
double eng_legendre_series(const double *coef, int order, double low, double high,
                           double x);
/* Predictive standard deviation sqrt(1/beta + phi^T A^-1 phi). */
double eng_regressor_std(const struct eng_regressor *r, double x);
/* Average of the predictive mean over [low, high]: the ACE baseline.
 * With the Legendre basis this is coef[0], exactly. */
double eng_regressor_baseline(const struct eng_regressor *r);

/* n evenly spaced points from low to high inclusive (n >= 2). */
void eng_grid(double low, double high, int n, double *out);

/* ---- input gradients (explanations) ----
 * G (n x k) gets d y_output / d x at each row of x (n x k), exactly, by
 * reverse mode; y (n x n_out), if not NULL, the outputs.  Polls the stop
 * check between chunks of rows. */
int eng_gradient(const struct eng_model *m, const double *x, int n, int output, double *G,
                 double *y);

/* Integrated gradients of output `output` for the rows of x (rows x k)
 * from the baseline row `base`, with the quadrature nodes t and weights w
 * (steps of them, from eng_quadrature): attr (rows x k) gets
 * (x - b) * sum_j w_j dy/dx (b + t_j (x - b)).  Exact up to the rule;
 * polls the stop check between chunks. */
int eng_integrated_gradients(const struct eng_model *m, const double *x, int rows,
                             const double *base, const double *t, const double *w, int steps,
                             int output, double *attr);

/* Quadrature on [0, 1] for integrated gradients: n nodes t (ascending)
 * and weights w of the rule.  Gauss-Legendre integrates polynomials of
 * degree 2n - 1 exactly; the trapezoid rule needs n >= 2. */
enum eng_rule {
  ENG_RULE_GAUSS_LEGENDRE,
  ENG_RULE_RIEMANN_LEFT,
  ENG_RULE_RIEMANN_RIGHT,
  ENG_RULE_RIEMANN_MIDDLE,
  ENG_RULE_TRAPEZOID,
};
int eng_quadrature(enum eng_rule rule, int n, double *t, double *w);

/* Connection weights of output `output` (input-independent):
 * olden[i] = (W_L ... W_1)[output, i], Olden's sum over all paths of the
 * products of their weights; garson[i], Garson's relative importance (sums
 * to 1): each first-layer unit j shares |path weight to the output| =
 * (|W_L| ... |W_2|)[output, j] among the inputs in proportion to
 * |W_1[j, i]| (Garson's own formula for one hidden layer, the same rule
 * along absolute path products for deeper networks). */
int eng_connection_weights(const struct eng_model *m, int output, double *olden,
                           double *garson);

#endif
