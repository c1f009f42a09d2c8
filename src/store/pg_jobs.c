/*
 * pg_jobs.c -- durable jobs in PostgreSQL (store.h, "durable jobs"): the
 * table aced_jobs (schema version 2, pg.c) and its operations.
 *
 * DESIGN
 *
 * A row is written by the replica that owns the job: inserted when it is
 * submitted, its lease renewed with the body GET /v1/jobs/{id} shows at
 * every heartbeat, and ended with the final body.  Any replica answers
 * GET from the row.  When the owner dies its lease runs out, and another
 * replica's claim (UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP
 * LOCKED)) makes it the owner: it runs the request again under the same
 * id.  A job that lost its replica ACED_JOB_ATTEMPTS_MAX times, or whose
 * request was too large to keep, fails instead, so one poisonous request
 * cannot take down every replica in turn.  Cancels and give-ups are
 * NOTIFY aced_jobs events (pg.c's listener hands them up), and the cancel
 * flag is also read at every heartbeat in case a notification was lost.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

#define PG_STR_(x) #x
#define PG_STR(x) PG_STR_(x)

enum aced_err pg_jobs_code(struct aced_error *err)
{
  return err != NULL && err->code != ACED_OK ? err->code : ACED_E_STORE;
}

/* One statement on a pooled connection; its result or NULL with *err. */
PGresult *pg_jobs_exec(struct pg_store *q, const char *sql, int n,
                              const char *const *v, struct aced_error *err, const char *what)
{
  struct pg_conn *c = pg_conn_get(q, err);
  if (c == NULL)
    return NULL;
  PGresult *r = pg_query(c, sql, n, v, err, what);
  pg_conn_put(q, c);
  return r;
}

enum aced_err pg_job_row(const PGresult *r, struct store_job *job, int *found,
                         struct aced_error *err)
{
  *found = 0;
  if (PQntuples(r) != 1)
    return ACED_OK;
  snprintf(job->id, sizeof job->id, "%s", PQgetvalue(r, 0, 0));
  snprintf(job->kind, sizeof job->kind, "%s", PQgetvalue(r, 0, 1));
  snprintf(job->model, sizeof job->model, "%s", PQgetvalue(r, 0, 2));
  if ((job->request = strdup(PQgetvalue(r, 0, 3))) == NULL)
    return aced_error_set(err, ACED_E_STORE, NULL, "job row: out of memory");
  *found = 1;
  return ACED_OK;
}

enum aced_err pg_job_insert(struct store *s, const struct store_job *job, const char *owner,
                            int lease_ms, const char *body, struct aced_error *err)
{
  char lease[16];
  snprintf(lease, sizeof lease, "%d", lease_ms);
  const char *v[] = {job->id, job->kind, job->model, job->request, owner, lease, body};
  PGresult *r = pg_jobs_exec(
      pg_of(s),
      "INSERT INTO aced_jobs(id, kind, model, request, state, owner, lease_until, body)"
      " VALUES ($1, $2, $3, $4, 'running', $5,"
      "         now() + $6::integer * interval '1 millisecond', $7)",
      7, v, err, "job insert");
  if (r == NULL)
    return pg_jobs_code(err);
  PQclear(r);
  return ACED_OK;
}

enum aced_err pg_job_heartbeat(struct store *s, const char *id, const char *owner, int lease_ms,
                               const char *body, int *cancel, int *owned,
                               struct aced_error *err)
{
  char lease[16];
  snprintf(lease, sizeof lease, "%d", lease_ms);
  const char *v[] = {id, owner, lease, body};
  *cancel = 0;
  *owned = 0;
  PGresult *r = pg_jobs_exec(
      pg_of(s),
      "UPDATE aced_jobs SET lease_until = now() + $3::integer * interval '1 millisecond',"
      " body = $4, updated = now()"
      " WHERE id = $1 AND owner = $2 AND state = 'running' RETURNING cancel",
      4, v, err, "job heartbeat");
  if (r == NULL)
    return pg_jobs_code(err);
  if (PQntuples(r) == 1) {
    *owned = 1;
    *cancel = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  }
  PQclear(r);
  return ACED_OK;
}

enum aced_err pg_job_renew(struct store *s, const char *owner, int lease_ms,
                           void (*cb)(void *cls, const char *id, int cancel), void *cls,
                           struct aced_error *err)
{
  char lease[16];
  snprintf(lease, sizeof lease, "%d", lease_ms);
  const char *v[] = {owner, lease};
  /* the jobs it owns, then the jobs whose tasks it runs (their cancel
   * flag: a lost notification must not leave a task running); the fits
   * it has under way are renewed on the way */
  PGresult *r = pg_jobs_exec(
      pg_of(s),
      "WITH j AS (UPDATE aced_jobs SET lease_until = now() + $2::integer * interval '1 millisecond'"
      "           WHERE owner = $1 AND state = 'running' RETURNING id, cancel),"
      " f AS (UPDATE aced_fits SET lease_until = now() + $2::integer * interval '1 millisecond'"
      "       WHERE owner = $1),"
      " t AS (UPDATE aced_tasks SET lease_until = now() + $2::integer * interval '1 millisecond'"
      "       WHERE owner = $1 AND state = 'leased'"
      "         AND job IN (SELECT id FROM aced_jobs WHERE state = 'running' AND NOT cancel)"
      "       RETURNING job)"
      " SELECT id, cancel FROM j UNION"
      " SELECT id, false FROM aced_jobs WHERE id IN (SELECT job FROM t)"
      "   AND id NOT IN (SELECT id FROM j) UNION"
      " SELECT t.job, true FROM aced_tasks t JOIN aced_jobs a ON a.id = t.job"
      " WHERE t.owner = $1 AND t.state = 'leased' AND (a.cancel OR a.state <> 'running')"
      "   AND a.id NOT IN (SELECT id FROM j)",
      2, v, err, "job renew");
  if (r == NULL)
    return pg_jobs_code(err);
  for (int i = 0; i < PQntuples(r); i++)
    cb(cls, PQgetvalue(r, i, 0), strcmp(PQgetvalue(r, i, 1), "t") == 0);
  PQclear(r);
  return ACED_OK;
}

enum aced_err pg_job_finish(struct store *s, const char *id, const char *owner, const char *state,
                            const char *body, struct aced_error *err)
{
  PGresult *r;
  if (state != NULL) {
    const char *v[] = {id, owner, state, body};
    /* "ended <id>": replicas helping with its tasks stop (a cancel on
     * the owner, or a failure) */
    r = pg_jobs_exec(pg_of(s),
                     "WITH u AS (UPDATE aced_jobs SET state = $3, body = $4, owner = NULL,"
                     " lease_until = NULL, updated = now()"
                     " WHERE id = $1 AND owner = $2 AND state = 'running' RETURNING id)"
                     " SELECT pg_notify('" PG_JOBS_CHANNEL "', 'ended ' || id) FROM u"
                     " WHERE EXISTS (SELECT 1 FROM aced_tasks t WHERE t.job = u.id"
                     "               AND t.state <> 'done')",
                     4, v, err, "job finish");
  } else {
    /* given up unfinished: claimable at once, and the others are told */
    const char *v[] = {id, owner};
    r = pg_jobs_exec(pg_of(s),
                     "WITH u AS (UPDATE aced_jobs SET owner = NULL, lease_until = now(),"
                     " attempts = attempts - 1, updated = now()"
                     " WHERE id = $1 AND owner = $2 AND state = 'running' RETURNING id)"
                     " SELECT pg_notify('" PG_JOBS_CHANNEL "', 'free ' || id) FROM u",
                     2, v, err, "job release");
  }
  if (r == NULL)
    return pg_jobs_code(err);
  PQclear(r);
  return ACED_OK;
}

enum aced_err pg_job_claim(struct store *s, const char *owner, int lease_ms,
                           struct store_job *job, int *found, struct aced_error *err)
{
  struct pg_store *q = pg_of(s);
  *found = 0;
  memset(job, 0, sizeof *job);
  /* First end what nobody may run again: cancelled, too large to keep,
   * or lost with its replica too often; and forget ended jobs after
   * ACED_JOB_KEEP_S. */
  static const char *const end_sql[] = {
      "UPDATE aced_jobs SET state = 'cancelled', owner = NULL, lease_until = NULL,"
      " updated = now(), body = jsonb_set(body::jsonb, '{state}', '\"cancelled\"')::text"
      " WHERE state = 'running' AND lease_until < now() AND cancel",
      "UPDATE aced_jobs SET state = 'failed', owner = NULL, lease_until = NULL,"
      " updated = now(), body = jsonb_set(jsonb_set(body::jsonb, '{state}', '\"failed\"'),"
      " '{error}', jsonb_build_object('code', 'unavailable', 'field', '', 'message',"
      " CASE WHEN request IS NULL THEN 'the replica running this job stopped, and its"
      " request was not kept (a registration, or over 4 MiB): submit it again'"
      " ELSE 'the replicas running this job stopped ' || attempts || ' times: it is not"
      " tried again' END))::text"
      " WHERE state = 'running' AND lease_until < now()"
      "   AND (request IS NULL OR attempts >= " PG_STR(ACED_JOB_ATTEMPTS_MAX) ")",
      "DELETE FROM aced_jobs WHERE state <> 'running'"
      " AND updated < now() - interval '" PG_STR(ACED_JOB_KEEP_S) " seconds'",
  };
  for (size_t i = 0; i < sizeof end_sql / sizeof end_sql[0]; i++) {
    PGresult *r = pg_jobs_exec(q, end_sql[i], 0, NULL, err, "job expiry");
    if (r == NULL)
      return pg_jobs_code(err);
    PQclear(r);
  }
  char lease[16];
  snprintf(lease, sizeof lease, "%d", lease_ms);
  const char *v[] = {owner, lease};
  PGresult *r = pg_jobs_exec(
      q,
      "UPDATE aced_jobs SET owner = $1, attempts = attempts + 1, updated = now(),"
      " lease_until = now() + $2::integer * interval '1 millisecond'"
      " WHERE id = (SELECT id FROM aced_jobs"
      "             WHERE state = 'running' AND lease_until < now() AND NOT cancel"
      "               AND request IS NOT NULL"
      "             ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED)"
      " RETURNING id, kind, model, request",
      2, v, err, "job claim");
  if (r == NULL)
    return pg_jobs_code(err);
  enum aced_err e = pg_job_row(r, job, found, err);
  PQclear(r);
  return e;
}

enum aced_err pg_job_get(struct store *s, const char *id, char **body, struct aced_error *err)
{
  *body = NULL;
  const char *v[] = {id};
  PGresult *r = pg_jobs_exec(pg_of(s), "SELECT body FROM aced_jobs WHERE id = $1", 1, v, err,
                             "job get");
  if (r == NULL)
    return pg_jobs_code(err);
  enum aced_err e = ACED_OK;
  if (PQntuples(r) == 1 && (*body = strdup(PQgetvalue(r, 0, 0))) == NULL)
    e = aced_error_set(err, ACED_E_STORE, NULL, "job get: out of memory");
  PQclear(r);
  return e;
}

enum aced_err pg_job_cancel(struct store *s, const char *id, char **body, int *finished,
                            struct aced_error *err)
{
  *body = NULL;
  *finished = 0;
  const char *v[] = {id};
  /* A job nobody runs (its lease ran out, or it was given up) ends here;
   * its owner learns of the rest from the notification. */
  PGresult *r = pg_jobs_exec(
      pg_of(s),
      "WITH u AS (UPDATE aced_jobs SET cancel = true, updated = now(),"
      "   state = CASE WHEN lease_until < now() THEN 'cancelled' ELSE state END,"
      "   body = CASE WHEN lease_until < now()"
      "          THEN jsonb_set(body::jsonb, '{state}', '\"cancelled\"')::text ELSE body END"
      "   WHERE id = $1 AND state = 'running' RETURNING body)"
      " SELECT body, pg_notify('" PG_JOBS_CHANNEL "', 'cancel ' || $1) FROM u",
      1, v, err, "job cancel");
  if (r == NULL)
    return pg_jobs_code(err);
  enum aced_err e = ACED_OK;
  if (PQntuples(r) == 1) {
    if ((*body = strdup(PQgetvalue(r, 0, 0))) == NULL)
      e = aced_error_set(err, ACED_E_STORE, NULL, "job cancel: out of memory");
    PQclear(r);
    return e;
  }
  PQclear(r);
  e = pg_job_get(s, id, body, err);
  *finished = e == ACED_OK && *body != NULL;
  return e;
}

void pg_job_listen(struct store *s, void (*fn)(void *cls, const char *event), void *cls)
{
  struct pg_store *q = pg_of(s);
  pthread_mutex_lock(&q->stop_lock);
  q->job_fn = fn;
  q->job_cls = cls;
  pthread_mutex_unlock(&q->stop_lock);
}
