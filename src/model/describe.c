/*
 * describe.c -- what a parsed model says about itself: its metadata (GET
 * /v1/models/{name}: shapes, names, domains, never weights or samples)
 * and the lookups of its outputs and features by name or index.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/model.h"

/* ------------------------------------------------------------------ */
/* Metadata and lookups.                                               */

json_t *model_metadata_json(const struct aced_model *m)
{
  json_t *o, *feats, *outs, *layers;
  int i;

  if (m == NULL)
    return NULL;
  feats = json_array();
  outs = json_array();
  layers = json_array();
  const int nf = m->rnn ? m->step_features : m->n_features;
  const int no = m->rnn ? m->step_outputs : m->n_outputs;
  for (i = 0; i < nf; i++) {
    json_t *f = json_pack("{s:s, s:f, s:f}", "name", m->features[i].name, "low",
                          m->features[i].low, "high", m->features[i].high);
    /* a one-point domain: accepted, reported, skipped by all-feature jobs */
    if (f != NULL && !(m->features[i].low < m->features[i].high))
      json_object_set_new(f, "constant", json_true());
    json_array_append_new(feats, f);
  }
  for (i = 0; i < no; i++)
    json_array_append_new(outs, json_string(m->outputs[i]));
  for (i = 0; i < m->net.n_layers; i++)
    json_array_append_new(layers, json_pack("{s:i, s:i, s:s}", "inputs",
                                            m->net.layers[i].n_in, "units",
                                            m->net.layers[i].n_out, "activation",
                                            eng_act_name(m->net.layers[i].act)));
  /* json_pack's "o" steals the references and fails (freeing them) as a
   * whole, so there is nothing to clean up on error. */
  o = json_pack("{s:s, s:i, s:s, s:s?, s:o, s:o, s:{s:s}, s:I, s:{s:i, s:s}}",
                "name", m->name, "version", m->version, "digest", m->digest,
                "description", m->description, "features", feats, "outputs", outs,
                "network", "type", "feedforward", "n_params",
                (json_int_t)m->n_params, "data", "n_samples", m->n_samples,
                "moments", m->moments_given ? "given" : "computed");
  if (o != NULL && m->rnn != NULL) {
    const struct eng_rnn *r = m->rnn;
    json_object_set_new(o, "sequence_length", json_integer(m->seq_len));
    json_object_set_new(o, "network",
                        json_pack("{s:s, s:s, s:i, s:i, s:i, s:o, s:s, s:b}", "type", "recurrent",
                                  "cell", eng_cell_name(r->cell), "input_size", r->input_size,
                                  "hidden_size", r->hidden_size, "n_layers", r->n_layers, "head",
                                  layers, "output_at", r->every ? "every" : "last", "feedback",
                                  r->feedback));
    json_object_set_new(json_object_get(o, "data"), "n_sequences", json_integer(m->n_samples));
  } else if (o != NULL)
    json_object_set_new(json_object_get(o, "network"), "layers", layers);
  if (o != NULL && m->has_transform) {
    json_t *sc = json_array(), *sh = json_array();
    for (i = 0; i < m->n_features; i++) {
      json_array_append_new(sc, json_real(m->tf_scale[i]));
      json_array_append_new(sh, json_real(m->tf_shift[i]));
    }
    json_object_set_new(o, "input_transform", json_pack("{s:o, s:o}", "scale", sc, "shift", sh));
  }
  if (o != NULL && m->has_training)
    json_object_set_new(o, "training",
                        json_pack("{s:s, s:i, s:f, s:i, s:f, s:I, s:b}", "loss",
                                  model_loss_name(m->training.loss), "epochs", m->training.epochs,
                                  "learning_rate", m->training.learning_rate, "batch_size",
                                  m->training.batch_size, "weight_decay",
                                  m->training.weight_decay, "seed",
                                  (json_int_t)m->training.seed, "targets", 1));
  return o;
}

/* The model name rule (model.h), here with the other lookups by name. */
int model_name_valid(const char *s)
{
  size_t i;

  if (s == NULL || s[0] == '\0')
    return 0;
  /* "." and ".." match the character set but are path segments that
   * clients collapse before they reach us: such a model could never be
   * fetched, so refuse to create it. */
  if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
    return 0;
  for (i = 0; s[i] != '\0'; i++) {
    unsigned char c = (unsigned char)s[i];
    if (i >= ACED_NAME_MAX)
      return 0;
    if (!(isalnum(c) && c < 0x80) && c != '.' && c != '_' && c != '-')
      return 0;
  }
  return 1;
}

static int label_index(const char *labels, size_t stride, int n, const char *s)
{
  int i;
  for (i = 0; i < n; i++)
    if (strcmp(labels + (size_t)i * stride, s) == 0)
      return i;
  return -1;
}

static int json_index(const char *labels, size_t stride, int n, const json_t *v)
{
  if (json_is_string(v)) {
    if (json_string_length(v) != strlen(json_string_value(v)))
      return -1;
    return label_index(labels, stride, n, json_string_value(v));
  }
  if (json_is_integer(v)) {
    json_int_t i = json_integer_value(v);
    return i >= 0 && i < n ? (int)i : -1;
  }
  return -1;
}

/* A name first, so that an output literally named "3" is found by name;
 * then a decimal index (digits only: no sign, no spaces). */
static int segment_index(const char *labels, size_t stride, int n, const char *s)
{
  long i = 0;
  int r;

  if (s == NULL)
    return -1;
  if ((r = label_index(labels, stride, n, s)) >= 0)
    return r;
  if (*s == '\0')
    return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    i = i * 10 + (*s - '0');
    if (i >= n)
      return -1;
  }
  return (int)i;
}

/* Names and indices of a recurrent model's features and outputs are per
 * step: the first step's block of the flattened arrays (model.h). */
static int n_feat(const struct aced_model *m)
{
  return m->rnn ? m->step_features : m->n_features;
}

static int n_out(const struct aced_model *m)
{
  return m->rnn ? m->step_outputs : m->n_outputs;
}

int model_output_index(const struct aced_model *m, const json_t *v)
{
  return m ? json_index(m->outputs[0], sizeof m->outputs[0], n_out(m), v) : -1;
}

int model_feature_index(const struct aced_model *m, const json_t *v)
{
  return m ? json_index(m->features[0].name, sizeof m->features[0], n_feat(m), v) : -1;
}

int model_output_lookup(const struct aced_model *m, const char *s)
{
  return m ? segment_index(m->outputs[0], sizeof m->outputs[0], n_out(m), s) : -1;
}

int model_feature_lookup(const struct aced_model *m, const char *s)
{
  return m ? segment_index(m->features[0].name, sizeof m->features[0], n_feat(m), s) : -1;
}

