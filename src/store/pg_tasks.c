/*
 * pg_tasks.c -- a durable job's tasks in PostgreSQL (store.h, "a durable
 * job's tasks"): the table aced_tasks (schema version 4, pg.c).
 *
 * DESIGN
 *
 * A job that splits records its tasks 0..n-1 as rows (job, i) when it is
 * planned.  Any replica running the job (its owner, and helpers that saw
 * it in task_find) claims one task at a time with one UPDATE whose row
 * comes from SELECT ... FOR UPDATE OF t SKIP LOCKED: two replicas never
 * claim the same task, and neither waits for the other's lock.  A claim
 * takes a free task or one whose lease ran out (its replica died), so a
 * dead helper's tasks go to whoever claims next.  Leases are renewed by
 * job_renew (pg_jobs.c) with the owner's jobs.  A task's result is not
 * here: it is the regressor cache rows it wrote.  The job row stays the
 * owner's: it ends the job once no task is left.
 *
 * aced_fits is single flight across replicas at the level of one fit (a
 * feature's grid): a replica about to fit claims its key with one INSERT
 * ... ON CONFLICT DO UPDATE ... WHERE the lease ran out; a replica that
 * does not get it waits for the cache rows instead.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

enum aced_err pg_task_plan(struct store *s, const char *id, int n, struct aced_error *err)
{
  char num[16];
  snprintf(num, sizeof num, "%d", n);
  const char *v[] = {id, num};
  /* the job row must exist (a foreign key): a job that is not recorded
   * runs here whole.  "tasks <id>" wakes idle replicas to help. */
  PGresult *r = pg_jobs_exec(pg_of(s),
                             "WITH ins AS (INSERT INTO aced_tasks(job, i)"
                             " SELECT $1, g FROM generate_series(0, $2::integer - 1) g"
                             " ON CONFLICT DO NOTHING RETURNING 1)"
                             " SELECT pg_notify('" PG_JOBS_CHANNEL "', 'tasks ' || $1)"
                             " WHERE EXISTS (SELECT 1 FROM ins)",
                             2, v, err, "task plan");
  if (r == NULL)
    return pg_jobs_code(err);
  PQclear(r);
  return ACED_OK;
}

/* Claim the first task of job $1 that `which` allows: free ones through
 * the partial index (job, i) WHERE state = 'free', so a claim does not
 * step over the tasks already taken; leased ones whose lease ran out
 * only when no task is free. */
#define PG_TASK_CLAIM(which)                                                                  \
  "UPDATE aced_tasks SET state = 'leased', owner = $2,"                                      \
  " lease_until = now() + $3::integer * interval '1 millisecond'"                            \
  " WHERE (job, i) = (SELECT t.job, t.i FROM aced_tasks t"                                   \
  "                   WHERE t.job = $1 AND " which                                           \
  "                     AND EXISTS (SELECT 1 FROM aced_jobs j WHERE j.id = $1"               \
  "                                 AND j.state = 'running' AND NOT j.cancel)"               \
  "                   ORDER BY t.i LIMIT 1 FOR UPDATE OF t SKIP LOCKED)"                     \
  " RETURNING i"

enum aced_err pg_task_claim(struct store *s, const char *id, const char *owner, int lease_ms,
                            int *i, int *pending, struct aced_error *err)
{
  struct pg_store *q = pg_of(s);
  char lease[16];
  snprintf(lease, sizeof lease, "%d", lease_ms);
  const char *v[] = {id, owner, lease};
  static const char *const sql[] = {
      PG_TASK_CLAIM("t.state = 'free'"),
      PG_TASK_CLAIM("t.state = 'leased' AND t.lease_until < now()"),
  };
  *i = -1;
  *pending = 0;
  for (int k = 0; k < 2; k++) {
    PGresult *r = pg_jobs_exec(q, sql[k], 3, v, err, "task claim");
    if (r == NULL)
      return pg_jobs_code(err);
    if (PQntuples(r) == 1) {
      *i = atoi(PQgetvalue(r, 0, 0));
      PQclear(r);
      return ACED_OK;
    }
    PQclear(r);
  }
  const char *w[] = {id};
  PGresult *r = pg_jobs_exec(q,
                   "SELECT count(*) FROM aced_tasks t JOIN aced_jobs j ON j.id = t.job"
                   " WHERE t.job = $1 AND t.state <> 'done' AND j.state = 'running'"
                   "   AND NOT j.cancel",
                   1, w, err, "task pending");
  if (r == NULL)
    return pg_jobs_code(err);
  *pending = atoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  return ACED_OK;
}

enum aced_err pg_task_done(struct store *s, const char *id, int i, const char *owner,
                           long units, long computed, struct aced_error *err)
{
  char si[16], su[24], sc[24];
  snprintf(si, sizeof si, "%d", i);
  snprintf(su, sizeof su, "%ld", units);
  snprintf(sc, sizeof sc, "%ld", computed);
  const char *v[] = {id, si, owner, su, sc};
  /* if another replica took it over meanwhile (our lease ran out), it
   * finds the regressors cached and marks it done itself */
  PGresult *r = pg_jobs_exec(pg_of(s),
                             "UPDATE aced_tasks SET state = 'done', lease_until = NULL,"
                             " units = $4, computed = $5"
                             " WHERE job = $1 AND i = $2::integer AND owner = $3"
                             "   AND state = 'leased'",
                             5, v, err, "task done");
  if (r == NULL)
    return pg_jobs_code(err);
  PQclear(r);
  return ACED_OK;
}

enum aced_err pg_task_release(struct store *s, const char *id, int i, const char *owner,
                              struct aced_error *err)
{
  char si[16];
  snprintf(si, sizeof si, "%d", i);
  const char *v[] = {id, si, owner};
  /* free again, and idle replicas are told (a helper stopping) */
  PGresult *r = pg_jobs_exec(pg_of(s),
                             "WITH u AS (UPDATE aced_tasks SET state = 'free', owner = NULL,"
                             " lease_until = NULL WHERE job = $1 AND i = $2::integer"
                             " AND owner = $3 AND state = 'leased' RETURNING job)"
                             " SELECT pg_notify('" PG_JOBS_CHANNEL "', 'tasks ' || job) FROM u",
                             3, v, err, "task release");
  if (r == NULL)
    return pg_jobs_code(err);
  PQclear(r);
  return ACED_OK;
}

enum aced_err pg_task_sum(struct store *s, const char *id, long *units, long *computed,
                          int *done, int *total, struct aced_error *err)
{
  const char *v[] = {id};
  *units = *computed = 0;
  *done = *total = 0;
  PGresult *r = pg_jobs_exec(pg_of(s),
                             "SELECT count(*), count(*) FILTER (WHERE state = 'done'),"
                             " COALESCE(sum(units) FILTER (WHERE state = 'done'), 0),"
                             " COALESCE(sum(computed) FILTER (WHERE state = 'done'), 0)"
                             " FROM aced_tasks WHERE job = $1",
                             1, v, err, "task sum");
  if (r == NULL)
    return pg_jobs_code(err);
  *total = atoi(PQgetvalue(r, 0, 0));
  *done = atoi(PQgetvalue(r, 0, 1));
  *units = atol(PQgetvalue(r, 0, 2));
  *computed = atol(PQgetvalue(r, 0, 3));
  PQclear(r);
  return ACED_OK;
}

enum aced_err pg_task_find(struct store *s, const char *owner, struct store_job *job, int *found,
                           struct aced_error *err)
{
  const char *v[] = {owner};
  *found = 0;
  memset(job, 0, sizeof *job);
  /* only never-claimed tasks: a task whose replica died goes to the
   * replicas already running the job */
  PGresult *r = pg_jobs_exec(
      pg_of(s),
      "SELECT j.id, j.kind, j.model, j.request FROM aced_jobs j"
      " WHERE j.state = 'running' AND NOT j.cancel AND j.owner IS DISTINCT FROM $1"
      "   AND j.lease_until > now() AND j.request IS NOT NULL"
      "   AND EXISTS (SELECT 1 FROM aced_tasks t WHERE t.job = j.id AND t.state = 'free')"
      " ORDER BY j.created LIMIT 1",
      1, v, err, "task find");
  if (r == NULL)
    return pg_jobs_code(err);
  enum aced_err e = pg_job_row(r, job, found, err);
  PQclear(r);
  return e;
}

enum aced_err pg_fit_claim(struct store *s, const char *key, const char *owner, int lease_ms,
                           int *mine, struct aced_error *err)
{
  char lease[16];
  snprintf(lease, sizeof lease, "%d", lease_ms);
  const char *v[] = {key, owner, lease};
  *mine = 0;
  /* ours when nobody has it, its lease ran out, or we have it already */
  PGresult *r = pg_jobs_exec(
      pg_of(s),
      "INSERT INTO aced_fits(key, owner, lease_until)"
      " VALUES ($1, $2, now() + $3::integer * interval '1 millisecond')"
      " ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until"
      " WHERE aced_fits.lease_until < now() OR aced_fits.owner = EXCLUDED.owner"
      " RETURNING owner",
      3, v, err, "fit claim");
  if (r == NULL)
    return pg_jobs_code(err);
  *mine = PQntuples(r) == 1;
  PQclear(r);
  return ACED_OK;
}

enum aced_err pg_fit_release(struct store *s, const char *key, const char *owner,
                             struct aced_error *err)
{
  const char *v[] = {key, owner};
  PGresult *r = pg_jobs_exec(pg_of(s), "DELETE FROM aced_fits WHERE key = $1 AND owner = $2", 2,
                             v, err, "fit release");
  if (r == NULL)
    return pg_jobs_code(err);
  PQclear(r);
  return ACED_OK;
}
