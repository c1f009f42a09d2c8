/*
 * recurrent.c -- the recurrent part of a registration (network.type
 * "recurrent", issue #12): sequence_length, the cells' weights in
 * PyTorch's layout and gate order, the feedforward head, output_at,
 * feedback, and data.sequences (or mean and covariance over the flattened
 * inputs).  model.c parses name, description, features and outputs and
 * hands the rest here.
 *
 * The parsed model is flattened over time (model.h): every service that
 * works on features and outputs by index works unchanged on (feature,
 * timestep) and (output, step) pairs.  Every shape error names the field
 * and the shape expected ("network.layers[1].weight_hh": expected a 24 x 8
 * matrix, ...).  The canonical form (canonical.c) always writes the stacked
 * "layers" form, with zero biases where none were given.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/model.h"
#include "model/internal.h"

static const struct field_spec rnn_spec[] = {
    {"type", SPEC_STRING, 1},     {"cell", SPEC_STRING, 1},
    {"input_size", SPEC_NUMBER, 1}, {"hidden_size", SPEC_NUMBER, 1},
    {"weight_ih", SPEC_ARRAY, 0}, {"weight_hh", SPEC_ARRAY, 0},
    {"bias_ih", SPEC_ARRAY, 0},   {"bias_hh", SPEC_ARRAY, 0},
    {"layers", SPEC_ARRAY, 0},    {"head", SPEC_ARRAY, 1},
    {"output_at", SPEC_STRING, 0}, {"feedback", SPEC_BOOL, 0},
};
/* the single-layer keys, which are also the keys of a stacked layer */
static const struct field_spec cell_spec[] = {
    {"weight_ih", SPEC_ARRAY, 1},
    {"weight_hh", SPEC_ARRAY, 1},
    {"bias_ih", SPEC_ARRAY, 0},
    {"bias_hh", SPEC_ARRAY, 0},
};
static const struct field_spec seq_data_spec[] = {
    {"sequences", SPEC_ARRAY, 0},
    {"mean", SPEC_ARRAY, 0},
    {"covariance", SPEC_ARRAY, 0},
};

static enum aced_err oom(struct aced_error *err)
{
  return aced_error_set(err, ACED_E_INTERNAL, "", "out of memory");
}

int model_is_recurrent(const json_t *body)
{
  const json_t *t = json_object_get(json_object_get(body, "network"), "type");
  return json_is_string(t) && strcmp(json_string_value(t), "recurrent") == 0;
}

void model_recurrent_free(struct aced_model *m)
{
  struct eng_rnn *r = m->rnn;
  if (r == NULL)
    return;
  for (int l = 0; r->layers && l < r->n_layers; l++) {
    free(r->layers[l].W_ih);
    free(r->layers[l].W_hh);
    free(r->layers[l].b_ih);
    free(r->layers[l].b_hh);
  }
  free(r->layers);
  free(r); /* the head is m->net's */
  m->rnn = NULL;
}

/* A positive integer field at `path` no larger than max. */
static enum aced_err read_count(const json_t *v, const char *path, long max, int *out,
                                struct aced_error *err)
{
  double x = json_number_value(v);
  if (!json_is_integer(v) && !(isfinite(x) && x == floor(x)))
    return aced_error_set(err, ACED_E_INVALID, path, "expected a whole number, found %g", x);
  if (x < 1 || x > (double)max)
    return aced_error_set(err, ACED_E_LIMIT, path, "must be between 1 and %ld, found %g", max, x);
  *out = (int)x;
  return ACED_OK;
}

/* A rows x cols matrix at `path` (its expected shape named in every
 * error) into a new array *dst. */
static enum aced_err read_shaped(const json_t *a, const char *path, int rows, int cols,
                                 const char *what, double **dst, struct aced_error *err)
{
  enum aced_err rc;
  if (json_array_size(a) != (size_t)rows)
    return aced_error_set(err, ACED_E_SHAPE, path, "expected a %d x %d matrix (%s), found %zu rows",
                          rows, cols, what, json_array_size(a));
  char why[160];
  snprintf(why, sizeof why, "a %d x %d matrix: %s", rows, cols, what);
  if ((rc = model_check_rows(a, path, (size_t)cols, why, err)) != ACED_OK)
    return rc;
  if ((*dst = malloc((size_t)rows * cols * sizeof **dst)) == NULL)
    return oom(err);
  return model_read_matrix(a, path, (size_t)cols, *dst, err);
}

static enum aced_err read_bias(const json_t *a, const char *path, int n, const char *what,
                               double **dst, struct aced_error *err)
{
  if ((*dst = calloc((size_t)n, sizeof **dst)) == NULL)
    return oom(err);
  if (a == NULL) /* bias=False in PyTorch: zeros */
    return ACED_OK;
  if (json_array_size(a) != (size_t)n)
    return aced_error_set(err, ACED_E_SHAPE, path, "expected %d values (%s), found %zu", n, what,
                          json_array_size(a));
  return model_read_row(a, path, -1, *dst, err);
}

/* One cell layer (the network object itself, or layers[l]). */
static enum aced_err parse_cell(const json_t *o, const char *path, int l, struct aced_model *m,
                                struct aced_error *err)
{
  struct eng_rnn *r = m->rnn;
  struct eng_rnn_layer *L = &r->layers[l];
  const int H = r->hidden_size, gates = eng_cell_gates(r->cell), G = gates * H;
  char what[128], f[96];
  enum aced_err rc = ACED_OK;

  if (l > 0 || strcmp(path, "network") != 0)
    rc = model_check_object(o, path, cell_spec, NSPEC(cell_spec), err);
  else if (json_object_get(o, "weight_ih") == NULL || json_object_get(o, "weight_hh") == NULL)
    rc = aced_error_set(err, ACED_E_MISSING_FIELD,
                        json_object_get(o, "weight_ih") ? "network.weight_hh" : "network.weight_ih",
                        "a single-layer network needs weight_ih and weight_hh (or 'layers')");
  if (rc != ACED_OK)
    return rc;
  L->n_in = l ? H : r->input_size;
  long params = (long)G * (L->n_in + H + 2);
  if (params > ACED_MAX_PARAMS - m->n_params)
    return aced_error_set(err, ACED_E_LIMIT, path,
                          "the network has more than %ld parameters by this layer",
                          ACED_MAX_PARAMS);
  m->n_params += params;
  snprintf(what, sizeof what, "%d gates x hidden_size %d rows, %s %d columns", gates, H,
           l ? "hidden_size" : "input_size", L->n_in);
  snprintf(f, sizeof f, "%s.weight_ih", path);
  if ((rc = read_shaped(json_object_get(o, "weight_ih"), f, G, L->n_in, what, &L->W_ih, err)) !=
      ACED_OK)
    return rc;
  snprintf(what, sizeof what, "%d gates x hidden_size %d rows, hidden_size %d columns", gates, H,
           H);
  snprintf(f, sizeof f, "%s.weight_hh", path);
  if ((rc = read_shaped(json_object_get(o, "weight_hh"), f, G, H, what, &L->W_hh, err)) != ACED_OK)
    return rc;
  snprintf(what, sizeof what, "%d gates x hidden_size %d", gates, H);
  snprintf(f, sizeof f, "%s.bias_ih", path);
  if ((rc = read_bias(json_object_get(o, "bias_ih"), f, G, what, &L->b_ih, err)) != ACED_OK)
    return rc;
  snprintf(f, sizeof f, "%s.bias_hh", path);
  return read_bias(json_object_get(o, "bias_hh"), f, G, what, &L->b_hh, err);
}

static enum aced_err parse_rnn(const json_t *nj, struct aced_model *m, struct aced_error *err)
{
  enum aced_err rc;
  if ((rc = model_check_object(nj, "network", rnn_spec, NSPEC(rnn_spec), err)) != ACED_OK)
    return rc;
  struct eng_rnn *r = m->rnn = calloc(1, sizeof *m->rnn);
  if (r == NULL)
    return oom(err);
  const char *cell = json_string_value(json_object_get(nj, "cell"));
  if (eng_cell_from_name(cell, &r->cell) != 0)
    return aced_error_set(err, ACED_E_INVALID, "network.cell",
                          "unknown cell '%.64s' (known: gru, lstm, rnn_tanh, rnn_relu)", cell);
  if ((rc = read_count(json_object_get(nj, "input_size"), "network.input_size", ACED_MAX_INPUTS,
                       &r->input_size, err)) != ACED_OK ||
      (rc = read_count(json_object_get(nj, "hidden_size"), "network.hidden_size",
                       ACED_MAX_UNITS / 4, &r->hidden_size, err)) != ACED_OK)
    return rc;
  if (r->input_size != m->n_features)
    return aced_error_set(err, ACED_E_SHAPE, "network.input_size",
                          "expected %d (one per feature), found %d", m->n_features, r->input_size);
  const json_t *out_at = json_object_get(nj, "output_at");
  if (out_at != NULL && strcmp(json_string_value(out_at), "last") != 0 &&
      strcmp(json_string_value(out_at), "every") != 0)
    return aced_error_set(err, ACED_E_INVALID, "network.output_at",
                          "expected 'last' or 'every', found '%.64s'", json_string_value(out_at));
  r->every = out_at != NULL && strcmp(json_string_value(out_at), "every") == 0;
  r->feedback = json_is_true(json_object_get(nj, "feedback"));

  const json_t *layers = json_object_get(nj, "layers");
  if (layers != NULL) {
    static const char *const single[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    for (int i = 0; i < 4; i++)
      if (json_object_get(nj, single[i]) != NULL)
        return aced_error_set(err, ACED_E_INVALID, "network.layers",
                              "give either 'layers' (stacked cells) or the single-layer keys "
                              "(network.%s), not both",
                              single[i]);
    size_t n = json_array_size(layers);
    if (n == 0 || n > ACED_MAX_LAYERS)
      return aced_error_set(err, n ? ACED_E_LIMIT : ACED_E_SHAPE, "network.layers",
                            "expected 1 to %d layers, found %zu", ACED_MAX_LAYERS, n);
    r->n_layers = (int)n;
  } else {
    r->n_layers = 1;
  }
  if ((r->layers = calloc((size_t)r->n_layers, sizeof *r->layers)) == NULL)
    return oom(err);
  for (int l = 0; l < r->n_layers; l++) {
    char path[48];
    snprintf(path, sizeof path, "network.layers[%d]", l);
    if ((rc = parse_cell(layers ? json_array_get(layers, (size_t)l) : nj,
                         layers ? path : "network", l, m, err)) != ACED_OK)
      return rc;
  }

  const json_t *head = json_object_get(nj, "head");
  size_t nh = json_array_size(head);
  if (nh == 0 || nh > ACED_MAX_LAYERS)
    return aced_error_set(err, nh ? ACED_E_LIMIT : ACED_E_SHAPE, "network.head",
                          "expected 1 to %d layers, found %zu", ACED_MAX_LAYERS, nh);
  if ((m->net.layers = calloc(nh, sizeof *m->net.layers)) == NULL)
    return oom(err);
  m->net.n_layers = (int)nh;
  int n_in = r->hidden_size;
  for (size_t i = 0; i < nh; i++) {
    if ((rc = model_parse_layer(json_array_get(head, i), "network.head", (int)i, i + 1 == nh,
                                n_in, m, err)) != ACED_OK)
      return rc;
    n_in = m->net.layers[i].n_out;
  }
  r->head = m->net;
  if (r->feedback && m->n_outputs != r->input_size)
    return aced_error_set(err, ACED_E_SHAPE, "network.feedback",
                          "with feedback the head's outputs are the next step's inputs: it "
                          "needs %d outputs (input_size), found %d",
                          r->input_size, m->n_outputs);
  return ACED_OK;
}

/* data.sequences (n x T x I) into m->samples (n x T*I). */
static enum aced_err read_sequences(const json_t *a, struct aced_model *m, struct aced_error *err)
{
  const int T = m->seq_len, ni = m->step_features;
  size_t n = json_array_size(a);
  char path[64];
  enum aced_err rc;
  if (n > ACED_MAX_SAMPLES)
    return aced_error_set(err, ACED_E_LIMIT, "data.sequences", "%zu sequences, at most %d allowed",
                          n, ACED_MAX_SAMPLES);
  if ((double)n * T * ni > (double)ACED_MAX_SAMPLE_CELLS)
    return aced_error_set(err, ACED_E_LIMIT, "data.sequences",
                          "%zu sequences x %d steps x %d features is more than %ld values", n, T,
                          ni, ACED_MAX_SAMPLE_CELLS);
  if (n < 2)
    return aced_error_set(err, ACED_E_SHAPE, "data.sequences",
                          "expected at least 2 sequences (n x %d x %d), found %zu", T, ni, n);
  for (size_t s = 0; s < n; s++) {
    const json_t *seq = json_array_get(a, s);
    snprintf(path, sizeof path, "data.sequences[%zu]", s);
    if (!json_is_array(seq) || json_array_size(seq) != (size_t)T)
      return aced_error_set(err, json_is_array(seq) ? ACED_E_SHAPE : ACED_E_BAD_TYPE, path,
                            "expected %d steps (sequence_length) of %d values (input_size)", T,
                            ni);
    if ((rc = model_check_rows(seq, path, (size_t)ni, "input_size", err)) != ACED_OK)
      return rc;
  }
  if ((m->samples = malloc(n * (size_t)T * ni * sizeof *m->samples)) == NULL)
    return oom(err);
  m->n_samples = (int)n;
  for (size_t s = 0; s < n; s++) {
    snprintf(path, sizeof path, "data.sequences[%zu]", s);
    if ((rc = model_read_matrix(json_array_get(a, s), path, (size_t)ni,
                                m->samples + s * (size_t)T * ni, err)) != ACED_OK)
      return rc;
  }
  return ACED_OK;
}

static enum aced_err parse_seq_data(const json_t *dj, struct aced_model *m, struct aced_error *err)
{
  enum aced_err rc;
  if ((rc = model_check_object(dj, "data", seq_data_spec, NSPEC(seq_data_spec), err)) != ACED_OK)
    return rc;
  const json_t *seqs = json_object_get(dj, "sequences"), *mean = json_object_get(dj, "mean"),
               *cov = json_object_get(dj, "covariance");
  const int k = m->n_features; /* flattened: T * input_size */
  if (seqs == NULL && (mean == NULL || cov == NULL))
    return aced_error_set(err, ACED_E_MISSING_FIELD,
                          mean == NULL && cov == NULL ? "data.sequences"
                          : mean == NULL              ? "data.mean"
                                                      : "data.covariance",
                          "data needs sequences (n x %d x %d), or mean and covariance over the "
                          "%d flattened inputs",
                          m->seq_len, m->step_features, k);
  if ((mean == NULL) != (cov == NULL))
    return aced_error_set(err, ACED_E_MISSING_FIELD, mean ? "data.covariance" : "data.mean",
                          "mean and covariance go together");
  if (m->rnn->feedback && seqs == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "data.sequences",
                          "with feedback the interventional moments come from re-simulated "
                          "sequences: data.sequences is required");
  if (seqs != NULL && (rc = read_sequences(seqs, m, err)) != ACED_OK)
    return rc;
  m->mean = calloc((size_t)k, sizeof *m->mean);
  m->cov = calloc((size_t)k * k, sizeof *m->cov);
  if (m->mean == NULL || m->cov == NULL)
    return oom(err);
  if (mean == NULL)
    return model_compute_moments(m, err);
  m->moments_given = 1;
  if (json_array_size(mean) != (size_t)k)
    return aced_error_set(err, ACED_E_SHAPE, "data.mean",
                          "expected %d values (sequence_length %d x input_size %d, index t * "
                          "input_size + i), found %zu",
                          k, m->seq_len, m->step_features, json_array_size(mean));
  if ((rc = model_read_row(mean, "data.mean", -1, m->mean, err)) != ACED_OK)
    return rc;
  if (json_array_size(cov) != (size_t)k)
    return aced_error_set(err, ACED_E_SHAPE, "data.covariance",
                          "expected a %d x %d matrix over the flattened inputs, found %zu rows", k,
                          k, json_array_size(cov));
  if ((rc = model_check_rows(cov, "data.covariance", (size_t)k, "one per flattened input",
                             err)) != ACED_OK ||
      (rc = model_read_matrix(cov, "data.covariance", (size_t)k, m->cov, err)) != ACED_OK)
    return rc;
  return model_check_covariance(m->cov, k, err);
}

/* Repeat the per-step features (and, with output_at every, outputs) over
 * the T steps. */
static enum aced_err flatten(struct aced_model *m, struct aced_error *err)
{
  const int T = m->seq_len, ni = m->step_features, no = m->step_outputs;
  struct aced_feature *f = malloc((size_t)T * ni * sizeof *f);
  if (f == NULL)
    return oom(err);
  for (int t = 0; t < T; t++)
    memcpy(f + (size_t)t * ni, m->features, (size_t)ni * sizeof *f);
  free(m->features);
  m->features = f;
  m->n_features = T * ni;
  if (!m->rnn->every)
    return ACED_OK;
  if ((long)T * no > ACED_MAX_STEP_OUTPUTS)
    return aced_error_set(err, ACED_E_LIMIT, "network.output_at",
                          "output_at every gives %d steps x %d outputs, at most %d allowed", T, no,
                          ACED_MAX_STEP_OUTPUTS);
  char(*o)[ACED_LABEL_MAX + 1] = malloc((size_t)T * no * sizeof *o);
  if (o == NULL)
    return oom(err);
  for (int t = 0; t < T; t++)
    memcpy(o + (size_t)t * no, m->outputs, (size_t)no * sizeof *o);
  free(m->outputs);
  m->outputs = o;
  m->n_outputs = T * no;
  return ACED_OK;
}

enum aced_err model_parse_recurrent(const json_t *body, struct aced_model *m,
                                    struct aced_error *err)
{
  enum aced_err rc;
  const json_t *sl = json_object_get(body, "sequence_length");
  if (json_object_get(body, "input_transform") != NULL)
    return aced_error_set(err, ACED_E_INVALID, "input_transform",
                          "not supported for recurrent networks: send inputs in model units");
  if (sl == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "sequence_length",
                          "recurrent networks need sequence_length (T)");
  if ((rc = read_count(sl, "sequence_length", ACED_MAX_SEQUENCE, &m->seq_len, err)) != ACED_OK)
    return rc;
  if ((long)m->seq_len * m->n_features > ACED_MAX_INPUTS)
    return aced_error_set(err, ACED_E_LIMIT, "sequence_length",
                          "%d steps x %d features is %ld inputs, at most %d allowed", m->seq_len,
                          m->n_features, (long)m->seq_len * m->n_features, ACED_MAX_INPUTS);
  if ((rc = parse_rnn(json_object_get(body, "network"), m, err)) != ACED_OK)
    return rc;
  m->rnn->T = m->seq_len;
  m->step_features = m->n_features;
  m->step_outputs = m->n_outputs;
  if ((rc = flatten(m, err)) != ACED_OK)
    return rc;
  return parse_seq_data(json_object_get(body, "data"), m, err);
}

/* What a recurrent model does not have yet: a graph among its (per-step)
 * inputs, and training for the randomization test. */
enum aced_err model_recurrent_refuses(const json_t *body, struct aced_error *err)
{
  static const char *const no[] = {"graph", "training"};
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    if (json_object_get(body, no[i]) != NULL)
      return aced_error_set(err, ACED_E_INVALID, no[i], "%s is not supported for recurrent models",
                            no[i]);
  return ACED_OK;
}
