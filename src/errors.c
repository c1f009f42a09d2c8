/*
 * errors.c -- lookups into the error registry of errors.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "aced/errors.h"

struct err_entry {
  const char *code;
  unsigned status;
  const char *hint;
};

static const struct err_entry registry[ACED_E__COUNT] = {
#define ACED_X_ENTRY(name, code, status, hint) [name] = {code, status, hint},
    ACED_ERROR_LIST(ACED_X_ENTRY)
#undef ACED_X_ENTRY
};

const char *aced_err_code(enum aced_err e)
{
  return (unsigned)e < ACED_E__COUNT ? registry[e].code : "internal";
}

unsigned aced_err_status(enum aced_err e)
{
  return (unsigned)e < ACED_E__COUNT ? registry[e].status : 500;
}

const char *aced_err_hint(enum aced_err e)
{
  return (unsigned)e < ACED_E__COUNT ? registry[e].hint : "internal error";
}

enum aced_err aced_error_set(struct aced_error *err, enum aced_err e,
                             const char *field, const char *fmt, ...)
{
  if (err == NULL)
    return e;
  err->code = e;
  snprintf(err->field, sizeof err->field, "%s", field ? field : "");
  if (fmt != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  } else {
    snprintf(err->message, sizeof err->message, "%s", aced_err_hint(e));
  }
  return e;
}
