/*
 * model/internal.h -- what the files of src/model share; nothing outside
 * src/model/ includes it.
 */
#ifndef ACED_MODEL_INTERNAL_H
#define ACED_MODEL_INTERNAL_H

#include <jansson.h>

#include "aced/errors.h"
#include "aced/model.h"

/* The optional "input_transform" of a registration (transform.c), parsed
 * into m->tf_scale / m->tf_shift once m's features are known; NULL tj
 * (absent) is fine and leaves the model without one. */
enum aced_err model_parse_transform(const json_t *tj, struct aced_model *m,
                                    struct aced_error *err);

/* ONNX import (onnx.c): is the body's network {"type": "onnx", ...}?  If
 * so, model_onnx_expand() makes *expanded (new reference) a copy of the
 * body whose network is the imported one in aced's JSON form (and whose
 * "outputs" default to y0, y1, ...), and writes the model's origin into
 * source ({"opset":..,"producer":..}, at most n_source bytes). */
int model_onnx_body(const json_t *body);
enum aced_err model_onnx_expand(const json_t *body, json_t **expanded, char *source,
                                size_t n_source, struct aced_error *err);

/* Write m's graph (if any) into the canonical text as ,"graph":{...}
 * (graph.c). */
struct jw;
void model_graph_write(struct jw *w, const struct aced_model *m);

/* The optional data.targets and "training" of a registration
 * (training.c), once the samples and network are parsed: both or neither. */
enum aced_err model_parse_training(const json_t *tj, const json_t *targets, struct aced_model *m,
                                   struct aced_error *err);

/* ---- what model.c shares with the other parsers (recurrent.c) ---- */
enum spec_type { SPEC_STRING, SPEC_NUMBER, SPEC_ARRAY, SPEC_OBJECT, SPEC_BOOL };
struct field_spec {
  const char *name;
  enum spec_type type;
  int required;
};
#define NSPEC(a) (sizeof(a) / sizeof((a)[0]))
/* `obj` (at `path`) is an object with no field outside spec, every
 * required one, each of its type. */
enum aced_err model_check_object(const json_t *obj, const char *path,
                                 const struct field_spec *spec, size_t n,
                                 struct aced_error *err);
/* Every entry of `a` is an array of `cols` entries (`why` says why). */
enum aced_err model_check_rows(const json_t *a, const char *base, size_t cols,
                               const char *why, struct aced_error *err);
/* The finite numbers of a (row `row` of a matrix, or -1) into dst. */
enum aced_err model_read_row(const json_t *a, const char *base, long row, double *dst,
                             struct aced_error *err);
enum aced_err model_read_matrix(const json_t *a, const char *base, size_t cols,
                                double *dst, struct aced_error *err);
/* Feedforward layer li of the array at `base` into m->net.layers[li]. */
enum aced_err model_parse_layer(const json_t *lj, const char *base, int li, int last,
                                int n_in, struct aced_model *m, struct aced_error *err);
/* m->mean, m->cov (allocated) from m->samples (n_samples x n_features). */
enum aced_err model_compute_moments(struct aced_model *m, struct aced_error *err);
/* A given k x k covariance: symmetric (then made exactly so) and PSD. */
enum aced_err model_check_covariance(double *S, int k, struct aced_error *err);

/* ---- recurrent networks (recurrent.c) ---- */
/* Non-zero when the body's network.type is "recurrent". */
int model_is_recurrent(const json_t *body);
/* sequence_length, network and data of a recurrent registration, after
 * features and outputs; flattens features, outputs and data over time. */
enum aced_err model_parse_recurrent(const json_t *body, struct aced_model *m,
                                    struct aced_error *err);
void model_recurrent_free(struct aced_model *m);
/* 422 naming graph or training, which recurrent models do not take. */
enum aced_err model_recurrent_refuses(const json_t *body, struct aced_error *err);

#endif
