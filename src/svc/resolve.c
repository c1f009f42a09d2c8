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
  /* recurrent: names and indices are per step (model.h) */
  int total = outputs ? (L->m->rnn ? L->m->step_outputs : L->m->n_outputs)
                      : (L->m->rnn ? L->m->step_features : L->m->n_features);
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

/* ---- recurrent models: (feature, timestep) and (output, step) ---- */

enum aced_err resolve_steps(const struct loaded *L, int timestep, int output_timestep, int *f,
                            int *o, struct aced_error *err)
{
  const struct aced_model *m = L->m;
  if (m->rnn == NULL) {
    if (timestep != STEP_NONE || output_timestep != STEP_NONE)
      return aced_error_set(err, ACED_E_INVALID,
                            timestep != STEP_NONE ? "timestep" : "output_timestep",
                            "the model is not recurrent: it has no timesteps");
    return ACED_OK;
  }
  const int T = m->seq_len;
  if (timestep == STEP_NONE)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "timestep",
                          "a recurrent model needs the timestep of the intervention (0 to %d)",
                          T - 1);
  if (timestep < 0 || timestep >= T)
    return aced_error_set(err, ACED_E_INVALID, "timestep",
                          "timestep must be in [0, %d] (sequence_length %d), not %d", T - 1, T,
                          timestep);
  if (output_timestep != STEP_NONE && !m->rnn->every)
    return aced_error_set(err, ACED_E_INVALID, "output_timestep",
                          "the model's outputs are at the last step only (output_at last)");
  if (output_timestep != STEP_NONE && (output_timestep < 0 || output_timestep >= T))
    return aced_error_set(err, ACED_E_INVALID, "output_timestep",
                          "output_timestep must be in [0, %d], not %d", T - 1, output_timestep);
  if (f != NULL)
    *f += timestep * m->step_features;
  if (o != NULL && m->rnn->every)
    *o += (output_timestep == STEP_NONE ? T - 1 : output_timestep) * m->step_outputs;
  return ACED_OK;
}

/* An optional integer field of a body, STEP_NONE when absent. */
static enum aced_err step_field(const json_t *b, const char *key, int *out,
                                struct aced_error *err)
{
  const json_t *v = json_object_get(b, key);
  *out = STEP_NONE;
  if (v == NULL)
    return ACED_OK;
  if (!json_is_integer(v))
    return aced_error_set(err, ACED_E_BAD_TYPE, key, "'%s' must be an integer", key);
  json_int_t x = json_integer_value(v);
  *out = x < -1 ? -1 : x > ACED_MAX_SEQUENCE ? ACED_MAX_SEQUENCE : (int)x;
  return ACED_OK;
}

enum aced_err resolve_steps_json(const struct loaded *L, const json_t *b, int *f, int *o,
                                 struct aced_error *err)
{
  int t, s;
  enum aced_err rc;
  if ((rc = step_field(b, "timestep", &t, err)) != ACED_OK ||
      (rc = step_field(b, "output_timestep", &s, err)) != ACED_OK)
    return rc;
  return resolve_steps(L, t, s, f, o, err);
}

enum aced_err resolve_output_step(const struct loaded *L, const json_t *b, int *o,
                                  struct aced_error *err)
{
  int s;
  enum aced_err rc = step_field(b, "output_timestep", &s, err);
  return rc != ACED_OK ? rc : resolve_steps(L, 0, s, NULL, o, err);
}

void resolve_step_json(const struct loaded *L, json_t *reply, int f, int o)
{
  const struct aced_model *m = L->m;
  if (m->rnn == NULL)
    return;
  json_object_set_new(reply, "timestep", json_integer(f / m->step_features));
  json_object_set_new(reply, "output_timestep",
                      json_integer(m->rnn->every ? o / m->step_outputs : m->seq_len - 1));
}

enum aced_err resolve_step_window(const struct loaded *L, const json_t *b, int **steps, int *n,
                                  json_t *notes, struct aced_error *err)
{
  const struct aced_model *m = L->m;
  const int T = m->seq_len;
  int s;
  enum aced_err rc;
  if ((rc = step_field(b, "output_timestep", &s, err)) != ACED_OK ||
      (rc = resolve_steps(L, 0, s, NULL, NULL, err)) != ACED_OK)
    return rc;
  if (s == STEP_NONE)
    s = T - 1;
  const json_t *all = json_object_get(b, "all_timesteps");
  if (all != NULL && !json_is_boolean(all))
    return aced_error_set(err, ACED_E_BAD_TYPE, "all_timesteps", "must be a boolean");
  const double *per;
  double tau = (double)T, thr;
  int nl, lo = 0;
  if (!json_is_true(all) && eng_rnn_lag(L->em, &per, &tau, &thr, &nl) == 0) {
    lo = s - (int)ceil(tau);
    lo = lo < 0 ? 0 : lo;
    if (lo > 0 && notes != NULL)
      json_array_append_new(notes,
                            json_sprintf("timesteps 0 to %d are beyond the time lag (tau %.3g "
                                         "steps back from step %d) and were left out (zero); "
                                         "send all_timesteps: true for every step",
                                         lo - 1, tau, s));
  }
  *n = s - lo + 1;
  if ((*steps = malloc(sizeof(int) * (size_t)*n)) == NULL)
    return aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
  for (int i = 0; i < *n; i++)
    (*steps)[i] = lo + i;
  return ACED_OK;
}
