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

/* A causal graph among the inputs (src/model/graph.c): a DAG over the
 * features, given by the client or learned from the samples. */
struct aced_graph {
  int n_edges;
  int (*edges)[2];  /* {from, to} feature indices, sorted, no duplicates */
  int learned;      /* 0: given, 1: learned by POST .../graph */
  json_t *info;     /* learned only: method, parameters, score, warnings,
                       varsortability (canonical JSON object); else NULL */
};

/* Training settings for the randomization test (model/training.c). */
struct aced_training {
  int loss;                 /* enum eng_loss */
  int epochs, batch_size;
  double learning_rate, weight_decay;
  long long seed;
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
  /* Where the registration came from, kept in the model row beside the
   * canonical body (never in it: the digest is the network's):
   * {"opset":..,"producer":..} for an ONNX import, "" for JSON. */
  char source[ACED_SOURCE_MAX + 1];
  struct aced_graph *graph; /* NULL without one */
  /* data.targets (n_samples x n_outputs) and training, both or neither:
   * has_training 0 and targets NULL without them. */
  int has_training;
  double *targets;
  struct aced_training training;
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
/* "mse" or "cross_entropy". */
const char *model_loss_name(int loss);

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

/* ---- the graph among the inputs (graph.c) ---- */
/* Parse `gj` ({"edges": [["w", "z"], ...]}, plus the learned fields when
 * !client: stored content) into a new graph of m, replacing any it had;
 * NULL gj leaves m as it is.  Field paths start with `path` ("graph." in
 * a registration, "" in a PUT body).  A cycle is ACED_E_CYCLIC_GRAPH
 * naming every feature of one cycle; an unknown feature name is
 * ACED_E_INVALID naming the edge.  The digest is not recomputed: call
 * model_compute_digest() after. */
enum aced_err model_graph_parse(const json_t *gj, int client, const char *path,
                                struct aced_model *m, struct aced_error *err);
/* Replace m's graph by n edges {from, to} (learned: info is stolen, may
 * be NULL for a given graph); checks acyclicity like model_graph_parse. */
enum aced_err model_graph_set(struct aced_model *m, const int (*edges)[2], int n,
                              int learned, json_t *info, struct aced_error *err);
/* The graph as stored in the canonical JSON ({"edges": [[from, to]...]}
 * and the learned fields), or NULL when m has none. */
json_t *model_graph_json(const struct aced_model *m);
/* A topological order of the features under m's graph (k entries); 0, or
 * -1 when there is no graph or out of memory. */
int model_graph_order(const struct aced_model *m, int *order);
void model_graph_free(struct aced_graph *g);

void model_free(struct aced_model *m);

#endif
