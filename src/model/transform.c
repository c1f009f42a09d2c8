/*
 * transform.c -- a registration's input transform: its parsing and its
 * folding into the first layer.
 *
 * DESIGN
 *
 * Real pipelines scale their inputs (scikit-learn's StandardScaler,
 * MinMaxScaler) before the network sees them; users want effects in raw
 * units.  A registration may carry
 *
 *   "input_transform": {"shift": [k numbers], "scale": [k numbers]}
 *
 * meaning x_model = (x_raw - shift) / scale, feature by feature (for a
 * StandardScaler: shift = mean_, scale = scale_; for a MinMaxScaler, which
 * computes x * scale_ + min_: shift = -min_ / scale_, scale = 1 / scale_).
 * Either vector may be left out (shift 0, scale 1).  Everything else in
 * the body (feature domains, samples, mean, covariance) and in every query
 * (intervention values, inputs, curves) is in raw units.
 *
 * The transform is folded into layer 0 when the model is prepared
 * (model_engine_net): W' = W diag(1/scale), b' = b - W (shift / scale).
 * That is exact (one rounding per entry), costs nothing per query, and the
 * engine never learns a transform existed.  The canonical form keeps the
 * transform as given (both vectors), not the folded weights, so the
 * digest changes only when a transform is given.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/model.h"
#include "model/internal.h"

/* Read the k finite numbers of input_transform.<name> into dst. */
static enum aced_err read_vector(const json_t *a, const char *name, int k, double *dst,
                                 struct aced_error *err)
{
  if (!json_is_array(a))
    return aced_error_set(err, ACED_E_BAD_TYPE, name, "expected an array of %d numbers", k);
  if (json_array_size(a) != (size_t)k)
    return aced_error_set(err, ACED_E_SHAPE, name,
                          "expected %d values (one per feature), found %zu", k,
                          json_array_size(a));
  for (int i = 0; i < k; i++) {
    const json_t *v = json_array_get(a, (size_t)i);
    char field[64];
    snprintf(field, sizeof field, "%s[%d]", name, i);
    if (!json_is_number(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, field, "expected a number");
    double x = json_number_value(v);
    if (!isfinite(x))
      return aced_error_set(err, ACED_E_NOT_FINITE, field, "numbers must be finite");
    dst[i] = x + 0.0; /* -0.0 becomes 0.0, as everywhere in the canonical form */
  }
  return ACED_OK;
}

enum aced_err model_parse_transform(const json_t *tj, struct aced_model *m,
                                    struct aced_error *err)
{
  const int k = m->n_features;
  const char *key;
  json_t *val;
  enum aced_err rc;

  if (tj == NULL)
    return ACED_OK;
  /* the top-level spec has checked it is an object */
  json_object_foreach((json_t *)tj, key, val) {
    if (strcmp(key, "scale") != 0 && strcmp(key, "shift") != 0) {
      char field[96];
      snprintf(field, sizeof field, "input_transform.%.64s", key);
      return aced_error_set(err, ACED_E_UNKNOWN_FIELD, field,
                            "'%.64s' is not a field of input_transform (scale, shift)", key);
    }
  }
  const json_t *scale = json_object_get(tj, "scale"), *shift = json_object_get(tj, "shift");
  if (scale == NULL && shift == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "input_transform.scale",
                          "an input transform needs scale, shift or both");
  if ((m->tf_scale = malloc((size_t)k * sizeof *m->tf_scale)) == NULL ||
      (m->tf_shift = malloc((size_t)k * sizeof *m->tf_shift)) == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, "", "out of memory");
  for (int i = 0; i < k; i++) {
    m->tf_scale[i] = 1.0;
    m->tf_shift[i] = 0.0;
  }
  if ((scale != NULL &&
       (rc = read_vector(scale, "input_transform.scale", k, m->tf_scale, err)) != ACED_OK) ||
      (shift != NULL &&
       (rc = read_vector(shift, "input_transform.shift", k, m->tf_shift, err)) != ACED_OK))
    return rc;
  for (int i = 0; i < k; i++) {
    char field[64];
    snprintf(field, sizeof field, "input_transform.scale[%d]", i);
    if (m->tf_scale[i] == 0.0)
      return aced_error_set(err, ACED_E_INVALID, field,
                            "the scale of feature '%s' is 0: x_model = (x - shift) / scale "
                            "needs a non-zero scale",
                            m->features[i].name);
    /* the folded layer must be finite too */
    if (!isfinite(1.0 / m->tf_scale[i]) || !isfinite(m->tf_shift[i] / m->tf_scale[i]))
      return aced_error_set(err, ACED_E_NOT_FINITE, field,
                            "the scale of feature '%s' (%.17g) is too small: 1/scale or "
                            "shift/scale overflows",
                            m->features[i].name, m->tf_scale[i]);
  }
  m->has_transform = 1;
  return ACED_OK;
}

int model_engine_net(const struct aced_model *m, struct eng_net *out,
                     struct eng_layer **layers_out)
{
  *layers_out = NULL;
  *out = m->net;
  if (!m->has_transform)
    return 0;
  const struct eng_layer *L0 = &m->net.layers[0];
  const int n_in = L0->n_in, n_out = L0->n_out;
  struct eng_layer *ls = malloc((size_t)m->net.n_layers * sizeof *ls);
  if (ls == NULL)
    return -1;
  memcpy(ls, m->net.layers, (size_t)m->net.n_layers * sizeof *ls);
  ls[0].W = malloc((size_t)n_in * (size_t)n_out * sizeof *ls[0].W);
  ls[0].b = malloc((size_t)n_out * sizeof *ls[0].b);
  if (ls[0].W == NULL || ls[0].b == NULL) {
    free(ls[0].W);
    free(ls[0].b);
    free(ls);
    return -1;
  }
  /* z = W (x - shift) / scale + b = W' x + b' */
  for (int u = 0; u < n_out; u++) {
    double acc = L0->b[u];
    for (int j = 0; j < n_in; j++) {
      double w = L0->W[(size_t)u * n_in + j];
      ls[0].W[(size_t)u * n_in + j] = w / m->tf_scale[j];
      acc -= w * (m->tf_shift[j] / m->tf_scale[j]);
    }
    ls[0].b[u] = acc;
  }
  out->layers = ls;
  *layers_out = ls;
  return 0;
}

void model_engine_net_free(struct eng_layer *layers)
{
  if (layers == NULL)
    return;
  free(layers[0].W);
  free(layers[0].b);
  free(layers);
}
