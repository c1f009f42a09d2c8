/*
 * fuzz_query.c -- the query parameter parsers of include/aced/svc.h (src/svc/params.c):
 * query_params_parse() (the JSON fields of POST .../interventions,
 * .../regressors and .../attributions) and query_params_from_strings()
 * (the URL query of GET .../regressors/{output}/{feature}).
 *
 * Input, used both ways:
 *   - as a JSON document: when it is an object, query_params_parse();
 *   - as strings: with a NUL in it, up to four NUL-separated values
 *     (estimator, num, max_order, epsilon; missing ones are NULL); else a
 *     query string "estimator=...&num=...&max_order=...&epsilon=...".
 * Whatever is accepted must be within the bounds the workers rely on.
 *
 * The same input also goes through the quick body reader (src/base/jsonr.c)
 * and jansson side by side: the reader must give up (NULL) or build
 * exactly jansson's tree (same types, integers kept apart from reals, same
 * values), and never accept what jansson refuses.
 *
 * And through the attributions quick path's reading of the bytes
 * (src/svc/quick.c): on a body jansson takes as an object, the span it
 * finds for "inputs" must hold exactly that member's value; rows it reads
 * must be that value's numbers, bit for bit, and never come from a value
 * jansson would refuse.
 */
#include "config.h"

#include <jansson.h>
#include <math.h>

#include "aced/config.h"
#include "aced/jsonr.h"
#include "aced/limits.h"
#include "aced/svc.h"
#include "fuzz.h"

static struct aced_config cfg;
static struct svc svc = {.store = NULL, .cfg = &cfg};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  config_defaults(&cfg);
  return 0;
}

static void check(enum aced_err rc, const struct query_params *q,
                  const struct aced_error *err)
{
  if (rc != ACED_OK) {
    FUZZ_ASSERT(err->code == rc);
    FUZZ_ASSERT(fuzz_terminated(err->field, sizeof err->field));
    FUZZ_ASSERT(fuzz_terminated(err->message, sizeof err->message));
    return;
  }
  FUZZ_ASSERT(q->estimator >= EST_AUTO && q->estimator < EST__COUNT);
  FUZZ_ASSERT(estimator_name(q->estimator) != NULL);
  FUZZ_ASSERT(q->num >= ACED_GRID_MIN && q->num <= ACED_GRID_MAX);
  FUZZ_ASSERT(q->max_order >= 0 && q->max_order < ACED_ORDER_MAX_HARD);
  FUZZ_ASSERT(isfinite(q->epsilon) && q->epsilon > 0 && q->epsilon <= 1);
}

static void from_strings(char *s, size_t n, int positional)
{
  const char *v[4] = {NULL, NULL, NULL, NULL};
  if (positional) {
    /* "estimator\0num\0max_order\0epsilon" */
    char *p = s, *end = s + n;
    for (int i = 0; i < 4 && p <= end; i++) {
      v[i] = p;
      p += strlen(p) + 1;
    }
  } else {
    static const char *const names[4] = {"estimator", "num", "max_order", "epsilon"};
    for (char *save = NULL, *t = strtok_r(s, "&", &save); t != NULL;
         t = strtok_r(NULL, "&", &save)) {
      char *eq = strchr(t, '=');
      if (eq == NULL)
        continue;
      *eq = '\0';
      for (int i = 0; i < 4; i++)
        if (strcmp(t, names[i]) == 0)
          v[i] = eq + 1;
    }
  }
  struct query_params q;
  struct aced_error err;
  memset(&err, 0, sizeof err);
  enum aced_err rc = query_params_from_strings(&svc, v[0], v[1], v[2], v[3], &q, &err);
  /* a bad query string is always a 400 bad_parameter */
  FUZZ_ASSERT(rc == ACED_OK || rc == ACED_E_BAD_PARAMETER);
  check(rc, &q, &err);
}

/* json_equal, and the same types all the way down (json_equal already
 * tells an integer from a real; this also checks object key counts). */
static int same_tree(const json_t *a, const json_t *b)
{
  if (json_typeof(a) != json_typeof(b) || !json_equal((json_t *)a, (json_t *)b))
    return 0;
  if (json_is_real(a))
    return signbit(json_real_value(a)) == signbit(json_real_value(b));
  if (json_is_object(a)) {
    const char *k;
    json_t *v;
    if (json_object_size(a) != json_object_size(b))
      return 0;
    json_object_foreach((json_t *)a, k, v) if (!same_tree(v, json_object_get(b, k))) return 0;
  }
  if (json_is_array(a))
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!same_tree(json_array_get(a, i), json_array_get(b, i)))
        return 0;
  return 1;
}

static void quick_reading(const char *b, size_t n)
{
  size_t vs, ve;
  int found = svc_quick_find_inputs(b, n, &vs, &ve) == 0;
  if (found)
    FUZZ_ASSERT(vs < ve && ve <= n);
  json_t *obj = fuzz_json_depth((const uint8_t *)b, n) <= ACED_JSON_DEPTH_MAX
                    ? json_loadb(b, n, JSON_REJECT_DUPLICATES, NULL)
                    : NULL;
  json_t *inputs = json_is_object(obj) ? json_object_get(obj, "inputs") : NULL;
  if (inputs != NULL && !found) {
    json_decref(obj);
    return; /* it may decline anything (a body it does not follow) */
  }
  if (inputs != NULL) {
    json_t *span = json_loadb(b + vs, ve - vs, JSON_DECODE_ANY, NULL);
    FUZZ_ASSERT(span != NULL && same_tree(span, inputs));
    json_decref(span);
  }
  if (found) {
    /* rows of the first row's length (or 4) */
    int k = json_is_array(inputs) ? (int)json_array_size(json_array_get(inputs, 0)) : 4;
    double *x = NULL;
    size_t rows = k > 0 ? svc_quick_read_rows(b + vs, b + ve, k, &x) : 0;
    if (rows > 0) {
      json_t *ref = json_loadb(b + vs, ve - vs, JSON_DECODE_ANY, NULL);
      FUZZ_ASSERT(json_is_array(ref) && json_array_size(ref) == rows);
      for (size_t r = 0; r < rows; r++) {
        json_t *row = json_array_get(ref, r);
        FUZZ_ASSERT(json_is_array(row) && json_array_size(row) == (size_t)k);
        for (int j = 0; j < k; j++) {
          double want = json_number_value(json_array_get(row, (size_t)j));
          FUZZ_ASSERT(json_is_number(json_array_get(row, (size_t)j)) &&
                      memcmp(&want, &x[r * (size_t)k + (size_t)j], sizeof want) == 0);
        }
      }
      json_decref(ref);
    }
    free(x);
  }
  json_decref(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  json_t *quick = jsonr_parse((const char *)data, size);
  if (quick != NULL) {
    json_t *ref = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_ASSERT(ref != NULL);
    FUZZ_ASSERT(json_is_object(quick));
    FUZZ_ASSERT(same_tree(quick, ref));
    json_decref(ref);
    json_decref(quick);
  }
  if (fuzz_json_depth(data, size) <= ACED_JSON_DEPTH_MAX) {
    json_t *obj = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(obj)) {
      struct query_params q;
      struct aced_error err;
      memset(&err, 0, sizeof err);
      check(query_params_parse(&svc, obj, &q, &err), &q, &err);
    }
    json_decref(obj);
  }
  quick_reading((const char *)data, size);
  char *s = fuzz_strndup(data, size);
  from_strings(s, size, memchr(data, '\0', size) != NULL);
  free(s);
  return 0;
}
