/*
 * errors.h -- the one registry of error codes aced answers with.
 *
 * Every error reply is
 *   {"error": {"code": "<code>", "message": "...", "field": "path.to.field"}}
 * with the HTTP status listed here.  Code below the HTTP layer (model
 * parsing, validation, the store) reports an `enum aced_err` plus a message
 * and a field path in a `struct aced_error`; only the HTTP layer turns that
 * into a response.  Adding an error means adding one line here.
 */
#ifndef ACED_ERRORS_H
#define ACED_ERRORS_H

#include <stddef.h>

/*        name                   code string            status  hint */
#define ACED_ERROR_LIST(X)                                                             \
  X(ACED_OK,                    "ok",                   200, "no error")               \
  X(ACED_E_BAD_JSON,            "bad_json",             400, "body is not valid JSON") \
  X(ACED_E_BAD_REQUEST,         "bad_request",          400, "malformed request")      \
  X(ACED_E_BAD_TYPE,            "bad_type",             400, "a field has the wrong JSON type") \
  X(ACED_E_MISSING_FIELD,       "missing_field",        400, "a required field is absent") \
  X(ACED_E_UNKNOWN_FIELD,       "unknown_field",        400, "a field is not part of the schema") \
  X(ACED_E_BAD_NAME,            "bad_name",             400, "names are [A-Za-z0-9._-]{1,64}") \
  X(ACED_E_BAD_PARAMETER,       "bad_parameter",        400, "a query parameter is invalid") \
  X(ACED_E_UNAUTHORIZED,        "unauthorized",         401, "missing or invalid bearer token") \
  X(ACED_E_FORBIDDEN,           "forbidden",            403, "token lacks the required scope") \
  X(ACED_E_NOT_FOUND,           "not_found",            404, "no such route") \
  X(ACED_E_MODEL_NOT_FOUND,     "model_not_found",      404, "no such model") \
  X(ACED_E_JOB_NOT_FOUND,       "job_not_found",        404, "no such job") \
  X(ACED_E_UNKNOWN_OUTPUT,      "unknown_output",       404, "the model has no such output") \
  X(ACED_E_UNKNOWN_FEATURE,     "unknown_feature",      404, "the model has no such feature") \
  X(ACED_E_METHOD_NOT_ALLOWED,  "method_not_allowed",   405, "method not allowed on this route") \
  X(ACED_E_CONFLICT,            "conflict",             409, "conflicting state") \
  X(ACED_E_TOO_LARGE,           "payload_too_large",    413, "request body over the limit") \
  X(ACED_E_URI_TOO_LONG,        "uri_too_long",         414, "request target too long or too many query parameters") \
  X(ACED_E_HEADERS_TOO_LARGE,   "header_fields_too_large", 431, "too many or too large request headers") \
  X(ACED_E_UNSUPPORTED_MEDIA,   "unsupported_media_type", 415, "send Content-Type: application/json") \
  X(ACED_E_INVALID,             "invalid_value",        422, "a value is out of range or inconsistent") \
  X(ACED_E_SHAPE,               "shape_mismatch",       422, "array shapes do not chain") \
  X(ACED_E_NOT_FINITE,          "not_finite",           422, "numbers must be finite") \
  X(ACED_E_NOT_PSD,             "not_psd",              422, "covariance is not symmetric positive semi-definite") \
  X(ACED_E_LIMIT,               "limit_exceeded",       422, "a size limit was exceeded") \
  X(ACED_E_UNSUPPORTED_OPERATOR, "unsupported_operator", 422, "the ONNX graph uses an operator aced cannot import") \
  X(ACED_E_CYCLIC_GRAPH,        "cyclic_graph",         422, "the graph among the inputs has a cycle") \
  X(ACED_E_NO_GRAPH,            "no_graph",             422, "total and indirect effects need a graph among the inputs") \
  X(ACED_E_NO_SAMPLES,          "no_samples",           422, "the estimator needs the model's data samples") \
  X(ACED_E_NO_TRAINING,         "no_training_data",     422, "the model was registered without data.targets and training") \
  X(ACED_E_TOO_MANY_REQUESTS,   "too_many_requests",    429, "slow down") \
  X(ACED_E_INTERNAL,            "internal",             500, "internal error") \
  X(ACED_E_QUEUE_FULL,          "queue_full",           503, "work queue full, retry later") \
  X(ACED_E_UNAVAILABLE,         "unavailable",          503, "service unavailable") \
  X(ACED_E_STORE,               "store_error",          503, "database error") \
  X(ACED_E_DB_UNAVAILABLE,      "database_unavailable", 503, "the database cannot be reached; retry") \
  X(ACED_E_JOB_GONE,            "job_gone",             410, "the job was lost when the daemon restarted")

enum aced_err {
#define ACED_X_ENUM(name, code, status, hint) name,
  ACED_ERROR_LIST(ACED_X_ENUM)
#undef ACED_X_ENUM
  ACED_E__COUNT
};

/* An error travelling up from parsing/validation/storage to the HTTP layer.
 * `field` is a dotted path ("network.layers[1].weights[0][3]"), empty when
 * the error is not about one field. */
#define ACED_FIELD_MAX 256
#define ACED_MESSAGE_MAX 512
struct aced_error {
  enum aced_err code;
  char field[ACED_FIELD_MAX];
  char message[ACED_MESSAGE_MAX];
};

const char *aced_err_code(enum aced_err e);   /* "bad_json" */
unsigned aced_err_status(enum aced_err e);    /* 400 */
const char *aced_err_hint(enum aced_err e);

/* Fill *err (if not NULL) and return e.  printf-style message. */
enum aced_err aced_error_set(struct aced_error *err, enum aced_err e,
                             const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The error body {"error": {"code", "message", "field"}} as JSON (new
 * reference).  Bytes of invalid UTF-8 in the message or field (echoed
 * client input) are replaced by '?', since JSON text must be UTF-8. */
struct json_t;
struct json_t *error_json(const struct aced_error *err);

#endif
