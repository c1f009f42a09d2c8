/*
 * spec.c -- declarative checks of JSON request bodies (see spec.h).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "aced/limits.h"
#include "api/spec.h"

/* Where a value sits in the body: a field's name and up to two indices
 * (-1: none).  The text "inputs[3][1]" is written only for an error: on
 * the hot path a body of rows is checked without a printf per row. */
struct at {
  const char *name;
  long i, t;
};

static const char *at_text(const struct at *a, char *buf, size_t n)
{
  int k = snprintf(buf, n, "%s", a->name);
  if (a->i >= 0 && k >= 0 && (size_t)k < n)
    k += snprintf(buf + k, n - (size_t)k, "[%ld]", a->i);
  if (a->t >= 0 && k >= 0 && (size_t)k < n)
    snprintf(buf + k, n - (size_t)k, "[%ld]", a->t);
  return buf;
}

/* An array of 1..max finite numbers at `a`. */
static enum aced_err check_numbers(const json_t *v, const struct at *a, size_t max,
                                   struct aced_error *err)
{
  char path[96];
  if (!json_is_array(v)) {
    at_text(a, path, sizeof path);
    return aced_error_set(err, ACED_E_BAD_TYPE, path, "'%s' must be an array of numbers", path);
  }
  size_t n = json_array_size(v);
  if (n == 0 || n > max) {
    at_text(a, path, sizeof path);
    return aced_error_set(err, ACED_E_LIMIT, path, "'%s' must hold 1 to %zu numbers, not %zu",
                          path, max, n);
  }
  for (size_t i = 0; i < n; i++) {
    json_t *x = json_array_get(v, i);
    if (!json_is_number(x) || !isfinite(json_number_value(x))) {
      char at[128];
      snprintf(at, sizeof at, "%s[%zu]", at_text(a, path, sizeof path), i);
      return aced_error_set(err, json_is_number(x) ? ACED_E_NOT_FINITE : ACED_E_BAD_TYPE, at,
                            "must be a finite number");
    }
  }
  return ACED_OK;
}

/* An input row: finite numbers, or a sequence of steps of them (recurrent
 * models), at most ACED_MAX_INPUTS numbers in all. */
static enum aced_err check_row(const json_t *row, const struct at *a, struct aced_error *err)
{
  if (!json_is_array(row) || !json_is_array(json_array_get(row, 0)))
    return check_numbers(row, a, ACED_MAX_INPUTS, err);
  size_t total = 0;
  for (size_t t = 0; t < json_array_size(row); t++) {
    struct at step = {a->name, a->i, (long)t};
    enum aced_err rc = check_numbers(json_array_get(row, t), &step, ACED_MAX_INPUTS, err);
    if (rc != ACED_OK)
      return rc;
    if ((total += json_array_size(json_array_get(row, t))) > ACED_MAX_INPUTS) {
      char path[96];
      at_text(a, path, sizeof path);
      return aced_error_set(err, ACED_E_LIMIT, path, "more than %d numbers in one input",
                            ACED_MAX_INPUTS);
    }
  }
  return ACED_OK;
}

static enum aced_err check_field(const struct spec_field *f, const json_t *v,
                                 struct aced_error *err)
{
  const char *name = f->name;
  switch (f->type) {
  case SPEC_STRING:
    if (!json_is_string(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, name, "'%s' must be a string", name);
    return ACED_OK;
  case SPEC_INTEGER:
    if (!json_is_integer(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, name, "'%s' must be an integer", name);
    return ACED_OK;
  case SPEC_NUMBER:
    if (!json_is_number(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, name, "'%s' must be a number", name);
    return ACED_OK;
  case SPEC_REF:
    if (!json_is_string(v) && !json_is_integer(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, name, "'%s' must be a name or an index",
                            name);
    return ACED_OK;
  case SPEC_REFS:
    if (!json_is_array(v) || json_array_size(v) == 0)
      return aced_error_set(err, ACED_E_BAD_TYPE, name, "'%s' must be a non-empty array",
                            name);
    for (size_t i = 0; i < json_array_size(v); i++) {
      json_t *x = json_array_get(v, i);
      if (!json_is_string(x) && !(json_is_integer(x) && json_integer_value(x) >= 0)) {
        char path[48];
        snprintf(path, sizeof path, "%s[%zu]", name, i);
        return aced_error_set(err, ACED_E_BAD_TYPE, path, "must be a name or an index");
      }
    }
    return ACED_OK;
  case SPEC_NUMBERS:
    return check_numbers(v, &(struct at){name, -1, -1}, f->max, err);
  case SPEC_STRING_OR_NUMBERS:
    if (json_is_string(v))
      return ACED_OK;
    if (!json_is_array(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, name,
                            "'%s' must be a name or an array of numbers", name);
    return check_numbers(v, &(struct at){name, -1, -1}, ACED_MAX_INPUTS, err);
  case SPEC_STRING_OR_INPUT:
    if (json_is_string(v))
      return ACED_OK;
    if (!json_is_array(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, name,
                            "'%s' must be a name, an array of numbers or a sequence of them",
                            name);
    return check_row(v, &(struct at){name, -1, -1}, err);
  case SPEC_STRINGS:
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > f->max)
      return aced_error_set(err, ACED_E_BAD_TYPE, name,
                            "'%s' must be an array of 1 to %zu strings", name, f->max);
    for (size_t i = 0; i < json_array_size(v); i++)
      if (!json_is_string(json_array_get(v, i))) {
        char path[48];
        snprintf(path, sizeof path, "%s[%zu]", name, i);
        return aced_error_set(err, ACED_E_BAD_TYPE, path, "must be a string");
      }
    return ACED_OK;
  case SPEC_ROWS:
  case SPEC_INPUTS:
    if (!json_is_array(v) || json_array_size(v) == 0)
      return aced_error_set(err, ACED_E_BAD_TYPE, name,
                            "'%s' must be a non-empty array of input rows", name);
    if (json_array_size(v) > f->max)
      return aced_error_set(err, ACED_E_LIMIT, name, "at most %zu rows per request", f->max);
    for (size_t i = 0; i < json_array_size(v); i++) {
      struct at row = {name, (long)i, -1};
      enum aced_err rc = f->type == SPEC_INPUTS
                             ? check_row(json_array_get(v, i), &row, err)
                             : check_numbers(json_array_get(v, i), &row, ACED_MAX_INPUTS, err);
      if (rc != ACED_OK)
        return rc;
    }
    return ACED_OK;
  case SPEC_BOOL:
    if (!json_is_boolean(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, name, "'%s' must be true or false", name);
    return ACED_OK;
  }
  return aced_error_set(err, ACED_E_INTERNAL, name, "field '%s' has no type", name);
}

enum aced_err spec_check(const json_t *body, const struct spec_field *spec,
                         struct aced_error *err)
{
  /* One pass over the body puts each value beside its row of the table
   * (no field is looked up by hashing again); a key the table lacks is
   * refused at once. */
  const json_t *vals[SPEC_FIELDS_MAX] = {NULL};
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    size_t k = 0;
    while (spec[k].name != NULL && strcmp(spec[k].name, key) != 0)
      k++;
    if (spec[k].name == NULL)
      return aced_error_set(err, ACED_E_UNKNOWN_FIELD, key, "unknown field '%s'", key);
    if (k >= SPEC_FIELDS_MAX)
      return aced_error_set(err, ACED_E_INTERNAL, key, "spec table longer than %d rows",
                            SPEC_FIELDS_MAX);
    vals[k] = v;
  }
  /* required and typed fields, in the table's order: the first bad one
   * in the table is the one named */
  for (size_t k = 0; spec[k].name != NULL; k++) {
    const struct spec_field *f = &spec[k];
    v = (json_t *)(k < SPEC_FIELDS_MAX ? vals[k] : NULL);
    if (v == NULL) {
      if (f->required)
        return aced_error_set(err, ACED_E_MISSING_FIELD, f->name, "'%s' is required", f->name);
      continue;
    }
    enum aced_err rc = check_field(f, v, err);
    if (rc != ACED_OK)
      return rc;
  }
  return ACED_OK;
}
