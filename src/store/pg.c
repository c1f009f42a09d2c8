/*
 * pg.c -- the PostgreSQL backend of store.h: several aced replicas share
 * one registry and one regressor cache.
 *
 * DESIGN
 *
 * Selected by `database = postgresql://user@host/db?...` (any libpq
 * connection URI; `postgres://` too).  Same behaviour as the SQLite
 * backend through the same interface; tests/unit/test_store.c runs the
 * same checks against both.
 *
 * Schema.  Table aced_schema holds the version; pg_migrations[i] takes it
 * from i to i + 1.  All steps run in ONE transaction that first takes a
 * transaction-level advisory lock, so two replicas starting at once do
 * not race: the second waits, then finds the schema current.  DDL is
 * transactional in PostgreSQL, so a failed upgrade leaves nothing behind.
 * Names are `COLLATE "C"`: byte order, as SQLite lists them.
 *
 * Connections.  A pool of n connections (workers + http_threads + 1, so
 * that no thread ever waits for another's), opened at start and each used
 * by one thread at a time; the statements are prepared once per
 * connection.  A connection is checked when it is borrowed: if its socket
 * is readable while idle, the server said something (a restart sends
 * "terminating connection") or closed it, and the connection is replaced.
 * A connection that cannot be made, or a statement that fails because the
 * connection died, answers ACED_E_DB_UNAVAILABLE (503 + Retry-After)
 * and the next call connects again: aced resumes by itself when the
 * database is back, and never answers from a guess.
 *
 * Writes.  A registration is one transaction: an advisory lock on the
 * model's name (replicas registering the same name queue up here), the
 * digest looked up (UNIQUE (name, digest) in the table: the database, not
 * memory, makes registration idempotent across replicas), the next
 * version inserted, NOTIFY aced_models, COMMIT (synchronous_commit on: a
 * 201 is on disk).  Regressor cache rows are recomputable and written with
 * synchronous_commit off.
 *
 * Other replicas' writes.  Each store has a listener thread with its own
 * connection, LISTENing on aced_models; a notification empties the
 * latest-row table (the only per-process copy of registry rows: prepared
 * models and regressor summaries above the store are keyed by content
 * digest and cannot be wrong, only unused).  While the listener is
 * disconnected, the table is neither used nor filled.  The same thread
 * LISTENs on aced_jobs and hands those events (a cancel asked on another
 * replica, a job given up) to the services' journal (pg_jobs.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "aced/metrics.h"
#include "aced/log.h"
#include "aced/store.h"
#include "store/pg.h"

#define PG_STR_(x) #x
#define PG_STR(x) PG_STR_(x)

/* The key of the advisory lock held while the schema is checked and
 * migrated ("aced" in ASCII). */
#define PG_SCHEMA_LOCK "1633903972"
#define PG_CHANNEL "aced_models"

static const char *const pg_migrations[] = {
    /* 0 -> 1: the model registry and the regressor cache. */
    "CREATE TABLE models ("
    "  name text COLLATE \"C\" NOT NULL,"
    "  version integer NOT NULL,"
    "  digest text COLLATE \"C\" NOT NULL,"
    "  description text,"
    "  created_at text NOT NULL,"
    "  n_features integer,"
    "  n_outputs integer,"
    "  n_samples integer,"
    "  n_params bigint,"
    "  body text NOT NULL,"
    "  PRIMARY KEY (name, version),"
    "  UNIQUE (name, digest)"
    ");"
    "CREATE INDEX models_digest ON models(digest);"
    "CREATE TABLE regressor_cache ("
    "  digest text COLLATE \"C\" NOT NULL,"
    "  output integer NOT NULL,"
    "  feature integer NOT NULL,"
    "  estimator text COLLATE \"C\" NOT NULL,"
    "  params text COLLATE \"C\" NOT NULL,"
    "  value text NOT NULL,"
    "  created_at text NOT NULL,"
    "  PRIMARY KEY (digest, output, feature, estimator, params)"
    ");",
    /* 1 -> 2: durable jobs (pg_jobs.c).  body is what GET /v1/jobs/{id}
     * answers; request (NULL: too large to keep) runs it again elsewhere. */
    "CREATE TABLE aced_jobs ("
    "  id text COLLATE \"C\" PRIMARY KEY,"
    "  kind text NOT NULL,"
    "  model text NOT NULL,"
    "  request text,"
    "  state text NOT NULL,"
    "  owner text,"
    "  lease_until timestamptz,"
    "  cancel boolean NOT NULL DEFAULT false,"
    "  attempts integer NOT NULL DEFAULT 1,"
    "  body text NOT NULL,"
    "  created timestamptz NOT NULL DEFAULT now(),"
    "  updated timestamptz NOT NULL DEFAULT now()"
    ");"
    "CREATE INDEX aced_jobs_open ON aced_jobs(lease_until)"
    "  WHERE state IN ('queued', 'running');"
    "CREATE INDEX aced_jobs_ended ON aced_jobs(updated)"
    "  WHERE state NOT IN ('queued', 'running');",
    /* 2 -> 3: where a model came from ({"opset":..,"producer":..} for an
     * ONNX import, NULL for JSON), beside the canonical body, as SQLite's
     * schema 2 keeps it. */
    "ALTER TABLE models ADD COLUMN source text;",
    /* 3 -> 4: a durable job's tasks, claimable by any replica
     * (pg_tasks.c): free, leased (owner, lease_until) or done (units,
     * regressors computed). */
    "CREATE TABLE aced_tasks ("
    "  job text COLLATE \"C\" NOT NULL REFERENCES aced_jobs(id) ON DELETE CASCADE,"
    "  i integer NOT NULL,"
    "  state text NOT NULL DEFAULT 'free',"
    "  owner text,"
    "  lease_until timestamptz,"
    "  units bigint NOT NULL DEFAULT 0,"
    "  computed bigint NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (job, i)"
    ");"
    "CREATE INDEX aced_tasks_free ON aced_tasks(job, i) WHERE state = 'free';"
    "CREATE INDEX aced_tasks_leased ON aced_tasks(owner) WHERE state = 'leased';"
    /* ... and the fits under way (split.c: single flight across
     * replicas), by the key of the feature's grid */
    "CREATE TABLE aced_fits ("
    "  key text COLLATE \"C\" PRIMARY KEY,"
    "  owner text NOT NULL,"
    "  lease_until timestamptz NOT NULL"
    ");"
    "CREATE INDEX aced_fits_owner ON aced_fits(owner);",
};
#define PG_SCHEMA_VERSION ((int)(sizeof pg_migrations / sizeof pg_migrations[0]))

#define PG_MODEL_COLS                                                         \
  "name, version, digest, description, created_at, n_features, n_outputs, "  \
  "n_samples, n_params, source"

static const struct {
  const char *sql;
  int n_params;
} pg_sql[PG_STMT__COUNT] = {
    /* Registrations and deletions of one name queue up here, across
     * replicas, until COMMIT. */
    [PG_MODEL_LOCK] = {"SELECT pg_advisory_xact_lock(hashtext('aced.model:' || $1))", 1},
    [PG_MODEL_FIND_DIGEST] = {"SELECT version, created_at FROM models"
                              " WHERE name = $1 AND digest = $2 ORDER BY version LIMIT 1", 2},
    [PG_MODEL_INSERT] = {"INSERT INTO models(name, version, digest, description, created_at,"
                         " n_features, n_outputs, n_samples, n_params, body, source)"
                         " SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4,"
                         " $5::integer, $6::integer, $7::integer, $8::bigint, $9, $10"
                         " FROM models WHERE name = $1 RETURNING version", 10},
    [PG_MODEL_GET] = {"SELECT " PG_MODEL_COLS ", CASE WHEN $3::boolean THEN body END"
                      " FROM models WHERE name = $1 AND ($2::integer = 0 OR version = $2::integer)"
                      " ORDER BY version DESC LIMIT 1", 3},
    [PG_MODEL_LIST] = {"SELECT DISTINCT ON (name) " PG_MODEL_COLS " FROM models"
                       " ORDER BY name, version DESC", 0},
    [PG_MODEL_VERSIONS] = {"SELECT " PG_MODEL_COLS " FROM models WHERE name = $1"
                           " ORDER BY version", 1},
    /* Run after the rows of `name` are locked (so a cache_put that saw
     * them has committed) and before they are deleted. */
    [PG_CACHE_PRUNE] = {"DELETE FROM regressor_cache"
                        " WHERE digest IN (SELECT digest FROM models WHERE name = $1)"
                        "   AND NOT EXISTS (SELECT 1 FROM models AS o"
                        "                    WHERE o.digest = regressor_cache.digest"
                        "                      AND o.name <> $1)", 1},
    [PG_MODEL_DELETE] = {"DELETE FROM models WHERE name = $1", 1},
    [PG_MODEL_COUNT] = {"SELECT COUNT(DISTINCT name) FROM models", 0},
    [PG_CACHE_GET] = {"SELECT value FROM regressor_cache WHERE digest = $1"
                      " AND output = $2::integer AND feature = $3::integer"
                      " AND estimator = $4 AND params = $5", 5},
    /* Only for a digest some model still has; FOR KEY SHARE waits for a
     * DELETE of that model in flight, then sees it gone. */
    [PG_CACHE_PUT] = {"INSERT INTO regressor_cache(digest, output, feature, estimator,"
                      " params, value, created_at)"
                      " SELECT $1, $2::integer, $3::integer, $4, $5, $6, $7"
                      " WHERE EXISTS (SELECT 1 FROM models WHERE digest = $1 FOR KEY SHARE)"
                      " ON CONFLICT (digest, output, feature, estimator, params)"
                      " DO UPDATE SET value = EXCLUDED.value, created_at = EXCLUDED.created_at",
                      7},
    [PG_CACHE_COUNT] = {"SELECT COUNT(*) FROM regressor_cache", 0},
    [PG_NOTIFY] = {"SELECT pg_notify('" PG_CHANNEL "', $1)", 1},
    [PG_PING] = {"SELECT 1 FROM models LIMIT 1", 0},
};

/* ---- small helpers ----------------------------------------------------- */

void pg_now(char *buf, size_t n)
{
  time_t t = time(NULL);
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(buf, n, "1970-01-01T00:00:00Z");
}

/* libpq messages end with a newline; the reply wants one line. */
static const char *pg_msg(PGconn *pg, const PGresult *r, char *buf, size_t n)
{
  const char *m = r != NULL ? PQresultErrorMessage(r) : NULL;
  if (m == NULL || m[0] == '\0')
    m = pg != NULL ? PQerrorMessage(pg) : "no connection";
  snprintf(buf, n, "%s", m);
  for (char *p = buf; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = (p[1] == '\0') ? '\0' : ' ';
  return buf;
}

int pg_conn_lost(const struct pg_conn *c)
{
  return c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK;
}

/* Report a failed statement: a lost connection (or a server shutting
 * down, SQLSTATE class 57P / 08) is "unavailable", the rest a store
 * error.  Either way 503: the client retries, and nothing was answered
 * from a guess. */
/* The database cannot be reached: the details (host, port, the server's
 * words) go to the log, at most once a second however many requests
 * fail, and the client is told only that. */
static enum aced_err pg_unavailable(struct aced_error *err, const char *what, const char *detail)
{
  static atomic_llong last_s;
  long long now = (long long)time(NULL);
  if (atomic_exchange(&last_s, now) != now)
    log_warn("store", "postgresql: %s: %s", what, detail);
  return aced_error_set(err, ACED_E_DB_UNAVAILABLE, NULL,
                        "the database cannot be reached (%s); retry", what);
}

static enum aced_err pg_fail(struct pg_conn *c, const PGresult *r, struct aced_error *err,
                             const char *what)
{
  char buf[300];
  const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  int lost = pg_conn_lost(c) || (state != NULL && (strncmp(state, "57P", 3) == 0 ||
                                                   strncmp(state, "08", 2) == 0));
  pg_msg(c->pg, r, buf, sizeof buf);
  if (lost)
    return pg_unavailable(err, what, buf);
  return aced_error_set(err, ACED_E_STORE, NULL, "postgresql: %s: %s", what, buf);
}

/* r if the statement succeeded, else NULL with the failure in *err. */
static PGresult *pg_result(struct pg_conn *c, PGresult *r, struct aced_error *err,
                           const char *what)
{
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    pg_fail(c, r, err, what);
    PQclear(r);
    return NULL;
  }
  return r;
}

PGresult *pg_run(struct pg_conn *c, enum pg_stmt_id id, int n, const char *const *values,
                 struct aced_error *err, const char *what)
{
  char name[16];
  metrics_store_statement();
  snprintf(name, sizeof name, "aced_%d", (int)id);
  if (!(c->prepared & (1UL << id))) {
    PGresult *p = PQprepare(c->pg, name, pg_sql[id].sql, pg_sql[id].n_params, NULL);
    if (PQresultStatus(p) != PGRES_COMMAND_OK) {
      pg_fail(c, p, err, "prepare");
      PQclear(p);
      return NULL;
    }
    PQclear(p);
    c->prepared |= 1UL << id;
  }
  return pg_result(c, PQexecPrepared(c->pg, name, n, values, NULL, NULL, 0), err, what);
}

PGresult *pg_query(struct pg_conn *c, const char *sql, int n, const char *const *values,
                   struct aced_error *err, const char *what)
{
  return pg_result(c, PQexecParams(c->pg, sql, n, NULL, values, NULL, NULL, 0), err, what);
}

enum aced_err pg_cmd(struct pg_conn *c, const char *sql, struct aced_error *err,
                     const char *what)
{
  PGresult *r = PQexec(c->pg, sql);
  enum aced_err e = ACED_OK;
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
    e = pg_fail(c, r, err, what);
  PQclear(r);
  return e;
}

void pg_rollback(struct pg_conn *c)
{
  if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK &&
      PQtransactionStatus(c->pg) != PQTRANS_IDLE)
    PQclear(PQexec(c->pg, "ROLLBACK"));
}

static int pg_int(const PGresult *r, int i, int col)
{
  if (PQgetisnull(r, i, col))
    return 0;
  long long v = strtoll(PQgetvalue(r, i, col), NULL, 10);
  if (v < 0)
    return 0;
  return v > 0x7fffffff ? 0x7fffffff : (int)v;
}

static void pg_copy(const PGresult *r, int i, int col, char *dst, size_t n)
{
  snprintf(dst, n, "%s", PQgetisnull(r, i, col) ? "" : PQgetvalue(r, i, col));
}

/* Fill *row (zeroed) from the PG_MODEL_COLS of result row i; 0, or -1
 * when out of memory. */
int pg_row_decode(const PGresult *r, int i, struct store_model_row *row)
{
  pg_copy(r, i, 0, row->name, sizeof row->name);
  row->version = pg_int(r, i, 1);
  pg_copy(r, i, 2, row->digest, sizeof row->digest);
  if (!PQgetisnull(r, i, 3) && (row->description = strdup(PQgetvalue(r, i, 3))) == NULL)
    return -1;
  pg_copy(r, i, 4, row->created_at, sizeof row->created_at);
  row->n_features = pg_int(r, i, 5);
  row->n_outputs = pg_int(r, i, 6);
  row->n_samples = pg_int(r, i, 7);
  long long np = PQgetisnull(r, i, 8) ? 0 : strtoll(PQgetvalue(r, i, 8), NULL, 10);
  row->n_params = np < 0 ? 0 : (long)np;
  if (!PQgetisnull(r, i, 9))
    pg_copy(r, i, 9, row->source, sizeof row->source);
  return 0;
}

/* ---- connections ------------------------------------------------------- */

/* Server notices ("relation already exists, skipping") go to the debug
 * log, not to stderr unformatted. */
static void pg_notice(void *cls, const char *message)
{
  (void)cls;
  log_debug("store", "postgresql: %.*s", (int)strcspn(message, "\n"), message);
}

/* A new connection to q->uri, or NULL with *err.  connect_timeout and the
 * client encoding come first, so that the URI may override the former. */
static PGconn *pg_connect(const char *uri, int at_start, struct aced_error *err)
{
  const char *const keys[] = {"connect_timeout", "client_encoding", "application_name",
                              "dbname", NULL};
  const char *const vals[] = {PG_STR(ACED_PG_CONNECT_TIMEOUT_S), "UTF8", "aced", uri, NULL};
  PGconn *pg = PQconnectdbParams(keys, vals, 1);
  if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
    char buf[300];
    pg_msg(pg, NULL, buf, sizeof buf);
    if (at_start) /* the operator reads this one: with the details */
      aced_error_set(err, ACED_E_DB_UNAVAILABLE, NULL, "postgresql: cannot connect: %s", buf);
    else
      pg_unavailable(err, "cannot connect", buf);
    PQfinish(pg);
    return NULL;
  }
  PQsetNoticeProcessor(pg, pg_notice, NULL);
  return pg;
}

static void pg_conn_close(struct pg_conn *c)
{
  PQfinish(c->pg);
  c->pg = NULL;
  c->prepared = 0;
}

/* An idle connection has nothing to read: if its socket is readable, the
 * server said something (a restart sends "terminating connection" before
 * closing) or closed it, so it is replaced before anyone uses it.  One
 * poll() with no wait per borrow. */
static void pg_conn_check(struct pg_conn *c)
{
  if (c->pg == NULL)
    return;
  struct pollfd p = {.fd = PQsocket(c->pg), .events = POLLIN};
  if (p.fd < 0 || PQstatus(c->pg) != CONNECTION_OK || poll(&p, 1, 0) != 0)
    pg_conn_close(c);
}

struct pg_conn *pg_conn_get(struct pg_store *q, struct aced_error *err)
{
  pthread_mutex_lock(&q->pool_lock);
  while (q->n_free == 0)
    pthread_cond_wait(&q->pool_cond, &q->pool_lock);
  struct pg_conn *c = &q->conn[q->a_free[--q->n_free]];
  pthread_mutex_unlock(&q->pool_lock);
  pg_conn_check(c);
  if (c->pg == NULL && (c->pg = pg_connect(q->uri, 0, err)) == NULL) {
    pg_conn_put(q, c);
    return NULL;
  }
  return c;
}

void pg_conn_put(struct pg_store *q, struct pg_conn *c)
{
  if (c->pg != NULL && PQstatus(c->pg) != CONNECTION_OK)
    pg_conn_close(c);
  pthread_mutex_lock(&q->pool_lock);
  q->a_free[q->n_free++] = (int)(c - q->conn);
  pthread_cond_signal(&q->pool_cond);
  pthread_mutex_unlock(&q->pool_lock);
}

/* ---- the listener -------------------------------------------------------- */

/* Sleep ms or until the store is closed; 1 when closing. */
static int pg_wait_stop(struct pg_store *q, int ms)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&q->stop_lock);
  if (!q->stopping)
    pthread_cond_timedwait(&q->stop_cond, &q->stop_lock, &ts);
  int stop = q->stopping;
  pthread_mutex_unlock(&q->stop_lock);
  return stop;
}

static void *pg_listen_main(void *arg)
{
  struct pg_store *q = arg;
  PGconn *pg = NULL;
  for (;;) {
    if (pg == NULL) {
      pg = pg_connect(q->uri, 0, NULL);
      PGresult *r = pg ? PQexec(pg, "LISTEN " PG_CHANNEL "; LISTEN " PG_JOBS_CHANNEL) : NULL;
      int ok = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;
      PQclear(r);
      if (!ok) {
        PQfinish(pg);
        pg = NULL;
        if (pg_wait_stop(q, ACED_PG_LISTEN_RETRY_MS))
          break;
        continue;
      }
      /* Whatever happened while we were away is unknown: start empty. */
      store_latest_reset(&q->latest, 1);
    }
    struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
    int n = poll(&p, 1, ACED_PG_LISTEN_RETRY_MS);
    pthread_mutex_lock(&q->stop_lock);
    int stop = q->stopping;
    pthread_mutex_unlock(&q->stop_lock);
    if (stop)
      break;
    if (n < 0 && errno == EINTR)
      continue;
    if (n != 0 && (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK)) {
      store_latest_reset(&q->latest, 0);
      PQfinish(pg);
      pg = NULL;
      continue;
    }
    int any = 0;
    PGnotify *nf;
    while ((nf = PQnotifies(pg)) != NULL) {
      if (strcmp(nf->relname, PG_JOBS_CHANNEL) == 0) {
        pthread_mutex_lock(&q->stop_lock);
        void (*fn)(void *, const char *) = q->job_fn;
        void *cls = q->job_cls;
        pthread_mutex_unlock(&q->stop_lock);
        if (fn != NULL)
          fn(cls, nf->extra);
      } else {
        any = 1;
      }
      PQfreemem(nf);
    }
    if (any)
      store_latest_reset(&q->latest, 1);
  }
  PQfinish(pg);
  return NULL;
}

/* ---- schema -------------------------------------------------------------- */

static enum aced_err pg_migrate(PGconn *pg, struct aced_error *err)
{
  struct pg_conn c = {.pg = pg};
  enum aced_err e = pg_cmd(&c, "BEGIN", err, "begin");
  if (e == ACED_OK)
    e = pg_cmd(&c, "SELECT pg_advisory_xact_lock(" PG_SCHEMA_LOCK ")", err, "schema lock");
  if (e == ACED_OK)
    e = pg_cmd(&c, "CREATE TABLE IF NOT EXISTS aced_schema (version integer NOT NULL)", err,
               "schema table");
  int v = 0;
  if (e == ACED_OK) {
    PGresult *r = PQexec(pg, "SELECT COALESCE(MAX(version), 0) FROM aced_schema");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
      e = pg_fail(&c, r, err, "schema version");
    else
      v = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
  }
  if (e == ACED_OK && (v < 0 || v > PG_SCHEMA_VERSION))
    e = aced_error_set(err, ACED_E_STORE, NULL,
                       "postgresql: the database has aced schema version %d; this aced "
                       "knows versions up to %d", v, PG_SCHEMA_VERSION);
  for (; e == ACED_OK && v < PG_SCHEMA_VERSION; v++) {
    PGresult *r = PQexec(pg, pg_migrations[v]);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      char buf[300];
      e = aced_error_set(err, ACED_E_STORE, NULL, "postgresql: schema upgrade %d -> %d failed: %s",
                         v, v + 1, pg_msg(pg, r, buf, sizeof buf));
    }
    PQclear(r);
    if (e == ACED_OK) {
      char sql[96];
      snprintf(sql, sizeof sql, "DELETE FROM aced_schema; INSERT INTO aced_schema VALUES (%d)",
               v + 1);
      e = pg_cmd(&c, sql, err, "schema version");
    }
  }
  if (e == ACED_OK)
    e = pg_cmd(&c, "COMMIT", err, "commit");
  if (e != ACED_OK)
    pg_rollback(&c);
  return e;
}

/* ---- operations ---------------------------------------------------------- */

static void pg_close(struct store *s)
{
  struct pg_store *q = pg_of(s);
  if (q == NULL)
    return;
  if (q->listener_started) {
    pthread_mutex_lock(&q->stop_lock);
    q->stopping = 1;
    pthread_cond_broadcast(&q->stop_cond);
    pthread_mutex_unlock(&q->stop_lock);
    pthread_join(q->listener, NULL);
  }
  for (int i = 0; i < q->n_conn; i++)
    pg_conn_close(&q->conn[i]);
  store_latest_destroy(&q->latest);
  pthread_cond_destroy(&q->pool_cond);
  pthread_mutex_destroy(&q->pool_lock);
  pthread_cond_destroy(&q->stop_cond);
  pthread_mutex_destroy(&q->stop_lock);
  free(q->uri);
  free(q);
}

static enum aced_err pg_ping(struct store *s, struct aced_error *err)
{
  struct pg_store *q = pg_of(s);
  struct pg_conn *c = pg_conn_get(q, err);
  if (c == NULL)
    return ACED_E_DB_UNAVAILABLE;
  PGresult *r = pg_run(c, PG_PING, 0, NULL, err, "ping");
  enum aced_err e = r != NULL ? ACED_OK : err ? err->code : ACED_E_STORE;
  PQclear(r);
  pg_conn_put(q, c);
  return e;
}

static int pg_model_digest(struct store *s, const char *name, char *digest)
{
  return store_latest_digest(&pg_of(s)->latest, name, digest);
}

static const struct store_ops pg_ops = {
    .close = pg_close,
    .ping = pg_ping,
    .model_put = pg_model_put,
    .model_get = pg_model_get,
    .model_digest = pg_model_digest,
    .model_list = pg_model_list,
    .model_versions = pg_model_versions,
    .model_delete = pg_model_delete,
    .model_count = pg_model_count,
    .cache_get = pg_cache_get,
    .cache_put = pg_cache_put,
    .cache_count = pg_cache_count,
    .job_insert = pg_job_insert,
    .job_heartbeat = pg_job_heartbeat,
    .job_renew = pg_job_renew,
    .job_finish = pg_job_finish,
    .job_claim = pg_job_claim,
    .job_get = pg_job_get,
    .job_cancel = pg_job_cancel,
    .job_listen = pg_job_listen,
    .task_plan = pg_task_plan,
    .task_claim = pg_task_claim,
    .task_done = pg_task_done,
    .task_release = pg_task_release,
    .task_sum = pg_task_sum,
    .task_find = pg_task_find,
    .fit_claim = pg_fit_claim,
    .fit_release = pg_fit_release,
};

struct store *store_pg_open(const char *uri, int n_conn, struct aced_error *err)
{
  if (n_conn < 1)
    n_conn = 8;
  if (n_conn > ACED_PG_CONN_MAX)
    n_conn = ACED_PG_CONN_MAX;
  if (!PQisthreadsafe()) {
    aced_error_set(err, ACED_E_STORE, NULL, "libpq was built without thread support");
    return NULL;
  }
  struct pg_store *q = calloc(1, sizeof *q);
  if (q == NULL || (q->uri = strdup(uri)) == NULL) {
    free(q);
    aced_error_set(err, ACED_E_STORE, NULL, "store open: out of memory");
    return NULL;
  }
  q->base.ops = &pg_ops;
  pthread_mutex_init(&q->pool_lock, NULL);
  pthread_cond_init(&q->pool_cond, NULL);
  store_latest_init(&q->latest, 0); /* until the listener is connected */
  pthread_mutex_init(&q->stop_lock, NULL);
  pthread_cond_init(&q->stop_cond, NULL);
  q->n_conn = n_conn;
  for (int i = 0; i < n_conn; i++)
    q->a_free[q->n_free++] = n_conn - 1 - i;
  /* The first connection migrates the schema (and says at start-up, not
   * on the first request, that the URI or the server is wrong). */
  struct pg_conn *c = &q->conn[0];
  if ((c->pg = pg_connect(uri, 1, err)) == NULL || pg_migrate(c->pg, err) != ACED_OK)
    goto fail;
  /* The rest now too: the pool's size is fixed from the start (a server
   * refusing that many says so here, not under load), and so is the
   * process's descriptor count. */
  for (int i = 1; i < n_conn; i++)
    if ((q->conn[i].pg = pg_connect(uri, 1, err)) == NULL)
      goto fail;
  if (pthread_create(&q->listener, NULL, pg_listen_main, q) != 0) {
    aced_error_set(err, ACED_E_STORE, NULL, "postgresql: cannot start the listener thread");
    goto fail;
  }
  q->listener_started = 1;
  return &q->base;

fail:
  pg_close(&q->base);
  return NULL;
}
