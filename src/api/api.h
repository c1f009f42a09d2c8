/*
 * api.h -- what the route handlers of src/api/ share (src/api/common.c).
 * One file per route: handler_<route>.c holds the handler named in the
 * route table (src/http/routes.c), its body spec and its reply.
 */
#ifndef ACED_API_H
#define ACED_API_H

#include "aced/handlers.h"
#include "aced/svc.h"
#include "api/spec.h"

/* Look up the latest version of model `name` (validated) without its
 * body; on failure the error reply has been queued and *ret is set. */
int api_model_row(struct request *rq, const char *name, struct store_model_row *row,
                  MHD_RESULT *ret);

/* Fill *req for a job of kind `ops` on the model version in *row (which
 * is then cleared); params is borrowed (the job takes its own reference). */
void api_job_for_row(struct job_request *req, const struct job_ops *ops,
                     struct store_model_row *row, json_t *params);

/* Answer a cached result: the reply (200), or the error it produced.
 * Returns 0 when there is neither (the request must go to a worker). */
int api_reply_cached(struct request *rq, json_t *reply, const struct aced_error *err,
                     MHD_RESULT *ret);

/* Submit a job and answer with it.  async: 202 at once with the job.
 * Otherwise wait up to sync_wait_ms: the job's result (200, or 201 for a
 * registration that created a version), its error, or 202 if it takes
 * longer. */
MHD_RESULT api_run_job(struct request *rq, struct job_request *req, int async);

/* Set meta.elapsed_ms of a reply to the time since the request began. */
void api_set_elapsed(struct request *rq, json_t *reply);

/* Check rq->body against a spec; on failure the error reply has been
 * queued and *ret is set. */
int api_check_body(struct request *rq, const struct spec_field *spec, MHD_RESULT *ret);

/* Is the running program the one in the build tree (/proc/self/exe is
 * ACED_ABS_BUILDDIR/aced)?  Then it serves the source tree's data files
 * (api/openapi.yaml, ui/) rather than the installed copies under
 * PKGDATADIR, so that `./aced` serves those of the tree it was built from. */
int api_in_build_tree(void);

#ifndef ACED_ABS_SRCDIR
#define ACED_ABS_SRCDIR "."
#endif
#ifndef ACED_ABS_BUILDDIR
#define ACED_ABS_BUILDDIR "."
#endif
#ifndef PKGDATADIR
#define PKGDATADIR "/usr/local/share/aced"
#endif

#endif
