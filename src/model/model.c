/*
 * model.c -- parse and validate a registration body into a struct
 * aced_model.  Its canonical form and digest are in canonical.c, its
 * metadata and name lookups in describe.c.
 *
 * DESIGN
 *
 * model_parse() is the gate described in model.h.  It walks the body once,
 * top to bottom, and stops at the first problem, reporting the error code
 * and the path of the offending field ("network.layers[1].weights[0][3]").
 *
 * - Every JSON object is checked against a small spec table of {name, JSON
 *   type, required} by model_check_object(): unknown fields, missing fields and
 *   wrong types are all answered from that one place, in that order.
 * - Sizes are checked against limits.h before anything is allocated for
 *   them, so a hostile body cannot make us allocate more than the limits
 *   allow.  (The body itself is already in memory as a jansson tree; we
 *   never allocate more than a small multiple of it.)
 * - Array-length problems (empty where entries are needed, rows of the
 *   wrong length, layers that do not chain, a single sample) are
 *   ACED_E_SHAPE; values that are the right shape but wrong (low > high,
 *   an unknown activation, a duplicate name) are ACED_E_INVALID.
 * - Numbers may be JSON integers or reals; both are read as doubles, and
 *   -0.0 is read as 0.0 so that the canonical text of a model does not
 *   depend on how a zero was spelled.
 *
 * The canonical JSON (and so the digest, src/model/canonical.c) is written
 * from the parsed struct, not from the body, by the streaming writer of
 * jsonw.h rather than by
 * building a jansson tree: a model at the size limits would need gigabytes
 * as json_t nodes.  The writer reproduces exactly what
 * json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17))
 * prints for the same content (tests/unit/test_model.c checks this), so
 * anyone can recompute a digest with an ordinary JSON library.  When only
 * the digest is needed the text is hashed as it is written and never held
 * whole.
 */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>
#include "aced/model.h"
#include "model/internal.h"

/* ------------------------------------------------------------------ */
/* Tolerances for the covariance.                                      */

/* Symmetry: |S[i][j] - S[j][i]| <= ACED_SYM_RTOL * max |S|.  A covariance
 * computed in float64 and written with round-trip precision is symmetric
 * to within a few ulps of its largest entry (1e-16 relative); one computed
 * in float32 to about 1e-7.  1e-9 accepts every float64 rounding pattern
 * and rejects a matrix whose two triangles say different things.  Measured
 * against the largest entry, not the pair itself, because a tiny
 * off-diagonal entry next to large variances carries only absolute
 * rounding error. */
#define ACED_SYM_RTOL 1e-9

/* Positive semi-definiteness: smallest eigenvalue >= -tol with
 * tol = ACED_PSD_RTOL * k * max |eigenvalue|.  A rank-deficient covariance
 * (fewer samples than features, or a feature that is a linear combination
 * of others) is legitimately PSD but its zero eigenvalues come out of
 * rounding as small numbers of either sign, of order k * eps * ||S||
 * (eps = 2.2e-16, from both the client's computation and LAPACK's backward
 * error).  1e-10 * k leaves about 5e5 times that margin while still
 * rejecting any matrix with a genuinely negative direction larger than a
 * ten-billionth of its scale.  Purely relative (no absolute floor) so that
 * features measured in tiny units are judged the same as any others.
 * The engine clips the remaining tiny negative eigenvalues to zero. */
#define ACED_PSD_RTOL 1e-10

/* Rows centred at a time when computing the sample covariance (BLAS dsyrk
 * on a block): large enough for BLAS to be efficient, small enough that
 * the block (at most 256 x 4096 doubles, 8 MiB) does not matter. */
#define COV_BLOCK_ROWS 256

/* ------------------------------------------------------------------ */
/* Errors with a formatted field path.                                 */

/* Like aced_error_set, but the field path is itself printf-formatted; the
 * message comes pre-formatted by the caller in `msg`. */
static enum aced_err fail(struct aced_error *err, enum aced_err code,
                          const char *msg, const char *field_fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum aced_err fail(struct aced_error *err, enum aced_err code,
                          const char *msg, const char *field_fmt, ...)
{
  char field[ACED_FIELD_MAX];
  va_list ap;
  va_start(ap, field_fmt);
  vsnprintf(field, sizeof field, field_fmt, ap);
  va_end(ap);
  return aced_error_set(err, code, field, "%s", msg);
}

/* snprintf into a message buffer, for use with fail(). */
#define MSG(buf, ...) (snprintf((buf), sizeof(buf), __VA_ARGS__), (buf))

static enum aced_err oom(struct aced_error *err)
{
  return aced_error_set(err, ACED_E_INTERNAL, "", "out of memory");
}

/* ------------------------------------------------------------------ */
/* Spec tables.                                                        */

static const char *spec_type_name(enum spec_type t)
{
  switch (t) {
  case SPEC_STRING: return "a string";
  case SPEC_NUMBER: return "a number";
  case SPEC_ARRAY: return "an array";
  case SPEC_OBJECT: return "an object";
  case SPEC_BOOL: return "a boolean";
  }
  return "?";
}

static const char *json_type_name(const json_t *v)
{
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER:
  case JSON_REAL: return "a number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

static int spec_type_ok(enum spec_type t, const json_t *v)
{
  switch (t) {
  case SPEC_STRING: return json_is_string(v);
  case SPEC_NUMBER: return json_is_number(v);
  case SPEC_ARRAY: return json_is_array(v);
  case SPEC_OBJECT: return json_is_object(v);
  case SPEC_BOOL: return json_is_boolean(v);
  }
  return 0;
}

/* Join an object path and a key: "" + "name" is "name", "data" + "mean"
 * is "data.mean". */
#define SUBPATH(path) (path)[0] ? (path) : "", (path)[0] ? "." : ""

/* Check `obj` (found at `path`) against a spec table: it must be an
 * object, have no field outside the table, every required field, and
 * every present field of the listed type.  Unknown fields are reported
 * first because a misspelt optional field would otherwise be silently
 * ignored and a misspelt required one reported as missing. */
enum aced_err model_check_object(const json_t *obj, const char *path,
                                  const struct field_spec *spec, size_t n,
                                  struct aced_error *err)
{
  char msg[ACED_MESSAGE_MAX];
  const char *key;
  json_t *val;
  size_t i;

  if (!json_is_object(obj))
    return fail(err, ACED_E_BAD_TYPE,
                MSG(msg, "expected an object, found %s", json_type_name(obj)),
                "%s", path);
  json_object_foreach((json_t *)obj, key, val) {
    for (i = 0; i < n; i++)
      if (strcmp(key, spec[i].name) == 0)
        break;
    if (i == n)
      return fail(err, ACED_E_UNKNOWN_FIELD,
                  MSG(msg, "'%.64s' is not a field of %s", key,
                      path[0] ? path : "the model"),
                  "%s%s%.64s", SUBPATH(path), key);
  }
  for (i = 0; i < n; i++) {
    val = json_object_get(obj, spec[i].name);
    if (val == NULL) {
      if (spec[i].required)
        return fail(err, ACED_E_MISSING_FIELD,
                    MSG(msg, "required field '%s' is missing", spec[i].name),
                    "%s%s%s", SUBPATH(path), spec[i].name);
      continue;
    }
    if (!spec_type_ok(spec[i].type, val))
      return fail(err, ACED_E_BAD_TYPE,
                  MSG(msg, "expected %s, found %s", spec_type_name(spec[i].type),
                      json_type_name(val)),
                  "%s%s%s", SUBPATH(path), spec[i].name);
  }
  return ACED_OK;
}

/* The registration body.  "name" is first so that it can be left out of
 * the table when the body must not carry one (stored canonical JSON). */
static const struct field_spec top_spec[] = {
    {"name", SPEC_STRING, 1},
    {"description", SPEC_STRING, 0},
    {"features", SPEC_ARRAY, 1},
    {"input_transform", SPEC_OBJECT, 0},
    {"outputs", SPEC_ARRAY, 1},
    {"network", SPEC_OBJECT, 1},
    {"data", SPEC_OBJECT, 1},
    {"graph", SPEC_OBJECT, 0}, /* graph.c */
    {"training", SPEC_OBJECT, 0}, /* training.c */
    {"sequence_length", SPEC_NUMBER, 0},
};
static const struct field_spec feature_spec[] = {
    {"name", SPEC_STRING, 1},
    {"low", SPEC_NUMBER, 1},
    {"high", SPEC_NUMBER, 1},
};
/* "type" is required although only "feedforward" exists today, so that
 * bodies written now stay unambiguous when recurrent networks arrive. */
static const struct field_spec network_spec[] = {
    {"type", SPEC_STRING, 1},
    {"layers", SPEC_ARRAY, 1},
};
static const struct field_spec layer_spec[] = {
    {"weights", SPEC_ARRAY, 1},
    {"bias", SPEC_ARRAY, 1},
    {"activation", SPEC_STRING, 1},
};
/* Which of these must be present together is checked in parse_data(). */
static const struct field_spec data_spec[] = {
    {"samples", SPEC_ARRAY, 0},
    {"mean", SPEC_ARRAY, 0},
    {"covariance", SPEC_ARRAY, 0},
    {"targets", SPEC_ARRAY, 0}, /* training.c */
};

/* ------------------------------------------------------------------ */
/* Numbers, vectors and matrices.                                      */

/* Read a finite number from `v` (integer or real) into *out.  Element
 * paths are base[i] (j < 0) or base[i][j]. */
static enum aced_err read_number(const json_t *v, double *out,
                                 const char *base, long i, long j,
                                 struct aced_error *err)
{
  char msg[ACED_MESSAGE_MAX];
  double x;

  if (!json_is_number(v)) {
    MSG(msg, "expected a number, found %s", json_type_name(v));
    goto bad;
  }
  x = json_number_value(v);
  if (!isfinite(x)) {
    MSG(msg, "numbers must be finite");
    if (j < 0)
      return fail(err, ACED_E_NOT_FINITE, msg, "%s[%ld]", base, i);
    return fail(err, ACED_E_NOT_FINITE, msg, "%s[%ld][%ld]", base, i, j);
  }
  *out = x + 0.0; /* -0.0 becomes 0.0 */
  return ACED_OK;
bad:
  if (i < 0)
    return fail(err, ACED_E_BAD_TYPE, msg, "%s", base);
  if (j < 0)
    return fail(err, ACED_E_BAD_TYPE, msg, "%s[%ld]", base, i);
  return fail(err, ACED_E_BAD_TYPE, msg, "%s[%ld][%ld]", base, i, j);
}

/* A number that is a field of an object (already type-checked by its
 * spec), e.g. features[2].low. */
static enum aced_err read_field_number(const json_t *v, double *out,
                                       struct aced_error *err,
                                       const char *field_fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum aced_err read_field_number(const json_t *v, double *out,
                                       struct aced_error *err,
                                       const char *field_fmt, ...)
{
  char field[ACED_FIELD_MAX];
  va_list ap;
  double x = json_number_value(v);

  if (isfinite(x)) {
    *out = x + 0.0;
    return ACED_OK;
  }
  va_start(ap, field_fmt);
  vsnprintf(field, sizeof field, field_fmt, ap);
  va_end(ap);
  return aced_error_set(err, ACED_E_NOT_FINITE, field, "numbers must be finite");
}

/* Read the n numbers of array `a` (found at `base`, its length already
 * checked) into dst.  `row` >= 0 when `a` is row `row` of a matrix. */
enum aced_err model_read_row(const json_t *a, const char *base, long row,
                              double *dst, struct aced_error *err)
{
  size_t n = json_array_size(a), c;
  enum aced_err rc;

  for (c = 0; c < n; c++) {
    rc = row < 0 ? read_number(json_array_get(a, c), &dst[c], base, (long)c, -1, err)
                 : read_number(json_array_get(a, c), &dst[c], base, row, (long)c, err);
    if (rc != ACED_OK)
      return rc;
  }
  return ACED_OK;
}

/* Every entry of `a` (at `base`) must be an array of exactly `cols`
 * entries.  No allocation: this runs before the matrix is allocated. */
enum aced_err model_check_rows(const json_t *a, const char *base, size_t cols,
                                const char *why, struct aced_error *err)
{
  char msg[ACED_MESSAGE_MAX];
  size_t r, n = json_array_size(a);
  const json_t *row;

  for (r = 0; r < n; r++) {
    row = json_array_get(a, r);
    if (!json_is_array(row))
      return fail(err, ACED_E_BAD_TYPE,
                  MSG(msg, "expected an array (a row), found %s", json_type_name(row)),
                  "%s[%zu]", base, r);
    if (json_array_size(row) != cols)
      return fail(err, ACED_E_SHAPE,
                  MSG(msg, "expected %zu entries (%s), found %zu", cols, why,
                      json_array_size(row)),
                  "%s[%zu]", base, r);
  }
  return ACED_OK;
}

/* Read a rows x cols matrix whose shape model_check_rows() has checked. */
enum aced_err model_read_matrix(const json_t *a, const char *base, size_t cols,
                                 double *dst, struct aced_error *err)
{
  size_t r, n = json_array_size(a);
  enum aced_err rc;

  for (r = 0; r < n; r++)
    if ((rc = model_read_row(json_array_get(a, r), base, (long)r, dst + r * cols, err)) != ACED_OK)
      return rc;
  return ACED_OK;
}

/* ------------------------------------------------------------------ */
/* Names and labels.                                                   */

/* A feature or output name: 1..ACED_LABEL_MAX bytes of UTF-8 (jansson
 * guarantees the encoding) without control characters or NUL.  Non-ASCII
 * letters are allowed: labels are display text, never URLs or SQL. */
static enum aced_err check_label(const json_t *v, const char *what, char *dst,
                                 struct aced_error *err, const char *field_fmt,
                                 ...) __attribute__((format(printf, 5, 6)));
static enum aced_err check_label(const json_t *v, const char *what, char *dst,
                                 struct aced_error *err, const char *field_fmt,
                                 ...)
{
  char field[ACED_FIELD_MAX];
  const char *s = json_string_value(v);
  size_t n = json_string_length(v), i;
  enum aced_err code = ACED_OK;
  char msg[ACED_MESSAGE_MAX];
  va_list ap;

  if (n == 0) {
    code = ACED_E_INVALID;
    MSG(msg, "%s must not be empty", what);
  } else if (n > ACED_LABEL_MAX) {
    code = ACED_E_LIMIT;
    MSG(msg, "%s is %zu bytes long, at most %d allowed", what, n, ACED_LABEL_MAX);
  } else {
    for (i = 0; i < n; i++)
      if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
        code = ACED_E_INVALID;
        MSG(msg, "%s must be printable (control character at byte %zu)", what, i);
        break;
      }
  }
  if (code == ACED_OK) {
    memcpy(dst, s, n + 1);
    return ACED_OK;
  }
  va_start(ap, field_fmt);
  vsnprintf(field, sizeof field, field_fmt, ap);
  va_end(ap);
  return aced_error_set(err, code, field, "%s", msg);
}

struct label_ref {
  const char *s;
  int i;
};

static int label_ref_cmp(const void *a, const void *b)
{
  const struct label_ref *x = a, *y = b;
  int c = strcmp(x->s, y->s);
  return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* Find a duplicate among n labels (stride bytes apart): returns the index
 * of a later copy and sets *first to the earlier one, or returns -1.
 * Sorting keeps this O(n log n) for the 4096 features the limits allow. */
static int find_duplicate(const char *labels, size_t stride, int n, int *first,
                          int *oom_flag)
{
  struct label_ref *a;
  int i, dup = -1;

  *oom_flag = 0;
  if (n < 2)
    return -1;
  if ((a = malloc((size_t)n * sizeof *a)) == NULL) {
    *oom_flag = 1;
    return -1;
  }
  for (i = 0; i < n; i++) {
    a[i].s = labels + (size_t)i * stride;
    a[i].i = i;
  }
  qsort(a, (size_t)n, sizeof *a, label_ref_cmp);
  /* Equal names are now adjacent, in index order: in each run the first
   * entry is the original and the second the first copy.  Report the
   * copy that comes first in the body. */
  for (i = 1; i < n; i++)
    if (strcmp(a[i - 1].s, a[i].s) == 0 &&
        (i < 2 || strcmp(a[i - 2].s, a[i].s) != 0) && (dup < 0 || a[i].i < dup)) {
      dup = a[i].i;
      *first = a[i - 1].i;
    }
  free(a);
  return dup;
}

/* ------------------------------------------------------------------ */
/* The parts of the body.                                              */

static enum aced_err parse_features(const json_t *arr, struct aced_model *m,
                                    struct aced_error *err)
{
  char msg[ACED_MESSAGE_MAX];
  size_t n = json_array_size(arr), i;
  enum aced_err rc;
  int dup, first, nomem;

  if (n == 0)
    return aced_error_set(err, ACED_E_SHAPE, "features",
                          "expected at least 1 feature, found 0");
  if (n > ACED_MAX_INPUTS)
    return aced_error_set(err, ACED_E_LIMIT, "features",
                          "%zu features, at most %d allowed", n, ACED_MAX_INPUTS);
  if ((m->features = calloc(n, sizeof *m->features)) == NULL)
    return oom(err);
  m->n_features = (int)n;
  for (i = 0; i < n; i++) {
    const json_t *f = json_array_get(arr, i);
    struct aced_feature *ft = &m->features[i];
    char path[32];

    snprintf(path, sizeof path, "features[%zu]", i);
    if ((rc = model_check_object(f, path, feature_spec, NSPEC(feature_spec), err)) != ACED_OK)
      return rc;
    if ((rc = check_label(json_object_get(f, "name"), "a feature name", ft->name,
                          err, "%s.name", path)) != ACED_OK)
      return rc;
    if ((rc = read_field_number(json_object_get(f, "low"), &ft->low, err,
                                "%s.low", path)) != ACED_OK ||
        (rc = read_field_number(json_object_get(f, "high"), &ft->high, err,
                                "%s.high", path)) != ACED_OK)
      return rc;
    /* low == high: a constant feature (src/svc/resolve.c skips it) */
    if (ft->low > ft->high)
      return fail(err, ACED_E_INVALID,
                  MSG(msg, "low (%.17g) must not be above high (%.17g)", ft->low, ft->high),
                  "%s.low", path);
  }
  dup = find_duplicate(m->features[0].name, sizeof m->features[0], m->n_features,
                       &first, &nomem);
  if (nomem)
    return oom(err);
  if (dup >= 0)
    return fail(err, ACED_E_INVALID,
                MSG(msg, "feature name '%s' is already used by features[%d]",
                    m->features[dup].name, first),
                "features[%d].name", dup);
  return ACED_OK;
}

static enum aced_err parse_outputs(const json_t *arr, struct aced_model *m,
                                   struct aced_error *err)
{
  char msg[ACED_MESSAGE_MAX];
  size_t n = json_array_size(arr), i;
  enum aced_err rc;
  int dup, first, nomem;

  if (n == 0)
    return aced_error_set(err, ACED_E_SHAPE, "outputs",
                          "expected at least 1 output, found 0");
  if (n > ACED_MAX_OUTPUTS)
    return aced_error_set(err, ACED_E_LIMIT, "outputs",
                          "%zu outputs, at most %d allowed", n, ACED_MAX_OUTPUTS);
  if ((m->outputs = calloc(n, sizeof *m->outputs)) == NULL)
    return oom(err);
  m->n_outputs = (int)n;
  for (i = 0; i < n; i++) {
    const json_t *o = json_array_get(arr, i);
    if (!json_is_string(o))
      return fail(err, ACED_E_BAD_TYPE,
                  MSG(msg, "expected a string (an output name), found %s",
                      json_type_name(o)),
                  "outputs[%zu]", i);
    if ((rc = check_label(o, "an output name", m->outputs[i], err, "outputs[%zu]",
                          i)) != ACED_OK)
      return rc;
  }
  dup = find_duplicate(m->outputs[0], sizeof m->outputs[0], m->n_outputs, &first,
                       &nomem);
  if (nomem)
    return oom(err);
  if (dup >= 0)
    return fail(err, ACED_E_INVALID,
                MSG(msg, "output name '%s' is already used by outputs[%d]",
                    m->outputs[dup], first),
                "outputs[%d]", dup);
  return ACED_OK;
}

/* One layer: shape first (no allocation), then the parameter budget, then
 * allocate and read.  `n_in` is what the layer must take: the number of
 * features for layer 0, else the previous layer's units. */
enum aced_err model_parse_layer(const json_t *lj, const char *base, int li, int last,
                                int n_in, struct aced_model *m, struct aced_error *err)
{
  char msg[ACED_MESSAGE_MAX], path[48], wpath[64], bpath[64];
  struct eng_layer *L = &m->net.layers[li];
  const json_t *W, *b, *row0;
  const char *act;
  size_t rows, cols;
  enum aced_err rc;
  long params;

  snprintf(path, sizeof path, "%s[%d]", base, li);
  snprintf(wpath, sizeof wpath, "%s.weights", path);
  snprintf(bpath, sizeof bpath, "%s.bias", path);
  if ((rc = model_check_object(lj, path, layer_spec, NSPEC(layer_spec), err)) != ACED_OK)
    return rc;
  W = json_object_get(lj, "weights");
  b = json_object_get(lj, "bias");
  act = json_string_value(json_object_get(lj, "activation"));

  if (eng_act_from_name(act, &L->act) != 0)
    return fail(err, ACED_E_INVALID,
                MSG(msg, "unknown activation '%.64s' (known: identity, relu, "
                         "leaky_relu, elu, sigmoid, tanh, softplus, gelu, softmax, log_softmax)",
                    act),
                "%s.activation", path);
  if ((L->act == ENG_ACT_SOFTMAX || L->act == ENG_ACT_LOG_SOFTMAX) && !last)
    return fail(err, ACED_E_INVALID,
                MSG(msg, "%s is allowed on the last layer only (this is layer "
                         "%d of %d)",
                    act, li, m->net.n_layers),
                "%s.activation", path);

  rows = json_array_size(W);
  if (rows == 0)
    return fail(err, ACED_E_SHAPE, "expected at least 1 row (one per unit), found 0",
                "%s", wpath);
  if (rows > ACED_MAX_UNITS)
    return fail(err, ACED_E_LIMIT,
                MSG(msg, "%zu units, at most %d allowed", rows, ACED_MAX_UNITS),
                "%s", wpath);
  row0 = json_array_get(W, 0);
  if (!json_is_array(row0))
    return fail(err, ACED_E_BAD_TYPE,
                MSG(msg, "expected an array (a row), found %s", json_type_name(row0)),
                "%s[0]", wpath);
  cols = json_array_size(row0);
  if (cols != (size_t)n_in) {
    if (li == 0)
      MSG(msg, "layer 0 must take %d inputs (%s), but its weight rows have %zu entries",
          n_in, m->rnn ? "hidden_size" : "one per feature", cols);
    else
      MSG(msg, "layer %d must take %d inputs (layer %d has %d units), but its "
               "weight rows have %zu entries",
          li, n_in, li - 1, n_in, cols);
    return fail(err, ACED_E_SHAPE, msg, "%s", wpath);
  }
  if ((rc = model_check_rows(W, wpath, cols, "as many as row 0", err)) != ACED_OK)
    return rc;
  if (json_array_size(b) != rows)
    return fail(err, ACED_E_SHAPE,
                MSG(msg, "expected %zu biases (one per unit), found %zu", rows,
                    json_array_size(b)),
                "%s", bpath);
  if (last && rows != (size_t)m->n_outputs)
    return fail(err, ACED_E_SHAPE,
                MSG(msg, "the last layer must have %d units (one per output), "
                         "found %zu weight rows",
                    m->n_outputs, rows),
                "%s", wpath);

  /* rows, cols <= 8192, so the product fits a long. */
  params = (long)rows * (long)cols + (long)rows;
  if (params > ACED_MAX_PARAMS - m->n_params)
    return fail(err, ACED_E_LIMIT,
                MSG(msg, "the network has more than %ld parameters (weights and "
                         "biases) by this layer",
                    ACED_MAX_PARAMS),
                "%s", path);
  m->n_params += params;

  L->n_in = (int)cols;
  L->n_out = (int)rows;
  if ((L->W = malloc(rows * cols * sizeof *L->W)) == NULL ||
      (L->b = malloc(rows * sizeof *L->b)) == NULL)
    return oom(err);
  if ((rc = model_read_matrix(W, wpath, cols, L->W, err)) != ACED_OK ||
      (rc = model_read_row(b, bpath, -1, L->b, err)) != ACED_OK)
    return rc;
  return ACED_OK;
}

static enum aced_err parse_network(const json_t *nj, struct aced_model *m,
                                   struct aced_error *err)
{
  char msg[ACED_MESSAGE_MAX];
  const json_t *layers;
  const char *type;
  size_t n, i;
  enum aced_err rc;
  int n_in;

  if ((rc = model_check_object(nj, "network", network_spec, NSPEC(network_spec), err)) != ACED_OK)
    return rc;
  type = json_string_value(json_object_get(nj, "type"));
  if (strcmp(type, "feedforward") != 0)
    return fail(err, ACED_E_INVALID,
                MSG(msg, "unknown network type '%.64s' (known: feedforward, recurrent)",
                    type),
                "network.type");
  layers = json_object_get(nj, "layers");
  n = json_array_size(layers);
  if (n == 0)
    return aced_error_set(err, ACED_E_SHAPE, "network.layers",
                          "expected at least 1 layer, found 0");
  if (n > ACED_MAX_LAYERS)
    return aced_error_set(err, ACED_E_LIMIT, "network.layers",
                          "%zu layers, at most %d allowed", n, ACED_MAX_LAYERS);
  if ((m->net.layers = calloc(n, sizeof *m->net.layers)) == NULL)
    return oom(err);
  m->net.n_layers = (int)n;
  n_in = m->n_features;
  for (i = 0; i < n; i++) {
    if ((rc = model_parse_layer(json_array_get(layers, i), "network.layers", (int)i, i + 1 == n, n_in, m,
                          err)) != ACED_OK)
      return rc;
    n_in = m->net.layers[i].n_out;
  }
  return ACED_OK;
}

/* Mean and covariance (divisor n - 1) of the samples.  Two passes: the
 * mean, refined once by the mean of the residuals, then the centred
 * cross-products by BLAS dsyrk on blocks of rows, with the classic
 * correction term (sum of residuals, which the refined mean makes tiny)
 * subtracted so that a poor mean cannot bias the result. */
enum aced_err model_compute_moments(struct aced_model *m, struct aced_error *err)
{
  const int n = m->n_samples, k = m->n_features;
  const double *X = m->samples;
  double *resid = NULL, *block = NULL;
  int r, j, i, r0, nr;

  if ((resid = calloc((size_t)k, sizeof *resid)) == NULL ||
      (block = malloc((size_t)COV_BLOCK_ROWS * (size_t)k * sizeof *block)) == NULL) {
    free(resid);
    return oom(err);
  }
  for (r = 0; r < n; r++)
    for (j = 0; j < k; j++)
      m->mean[j] += X[(size_t)r * k + j];
  for (j = 0; j < k; j++)
    m->mean[j] /= n;
  for (r = 0; r < n; r++)
    for (j = 0; j < k; j++)
      resid[j] += X[(size_t)r * k + j] - m->mean[j];
  for (j = 0; j < k; j++) {
    m->mean[j] += resid[j] / n;
    resid[j] = 0.0;
  }

  memset(m->cov, 0, (size_t)k * (size_t)k * sizeof *m->cov);
  for (r0 = 0; r0 < n; r0 += COV_BLOCK_ROWS) {
    nr = n - r0 < COV_BLOCK_ROWS ? n - r0 : COV_BLOCK_ROWS;
    for (r = 0; r < nr; r++)
      for (j = 0; j < k; j++) {
        double d = X[(size_t)(r0 + r) * k + j] - m->mean[j];
        block[(size_t)r * k + j] = d;
        resid[j] += d;
      }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, k, nr, 1.0, block, k, 1.0,
                m->cov, k);
  }
  for (i = 0; i < k; i++)
    for (j = i; j < k; j++) {
      double c = (m->cov[(size_t)i * k + j] - resid[i] * resid[j] / n) / (n - 1);
      m->cov[(size_t)i * k + j] = c;
      m->cov[(size_t)j * k + i] = c;
    }
  free(resid);
  free(block);

  for (j = 0; j < k; j++)
    if (!isfinite(m->mean[j]))
      return aced_error_set(err, ACED_E_NOT_FINITE, "data.samples",
                            "the mean of feature %d overflows; the samples are "
                            "too large to be used",
                            j);
  for (i = 0; i < k * k; i++)
    if (!isfinite(m->cov[i]))
      return aced_error_set(err, ACED_E_NOT_FINITE, "data.samples",
                            "covariance entry [%d][%d] overflows; "
                            "the samples are too large to be used",
                            i / k, i % k);
  return ACED_OK;
}

/* A given covariance: symmetric to ACED_SYM_RTOL, then made exactly
 * symmetric, then PSD to ACED_PSD_RTOL (see the top of this file). */
enum aced_err model_check_covariance(double *S, int k, struct aced_error *err)
{
  char msg[ACED_MESSAGE_MAX];
  double amax = 0.0, tol, lmin, lmax = 0.0, *A, *w;
  int i, j;
  lapack_int info;

  for (i = 0; i < k * k; i++)
    if (fabs(S[i]) > amax)
      amax = fabs(S[i]);
  tol = ACED_SYM_RTOL * amax;
  for (i = 1; i < k; i++)
    for (j = 0; j < i; j++) {
      double a = S[(size_t)i * k + j], b = S[(size_t)j * k + i];
      if (fabs(a - b) > tol)
        return fail(err, ACED_E_NOT_PSD,
                    MSG(msg, "covariance is not symmetric: [%d][%d] is %.17g but "
                             "[%d][%d] is %.17g (tolerance %.3g = 1e-9 x largest "
                             "entry)",
                        i, j, a, j, i, b, tol),
                    "data.covariance[%d][%d]", i, j);
    }
  for (i = 1; i < k; i++)
    for (j = 0; j < i; j++) {
      double s = 0.5 * (S[(size_t)i * k + j] + S[(size_t)j * k + i]);
      S[(size_t)i * k + j] = S[(size_t)j * k + i] = s;
    }

  /* Eigenvalues only, on a copy: dsyevd overwrites its input. */
  A = malloc((size_t)k * (size_t)k * sizeof *A);
  w = malloc((size_t)k * sizeof *w);
  if (A == NULL || w == NULL) {
    free(A);
    free(w);
    return oom(err);
  }
  memcpy(A, S, (size_t)k * (size_t)k * sizeof *A);
  info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', k, A, k, w);
  free(A);
  if (info != 0) {
    free(w);
    return aced_error_set(err, info > 0 ? ACED_E_NOT_PSD : ACED_E_INTERNAL,
                          "data.covariance",
                          "the eigenvalues of the covariance could not be "
                          "computed (LAPACK dsyevd info %d)",
                          (int)info);
  }
  lmin = w[0]; /* ascending */
  for (i = 0; i < k; i++)
    if (fabs(w[i]) > lmax)
      lmax = fabs(w[i]);
  free(w);
  tol = ACED_PSD_RTOL * k * lmax;
  if (lmin < -tol)
    return aced_error_set(err, ACED_E_NOT_PSD, "data.covariance",
                          "covariance is not positive semi-definite: smallest "
                          "eigenvalue %.6g is below -%.3g (1e-10 x k x largest "
                          "|eigenvalue|)",
                          lmin, tol);
  return ACED_OK;
}

static enum aced_err parse_data(const json_t *dj, struct aced_model *m,
                                struct aced_error *err)
{
  char msg[ACED_MESSAGE_MAX];
  const json_t *samples, *mean, *cov;
  const int k = m->n_features;
  size_t n;
  enum aced_err rc;

  if ((rc = model_check_object(dj, "data", data_spec, NSPEC(data_spec), err)) != ACED_OK)
    return rc;
  samples = json_object_get(dj, "samples");
  mean = json_object_get(dj, "mean");
  cov = json_object_get(dj, "covariance");
  if (samples == NULL && mean == NULL && cov == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "data.samples",
                          "data needs samples, or mean and covariance, or all three");
  if (mean != NULL && cov == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "data.covariance",
                          "a mean needs a covariance to go with it");
  if (cov != NULL && mean == NULL)
    return aced_error_set(err, ACED_E_MISSING_FIELD, "data.mean",
                          "a covariance needs a mean to go with it");

  if (samples != NULL) {
    n = json_array_size(samples);
    if (n > ACED_MAX_SAMPLES)
      return aced_error_set(err, ACED_E_LIMIT, "data.samples",
                            "%zu samples, at most %d allowed", n, ACED_MAX_SAMPLES);
    if ((long)n * k > ACED_MAX_SAMPLE_CELLS)
      return aced_error_set(err, ACED_E_LIMIT, "data.samples",
                            "%zu samples x %d features is %ld values, at most %ld "
                            "allowed",
                            n, k, (long)n * k, ACED_MAX_SAMPLE_CELLS);
    /* Two rows is the least that gives a covariance (divisor n - 1) and a
     * Monte Carlo standard error. */
    if (n < 2)
      return aced_error_set(err, ACED_E_SHAPE, "data.samples",
                            "expected at least 2 samples, found %zu", n);
    if ((rc = model_check_rows(samples, "data.samples", (size_t)k, "one per feature",
                         err)) != ACED_OK)
      return rc;
    if ((m->samples = malloc(n * (size_t)k * sizeof *m->samples)) == NULL)
      return oom(err);
    m->n_samples = (int)n;
    if ((rc = model_read_matrix(samples, "data.samples", (size_t)k, m->samples, err)) != ACED_OK)
      return rc;
  }

  /* k <= ACED_MAX_INPUTS, so k x k is at most 128 MiB (limits.h). */
  m->mean = calloc((size_t)k, sizeof *m->mean);
  m->cov = calloc((size_t)k * (size_t)k, sizeof *m->cov);
  if (m->mean == NULL || m->cov == NULL)
    return oom(err);

  if (mean == NULL)
    return model_compute_moments(m, err);

  m->moments_given = 1;
  if (json_array_size(mean) != (size_t)k)
    return fail(err, ACED_E_SHAPE,
                MSG(msg, "expected %d values (one per feature), found %zu", k,
                    json_array_size(mean)),
                "data.mean");
  if ((rc = model_read_row(mean, "data.mean", -1, m->mean, err)) != ACED_OK)
    return rc;
  if (json_array_size(cov) != (size_t)k)
    return fail(err, ACED_E_SHAPE,
                MSG(msg, "expected a %d x %d matrix (one row per feature), found "
                         "%zu rows",
                    k, k, json_array_size(cov)),
                "data.covariance");
  if ((rc = model_check_rows(cov, "data.covariance", (size_t)k, "one per feature", err)) != ACED_OK)
    return rc;
  if ((rc = model_read_matrix(cov, "data.covariance", (size_t)k, m->cov, err)) != ACED_OK)
    return rc;
  return model_check_covariance(m->cov, k, err);
}

/* ------------------------------------------------------------------ */
/* model_parse                                                         */

static enum aced_err parse_body(const json_t *body, int require_name,
                                struct aced_model *m, struct aced_error *err)
{
  char msg[ACED_MESSAGE_MAX];
  const json_t *v;
  enum aced_err rc;

  /* Without require_name the "name" entry is left out of the table, so a
   * body that carries one is refused as an unknown field: stored content
   * never has a name (the name is the key it is stored under), and
   * silently dropping one would hide a caller's mistake. */
  if (require_name)
    rc = model_check_object(body, "", top_spec, NSPEC(top_spec), err);
  else
    rc = model_check_object(body, "", top_spec + 1, NSPEC(top_spec) - 1, err);
  if (rc != ACED_OK)
    return rc;

  if ((v = json_object_get(body, "name")) != NULL) {
    const char *s = json_string_value(v);
    if (json_string_length(v) != strlen(s) || !model_name_valid(s))
      return fail(err, ACED_E_BAD_NAME,
                  MSG(msg, "model names are 1 to %d characters from A-Z a-z 0-9 "
                           ". _ - (and not '.' or '..')",
                      ACED_NAME_MAX),
                  "name");
    memcpy(m->name, s, strlen(s) + 1);
  }
  if ((v = json_object_get(body, "description")) != NULL) {
    size_t n = json_string_length(v);
    if (n > ACED_DESCRIPTION_MAX)
      return aced_error_set(err, ACED_E_LIMIT, "description",
                            "the description is %zu bytes long, at most %d allowed",
                            n, ACED_DESCRIPTION_MAX);
    if (n != strlen(json_string_value(v)))
      return aced_error_set(err, ACED_E_INVALID, "description",
                            "the description must not contain NUL characters");
    if ((m->description = malloc(n + 1)) == NULL)
      return oom(err);
    memcpy(m->description, json_string_value(v), n + 1);
  }
  int rec = model_is_recurrent(body); /* network, data: recurrent.c */
  if ((rc = parse_features(json_object_get(body, "features"), m, err)) != ACED_OK ||
      (!rec && (rc = model_parse_transform(json_object_get(body, "input_transform"), m, err)) != ACED_OK) ||
      (rc = parse_outputs(json_object_get(body, "outputs"), m, err)) != ACED_OK ||
      (rc = rec ? model_parse_recurrent(body, m, err) : parse_network(json_object_get(body, "network"), m, err)) != ACED_OK ||
      (!rec && (rc = parse_data(json_object_get(body, "data"), m, err)) != ACED_OK) ||
      (rc = rec ? model_recurrent_refuses(body, err) : ACED_OK) != ACED_OK ||
      (rc = model_graph_parse(json_object_get(body, "graph"), require_name, "graph.", m, err)) != ACED_OK ||
      (rc = model_parse_training(json_object_get(body, "training"),
                                 json_object_get(json_object_get(body, "data"), "targets"), m,
                                 err)) != ACED_OK)
    return rc;
  if (!rec && json_object_get(body, "sequence_length") != NULL)
    return aced_error_set(err, ACED_E_INVALID, "sequence_length", "only recurrent networks take one");
  if (model_compute_digest(m) != 0)
    return oom(err);
  return ACED_OK;
}

enum aced_err model_parse(const json_t *body, int require_name,
                          struct aced_model **out, struct aced_error *err)
{
  struct aced_model *m;
  enum aced_err rc;

  *out = NULL;
  if (body == NULL)
    return aced_error_set(err, ACED_E_BAD_JSON, "", "no body");
  if ((m = calloc(1, sizeof *m)) == NULL)
    return oom(err);
  if (require_name && model_onnx_body(body)) { /* onnx.c: into the JSON form */
    json_t *json_form;
    if ((rc = model_onnx_expand(body, &json_form, m->source, sizeof m->source, err)) == ACED_OK)
      rc = parse_body(json_form, require_name, m, err);
    json_decref(json_form);
  } else
    rc = parse_body(body, require_name, m, err);
  if (rc != ACED_OK) {
    model_free(m);
    return rc;
  }
  if (err != NULL)
    aced_error_set(err, ACED_OK, "", NULL);
  *out = m;
  return ACED_OK;
}

void model_free(struct aced_model *m)
{
  int i;

  if (m == NULL)
    return;
  if (m->net.layers != NULL)
    for (i = 0; i < m->net.n_layers; i++) {
      free(m->net.layers[i].W);
      free(m->net.layers[i].b);
    }
  free(m->net.layers);
  model_recurrent_free(m);
  free(m->description);
  free(m->features);
  free(m->outputs);
  free(m->samples);
  free(m->mean);
  free(m->cov);
  free(m->tf_scale);
  free(m->tf_shift);
  model_graph_free(m->graph);
  free(m->targets);
  free(m);
}
