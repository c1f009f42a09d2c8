/*
 * model.h -- a registered model: what POST /v1/models accepts, validated.
 *
 * model_parse() is the single gate between client JSON and the rest of
 * aced: everything past it may assume shapes chain, numbers are finite,
 * low <= high in every domain (low == high: a constant feature) and the
 * covariance is symmetric PSD.  Stored models are re-read through the same gate (model_parse on the canonical JSON), so
 * a damaged row is an error, never undefined behaviour.
 */
#ifndef ACED_MODEL_H
#define ACED_MODEL_H

#include <jansson.h>
#include "aced/engine.h"
#include "aced/errors.h"
#include "aced/limits.h"

struct aced_feature {
  char name[ACED_LABEL_MAX + 1];
  double low, high;
};

struct aced_model {
  char name[ACED_NAME_MAX + 1];
  int version;              /* set by the store; 0 before */
  char digest[7 + 64 + 1];  /* "sha256:" + hex of the canonical content */
  char *description;        /* NULL when absent */
  int n_features;
  struct aced_feature *features;
  int n_outputs;
  char (*outputs)[ACED_LABEL_MAX + 1];
  struct eng_net net;       /* owns its layer arrays */
  long n_params;            /* weights + biases */
  int n_samples;            /* 0 when registered without samples */
  double *samples;          /* n_samples x n_features, or NULL */
  double *mean;             /* n_features (given, or computed from samples) */
  double *cov;              /* n_features^2 (given, or computed, divisor n-1) */
  int moments_given;        /* mean/covariance were sent, not computed */
  /* Input transform x_model = (x_raw - shift) / scale, per feature; both
   * NULL (and has_transform 0) when the registration gave none. */
  int has_transform;
  double *tf_scale, *tf_shift;
  /* Recurrent models (network.type "recurrent"; rnn NULL and seq_len 0
   * otherwise).  Features, outputs and data are flattened over time:
   * feature t * step_features + i is feature i at step t (n_features =
   * seq_len * step_features), output s * step_outputs + o the head's output
   * o at step s with output_at every (else n_outputs = step_outputs),
   * samples the sequences, mean and cov over the flattened inputs.
   * rnn->head is net (the head's layers, owned by net). */
  struct eng_rnn *rnn;
  int seq_len, step_features, step_outputs;
};

/* Check that s is a valid model name: [A-Za-z0-9._-]{1,64}. */
int model_name_valid(const char *s);

/* Parse and validate a registration body.  `require_name`: the body must
 * carry "name" (registration); stored canonical JSON carries none.
 * On failure returns the error code, fills *err (field path + message) and
 * sets *out to NULL. */
enum aced_err model_parse(const json_t *body, int require_name,
                          struct aced_model **out, struct aced_error *err);

/* The canonical content: every field except "name", numbers as reals,
 * keys sorted, compact.  The digest is sha256 of exactly this text, and it
 * is what the store keeps.  Caller frees with free(). */
char *model_canonical_json(const struct aced_model *m);
/* Set m->digest to "sha256:" + hex of the canonical text, hashed as it
 * is written (src/model/canonical.c); 0, or -1 when out of memory. */
int model_compute_digest(struct aced_model *m);

/* Metadata for GET /v1/models/{name} (no weights, no samples). */
json_t *model_metadata_json(const struct aced_model *m);

/* Index of an output / feature given as a JSON string (name) or integer
 * (index); -1 when unknown or of the wrong type. */
int model_output_index(const struct aced_model *m, const json_t *v);
int model_feature_index(const struct aced_model *m, const json_t *v);
/* Same, from a URL path segment: a name, or a decimal index. */
int model_output_lookup(const struct aced_model *m, const char *s);
int model_feature_lookup(const struct aced_model *m, const char *s);

/* The network the engine is prepared with: m->net, with the input
 * transform (if any) folded into layer 0.  *layers is NULL when nothing
 * was folded, else a copy of the layer array whose layer 0 owns new
 * weights: free with model_engine_net_free() after eng_model_prepare()
 * (which copies the net).  0, or -1 when out of memory. */
int model_engine_net(const struct aced_model *m, struct eng_net *out,
                     struct eng_layer **layers);
void model_engine_net_free(struct eng_layer *layers);

void model_free(struct aced_model *m);

#endif
