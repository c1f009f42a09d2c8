/*
 * spec.h -- declarative checks of JSON request bodies.
 *
 * Every query body aced takes is described by one table of its fields
 * (name, type, required, size cap), next to its handler; spec_check walks
 * the body once, refuses any field the table does not list and answers
 * with the first bad field named by its path ("inputs[3][1]").  After it
 * passes, the services can rely on the types and shapes below and check
 * only what needs the model (names, row lengths).  Registration bodies
 * have their own, deeper validation in the model parser.
 */
#ifndef ACED_API_SPEC_H
#define ACED_API_SPEC_H

#include <stddef.h>

#include <jansson.h>

#include "aced/errors.h"

enum spec_type {
  SPEC_STRING,   /* a string */
  SPEC_INTEGER,  /* an integer (ranges are the services' to check) */
  SPEC_NUMBER,   /* any JSON number */
  SPEC_REF,      /* an output or feature: a name or an index */
  SPEC_REFS,     /* a non-empty array of names or indices >= 0 */
  SPEC_NUMBERS,  /* 1 to max finite numbers */
  SPEC_ROWS,     /* 1 to max rows, each 1 to ACED_MAX_INPUTS finite numbers */
  SPEC_INPUTS,   /* SPEC_ROWS, or rows that are sequences (a recurrent model's inputs):
                    steps of finite numbers, at most ACED_MAX_INPUTS in all */
  SPEC_BOOL,     /* true or false */
  SPEC_STRINGS,  /* 1 to max strings */
  SPEC_STRING_OR_NUMBERS, /* a string, or 1 to ACED_MAX_INPUTS finite numbers */
  SPEC_STRING_OR_INPUT,   /* a string, or one row as SPEC_INPUTS takes them */
};

struct spec_field {
  const char *name;
  enum spec_type type;
  int required;
  size_t max; /* SPEC_NUMBERS, SPEC_ROWS: most entries */
};
#define SPEC_END {NULL, SPEC_STRING, 0, 0}
/* Most rows a table may have (the longest today has about 20).  A table
 * that outgrows it makes spec_check answer 500 for its last fields, which
 * the e2e tests of those fields would show at once. */
#define SPEC_FIELDS_MAX 48
/* The parameters of an estimate (svc.h's struct query_params), optional
 * in every body that asks for one; their ranges are the services' to
 * check (query_params_parse). */
#define SPEC_ESTIMATE_FIELDS                                                  \
  {"estimator", SPEC_STRING, 0, 0}, {"num", SPEC_INTEGER, 0, 0},             \
      {"max_order", SPEC_INTEGER, 0, 0}, {"epsilon", SPEC_NUMBER, 0, 0},      \
      {"effect", SPEC_STRING, 0, 0}

/* ACED_OK, or the error naming the first bad field.  body must be an
 * object (the dispatcher guarantees it for routes that take JSON). */
enum aced_err spec_check(const json_t *body, const struct spec_field *spec,
                         struct aced_error *err);

#endif
