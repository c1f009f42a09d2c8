/*
 * spec.c -- declarative checks of JSON request bodies (see spec.h).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "aced/limits.h"
#include "api/spec.h"

/* An array of 1..max finite numbers at `path`. */
static enum aced_err check_numbers(const json_t *v, const char *path, size_t max,
                                   struct aced_error *err)
{
  if (!json_is_array(v))
    return aced_error_set(err, ACED_E_BAD_TYPE, path, "'%s' must be an array of numbers", path);
  size_t n = json_array_size(v);
  if (n == 0 || n > max)
    return aced_error_set(err, ACED_E_LIMIT, path, "'%s' must hold 1 to %zu numbers, not %zu",
                          path, max, n);
  for (size_t i = 0; i < n; i++) {
    json_t *x = json_array_get(v, i);
    if (!json_is_number(x) || !isfinite(json_number_value(x))) {
      char at[96];
      snprintf(at, sizeof at, "%s[%zu]", path, i);
      return aced_error_set(err, json_is_number(x) ? ACED_E_NOT_FINITE : ACED_E_BAD_TYPE, at,
                            "must be a finite number");
    }
  }
  return ACED_OK;
}

/* An input row: finite numbers, or a sequence of steps of them (recurrent
 * models), at most ACED_MAX_INPUTS numbers in all. */
static enum aced_err check_row(const json_t *row, const char *path, struct aced_error *err)
{
  if (!json_is_array(row) || !json_is_array(json_array_get(row, 0)))
    return check_numbers(row, path, ACED_MAX_INPUTS, err);
  size_t total = 0;
  for (size_t t = 0; t < json_array_size(row); t++) {
    char at[96];
    snprintf(at, sizeof at, "%s[%zu]", path, t);
    enum aced_err rc = check_numbers(json_array_get(row, t), at, ACED_MAX_INPUTS, err);
    if (rc != ACED_OK)
      return rc;
    if ((total += json_array_size(json_array_get(row, t))) > ACED_MAX_INPUTS)
      return aced_error_set(err, ACED_E_LIMIT, path, "more than %d numbers in one input",
                            ACED_MAX_INPUTS);
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
    return check_numbers(v, name, f->max, err);
  case SPEC_STRING_OR_NUMBERS:
    if (json_is_string(v))
      return ACED_OK;
    if (!json_is_array(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, name,
                            "'%s' must be a name or an array of numbers", name);
    return check_numbers(v, name, ACED_MAX_INPUTS, err);
  case SPEC_STRING_OR_INPUT:
    if (json_is_string(v))
      return ACED_OK;
    if (!json_is_array(v))
      return aced_error_set(err, ACED_E_BAD_TYPE, name,
                            "'%s' must be a name, an array of numbers or a sequence of them",
                            name);
    return check_row(v, name, err);
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
      char path[48];
      snprintf(path, sizeof path, "%s[%zu]", name, i);
      enum aced_err rc = f->type == SPEC_INPUTS
                             ? check_row(json_array_get(v, i), path, err)
                             : check_numbers(json_array_get(v, i), path, ACED_MAX_INPUTS, err);
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
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)body, key, v) {
    const struct spec_field *f = spec;
    while (f->name != NULL && strcmp(f->name, key) != 0)
      f++;
    if (f->name == NULL)
      return aced_error_set(err, ACED_E_UNKNOWN_FIELD, key, "unknown field '%s'", key);
  }
  /* required and typed fields, in the table's order: the first bad one
   * in the table is the one named */
  for (const struct spec_field *f = spec; f->name != NULL; f++) {
    v = json_object_get(body, f->name);
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
