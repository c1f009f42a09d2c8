/*
 * handler_job_get.c -- GET /v1/jobs/{id}: state, progress, elapsed time,
 * and the result once done.
 */
#include "config.h"

#include "api/api.h"

MHD_RESULT handler_job_get(struct request *rq)
{
  struct job *j = jobs_find(rq->srv->jobs, rq->arg[0]);
  if (j == NULL) {
    /* another replica's (durable jobs): its state as last recorded */
    struct aced_error err;
    json_t *body = svc_job_lookup(rq->srv->svc, rq->arg[0], &err);
    if (body != NULL)
      return reply_json(rq, 200, body);
    if (err.code != ACED_OK)
      return reply_aced_error(rq, &err);
  }
  if (j == NULL && jobs_id_from_earlier_run(rq->srv->jobs, rq->arg[0]))
    return reply_error(rq, ACED_E_JOB_GONE, "id", "job '%.64s' was lost when aced restarted "
                       "(jobs are kept in memory): submit it again", rq->arg[0]);
  if (j == NULL)
    return reply_error(rq, ACED_E_JOB_NOT_FOUND, "id", "no job '%.64s' (finished jobs are "
                       "kept for a while, then forgotten)", rq->arg[0]);
  json_t *body = job_to_json(j, 1);
  job_unref(j);
  return reply_json(rq, 200, body);
}
