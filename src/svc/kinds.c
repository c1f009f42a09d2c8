/*
 * kinds.c -- the kind table (SVC_KINDS in aced/svc.h) as an array, for
 * lookups by name, and the work of kinds whose result is ready after
 * their plan step.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "svc/internal.h"

const struct job_ops *const svc_kinds[] = {
#define SVC_KIND_ROW(k) &svc_kind_##k,
    SVC_KINDS(SVC_KIND_ROW)
#undef SVC_KIND_ROW
    NULL};

const struct job_ops *svc_kind_find(const char *name)
{
  for (const struct job_ops *const *k = svc_kinds; *k != NULL; k++)
    if (strcmp((*k)->name, name) == 0)
      return *k;
  return NULL;
}

void *done_work_new(json_t *result, struct aced_error *err)
{
  if (result == NULL) {
    if (err->code == ACED_OK)
      aced_error_set(err, ACED_E_INTERNAL, "", "could not build the reply");
    return NULL;
  }
  struct done_work *w = malloc(sizeof *w);
  if (w == NULL) {
    json_decref(result);
    aced_error_set(err, ACED_E_UNAVAILABLE, "", "out of memory");
    return NULL;
  }
  w->result = result;
  return w;
}

long done_work_task(void *work, int i, struct aced_error *err)
{
  (void)work;
  (void)i;
  aced_error_set(err, ACED_E_INTERNAL, "", "job kind has no tasks");
  return -1;
}

json_t *done_work_finish(void *work, struct aced_error *err)
{
  (void)err;
  struct done_work *w = work;
  return json_incref(w->result);
}

void done_work_free(void *work)
{
  struct done_work *w = work;
  if (w != NULL)
    json_decref(w->result);
  free(w);
}
