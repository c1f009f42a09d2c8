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
  double worst_all = 0;
  int ok_all = 1, cases = 0;
  for (int h = 0; h < nh; h++) {
    for (int depth = 2; depth <= 3; depth++) {
      /* K -> 5 (-> 4) -> 3, hidden activation `hidden[h]`, output kind
       * cycling through `outs` */
      int dims[4] = {K, 5, depth == 3 ? 4 : 3, 3};
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
             "%s hidden, %s output, %d layers, transformed inputs: integrated gradients = "
             "sum of the path gradients, every rule, 1 to 300 steps (%.1e)",
             eng_act_name(hidden[h]), eng_act_name(ly[depth - 1].act), depth, worst);
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
  tap_ok(ok_all && worst_all < 1e-12 && cases == 2 * nh * 24,
         "%d (network, rule, steps) cases, worst %.1e", cases, worst_all);
  return tap_done();
}
