/*
 * test_engine_ig.c -- eng_integrated_gradients (its affine-first-layer
 * shortcut: the first pre-activation interpolated between two products
 * per row, the weighted first-layer deltas of a row summed before one
 * product with W1) against the plain computation: eng_gradient at every
 * node of every path, weighted and summed.
 *
 * The networks are random, with every activation in the hidden layers and
 * every kind of output, an input transform (random scale and shift, folded
 * into the first layer by the model's own model_engine_net), every
 * quadrature rule and several numbers of steps, with rows x steps across
 * several chunks and rows split between chunks.  The plain side does not
 * use the folded network: it maps each raw path point through the
 * transform by hand, takes the gradient of the raw network there and
 * applies the chain rule (1 / scale), so a fold that forgot the scale or
 * the shift, or a shortcut that forgot either, fails here.
 *
 * The plain side shares the layers after the first with the shortcut, so
 * it is itself checked first against the chain rule written out with
 * every activation and its derivative in closed form (libm), on 3-layer
 * networks (a bias or backward rule wrong in vmath.c fails there).
 * tests/e2e/test_explanations.py checks both against PyTorch.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aced/engine.h"
#include "aced/model.h"
#include "tap.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static double unif(void) /* in [-1, 1) */
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) / 4503599627370496.0 - 1.0;
}

static struct eng_model *prepare(const struct eng_net *net, int k)
{
  double *mean = calloc((size_t)k, sizeof *mean), *cov = calloc((size_t)k * k, sizeof *cov);
  for (int i = 0; i < k; i++)
    cov[(size_t)i * k + i] = 1.0;
  struct eng_model_input in = {.net = net, .k = k, .mean = mean, .cov = cov};
  struct eng_model *m = NULL;
  char ebuf[128];
  int rc = eng_model_prepare(&in, &m, ebuf, sizeof ebuf);
  free(mean);
  free(cov);
  return rc == 0 ? m : NULL;
}

/* f(z) and f'(z) of the element-wise activations, from libm: the closed
 * forms the forward and backward rules (gradient.c, vmath.c) must agree
 * with. */
static double act(enum eng_act a, double z)
{
  switch (a) {
  case ENG_ACT_RELU:
    return z > 0 ? z : 0;
  case ENG_ACT_LEAKY_RELU:
    return z > 0 ? z : 0.01 * z;
  case ENG_ACT_ELU:
    return z > 0 ? z : expm1(z);
  case ENG_ACT_SIGMOID:
    return 1 / (1 + exp(-z));
  case ENG_ACT_TANH:
    return tanh(z);
  case ENG_ACT_SOFTPLUS:
    return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
  case ENG_ACT_GELU:
    return 0.5 * z * erfc(-z / sqrt(2.0));
  default:
    return z;
  }
}

static double dact(enum eng_act a, double z)
{
  switch (a) {
  case ENG_ACT_RELU:
    return z > 0 ? 1 : 0;
  case ENG_ACT_LEAKY_RELU:
    return z > 0 ? 1 : 0.01;
  case ENG_ACT_ELU:
    return z > 0 ? 1 : exp(z);
  case ENG_ACT_SIGMOID: {
    double sg = 1 / (1 + exp(-z));
    return sg * (1 - sg);
  }
  case ENG_ACT_TANH:
    return 1 - tanh(z) * tanh(z);
  case ENG_ACT_SOFTPLUS:
    return 1 / (1 + exp(-z));
  case ENG_ACT_GELU:
    return 0.5 * erfc(-z / sqrt(2.0)) + z * exp(-0.5 * z * z) / sqrt(2 * M_PI);
  default:
    return 1;
  }
}

static int stop_now(void *cls)
{
  (void)cls;
  return 1;
}

/* The largest |attr - plain| over rows x k, relative to 1 + max |plain|;
 * -1 when a call failed.  raw: the network in model units; fold: the
 * engine model of the folded network (raw units); scale, shift: the
 * transform. */
static double compare(const struct eng_model *raw, const struct eng_model *fold, int k,
                      const double *scale, const double *shift, const double *X, int rows,
                      const double *B, enum eng_rule rule, int steps, int output)
{
  double *t = malloc(sizeof(double) * (size_t)steps), *w = malloc(sizeof(double) * (size_t)steps);
  double *A = malloc(sizeof(double) * (size_t)rows * k);
  double *P = malloc(sizeof(double) * (size_t)steps * k);
  double *G = malloc(sizeof(double) * (size_t)steps * k);
  double worst = -1;
  if (eng_quadrature(rule, steps, t, w) != 0 ||
      eng_integrated_gradients(fold, X, rows, B, t, w, steps, output, A) != 0)
    goto done;
  double err = 0, big = 0;
  for (int r = 0; r < rows; r++) {
    const double *x = X + (size_t)r * k;
    for (int j = 0; j < steps; j++)
      for (int i = 0; i < k; i++)
        P[(size_t)j * k + i] = ((B[i] + t[j] * (x[i] - B[i])) - shift[i]) / scale[i];
    if (eng_gradient(raw, P, steps, output, G, NULL) != 0)
      goto done;
    for (int i = 0; i < k; i++) {
      double acc = 0;
      for (int j = 0; j < steps; j++)
        acc += w[j] * G[(size_t)j * k + i];
      double want = (x[i] - B[i]) * acc / scale[i];
      err = fmax(err, fabs(A[(size_t)r * k + i] - want));
      big = fmax(big, fabs(want));
    }
  }
  worst = err / (1 + big);
done:
  free(t);
  free(w);
  free(A);
  free(P);
  free(G);
  return worst;
}

int main(void)
{
  eng_init();
  static const enum eng_act hidden[] = {ENG_ACT_IDENTITY, ENG_ACT_RELU, ENG_ACT_LEAKY_RELU,
                                        ENG_ACT_ELU, ENG_ACT_SIGMOID, ENG_ACT_TANH,
                                        ENG_ACT_SOFTPLUS, ENG_ACT_GELU};
  static const enum eng_act outs[] = {ENG_ACT_IDENTITY, ENG_ACT_SIGMOID, ENG_ACT_SOFTMAX,
                                      ENG_ACT_LOG_SOFTMAX, ENG_ACT_TANH};
  static const enum eng_rule rules[] = {ENG_RULE_GAUSS_LEGENDRE, ENG_RULE_RIEMANN_LEFT,
                                        ENG_RULE_RIEMANN_RIGHT, ENG_RULE_RIEMANN_MIDDLE,
                                        ENG_RULE_TRAPEZOID};
  /* rows x steps: one pair; a few; 1024 pairs (whole chunks of
   * gradient.c's 256, or one of an older 1024); rows split across chunk
   * boundaries (9 x 300 = 2700) */
  static const int steps_rows[][2] = {{1, 1}, {2, 5}, {7, 3}, {64, 16}, {300, 9}};
  const int nh = (int)(sizeof hidden / sizeof *hidden);
  enum { K = 6 };
  /* The plain side's own rules against closed forms: for
   * y = W3 f(W2 f(W1 x + b1) + b2) + b3, with g2 = W3[o] * f'(z2),
   * d y_o / d x = W1^T ((W2^T g2) * f'(z1)). */
  for (int h = 0; h < nh; h++) {
    enum { H1 = 5, H2 = 4, NO = 3, N = 40 };
    double W1[H1 * K], b1[H1], W2[H2 * H1], b2[H2], W3[NO * H2], b3[NO], X[N * K], G[N * K];
    for (int e = 0; e < H1 * K; e++)
      W1[e] = unif();
    for (int e = 0; e < H2 * H1; e++)
      W2[e] = unif();
    for (int e = 0; e < NO * H2; e++)
      W3[e] = unif();
    for (int u = 0; u < H1; u++)
      b1[u] = 0.3 * unif();
    for (int u = 0; u < H2; u++)
      b2[u] = 0.3 * unif();
    for (int u = 0; u < NO; u++)
      b3[u] = 0.3 * unif();
    for (int e = 0; e < N * K; e++)
      X[e] = 2 * unif();
    enum eng_act f = hidden[h];
    struct eng_layer ly[3] = {{.n_in = K, .n_out = H1, .W = W1, .b = b1, .act = f},
                              {.n_in = H1, .n_out = H2, .W = W2, .b = b2, .act = f},
                              {.n_in = H2, .n_out = NO, .W = W3, .b = b3, .act = ENG_ACT_IDENTITY}};
    struct eng_net net = {.n_layers = 3, .layers = ly};
    struct eng_model *m = prepare(&net, K);
    int o = h % NO, ok = m && eng_gradient(m, X, N, o, G, NULL) == 0;
    double worst = 0;
    for (int r = 0; r < N && ok; r++) {
      double z1[H1], a1[H1], g1[H1], g2[H2];
      for (int u = 0; u < H1; u++) {
        z1[u] = b1[u];
        for (int i = 0; i < K; i++)
          z1[u] += W1[u * K + i] * X[r * K + i];
        a1[u] = act(f, z1[u]);
      }
      for (int v = 0; v < H2; v++) {
        double z2 = b2[v];
        for (int u = 0; u < H1; u++)
          z2 += W2[v * H1 + u] * a1[u];
        g2[v] = W3[o * H2 + v] * dact(f, z2);
      }
      for (int u = 0; u < H1; u++) {
        g1[u] = 0;
        for (int v = 0; v < H2; v++)
          g1[u] += W2[v * H1 + u] * g2[v];
        g1[u] *= dact(f, z1[u]);
      }
      for (int i = 0; i < K; i++) {
        double want = 0;
        for (int u = 0; u < H1; u++)
          want += W1[u * K + i] * g1[u];
        worst = fmax(worst, fabs(G[r * K + i] - want));
      }
    }
    tap_ok(ok && worst < 1e-13,
           "%s: eng_gradient of a 3-layer network = its chain rule with f, f' in closed form (%.1e)",
           eng_act_name(f), worst);
    eng_model_free(m);
  }
  double worst_all = 0;
  int ok_all = 1, cases = 0;
  for (int h = 0; h < nh; h++) {
    for (int depth = 1; depth <= 3; depth++) {
      /* K -> 3 (one layer: the output kind alone); K -> 5 (-> 4) -> 3,
       * hidden activation `hidden[h]`; the output kind cycles through
       * `outs` */
      int dims[4] = {K, depth == 1 ? 3 : 5, depth == 3 ? 4 : 3, 3};
      struct eng_layer ly[3];
      for (int l = 0; l < depth; l++) {
        int ni = dims[l], no = dims[l + 1];
        ly[l].n_in = ni;
        ly[l].n_out = no;
        ly[l].act = l == depth - 1 ? outs[(h + depth) % 5] : hidden[h];
        ly[l].W = malloc(sizeof(double) * (size_t)ni * no);
        ly[l].b = malloc(sizeof(double) * (size_t)no);
        for (int e = 0; e < ni * no; e++)
          ly[l].W[e] = 1.2 * unif();
        for (int u = 0; u < no; u++)
          ly[l].b[u] = 0.4 * unif();
      }
      struct aced_model am;
      memset(&am, 0, sizeof am);
      am.n_features = K;
      am.net = (struct eng_net){.n_layers = depth, .layers = ly};
      double scale[K], shift[K], X[300 * K], B[K];
      for (int i = 0; i < K; i++) {
        /* scales of both signs, far from 1, so that forgetting one shows */
        scale[i] = (i % 2 ? -1 : 1) * (0.3 + 2.5 * (unif() + 1));
        shift[i] = 3 * unif();
        B[i] = shift[i] + scale[i] * 0.5 * unif();
      }
      for (int e = 0; e < 300 * K; e++)
        X[e] = shift[e % K] + scale[e % K] * 1.5 * unif();
      am.has_transform = 1;
      am.tf_scale = scale;
      am.tf_shift = shift;
      struct eng_net folded;
      struct eng_layer *fl = NULL;
      struct eng_model *raw = prepare(&am.net, K), *fold = NULL;
      if (model_engine_net(&am, &folded, &fl) == 0)
        fold = prepare(&folded, K);
      int ok = raw && fold;
      double worst = 0;
      for (int r = 0; r < 5 && ok; r++)
        for (int s = 0; s < 5 && ok; s++) {
          int steps = steps_rows[s][0], rows = steps_rows[s][1];
          if (rules[r] == ENG_RULE_TRAPEZOID && steps < 2)
            continue;
          double e = compare(raw, fold, K, scale, shift, X, rows, B, rules[r], steps,
                             (r + s) % 3);
          ok &= e >= 0;
          worst = fmax(worst, e);
          cases++;
        }
      tap_ok(ok && worst < 1e-12,
             "%s hidden, %s output, %d layer%s, transformed inputs: integrated gradients = "
             "sum of the path gradients, every rule, 1 to 300 steps (%.1e)",
             depth > 1 ? eng_act_name(hidden[h]) : "no", eng_act_name(ly[depth - 1].act), depth,
             depth > 1 ? "s" : "", worst);
      ok_all &= ok;
      worst_all = fmax(worst_all, worst);
      if (h == 4 && depth == 3) {
        /* the stop check is polled between chunks */
        double t[64], w[64], A[16 * K];
        eng_quadrature(ENG_RULE_GAUSS_LEGENDRE, 64, t, w);
        eng_set_stop(stop_now, NULL);
        tap_ok(eng_integrated_gradients(fold, X, 16, B, t, w, 64, 0, A) == ENG_STOPPED,
               "the stop check stops integrated gradients");
        eng_set_stop(NULL, NULL);
      }
      eng_model_free(raw);
      eng_model_free(fold);
      model_engine_net_free(fl);
      for (int l = 0; l < depth; l++) {
        free(ly[l].W);
        free(ly[l].b);
      }
    }
  }
  tap_ok(ok_all && worst_all < 1e-12 && cases == 3 * nh * 24,
         "%d (network, rule, steps) cases, worst %.1e", cases, worst_all);
  return tap_done();
}
