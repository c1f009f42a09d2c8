/*
 * modeltest.h -- what tests/unit/test_model.c and test_model_ext.c share:
 * the fixture (tests/data/small_mlp.json) and the helpers that parse a
 * body and check its error code and field path.  Included by exactly
 * one translation unit per test program.
 */
#ifndef ACED_MODELTEST_H
#define ACED_MODELTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "aced/model.h"
#include "tap.h"

static json_t *fixture; /* as on disk, with "reference" */

/* The fixture as a registration body: "reference" removed, a name added. */
static inline json_t *body(void)
{
  json_t *b = json_deep_copy(fixture);
  json_object_del(b, "reference");
  json_object_set_new(b, "name", json_string("small_mlp"));
  return b;
}

/* Walk a path of object keys and array indices ("network", "layers", "1"). */
static inline json_t *at(json_t *v, const char *path)
{
  char tok[64];
  const char *p = path;
  size_t n;

  while (*p && v != NULL) {
    n = strcspn(p, ".");
    snprintf(tok, sizeof tok, "%.*s", (int)n, p);
    v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
    p += n + (p[n] == '.');
  }
  if (v == NULL) {
    tap_diag("test bug: no %s", path);
    abort();
  }
  return v;
}

/* A 2-feature, 1-output linear model with the given moments. */
static inline json_t *tiny_body(double c00, double c01, double c10, double c11)
{
  return json_pack("{s:s, s:[{s:s, s:i, s:i}, {s:s, s:i, s:i}], s:[s],"
                   " s:{s:s, s:[{s:[[i, i]], s:[i], s:s}]},"
                   " s:{s:[f, f], s:[[f, f], [f, f]]}}",
                   "name", "tiny", "features", "name", "a", "low", 0, "high", 1, "name", "b",
                   "low", 0, "high", 1, "outputs", "y", "network", "type",
                   "feedforward", "layers", "weights", 1, 1, "bias", 0, "activation",
                   "identity", "data", "mean", 0.0, 0.0, "covariance", c00, c01, c10,
                   c11);
}

/* Parse b (stealing it) and check the exact error code and field path. */
static inline void expect_err(json_t *b, int require_name, enum aced_err code,
                       const char *field, const char *what)
{
  struct aced_model *m = (struct aced_model *)1;
  struct aced_error err;
  enum aced_err rc;

  memset(&err, 0, sizeof err);
  rc = model_parse(b, require_name, &m, &err);
  if (!tap_ok(rc == code && err.code == code && strcmp(err.field, field) == 0 &&
                  m == NULL,
              "%s -> %s at '%s'", what, aced_err_code(code), field))
    tap_diag("got %s at '%s': %s (out %s NULL)", aced_err_code(rc), err.field,
             err.message, m ? "not" : "is");
  else
    tap_diag("  message: %s", err.message);
  model_free(m == (struct aced_model *)1 ? NULL : m);
  json_decref(b);
}

/* Parse b (stealing it); NULL with a diagnostic when it does not parse. */
static inline struct aced_model *parse_ok(json_t *b, int require_name)
{
  struct aced_model *m = NULL;
  struct aced_error err;
  if (model_parse(b, require_name, &m, &err) != ACED_OK)
    tap_diag("parse failed: %s at '%s': %s", aced_err_code(err.code), err.field,
             err.message);
  json_decref(b);
  return m;
}

/* Load $ACED_SRCDIR/tests/data/small_mlp.json (default: the current
 * folder's tests/data) into fixture; 0 (after a failed TAP line) when it
 * cannot be read, so a broken environment fails rather than skips. */
static inline int load_fixture(void)
{
  const char *src = getenv("ACED_SRCDIR");
  char path[1024];
  json_error_t jerr;

  snprintf(path, sizeof path, "%s/tests/data/small_mlp.json", src ? src : ".");
  fixture = json_load_file(path, 0, &jerr);
  if (!tap_ok(fixture != NULL, "load %s", path)) {
    tap_diag("%s", jerr.text);
    return 0;
  }
  return 1;
}

#endif
