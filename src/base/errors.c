/*
 * errors.c -- lookups into the error registry of errors.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

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

/* Replace every byte of an invalid UTF-8 sequence with '?': messages and
 * field paths can echo client bytes (a URL with %ff), and jansson refuses
 * invalid UTF-8, which would turn a 4xx into a failure to answer. */
static void utf8_sanitize(char *s)
{
  unsigned char *p = (unsigned char *)s;
  while (*p) {
    int len = *p < 0x80 ? 1 : (*p >> 5) == 0x6 ? 2 : (*p >> 4) == 0xe ? 3 : (*p >> 3) == 0x1e ? 4 : 0;
    int good = len > 0;
    for (int i = 1; good && i < len; i++)
      good = (p[i] & 0xc0) == 0x80;
    if (good && len > 1) {
      json_t *t = json_stringn((const char *)p, (size_t)len); /* overlongs, surrogates */
      good = t != NULL;
      json_decref(t);
    }
    if (!good) {
      *p++ = '?';
      continue;
    }
    p += len;
  }
}

json_t *error_json(const struct aced_error *err)
{
  struct aced_error e = *err;
  utf8_sanitize(e.message);
  utf8_sanitize(e.field);
  return json_pack("{s:{s:s,s:s,s:s}}", "error", "code", aced_err_code(e.code), "message",
                   e.message, "field", e.field);
}
