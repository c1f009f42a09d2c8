/*
 * store_sqlite.c -- the SQLite backend of store.h.
 *
 * DESIGN
 *
 * Durability.  A 201 "registered" reply promises the model survives kill -9
 * and power loss, so the database runs in WAL mode with synchronous=FULL:
 * every COMMIT appends to the write-ahead log and fsyncs it before
 * returning.  (synchronous=NORMAL would only survive a process crash, not a
 * power cut.)  The directory holding the database is fsynced once at open,
 * so the freshly created file itself cannot vanish; SQLite fsyncs the
 * directory on its own when it creates the -wal file.
 *
 * Locking.  One writer connection guarded by a mutex, plus a small pool of
 * reader connections handed out under a second mutex.  WAL lets readers
 * run while a write commits, so a worker reading the regressor cache or an
 * HTTP thread loading a 20 MB model body never waits behind a
 * registration's fsync, and since only one thread in this process ever
 * writes at a time, SQLite's own write lock is never contended from inside
 * the process: SQLITE_BUSY can only come from another process touching the
 * file (an operator's sqlite3 shell, a second daemon), and the busy timeout
 * absorbs that.  All writes take the write lock with BEGIN IMMEDIATE, so a
 * transaction never has to upgrade a read lock (the one case where a busy
 * timeout cannot help).  Each connection is used by one thread at a time,
 * so the connections are opened SQLITE_OPEN_NOMUTEX.
 *
 * A database named ":memory:" (handy for tests of other modules) cannot be
 * shared between connections; it gets no reader pool and reads go through
 * the writer connection and its mutex.
 *
 * Statements.  Every query is a fixed SQL text with bound parameters (model
 * names and descriptions never become SQL), prepared once per connection on
 * first use and reset straight after, so no statement keeps a read
 * transaction open and blocks checkpoints.
 *
 * Schema.  PRAGMA user_version is the schema version; sq_migrations[i]
 * takes a database from version i to i + 1 and ends by setting
 * user_version, inside one transaction.  Version 2 (the jobs table) is one
 * more entry in that array.
 *
 * Callbacks of model_list/model_versions are called after the rows have
 * been read and the connection given back, so a callback may itself call
 * into the store (and a slow HTTP writer does not pin a connection).
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "aced/metrics.h"
#include "aced/store.h"
#include "store/sqlite.h"


#define SQ_STR_(x) #x
#define SQ_STR(x) SQ_STR_(x)

/* The schema, one step per version.  Step i upgrades user_version i to
 * i + 1; the last statement of each step records that. */
static const char *const sq_migrations[] = {
    /* 0 -> 1: the model registry and the regressor cache. */
    "CREATE TABLE models ("
    "  name TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  digest TEXT NOT NULL,"
    "  description TEXT,"
    "  created_at TEXT NOT NULL,"
    "  n_features INTEGER,"
    "  n_outputs INTEGER,"
    "  n_samples INTEGER,"
    "  n_params INTEGER,"
    "  body TEXT NOT NULL,"
    "  PRIMARY KEY (name, version)"
    ");"
    "CREATE INDEX models_digest ON models(digest);"
    "CREATE TABLE regressor_cache ("
    "  digest TEXT NOT NULL,"
    "  output INTEGER NOT NULL,"
    "  feature INTEGER NOT NULL,"
    "  estimator TEXT NOT NULL,"
    "  params TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  PRIMARY KEY (digest, output, feature, estimator, params)"
    ");"
    "PRAGMA user_version = 1;",
    /* 1 -> 2: where a model came from ({"opset":..,"producer":..} for an
     * ONNX import, NULL for JSON), kept beside the canonical body. */
    "ALTER TABLE models ADD COLUMN source TEXT;"
    "PRAGMA user_version = 2;",
};
#define SQ_SCHEMA_VERSION ((int)(sizeof sq_migrations / sizeof sq_migrations[0]))

/* Columns of a model row, in the order sq_row_decode expects; body is
 * column 10 when loaded. */
#define SQ_MODEL_COLS                                                         \
  "name, version, digest, description, created_at, n_features, n_outputs, "  \
  "n_samples, n_params, source"


static const char *const sq_sql[SQ_STMT__COUNT] = {
    [SQ_BEGIN] = "BEGIN IMMEDIATE",
    [SQ_COMMIT] = "COMMIT",
    [SQ_ROLLBACK] = "ROLLBACK",
    /* The oldest version wins should a digest ever appear twice. */
    [SQ_MODEL_FIND_DIGEST] =
        "SELECT version, created_at FROM models"
        " WHERE name = ?1 AND digest = ?2 ORDER BY version LIMIT 1",
    [SQ_MODEL_NEXT_VERSION] =
        "SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE name = ?1",
    [SQ_MODEL_INSERT] =
        "INSERT INTO models(name, version, digest, description, created_at,"
        " n_features, n_outputs, n_samples, n_params, body, source)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    /* ?2 = 0: the latest version.  The body (which may be hundreds of MB)
     * is only read from disk when ?3 asks for it. */
    [SQ_MODEL_GET] =
        "SELECT " SQ_MODEL_COLS ", CASE WHEN ?3 THEN body END FROM models"
        " WHERE name = ?1 AND (?2 = 0 OR version = ?2)"
        " ORDER BY version DESC LIMIT 1",
    [SQ_MODEL_LIST] =
        "SELECT " SQ_MODEL_COLS " FROM models AS m"
        " WHERE version = (SELECT MAX(version) FROM models WHERE name = m.name)"
        " ORDER BY name",
    [SQ_MODEL_VERSIONS] =
        "SELECT " SQ_MODEL_COLS " FROM models WHERE name = ?1 ORDER BY version",
    /* Run before the models are deleted: drop the cache of every digest of
     * `name` that no model of another name shares. */
    [SQ_CACHE_PRUNE] =
        "DELETE FROM regressor_cache"
        " WHERE digest IN (SELECT digest FROM models WHERE name = ?1)"
        "   AND NOT EXISTS (SELECT 1 FROM models AS o"
        "                    WHERE o.digest = regressor_cache.digest"
        "                      AND o.name <> ?1)",
    [SQ_MODEL_DELETE] = "DELETE FROM models WHERE name = ?1",
    [SQ_MODEL_COUNT] = "SELECT COUNT(DISTINCT name) FROM models",
    [SQ_CACHE_GET] =
        "SELECT value FROM regressor_cache WHERE digest = ?1 AND output = ?2"
        " AND feature = ?3 AND estimator = ?4 AND params = ?5",
    [SQ_CACHE_PUT] =
        /* Only for a digest some model still has: a worker finishing after
         * DELETE of its model must not leave rows nothing points to. */
        "INSERT OR REPLACE INTO regressor_cache(digest, output, feature,"
        " estimator, params, value, created_at)"
        " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7"
        " WHERE EXISTS (SELECT 1 FROM models WHERE digest = ?1)",
    [SQ_CACHE_COUNT] = "SELECT COUNT(*) FROM regressor_cache",
    /* Touches a real table, so a deleted schema or unreadable file shows. */
    [SQ_PING] = "SELECT 1 FROM models LIMIT 1",
};




/* ---- errors and small helpers ------------------------------------------ */

/* Report the last error of connection c (which the caller holds). */
enum aced_err sq_fail(struct sq_conn *c, struct aced_error *err,
                      const char *what)
{
  return aced_error_set(err, ACED_E_STORE, NULL, "sqlite: %s: %s (code %d)",
                        what, sqlite3_errmsg(c->db),
                        sqlite3_extended_errcode(c->db));
}

enum aced_err sq_oom(struct aced_error *err, const char *what)
{
  return aced_error_set(err, ACED_E_STORE, NULL, "%s: out of memory", what);
}

/* The statement `id` of connection c, reset and ready to bind; NULL (with
 * the error in *err) when it cannot be prepared. */
sqlite3_stmt *sq_stmt(struct sq_conn *c, enum sq_stmt_id id,
                      struct aced_error *err)
{
  metrics_store_statement();
  if (c->stmt[id] == NULL) {
    int rc = sqlite3_prepare_v3(c->db, sq_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                &c->stmt[id], NULL);
    if (rc != SQLITE_OK) {
      sq_fail(c, err, "prepare");
      sqlite3_finalize(c->stmt[id]);
      c->stmt[id] = NULL;
      return NULL;
    }
  }
  return c->stmt[id];
}

/* Give a statement back: end its read transaction and drop references to
 * bound strings (which belong to the caller). */
void sq_done(sqlite3_stmt *st)
{
  if (st != NULL) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
}

/* Run a statement that returns no rows (or whose rows do not matter). */
enum aced_err sq_exec(struct sq_conn *c, enum sq_stmt_id id,
                      struct aced_error *err, const char *what)
{
  sqlite3_stmt *st = sq_stmt(c, id, err);
  if (st == NULL)
    return ACED_E_STORE;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    ;
  enum aced_err e = rc == SQLITE_DONE ? ACED_OK : sq_fail(c, err, what);
  sq_done(st);
  return e;
}

/* Roll back whatever transaction c still has open; used on error paths,
 * where the original error is already in *err and must stay there. */
void sq_rollback(struct sq_conn *c)
{
  if (sqlite3_get_autocommit(c->db))
    return;
  sqlite3_stmt *st = sq_stmt(c, SQ_ROLLBACK, NULL);
  if (st != NULL) {
    sqlite3_step(st);
    sq_done(st);
  } else {
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  }
}

int sq_bind_text(sqlite3_stmt *st, int i, const char *z)
{
  return sqlite3_bind_text(st, i, z ? z : "", -1, SQLITE_STATIC);
}

/* Copy text column i into dst[n], truncating; NULL becomes "". */
void sq_col_copy(sqlite3_stmt *st, int i, char *dst, size_t n)
{
  const unsigned char *z = sqlite3_column_text(st, i);
  if (z == NULL) {
    dst[0] = '\0';
    return;
  }
  size_t len = (size_t)sqlite3_column_bytes(st, i);
  if (len >= n)
    len = n - 1;
  memcpy(dst, z, len);
  dst[len] = '\0';
}

/* A malloc'ed copy of text column i into *out; *out = NULL for SQL NULL.
 * Returns 0, or -1 when out of memory. */
int sq_col_dup(sqlite3_stmt *st, int i, char **out)
{
  *out = NULL;
  if (sqlite3_column_type(st, i) == SQLITE_NULL)
    return 0;
  const unsigned char *z = sqlite3_column_text(st, i);
  if (z == NULL)
    return -1;   /* not NULL, yet no text: the conversion ran out of memory */
  size_t len = (size_t)sqlite3_column_bytes(st, i);
  char *p = malloc(len + 1);
  if (p == NULL)
    return -1;
  memcpy(p, z, len);
  p[len] = '\0';
  *out = p;
  return 0;
}

/* Column i as an int, clamped: a damaged row must not wrap into a negative
 * count somewhere downstream. */
int sq_col_int(sqlite3_stmt *st, int i)
{
  sqlite3_int64 v = sqlite3_column_int64(st, i);
  if (v < 0)
    return 0;
  return v > 0x7fffffff ? 0x7fffffff : (int)v;
}

/* Fill *row (already zeroed) from the SQ_MODEL_COLS of the current result
 * row.  Returns 0, or -1 when out of memory. */
int sq_row_decode(sqlite3_stmt *st, struct store_model_row *row)
{
  sq_col_copy(st, 0, row->name, sizeof row->name);
  row->version = sq_col_int(st, 1);
  sq_col_copy(st, 2, row->digest, sizeof row->digest);
  if (sq_col_dup(st, 3, &row->description) != 0)
    return -1;
  sq_col_copy(st, 4, row->created_at, sizeof row->created_at);
  row->n_features = sq_col_int(st, 5);
  row->n_outputs = sq_col_int(st, 6);
  row->n_samples = sq_col_int(st, 7);
  sqlite3_int64 np = sqlite3_column_int64(st, 8);
  row->n_params = np < 0 ? 0 : (long)np;
  sq_col_copy(st, 9, row->source, sizeof row->source);
  return 0;
}

/* Now, RFC 3339 UTC with second precision. */
void sq_now(char *buf, size_t n)
{
  time_t t = time(NULL);
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL ||
      strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(buf, n, "1970-01-01T00:00:00Z");
}

void store_model_row_clear(struct store_model_row *row)
{
  if (row == NULL)
    return;
  free(row->description);
  free(row->body);
  row->description = NULL;
  row->body = NULL;
}

/* ---- connections ------------------------------------------------------- */

struct sq_conn *sq_writer_get(struct sq_store *q)
{
  pthread_mutex_lock(&q->write_lock);
  return &q->writer;
}

void sq_writer_put(struct sq_store *q)
{
  pthread_mutex_unlock(&q->write_lock);
}

/* Borrow a reader (the writer for ":memory:"); blocks while all are out. */
struct sq_conn *sq_reader_get(struct sq_store *q)
{
  if (q->n_readers == 0)
    return sq_writer_get(q);
  pthread_mutex_lock(&q->pool_lock);
  while (q->n_free == 0)
    pthread_cond_wait(&q->pool_cond, &q->pool_lock);
  struct sq_conn *c = &q->readers[q->a_free[--q->n_free]];
  pthread_mutex_unlock(&q->pool_lock);
  return c;
}

void sq_reader_put(struct sq_store *q, struct sq_conn *c)
{
  if (q->n_readers == 0) {
    sq_writer_put(q);
    return;
  }
  pthread_mutex_lock(&q->pool_lock);
  q->a_free[q->n_free++] = (int)(c - q->readers);
  pthread_cond_signal(&q->pool_cond);
  pthread_mutex_unlock(&q->pool_lock);
}

void sq_conn_close(struct sq_conn *c)
{
  for (int i = 0; i < SQ_STMT__COUNT; i++) {
    sqlite3_finalize(c->stmt[i]);
    c->stmt[i] = NULL;
  }
  if (c->db != NULL)
    sqlite3_close(c->db);
  c->db = NULL;
}

/* One PRAGMA whose result row (if any) is ignored; used only with fixed
 * text.  Returns the SQLite result code. */
int sq_pragma(sqlite3 *db, const char *sql)
{
  return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Open one connection to `path` and set its per-connection pragmas.  The
 * busy timeout goes first so that everything after it waits out another
 * process's lock instead of failing. */
enum aced_err sq_conn_open(struct sq_conn *c, const char *path,
                           int reader, struct aced_error *err)
{
  memset(c, 0, sizeof *c);
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (!reader)
    flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
  if (rc != SQLITE_OK) {
    aced_error_set(err, ACED_E_STORE, NULL, "cannot open database %s: %s",
                   path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    sq_conn_close(c);
    return ACED_E_STORE;
  }
  sqlite3_extended_result_codes(c->db, 1);
  sqlite3_busy_timeout(c->db, ACED_DB_BUSY_TIMEOUT_MS);
  /* synchronous before journal_mode, so that even the header write that
   * switches a new file to WAL is synced. */
  if (sq_pragma(c->db, "PRAGMA synchronous = FULL") != SQLITE_OK ||
      sq_pragma(c->db, "PRAGMA foreign_keys = ON") != SQLITE_OK ||
      (reader && sq_pragma(c->db, "PRAGMA query_only = ON") != SQLITE_OK)) {
    aced_error_set(err, ACED_E_STORE, NULL, "database %s: %s", path,
                   sqlite3_errmsg(c->db));
    sq_conn_close(c);
    return ACED_E_STORE;
  }
  return ACED_OK;
}

/* Switch the writer to WAL.  This is also the first statement that reads
 * the file, so a file that is not a database fails here. */
enum aced_err sq_wal(struct sq_conn *c, const char *path, int memory,
                     struct aced_error *err)
{
  sqlite3_stmt *st = NULL;
  enum aced_err e = ACED_OK;
  int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    e = aced_error_set(err, ACED_E_STORE, NULL, "database %s: %s", path,
                       sqlite3_errmsg(c->db));
  } else {
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (!memory && (mode == NULL || strcmp(mode, "wal") != 0))
      e = aced_error_set(err, ACED_E_STORE, NULL,
                         "database %s: cannot use WAL journal mode (got %s); "
                         "is it on a network file system?",
                         path, mode ? mode : "nothing");
  }
  sqlite3_finalize(st);
  /* PRAGMAs take no bound parameters, so the limit is pasted in at
   * compile time; an optimisation, failure is harmless. */
  if (e == ACED_OK)
    sq_pragma(c->db, "PRAGMA journal_size_limit = " SQ_STR(ACED_DB_WAL_SIZE_LIMIT));
  return e;
}

int sq_user_version(sqlite3 *db, int *v)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    *v = sqlite3_column_int(st, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc;
}

/* Bring the schema to SQ_SCHEMA_VERSION, one transaction per step.  The
 * version is read again inside each BEGIN IMMEDIATE, so two processes
 * opening a new file at once do not both run a step. */
enum aced_err sq_migrate(struct sq_conn *c, const char *path,
                         struct aced_error *err)
{
  for (;;) {
    int v = 0;
    if (sq_pragma(c->db, "BEGIN IMMEDIATE") != SQLITE_OK ||
        sq_user_version(c->db, &v) != SQLITE_OK) {
      aced_error_set(err, ACED_E_STORE, NULL, "database %s: %s", path,
                     sqlite3_errmsg(c->db));
      sq_rollback(c);
      return ACED_E_STORE;
    }
    if (v == SQ_SCHEMA_VERSION) {
      sq_pragma(c->db, "COMMIT");
      return ACED_OK;
    }
    if (v < 0 || v > SQ_SCHEMA_VERSION) {
      sq_rollback(c);
      return aced_error_set(err, ACED_E_STORE, NULL,
                            "database %s has schema version %d; this aced "
                            "knows versions up to %d", path, v,
                            SQ_SCHEMA_VERSION);
    }
    char *zmsg = NULL;
    if (sqlite3_exec(c->db, sq_migrations[v], NULL, NULL, &zmsg) != SQLITE_OK ||
        sq_pragma(c->db, "COMMIT") != SQLITE_OK) {
      aced_error_set(err, ACED_E_STORE, NULL,
                     "database %s: schema upgrade %d -> %d failed: %s", path,
                     v, v + 1, zmsg ? zmsg : sqlite3_errmsg(c->db));
      sqlite3_free(zmsg);
      sq_rollback(c);
      return ACED_E_STORE;
    }
  }
}

/* fsync the directory holding `path`, so that a database file created just
 * now is still there after a power cut.  Best effort: some file systems do
 * not allow fsync on a directory. */
void sq_sync_dir(const char *path)
{
  const char *slash = strrchr(path, '/');
  char *dir;
  if (slash == NULL)
    dir = strdup(".");
  else if (slash == path)
    dir = strdup("/");
  else
    dir = strndup(path, (size_t)(slash - path));
  if (dir == NULL)
    return;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  free(dir);
}

/* ---- operations -------------------------------------------------------- */

void sq_close(struct store *s)
{
  struct sq_store *q = sq_of(s);
  if (q == NULL)
    return;
  /* Readers first: the writer, closing last, checkpoints the WAL into the
   * database file and removes it. */
  for (int i = 0; i < q->n_readers; i++)
    sq_conn_close(&q->readers[i]);
  sq_conn_close(&q->writer);
  store_latest_destroy(&q->latest);
  pthread_cond_destroy(&q->pool_cond);
  pthread_mutex_destroy(&q->pool_lock);
  pthread_mutex_destroy(&q->write_lock);
  free(q);
}

enum aced_err sq_ping(struct store *s, struct aced_error *err)
{
  struct sq_store *q = sq_of(s);
  struct sq_conn *c = sq_reader_get(q);
  enum aced_err e = sq_exec(c, SQ_PING, err, "ping");
  sq_reader_put(q, c);
  return e;
}

static int sq_model_digest(struct store *s, const char *name, char *digest)
{
  return store_latest_digest(&sq_of(s)->latest, name, digest);
}

static const struct store_ops sq_ops = {
    .close = sq_close,
    .ping = sq_ping,
    .model_put = sq_model_put,
    .model_get = sq_model_get,
    .model_digest = sq_model_digest,
    .model_list = sq_model_list,
    .model_versions = sq_model_versions,
    .model_delete = sq_model_delete,
    .model_count = sq_model_count,
    .cache_get = sq_cache_get,
    .cache_put = sq_cache_put,
    .cache_count = sq_cache_count,
};

struct store *store_sqlite_open(const char *path, struct aced_error *err)
{
  if (path == NULL || path[0] == '\0') {
    aced_error_set(err, ACED_E_STORE, NULL, "no database path given");
    return NULL;
  }
  if (!sqlite3_threadsafe()) {
    aced_error_set(err, ACED_E_STORE, NULL,
                   "the SQLite library was built without thread support");
    return NULL;
  }
  struct sq_store *q = calloc(1, sizeof *q);
  if (q == NULL) {
    sq_oom(err, "store open");
    return NULL;
  }
  q->base.ops = &sq_ops;
  pthread_mutex_init(&q->write_lock, NULL);
  pthread_mutex_init(&q->pool_lock, NULL);
  store_latest_init(&q->latest, 1);
  pthread_cond_init(&q->pool_cond, NULL);

  int memory = strcmp(path, ":memory:") == 0;
  if (sq_conn_open(&q->writer, path, 0, err) != ACED_OK ||
      sq_wal(&q->writer, path, memory, err) != ACED_OK ||
      sq_migrate(&q->writer, path, err) != ACED_OK)
    goto fail;
  if (!memory) {
    sq_sync_dir(path);
    /* Opened after the schema exists, so readers never see an empty file. */
    for (int i = 0; i < ACED_DB_READERS; i++) {
      if (sq_conn_open(&q->readers[i], path, 1, err) != ACED_OK)
        goto fail;
      q->n_readers++;
      q->a_free[q->n_free++] = i;
    }
  }
  return &q->base;

fail:
  sq_close(&q->base);
  return NULL;
}
