/*
 * resolve.c -- outputs and features named in a request (by name or by
 * index) resolved against a loaded model; errors name the field.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aced/jsonw.h"
#include "aced/limits.h"
#include "aced/log.h"
#include "aced/metrics.h"
#include "aced/store.h"
#include "svc/internal.h"

/* Resolve an output (outputs = 1) or a feature given as a name or an
 * index into *idx; the error names `field`. */
enum aced_err resolve_index(const struct loaded *L, const json_t *v, const char *field,
                            int outputs, int *idx, struct aced_error *err)
{
  const char *what = outputs ? "output" : "feature";
  if (v == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, field, "'%s' is required", field);
  if (!json_is_string(v) && !json_is_integer(v))
    return aced_error_set(err, ACED_E_BAD_TYPE, field, "'%s' must be an %s name or index",
                          field, what);
  *idx = outputs ? model_output_index(L->m, v) : model_feature_index(L->m, v);
  if (*idx < 0)
    return aced_error_set(err, outputs ? ACED_E_UNKNOWN_OUTPUT : ACED_E_UNKNOWN_FEATURE, field,
                          "the model has no %s %s%s%s", what, json_is_string(v) ? "'" : "",
                          json_is_string(v) ? json_string_value(v) : "with that index",
                          json_is_string(v) ? "'" : "");
  return ACED_OK;
}

enum aced_err resolve_not_constant(const struct loaded *L, int f, const char *field,
                                   struct aced_error *err)
{
  const struct aced_feature *ft = &L->m->features[f];
  if (ft->low < ft->high)
    return ACED_OK;
  return aced_error_set(err, ACED_E_INVALID, field,
                        "feature '%s' is constant (its domain is the single value %.17g): "
                        "it has no causal regressor and no attribution",
                        ft->name, ft->low);
}

/* A JSON array of indices from an optional list of names/indices.  All
 * features (v NULL) leaves out the constant ones, with a note each in
 * `notes` (when not NULL); naming one is an error. */
enum aced_err resolve_index_list(const struct loaded *L, const json_t *v, const char *field,
                                 int outputs, int **idx, int *n, json_t *notes,
                                 struct aced_error *err)
{
  int total = outputs ? L->m->n_outputs : L->m->n_features;
  if (v == NULL) {
    *idx = malloc(sizeof(int) * (size_t)total);
    if (*idx == NULL)
      return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    *n = 0;
    for (int i = 0; i < total; i++) {
      const struct aced_feature *ft = outputs ? NULL : &L->m->features[i];
      if (ft != NULL && !(ft->low < ft->high)) {
        if (notes != NULL)
          json_array_append_new(
              notes, json_sprintf("feature '%s' is constant (%.17g) and was skipped",
                                  ft->name, ft->low));
        continue;
      }
      (*idx)[(*n)++] = i;
    }
    if (*n == 0) {
      free(*idx);
      *idx = NULL;
      return aced_error_set(err, ACED_E_INVALID, field,
                            "every feature of the model is constant: nothing to do");
    }
    return ACED_OK;
  }
  if (!json_is_array(v) || json_array_size(v) == 0)
    return aced_error_set(err, ACED_E_BAD_TYPE, field, "'%s' must be a non-empty array", field);
  if (json_array_size(v) > (size_t)total)
    return aced_error_set(err, ACED_E_INVALID, field, "'%s' lists more entries than the model has",
                          field);
  *n = (int)json_array_size(v);
  *idx = malloc(sizeof(int) * (size_t)*n);
  if (*idx == NULL)
    return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  for (int i = 0; i < *n; i++) {
    char path[64];
    snprintf(path, sizeof path, "%s[%d]", field, i);
    enum aced_err rc = resolve_index(L, json_array_get(v, (size_t)i), path, outputs, &(*idx)[i], err);
    if (rc != ACED_OK) {
      free(*idx);
      *idx = NULL;
      return rc;
    }
    if (!outputs && (rc = resolve_not_constant(L, (*idx)[i], path, err)) != ACED_OK) {
      free(*idx);
      *idx = NULL;
      return rc;
    }
    for (int k = 0; k < i; k++)
      if ((*idx)[k] == (*idx)[i]) {
        free(*idx);
        *idx = NULL;
        return aced_error_set(err, ACED_E_INVALID, path, "listed twice");
      }
  }
  return ACED_OK;
}
