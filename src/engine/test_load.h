/*
 * test_load.h -- for the engine's unit tests only (never included by the
 * engine library, which knows no JSON): load a model registration JSON
 * (network, data) into engine structures with jansson.
 */
#ifndef ACED_ENGINE_TEST_LOAD_H
#define ACED_ENGINE_TEST_LOAD_H

#include <jansson.h>
#include <stdlib.h>
#include "aced/engine.h"

struct tl_model {
  json_t *root;
  struct eng_net net;
  int k, n_out, n_samples;
  double *mean, *cov, *samples;
  double *low, *high;
};

static inline double *tl_matrix(json_t *a, int rows, int cols)
{
  double *m = malloc((size_t)(rows > 0 ? rows : 1) * (size_t)(cols > 0 ? cols : 1) * sizeof *m);
  for (int i = 0; i < rows; i++) {
    json_t *row = json_array_get(a, (size_t)i);
    for (int j = 0; j < cols; j++)
      m[(size_t)i * cols + j] = json_number_value(json_array_get(row, (size_t)j));
  }
  return m;
}

static inline double *tl_vector(json_t *a, int n)
{
  double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
  for (int i = 0; i < n; i++)
    v[i] = json_number_value(json_array_get(a, (size_t)i));
  return v;
}

/* Returns 0 on success. */
static inline int tl_load(const char *path, struct tl_model *t)
{
  json_error_t err;
  t->root = json_load_file(path, 0, &err);
  if (!t->root)
    return -1;
  json_t *layers = json_object_get(json_object_get(t->root, "network"), "layers");
  json_t *feats = json_object_get(t->root, "features");
  t->k = (int)json_array_size(feats);
  t->net.n_layers = (int)json_array_size(layers);
  if (t->k < 1 || t->net.n_layers < 1)
    return -1;
  t->net.layers = calloc((size_t)t->net.n_layers, sizeof *t->net.layers);
  int n_in = t->k;
  for (int l = 0; l < t->net.n_layers; l++) {
    json_t *ly = json_array_get(layers, (size_t)l);
    struct eng_layer *e = &t->net.layers[l];
    json_t *w = json_object_get(ly, "weights");
    e->n_in = n_in;
    e->n_out = (int)json_array_size(w);
    e->W = tl_matrix(w, e->n_out, e->n_in);
    e->b = tl_vector(json_object_get(ly, "bias"), e->n_out);
    if (eng_act_from_name(json_string_value(json_object_get(ly, "activation")),
                          &e->act) != 0)
      return -1;
    n_in = e->n_out;
  }
  t->n_out = n_in;
  t->low = malloc((size_t)t->k * sizeof *t->low);
  t->high = malloc((size_t)t->k * sizeof *t->high);
  for (int i = 0; i < t->k; i++) {
    json_t *f = json_array_get(feats, (size_t)i);
    t->low[i] = json_number_value(json_object_get(f, "low"));
    t->high[i] = json_number_value(json_object_get(f, "high"));
  }
  json_t *data = json_object_get(t->root, "data");
  t->mean = tl_vector(json_object_get(data, "mean"), t->k);
  t->cov = tl_matrix(json_object_get(data, "covariance"), t->k, t->k);
  json_t *s = json_object_get(data, "samples");
  t->n_samples = (int)json_array_size(s);
  t->samples = tl_matrix(s, t->n_samples, t->k);
  return 0;
}

static inline void tl_free(struct tl_model *t)
{
  if (t->net.layers)
    for (int l = 0; l < t->net.n_layers; l++) {
      free(t->net.layers[l].W);
      free(t->net.layers[l].b);
    }
  free(t->net.layers);
  free(t->mean);
  free(t->cov);
  free(t->samples);
  free(t->low);
  free(t->high);
  json_decref(t->root);
}

static inline int tl_prepare(const struct tl_model *t, int with_samples,
                             double share, struct eng_model **m)
{
  char ebuf[256];
  struct eng_model_input in = {.net = &t->net, .k = t->k, .mean = t->mean,
                               .cov = t->cov,
                               .n_samples = with_samples ? t->n_samples : 0,
                               .samples = with_samples ? t->samples : NULL,
                               .lowrank_share = share};
  return eng_model_prepare(&in, m, ebuf, sizeof ebuf);
}

#endif
