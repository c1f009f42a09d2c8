/*
 * handlers.h -- one handler per endpoint, one file per handler
 * (src/handler_<route>.c), listed in the route table in src/routes.c.
 */
#ifndef ACED_HANDLERS_H
#define ACED_HANDLERS_H

#include "aced/http.h"
#include "aced/jobs.h"
#include "aced/store.h"

MHD_RESULT handler_healthz(struct request *rq);
MHD_RESULT handler_readyz(struct request *rq);
MHD_RESULT handler_metrics(struct request *rq);
MHD_RESULT handler_models_post(struct request *rq);
MHD_RESULT handler_models_list(struct request *rq);
MHD_RESULT handler_model_get(struct request *rq);
MHD_RESULT handler_model_delete(struct request *rq);
MHD_RESULT handler_interventions_post(struct request *rq);
MHD_RESULT handler_regressor_get(struct request *rq);
MHD_RESULT handler_regressors_post(struct request *rq);
MHD_RESULT handler_attributions_post(struct request *rq);
MHD_RESULT handler_job_get(struct request *rq);
MHD_RESULT handler_job_delete(struct request *rq);

/* ---- shared by handlers (src/handler_common.c) ---- */

/* Look up the latest version of model `name` (validated) without its
 * body; on failure the error reply has been queued and *ret is set. */
int handler_model_row(struct request *rq, const char *name,
                      struct store_model_row *row, MHD_RESULT *ret);

/* Fill *req for a job of `kind` on the model version in *row (which is
 * then cleared); params is borrowed (the job takes its own reference). */
void handler_job_for_row(struct job_request *req, enum job_kind kind,
                         struct store_model_row *row, json_t *params);

/* Answer a fast-path result: the reply (200), or the error it produced.
 * Returns 0 when there is neither (the request must go to a worker). */
int handler_reply_fast(struct request *rq, json_t *reply, const struct aced_error *err,
                       MHD_RESULT *ret);

/* Submit a job and answer with it.  async: 202 at once with the job.
 * Otherwise wait up to sync_wait_ms: the job's result (status ok_status,
 * or 201/200 for registrations), its error, or 202 if it takes longer. */
MHD_RESULT handler_run_job(struct request *rq, struct job_request *req, int async);

/* Key under which identical concurrent requests share one job: the kind,
 * the model digest and a hash of the canonical body. */
void handler_dedupe_key(struct job_request *req, const char *kind, const json_t *body);

/* Set meta.elapsed_ms of a reply to the time since the request began. */
void handler_set_elapsed(struct request *rq, json_t *reply);

/* Basic checks of a JSON array of finite numbers: length in [1, max]. */
int handler_number_array(struct request *rq, const json_t *v, const char *field,
                         size_t max, MHD_RESULT *ret);

#endif
