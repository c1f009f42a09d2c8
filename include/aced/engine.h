/*
 * engine.h -- the numerical engine: networks, interventional expectations
 * (Phase I), causal regressors (Phase II) of Chattopadhyay et al., "Neural
 * Network Attributions: A Causal Perspective" (ICML 2019).
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
#include <stdint.h>
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

/* Exact derivatives of output column `col` of the flattened function
 * (0 <= col < eng_rnn_outputs(r)) by reverse mode (recurrent_grad.c), for
 * n sequences x (n x T*input_size): G (n x T*input_size, or NULL) gets
 * d y / d x_i^t, zero at steps after the output's; without feedback of
 * the teacher-forced function, with feedback of F_t, the output when the
 * steps after t are re-simulated from the head as the interventions do.
 * Fy (n x T, or NULL) gets F_t(x) (without feedback f(x) at every t).
 * 0, -1 (arguments, memory), -3 (one sequence's tape exceeds
 * ACED_LAG_TAPE_MAX) or ENG_STOPPED. */
int eng_rnn_gradient(const struct eng_rnn *r, const double *x, int n, int col, double *G,
                     double *Fy);
/* Integrated gradients of column col along b + t_j (x - b), weights w_j
 * (eng_quadrature): attr (rows x T*input_size); same returns. */
int eng_rnn_integrated_gradients(const struct eng_rnn *r, const double *x, int rows,
                                 const double *base, const double *t, const double *w, int steps,
                                 int col, double *attr);
/* Ablation: attr[t * input_size + i] = F_t(x) - F_t(x with x_i^t = b_i^t)
 * (teacher forced, or re-simulated after t with feedback), zero at steps
 * after the output's; same returns. */
int eng_rnn_ablation(const struct eng_rnn *r, const double *x, int rows, const double *base,
                     int col, double *attr);

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
 * calling thread, eng_taylor, eng_finite_difference, eng_montecarlo,
 * eng_unscented and eng_taylor_diagnose call fn(cls) between grid points (or sample chunks)
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

/* The covariance of eng_montecarlo's means across the grid (they share
 * one set of samples, so their errors are correlated): for outputs
 * o0..o0+n_sel-1, cov (n_sel x n_alpha x n_alpha) gets
 * Cov(E_a, E_b) = sum_n d_na d_nb / (N (N - 1)), d_na the deviation of
 * sample n's output at alpha[a] from E (as eng_montecarlo returned it,
 * n_alpha x n_out); its diagonal is se^2.  Runs the samples again. */
int eng_montecarlo_cov(const struct eng_model *m, int feature, const double *alpha,
                       int n_alpha, const double *E, int o0, int n_sel, double *cov);

/* The unscented transform over the interventional mean and covariance:
 * 2r + 1 sigma points (r the factor's rank) with non-negative weights,
 * so E stays inside the output's range; exact for linear networks and
 * equal to Eq. 4 to second order.  See engine/unscented.c. */
int eng_unscented(const struct eng_model *m, int feature, const double *alpha, int n_alpha,
                  double *E);

/* ---- reliability of taylor for one feature ----
 * Given taylor values E and second-order terms on a grid, judge each output.
 * Thresholds are documented in engine/diagnose.c. */
struct eng_diag {
  int out_of_range;      /* some E outside eng_output_range (with tolerance) */
  double min_value, max_value;
  double second_ratio;   /* max |second| / spread */
  double mc_gap_ratio;   /* max |taylor - montecarlo| / spread on a few
                            grid points; -1 when there are no samples */
  double mc_gap_se;      /* standard error of the montecarlo value at that
                            point / spread; -1 when there are no samples */
  int mc_samples;        /* samples the montecarlo side averaged (a fixed
                            subsample of at most ACED_MC_DIAG_SAMPLES); 0 */
  int reliable;
};
/* diag: n_out entries.  Runs montecarlo on ACED_MC_DIAG_POINTS grid points
 * over a fixed subsample of at most ACED_MC_DIAG_SAMPLES samples when the
 * model has samples. */
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
/* The same fit when the points carry a known error: var (n) its
 * variances (Monte Carlo: se^2), taken as known noise beside a fitted
 * misfit variance 1/beta, so the evidence does not reward orders that
 * chase the estimator's own error.  C (n x n, may be NULL), the errors'
 * covariance across the points (eng_montecarlo_cov: they share samples),
 * makes cov the coefficients' covariance under it, so the band
 * sqrt(1/beta + phi^T cov phi) covers the estimator's error.  var NULL:
 * eng_regressor_fit.  See engine/regressor.c. */
int eng_regressor_fit_known(const double *x, const double *t, const double *var,
                            const double *C, int n, double low, double high, int max_order,
                            struct eng_regressor *r);
double eng_regressor_mean(const struct eng_regressor *r, double x);
/* The same mean from its parts alone: sum_j coef[j] P_j(t(x)), order
 * 0..ENG_ORDER_CAP.  Lets a cache keep a regressor's 100-odd bytes that
 * the mean needs instead of the whole struct. */
double eng_legendre_series(const double *coef, int order, double low, double high,
                           double x);
/* Four eng_legendre_series at once, lane l with coef[l], order[l],
 * low[l], high[l] at x[l], into out[l]: bit for bit the same values (the
 * same operations in the same order), with the four recurrences
 * interleaved so that their divisions overlap instead of waiting on each
 * other.  A cached attribution evaluates one series per feature. */
void eng_legendre_series4(const double *const coef[4], const int order[4], const double low[4],
                          const double high[4], const double x[4], double out[4]);
/* Predictive standard deviation sqrt(1/beta + phi^T A^-1 phi). */
double eng_regressor_std(const struct eng_regressor *r, double x);
/* Average of the predictive mean over [low, high]: the ACE baseline.
 * With the Legendre basis this is coef[0], exactly. */
double eng_regressor_baseline(const struct eng_regressor *r);

/* n evenly spaced points from low to high inclusive (n >= 2). */
void eng_grid(double low, double high, int n, double *out);

/* ---- structural equations among the inputs (scm.c, issue 14) ----
 * Linear equations x_j = c_j + sum_{p in pa(j)} B[p][j] x_p + r_j over a
 * DAG (edges {from, to}; order: a topological order of the k inputs),
 * fitted by least squares on the n samples (kept by reference, with each
 * sample's residuals), or from mean and covariance when n == 0. */
struct eng_scm; /* opaque */
int eng_scm_fit(int k, const int (*edges)[2], int n_edges, const int *order, int n,
                const double *samples, const double *mean, const double *cov,
                struct eng_scm **out, char *errbuf, size_t errlen);
void eng_scm_free(struct eng_scm *s);
/* The fitted coefficient of edge e (in the order given to eng_scm_fit). */
double eng_scm_weight(const struct eng_scm *s, int e);
/* do(x_feature = a) on each of the n rows of x (n x k) into out: the
 * descendants of feature re-generated in topological order from the
 * equations and the row's own residuals, everything else as observed.
 * x == NULL: the fitted samples, with their kept residuals. */
int eng_scm_do(const struct eng_scm *s, int feature, double a, const double *x, int n,
               double *out);
/* t (k): the total effect of x_feature on every input, d x_j / d x_feature
 * under do (1 at feature, 0 off its descendants). */
int eng_scm_total(const struct eng_scm *s, int feature, double *t);
/* A prepared model whose direct effects of `feature` are the total
 * effects of the model `in` (whose samples, if any, must be the ones
 * fitted): the network f o B and inputs u = B^-1 x with B = I + (t - e_i)
 * e_i^T (see scm.c). */
int eng_scm_view(const struct eng_scm *s, const struct eng_model_input *in, int feature,
                 struct eng_model **out, char *errbuf, size_t errlen);

/* ---- learning a DAG among the inputs (learn.c, issue 14) ----
 * Linear SEM, least-squares score + lambda1 |W|_1 under a continuous
 * acyclicity constraint (dagma: log-determinant on a central path;
 * notears: trace of the matrix exponential, augmented Lagrangian), each
 * subproblem solved by liblbfgs's OWL-QN.  X: n x d samples; W (d x d,
 * W[i*d + j] the weight of edge i -> j) gets the DAG after thresholding
 * (|w| < threshold dropped), at most max_parents parents per node (0: no
 * cap) and any cycle left broken at its weakest edge.  standardize: learn
 * on the correlation matrix instead of the covariance.  0, -1 (bad
 * arguments, out of memory) or ENG_STOPPED. */
enum eng_learn_method { ENG_LEARN_DAGMA, ENG_LEARN_NOTEARS };
struct eng_learn_params {
  enum eng_learn_method method;
  double lambda1, threshold;
  int max_parents;
};
struct eng_learn_info {
  double score;     /* 1/(2n) ||X - X W||^2 of the returned W (centred X) */
  long evaluations; /* objective evaluations */
  int pruned;       /* edges dropped by max_parents */
  int cycles_broken;
};
int eng_learn_dag(const double *X, int n, int d, int standardize,
                  const struct eng_learn_params *p, double *W, struct eng_learn_info *info,
                  char *errbuf, size_t errlen);
/* Varsortability (Reisach et al. 2021) of the samples under the DAG W: the
 * share of pairs (i, j) joined by a directed path i ~> j with var(x_i) <
 * var(x_j) (ties count 1/2); NaN when W has no edge.  Near 1, a continuous
 * learner's directions may only follow the variances. */
double eng_varsortability(const double *X, int n, int d, const double *W);

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

/* The same for a bare network (no prepared model): what the
 * randomization test computes on each retrained network. */
int eng_net_connection_weights(const struct eng_net *net, int output, double *olden,
                               double *garson);

/* ---- training (train.c): a small exact trainer for the randomization
 * test.  Mini-batch Adam with PyTorch's rules (see engine/train.c), so a
 * run matches PyTorch float64 given the same initial weights, batches and
 * settings. ---- */
enum eng_loss { ENG_LOSS_MSE, ENG_LOSS_CROSS_ENTROPY };
struct eng_train_opts {
  enum eng_loss loss;
  int epochs, batch_size;
  double learning_rate, weight_decay;
  uint64_t seed; /* the batches: one permutation of the rows per epoch */
};
/* The engine's generator (splitmix64): next 64 bits, a uniform [0, 1)
 * with 53 bits, and a Fisher-Yates permutation of 0..n-1. */
uint64_t eng_rng_next(uint64_t *state);
double eng_rng_uniform(uint64_t *state);
void eng_rng_permutation(uint64_t *state, int n, int *perm);
/* PyTorch nn.Linear's default initialisation, W and b ~ U(-1/sqrt(n_in),
 * 1/sqrt(n_in)), layer by layer, W row-major then b, from the generator
 * seeded with `seed`. */
void eng_init_weights(struct eng_net *net, uint64_t seed);
/* 0 when the network can be trained with `loss`: softmax and log_softmax
 * only last; cross_entropy needs a softmax, log_softmax, identity
 * (logits) or sigmoid (binary) last layer. */
int eng_train_check(const struct eng_net *net, enum eng_loss loss);
/* Train net in place from its current weights on X (n x inputs), Y
 * (n x outputs).  0, ENG_STOPPED (stop check), or -1 (bad arguments, out
 * of memory, or the weights overflowed). */
int eng_train(struct eng_net *net, const double *X, const double *Y, int n,
              const struct eng_train_opts *o);

#endif
