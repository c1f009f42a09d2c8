/*
 * handler_job_delete.c -- DELETE /v1/jobs/{id}: cancel a job.  Its tasks
 * stop at their next grid point; waiting clients get 409.
 */
#include "config.h"

#include <string.h>

#include "aced/auth.h"
#include "api/api.h"

MHD_RESULT handler_job_delete(struct request *rq)
{
  struct job *j = jobs_find(rq->srv->jobs, rq->arg[0]);
  if (j == NULL && (rq->scopes & AUTH_WRITE)) {
    /* another replica's (durable jobs): its owner is told to cancel it.
     * Only with the write scope: whose job it is is not known here. */
    struct aced_error err;
    int finished = 0;
    json_t *body = svc_job_cancel(rq->srv->svc, rq->arg[0], &finished, &err);
    if (body != NULL && finished) {
      json_decref(body);
      return reply_error(rq, ACED_E_CONFLICT, "id", "job already finished");
    }
    if (body != NULL)
      return reply_json(rq, 200, body);
    if (err.code != ACED_OK)
      return reply_aced_error(rq, &err);
  }
  if (j == NULL && jobs_id_from_earlier_run(rq->srv->jobs, rq->arg[0]))
    return reply_error(rq, ACED_E_JOB_GONE, "id", "job '%.64s' was lost when aced restarted "
                       "(jobs are kept in memory): submit it again", rq->arg[0]);
  if (j == NULL)
    return reply_error(rq, ACED_E_JOB_NOT_FOUND, "id", "no job '%.64s'", rq->arg[0]);
  /* A read token may cancel the jobs it submitted; other people's jobs
   * (registrations included) need the write scope. */
  if (!(rq->scopes & AUTH_WRITE) && strcmp(job_who(j), rq->who) != 0) {
    job_unref(j);
    return reply_error(rq, ACED_E_FORBIDDEN, "id",
                       "job %.64s was submitted by another token; cancelling it needs the "
                       "'write' scope", rq->arg[0]);
  }
  int rc = jobs_cancel(rq->srv->jobs, j);
  json_t *body = job_to_json(j, 0);
  job_unref(j);
  if (rc != 0) {
    json_decref(body);
    return reply_error(rq, ACED_E_CONFLICT, "id", "job already finished");
  }
  return reply_json(rq, 200, body);
}
