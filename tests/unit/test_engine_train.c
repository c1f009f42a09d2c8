/*
 * test_engine_train.c -- the trainer (engine/train.c) against PyTorch
 * float64 (tests/data/train_ref.json, written by tools/gen_train_ref.py):
 * the initial weights drawn from a seed, then a few epochs of mini-batch
 * Adam with the same batches; every weight to 1e-10.  Also: the same seed
 * gives the same run, and a stop check stops it.  The reference is read
 * from $ACED_SRCDIR (set by make check) or the current directory.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "aced/engine.h"
#include "engine/test_load.h"
#include "tap.h"

static int stop_now(void *cls)
{
  (void)cls;
  return 1;
}

/* The largest difference between net's weights and ref ([[W, b], ...]). */
static double weights_diff(const struct eng_net *net, json_t *ref)
{
  double worst = 0.0;
  for (int l = 0; l < net->n_layers; l++) {
    const struct eng_layer *ly = &net->layers[l];
    json_t *pair = json_array_get(ref, (size_t)l);
    double *W = tl_matrix(json_array_get(pair, 0), ly->n_out, ly->n_in);
    double *b = tl_vector(json_array_get(pair, 1), ly->n_out);
    for (size_t t = 0; t < (size_t)ly->n_out * ly->n_in; t++)
      worst = fmax(worst, fabs(W[t] - ly->W[t]));
    for (int j = 0; j < ly->n_out; j++)
      worst = fmax(worst, fabs(b[j] - ly->b[j]));
    free(W);
    free(b);
  }
  return worst;
}

static void net_alloc(struct eng_net *net, json_t *sizes, json_t *acts)
{
  net->n_layers = (int)json_array_size(sizes) - 1;
  net->layers = calloc((size_t)net->n_layers, sizeof *net->layers);
  for (int l = 0; l < net->n_layers; l++) {
    struct eng_layer *ly = &net->layers[l];
    ly->n_in = (int)json_integer_value(json_array_get(sizes, (size_t)l));
    ly->n_out = (int)json_integer_value(json_array_get(sizes, (size_t)l + 1));
    ly->W = calloc((size_t)ly->n_out * ly->n_in, sizeof(double));
    ly->b = calloc((size_t)ly->n_out, sizeof(double));
    eng_act_from_name(json_string_value(json_array_get(acts, (size_t)l)), &ly->act);
  }
}

static void net_free(struct eng_net *net)
{
  for (int l = 0; l < net->n_layers; l++) {
    free(net->layers[l].W);
    free(net->layers[l].b);
  }
  free(net->layers);
}

int main(void)
{
  eng_init();
  const char *src = getenv("ACED_SRCDIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/data/train_ref.json", src ? src : ".");
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (!tap_ok(root != NULL, "load %s", path))
    return tap_done();
  json_t *cases = json_object_get(root, "cases");
  for (size_t c = 0; c < json_array_size(cases); c++) {
    json_t *cs = json_array_get(cases, c);
    const char *name = json_string_value(json_object_get(cs, "name"));
    json_t *sizes = json_object_get(cs, "sizes");
    struct eng_net net;
    net_alloc(&net, sizes, json_object_get(cs, "activations"));
    int n = (int)json_array_size(json_object_get(cs, "X"));
    int k = net.layers[0].n_in, no = net.layers[net.n_layers - 1].n_out;
    double *X = tl_matrix(json_object_get(cs, "X"), n, k);
    double *Y = tl_matrix(json_object_get(cs, "Y"), n, no);
    struct eng_train_opts o = {
        .loss = strcmp(json_string_value(json_object_get(cs, "loss")), "mse") == 0
                    ? ENG_LOSS_MSE
                    : ENG_LOSS_CROSS_ENTROPY,
        .epochs = (int)json_integer_value(json_object_get(cs, "epochs")),
        .batch_size = (int)json_integer_value(json_object_get(cs, "batch_size")),
        .learning_rate = json_number_value(json_object_get(cs, "learning_rate")),
        .weight_decay = json_number_value(json_object_get(cs, "weight_decay")),
        .seed = (uint64_t)json_integer_value(json_object_get(cs, "batch_seed"))};
    eng_init_weights(&net, (uint64_t)json_integer_value(json_object_get(cs, "init_seed")));
    double d0 = weights_diff(&net, json_object_get(cs, "initial"));
    tap_ok(d0 == 0.0, "%s: initial weights from the seed are exactly the reference's", name);
    int rc = eng_train(&net, X, Y, n, &o);
    double d1 = weights_diff(&net, json_object_get(cs, "final"));
    double moved = weights_diff(&net, json_object_get(cs, "initial"));
    tap_ok(rc == 0 && d1 <= 1e-10 && moved > 1e-4,
           "%s: after %d epochs of Adam the weights agree with PyTorch float64 (max diff %.2e, "
           "moved %.2e)",
           name, o.epochs, d1, moved);
    if (c == 0) {
      /* the same seeds, the same run, bit for bit */
      struct eng_net again;
      net_alloc(&again, sizes, json_object_get(cs, "activations"));
      eng_init_weights(&again, (uint64_t)json_integer_value(json_object_get(cs, "init_seed")));
      eng_train(&again, X, Y, n, &o);
      int same = 1;
      for (int l = 0; l < net.n_layers; l++)
        same &= memcmp(net.layers[l].W, again.layers[l].W,
                       sizeof(double) * (size_t)net.layers[l].n_out * net.layers[l].n_in) == 0;
      tap_ok(same, "%s: reproducible for one seed", name);
      eng_set_stop(stop_now, NULL);
      tap_ok(eng_train(&again, X, Y, n, &o) == ENG_STOPPED, "a stop check stops training");
      eng_set_stop(NULL, NULL);
      net_free(&again);
    }
    free(X);
    free(Y);
    net_free(&net);
  }
  /* what cannot be trained is refused */
  struct eng_layer bad[2] = {{.n_in = 2, .n_out = 2, .act = ENG_ACT_SOFTMAX},
                             {.n_in = 2, .n_out = 1, .act = ENG_ACT_IDENTITY}};
  struct eng_net badnet = {.n_layers = 2, .layers = bad};
  tap_ok(eng_train_check(&badnet, ENG_LOSS_MSE) != 0, "softmax before the last layer: refused");
  bad[0].act = ENG_ACT_TANH;
  bad[1].act = ENG_ACT_RELU;
  tap_ok(eng_train_check(&badnet, ENG_LOSS_CROSS_ENTROPY) != 0,
         "cross_entropy on a relu output: refused");
  tap_ok(eng_train_check(&badnet, ENG_LOSS_MSE) == 0, "mse on a relu output: accepted");
  json_decref(root);
  return tap_done();
}
