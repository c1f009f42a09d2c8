/*
 * sqlite_ops.c -- the registry and regressor-cache operations of the
 * SQLite backend (store.h); connections, statements and opening are in
 * sqlite.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite.h"

enum aced_err sq_model_put(struct store *s, struct store_model_row *row,
                           const char *body, int *created,
                           struct aced_error *err)
{
  struct sq_store *q = sq_of(s);
  if (row == NULL || body == NULL || created == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, NULL,
                          "model_put: row, body and created are required");
  *created = 0;
  /* The name and digest are fixed arrays filled by the caller; make sure
   * we never read past them even if they were not terminated. */
  char name[sizeof row->name], digest[sizeof row->digest];
  snprintf(name, sizeof name, "%.*s", (int)(sizeof name - 1), row->name);
  snprintf(digest, sizeof digest, "%.*s", (int)(sizeof digest - 1), row->digest);

  struct sq_conn *c = sq_writer_get(q);
  enum aced_err e = sq_exec(c, SQ_BEGIN, err, "begin");
  sqlite3_stmt *st = NULL;
  if (e != ACED_OK)
    goto out;

  /* Already registered under this name? */
  st = sq_stmt(c, SQ_MODEL_FIND_DIGEST, err);
  if (st == NULL) {
    e = ACED_E_STORE;
    goto out;
  }
  sq_bind_text(st, 1, name);
  sq_bind_text(st, 2, digest);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    row->version = sq_col_int(st, 0);
    sq_col_copy(st, 1, row->created_at, sizeof row->created_at);
    sq_done(st);
    st = NULL;
    e = sq_exec(c, SQ_COMMIT, err, "commit");
    goto out;
  }
  if (rc != SQLITE_DONE) {
    e = sq_fail(c, err, "model lookup");
    goto out;
  }
  sq_done(st);

  st = sq_stmt(c, SQ_MODEL_NEXT_VERSION, err);
  if (st == NULL) {
    e = ACED_E_STORE;
    goto out;
  }
  sq_bind_text(st, 1, name);
  if (sqlite3_step(st) != SQLITE_ROW) {
    e = sq_fail(c, err, "next version");
    goto out;
  }
  sqlite3_int64 next = sqlite3_column_int64(st, 0);
  sq_done(st);
  st = NULL;
  if (next < 1 || next > 0x7fffffff) {
    e = aced_error_set(err, ACED_E_STORE, NULL,
                       "model %s: no version number left", name);
    goto out;
  }

  char now[sizeof row->created_at];
  sq_now(now, sizeof now);
  st = sq_stmt(c, SQ_MODEL_INSERT, err);
  if (st == NULL) {
    e = ACED_E_STORE;
    goto out;
  }
  sq_bind_text(st, 1, name);
  sqlite3_bind_int64(st, 2, next);
  sq_bind_text(st, 3, digest);
  if (row->description != NULL)
    sq_bind_text(st, 4, row->description);
  else
    sqlite3_bind_null(st, 4);
  sq_bind_text(st, 5, now);
  sqlite3_bind_int(st, 6, row->n_features);
  sqlite3_bind_int(st, 7, row->n_outputs);
  sqlite3_bind_int(st, 8, row->n_samples);
  sqlite3_bind_int64(st, 9, row->n_params);
  if (row->source[0] != '\0')
    sq_bind_text(st, 11, row->source);
  else
    sqlite3_bind_null(st, 11);
  rc = sqlite3_bind_text64(st, 10, body, strlen(body), SQLITE_STATIC, SQLITE_UTF8);
  if (rc != SQLITE_OK) {
    e = aced_error_set(err, ACED_E_STORE, NULL, "model %s: body: %s", name,
                       sqlite3_errstr(rc));
    goto out;
  }
  if (sqlite3_step(st) != SQLITE_DONE) {
    e = sq_fail(c, err, "model insert");
    goto out;
  }
  sq_done(st);
  st = NULL;
  /* With synchronous=FULL this COMMIT returns after the WAL is on disk. */
  e = sq_exec(c, SQ_COMMIT, err, "commit");
  if (e == ACED_OK) {
    row->version = (int)next;
    memcpy(row->created_at, now, sizeof now);
    *created = 1;
  }

out:
  sq_done(st);
  if (e != ACED_OK)
    sq_rollback(c);
  store_latest_reset(&q->latest, -1);
  sq_writer_put(q);
  return e;
}

enum aced_err sq_model_get(struct store *s, const char *name, int version,
                           int with_body, struct store_model_row *row,
                           struct aced_error *err)
{
  struct sq_store *q = sq_of(s);
  if (row == NULL || name == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, NULL,
                          "model_get: name and row are required");
  memset(row, 0, sizeof *row);
  if (version < 0)
    return aced_error_set(err, ACED_E_MODEL_NOT_FOUND, NULL,
                          "model %s has no version %d", name, version);
  unsigned long gen = 0;
  int cacheable = version == 0 && !with_body;
  if (cacheable && store_latest_get(&q->latest, name, row, &gen))
    return ACED_OK;

  struct sq_conn *c = sq_reader_get(q);
  enum aced_err e = ACED_OK;
  sqlite3_stmt *st = sq_stmt(c, SQ_MODEL_GET, err);
  if (st == NULL) {
    e = ACED_E_STORE;
    goto out;
  }
  sq_bind_text(st, 1, name);
  sqlite3_bind_int(st, 2, version);
  sqlite3_bind_int(st, 3, with_body ? 1 : 0);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    if (version == 0)
      e = aced_error_set(err, ACED_E_MODEL_NOT_FOUND, NULL,
                         "no model named %s", name);
    else
      e = aced_error_set(err, ACED_E_MODEL_NOT_FOUND, NULL,
                         "model %s has no version %d", name, version);
    goto out;
  }
  if (rc != SQLITE_ROW) {
    e = sq_fail(c, err, "model get");
    goto out;
  }
  if (sq_row_decode(st, row) != 0 ||
      (with_body && sq_col_dup(st, 10, &row->body) != 0)) {
    e = sq_oom(err, "model get");
    goto out;
  }
  if (with_body && row->body == NULL)
    e = aced_error_set(err, ACED_E_STORE, NULL,
                       "model %s version %d has no stored body", row->name,
                       row->version);
  if (e == ACED_OK && cacheable)
    store_latest_put(&q->latest, row, gen);

out:
  sq_done(st);
  sq_reader_put(q, c);
  if (e != ACED_OK)
    store_model_row_clear(row);
  return e;
}

/* Rows read by model_list/model_versions before the callbacks run. */
struct sq_rows {
  struct store_model_row *a;
  size_t n, cap;
};

static void sq_rows_free(struct sq_rows *r)
{
  for (size_t i = 0; i < r->n; i++)
    store_model_row_clear(&r->a[i]);
  free(r->a);
  r->a = NULL;
  r->n = r->cap = 0;
}

/* Read every row of statement id (bound to `name` when not NULL). */
static enum aced_err sq_rows_read(struct sq_store *q, enum sq_stmt_id id,
                                  const char *name, struct sq_rows *r,
                                  struct aced_error *err, const char *what)
{
  struct sq_conn *c = sq_reader_get(q);
  enum aced_err e = ACED_OK;
  sqlite3_stmt *st = sq_stmt(c, id, err);
  if (st == NULL) {
    e = ACED_E_STORE;
    goto out;
  }
  if (name != NULL)
    sq_bind_text(st, 1, name);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (r->n == r->cap) {
      size_t cap = r->cap ? 2 * r->cap : 16;
      struct store_model_row *a = realloc(r->a, cap * sizeof *a);
      if (a == NULL) {
        e = sq_oom(err, what);
        goto out;
      }
      r->a = a;
      r->cap = cap;
    }
    struct store_model_row *row = &r->a[r->n++];
    memset(row, 0, sizeof *row);
    if (sq_row_decode(st, row) != 0) {
      e = sq_oom(err, what);
      goto out;
    }
  }
  if (rc != SQLITE_DONE)
    e = sq_fail(c, err, what);
out:
  sq_done(st);
  sq_reader_put(q, c);
  return e;
}

static enum aced_err sq_rows_emit(struct sq_store *q, enum sq_stmt_id id,
                                  const char *name,
                                  int (*cb)(void *, const struct store_model_row *),
                                  void *cls, struct aced_error *err,
                                  const char *what)
{
  struct sq_rows r = {0};
  enum aced_err e = sq_rows_read(q, id, name, &r, err, what);
  if (e == ACED_OK && cb != NULL)
    for (size_t i = 0; i < r.n; i++)
      if (cb(cls, &r.a[i]) != 0)
        break;
  sq_rows_free(&r);
  return e;
}

enum aced_err sq_model_list(struct store *s,
                            int (*cb)(void *cls, const struct store_model_row *row),
                            void *cls, struct aced_error *err)
{
  return sq_rows_emit(sq_of(s), SQ_MODEL_LIST, NULL, cb, cls, err, "model list");
}

enum aced_err sq_model_versions(struct store *s, const char *name,
                                int (*cb)(void *cls, const struct store_model_row *row),
                                void *cls, struct aced_error *err)
{
  if (name == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, NULL,
                          "model_versions: name is required");
  return sq_rows_emit(sq_of(s), SQ_MODEL_VERSIONS, name, cb, cls, err,
                      "model versions");
}

enum aced_err sq_model_delete(struct store *s, const char *name,
                              int *deleted, struct aced_error *err)
{
  struct sq_store *q = sq_of(s);
  if (name == NULL || deleted == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, NULL,
                          "model_delete: name and deleted are required");
  *deleted = 0;
  struct sq_conn *c = sq_writer_get(q);
  sqlite3_stmt *st = NULL;
  enum aced_err e = sq_exec(c, SQ_BEGIN, err, "begin");
  if (e != ACED_OK)
    goto out;
  /* The cache first, while the models still say which digests were this
   * name's. */
  st = sq_stmt(c, SQ_CACHE_PRUNE, err);
  if (st == NULL) {
    e = ACED_E_STORE;
    goto out;
  }
  sq_bind_text(st, 1, name);
  if (sqlite3_step(st) != SQLITE_DONE) {
    e = sq_fail(c, err, "cache prune");
    goto out;
  }
  sq_done(st);
  st = sq_stmt(c, SQ_MODEL_DELETE, err);
  if (st == NULL) {
    e = ACED_E_STORE;
    goto out;
  }
  sq_bind_text(st, 1, name);
  if (sqlite3_step(st) != SQLITE_DONE) {
    e = sq_fail(c, err, "model delete");
    goto out;
  }
  int n = sqlite3_changes(c->db);
  sq_done(st);
  st = NULL;
  e = sq_exec(c, SQ_COMMIT, err, "commit");
  if (e == ACED_OK)
    *deleted = n;
out:
  sq_done(st);
  if (e != ACED_OK)
    sq_rollback(c);
  store_latest_reset(&q->latest, -1);
  sq_writer_put(q);
  return e;
}

/* A query answering one integer. */
static enum aced_err sq_count(struct sq_store *q, enum sq_stmt_id id, long *n,
                              struct aced_error *err, const char *what)
{
  if (n == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, NULL, "%s: n is required", what);
  *n = 0;
  struct sq_conn *c = sq_reader_get(q);
  enum aced_err e = ACED_OK;
  sqlite3_stmt *st = sq_stmt(c, id, err);
  if (st == NULL)
    e = ACED_E_STORE;
  else if (sqlite3_step(st) == SQLITE_ROW)
    *n = (long)sqlite3_column_int64(st, 0);
  else
    e = sq_fail(c, err, what);
  sq_done(st);
  sq_reader_put(q, c);
  return e;
}

enum aced_err sq_model_count(struct store *s, long *n,
                             struct aced_error *err)
{
  return sq_count(sq_of(s), SQ_MODEL_COUNT, n, err, "model count");
}

enum aced_err sq_cache_count(struct store *s, long *n,
                             struct aced_error *err)
{
  return sq_count(sq_of(s), SQ_CACHE_COUNT, n, err, "cache count");
}

static void sq_bind_key(sqlite3_stmt *st, const struct store_cache_key *k)
{
  sq_bind_text(st, 1, k->digest);
  sqlite3_bind_int(st, 2, k->output);
  sqlite3_bind_int(st, 3, k->feature);
  sq_bind_text(st, 4, k->estimator);
  sq_bind_text(st, 5, k->params);
}

enum aced_err sq_cache_get(struct store *s, const struct store_cache_key *k,
                           char **value, struct aced_error *err)
{
  struct sq_store *q = sq_of(s);
  if (k == NULL || value == NULL)
    return aced_error_set(err, ACED_E_INTERNAL, NULL,
                          "cache_get: key and value are required");
  *value = NULL;
  struct sq_conn *c = sq_reader_get(q);
  enum aced_err e = ACED_OK;
  sqlite3_stmt *st = sq_stmt(c, SQ_CACHE_GET, err);
  if (st == NULL) {
    e = ACED_E_STORE;
    goto out;
  }
  sq_bind_key(st, k);
  int rc = sqlite3_step(st);
  /* A NULL value (a damaged row) reads as a miss: the caller recomputes
   * and cache_put overwrites it. */
  if (rc == SQLITE_ROW) {
    if (sq_col_dup(st, 0, value) != 0)
      e = sq_oom(err, "cache get");
  } else if (rc != SQLITE_DONE) {
    e = sq_fail(c, err, "cache get");
  }
out:
  sq_done(st);
  sq_reader_put(q, c);
  return e;
}

enum aced_err sq_cache_put(struct store *s, const struct store_cache_key *k,
                           const char *const *values, int n,
                           struct aced_error *err)
{
  struct sq_store *q = sq_of(s);
  if (k == NULL || values == NULL || n < 0)
    return aced_error_set(err, ACED_E_INTERNAL, NULL,
                          "cache_put: keys and values are required");
  for (int i = 0; i < n; i++)
    if (values[i] == NULL)
      return aced_error_set(err, ACED_E_INTERNAL, NULL, "cache_put: value %d missing", i);
  char now[32];
  sq_now(now, sizeof now);
  struct sq_conn *c = sq_writer_get(q);
  /* synchronous=NORMAL for this commit only: in WAL mode that skips the
   * fsync but keeps the database consistent; registrations switch back to
   * FULL and their fsync covers these frames too. */
  sq_pragma(c->db, "PRAGMA synchronous=NORMAL");
  sqlite3_stmt *st = NULL;
  enum aced_err e = sq_exec(c, SQ_BEGIN, err, "begin");
  for (int i = 0; i < n && e == ACED_OK; i++) {
    st = sq_stmt(c, SQ_CACHE_PUT, err);
    if (st == NULL) {
      e = ACED_E_STORE;
      break;
    }
    sq_bind_key(st, &k[i]);
    sqlite3_bind_text64(st, 6, values[i], strlen(values[i]), SQLITE_STATIC, SQLITE_UTF8);
    sq_bind_text(st, 7, now);
    if (sqlite3_step(st) != SQLITE_DONE)
      e = sq_fail(c, err, "cache put");
    sq_done(st);
    st = NULL;
  }
  if (e == ACED_OK)
    e = sq_exec(c, SQ_COMMIT, err, "commit");
  else
    sq_rollback(c);
  sq_pragma(c->db, "PRAGMA synchronous=FULL");
  sq_writer_put(q);
  return e;
}

