/*
 * test_store.c -- the store's registry semantics, the latest-row cache,
 * the regressor cache and persistence, run against both backends: SQLite
 * (a real file in a fresh mkdtemp directory) and PostgreSQL (a cluster
 * started for the test by tests/pgcluster.sh; a TAP SKIP naming the
 * package when it is not installed).  Checks of SQLite's file format
 * (WAL, user_version, damaged rows written behind its back, files that
 * are not databases, the schema-1 migration) run for SQLite only.
 * Concurrency, crash durability, replicas and a database restart are in
 * test_store_durability.c; the helpers both use are in storetest.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include "storetest.h"

/* ---- the latest-row cache follows every write ------------------------- */

static void test_latest_cache(const char *dir)
{
  const char *file = "latest.db";
  struct aced_error err = {0};
  struct store *s = B->open(dir, file, &err);
  if (!tap_ok(s != NULL, "open a database for the latest-row cache"))
    return;
  int created, v;
  struct store_model_row row;
  put(s, "m", "sha256:one", "first", "{}", &created, &v, &err);
  /* twice: the second read is served from memory */
  s->ops->model_get(s, "m", 0, 0, &row, &err);
  store_model_row_clear(&row);
  enum aced_err e = s->ops->model_get(s, "m", 0, 0, &row, &err);
  tap_ok(e == ACED_OK && row.version == 1 && strcmp(row.digest, "sha256:one") == 0 &&
             row.description && strcmp(row.description, "first") == 0,
         "latest row read twice: version 1 with its description");
  store_model_row_clear(&row);
  put(s, "m", "sha256:two", "second", "{}", &created, &v, &err);
  e = s->ops->model_get(s, "m", 0, 0, &row, &err);
  tap_ok(e == ACED_OK && row.version == 2 && strcmp(row.digest, "sha256:two") == 0,
         "after a new version the latest row is version 2, not the remembered 1");
  store_model_row_clear(&row);
  int deleted = 0;
  s->ops->model_delete(s, "m", &deleted, &err);
  e = s->ops->model_get(s, "m", 0, 0, &row, &err);
  tap_ok(e == ACED_E_MODEL_NOT_FOUND, "after DELETE the remembered row is gone (%d)", (int)e);
  store_model_row_clear(&row);
  s->ops->close(s);
}

/* ---- registry ---------------------------------------------------------- */

static const char *DESC = "it's a \"test\"'); DROP TABLE models; --";
static const char *BODY_A = "{\"network\":{\"layers\":[]},\"x\":'quoted'}";
static const char *BODY_B = "{\"network\":{\"layers\":[1]}}";

static void test_registry(const char *dir)
{
  const char *file = "registry.db";
  struct aced_error err = {0};
  struct store *s = B->open(dir, file, &err);
  if (!tap_ok(s != NULL, "open a new database file")) {
    tap_diag("%s", err.message);
    exit(1);
  }
  tap_ok(s->ops->ping(s, &err) == ACED_OK, "ping a fresh database");
  long n = -1;
  enum aced_err e = s->ops->model_count(s, &n, &err);
  tap_ok(e == ACED_OK && n == 0,
         "fresh database has no models (%ld)", n);

  /* Round trip of every field. */
  struct store_model_row row;
  memset(&row, 0, sizeof row);
  snprintf(row.name, sizeof row.name, "alpha");
  snprintf(row.digest, sizeof row.digest, "sha256:%064d", 1);
  row.description = (char *)DESC;
  row.n_features = 7;
  row.n_outputs = 3;
  row.n_samples = 1000;
  row.n_params = 5000000000L;  /* does not fit an int */
  int created = -1;
  e = s->ops->model_put(s, &row, BODY_A, &created, &err);
  tap_ok(e == ACED_OK && created == 1 && row.version == 1,
         "first put creates version 1 (e=%d created=%d v=%d)", e, created,
         row.version);
  tap_ok(rfc3339_utc(row.created_at), "created_at is RFC 3339 UTC (%s)",
         row.created_at);
  char created_a[32];
  snprintf(created_a, sizeof created_a, "%s", row.created_at);

  struct store_model_row got;
  e = s->ops->model_get(s, "alpha", 1, 1, &got, &err);
  tap_ok(e == ACED_OK, "get alpha v1");
  tap_ok(strcmp(got.name, "alpha") == 0, "name round trip");
  tap_ok(got.version == 1, "version round trip");
  tap_ok(strcmp(got.digest, row.digest) == 0, "digest round trip");
  tap_ok(got.description && strcmp(got.description, DESC) == 0,
         "description with SQL metacharacters round trip");
  tap_ok(strcmp(got.created_at, created_a) == 0, "created_at round trip");
  tap_ok(got.n_features == 7 && got.n_outputs == 3 && got.n_samples == 1000,
         "n_features/n_outputs/n_samples round trip");
  tap_ok(got.n_params == 5000000000L, "n_params round trip (%ld)", got.n_params);
  tap_ok(got.body && strcmp(got.body, BODY_A) == 0, "body round trip");
  tap_ok(got.source[0] == '\0', "a row put without a source has none");
  store_model_row_clear(&got);
  tap_ok(got.body == NULL && got.description == NULL,
         "store_model_row_clear frees and clears");

  /* The origin of an imported model (ONNX) is kept beside the body, on
   * every backend, and read back with and without the body. */
  struct store_model_row src;
  memset(&src, 0, sizeof src);
  snprintf(src.name, sizeof src.name, "imported");
  snprintf(src.digest, sizeof src.digest, "sha256:%064d", 9);
  snprintf(src.source, sizeof src.source, "{\"opset\":13,\"producer\":\"pytorch 1.13.0\"}");
  e = s->ops->model_put(s, &src, BODY_A, &created, &err);
  struct store_model_row gs;
  enum aced_err e2 = s->ops->model_get(s, "imported", 0, 1, &gs, &err);
  tap_ok(e == ACED_OK && e2 == ACED_OK && strcmp(gs.source, src.source) == 0 && gs.body &&
             strcmp(gs.body, BODY_A) == 0,
         "a source round trip, with the body (%s)", gs.source);
  store_model_row_clear(&gs);
  e2 = s->ops->model_get(s, "imported", 0, 0, &gs, &err);
  tap_ok(e2 == ACED_OK && strcmp(gs.source, src.source) == 0, "and without it");
  store_model_row_clear(&gs);
  int del = 0;
  tap_ok(s->ops->model_delete(s, "imported", &del, &err) == ACED_OK && del == 1,
         "the imported row is deleted again");

  e = s->ops->model_get(s, "alpha", 1, 0, &got, &err);
  tap_ok(e == ACED_OK && got.body == NULL && got.n_params == 5000000000L,
         "get without body leaves body NULL");
  store_model_row_clear(&got);

  /* Same digest again: nothing new. */
  int v = 0;
  sleep(1);  /* so that a wrongly refreshed created_at would show */
  e = put(s, "alpha", row.digest, "other", BODY_A, &created, &v, &err);
  tap_ok(e == ACED_OK && created == 0 && v == 1,
         "same digest again: created=0, version 1 (created=%d v=%d)", created, v);
  memset(&row, 0, sizeof row);
  snprintf(row.name, sizeof row.name, "alpha");
  snprintf(row.digest, sizeof row.digest, "sha256:%064d", 1);
  s->ops->model_put(s, &row, BODY_A, &created, &err);
  tap_ok(strcmp(row.created_at, created_a) == 0,
         "same digest again returns the original created_at");

  /* A new digest: version 2. */
  char dig_b[72];
  snprintf(dig_b, sizeof dig_b, "sha256:%064d", 2);
  e = put(s, "alpha", dig_b, NULL, BODY_B, &created, &v, &err);
  tap_ok(e == ACED_OK && created == 1 && v == 2,
         "different digest: created=1, version 2 (v=%d)", v);
  e = put(s, "alpha", row.digest, NULL, BODY_A, &created, &v, &err);
  tap_ok(e == ACED_OK && created == 0 && v == 1,
         "the first digest again still answers version 1 (v=%d)", v);

  e = s->ops->model_get(s, "alpha", 0, 1, &got, &err);
  tap_ok(e == ACED_OK && got.version == 2 && strcmp(got.digest, dig_b) == 0 &&
             got.body && strcmp(got.body, BODY_B) == 0 && got.description == NULL,
         "version 0 is the latest (v=%d)", got.version);
  store_model_row_clear(&got);
  e = s->ops->model_get(s, "alpha", 1, 0, &got, &err);
  tap_ok(e == ACED_OK && got.version == 1 && strcmp(got.digest, row.digest) == 0,
         "version 1 is still there");
  store_model_row_clear(&got);
  e = s->ops->model_get(s, "alpha", 3, 0, &got, &err);
  tap_ok(e == ACED_E_MODEL_NOT_FOUND && err.code == ACED_E_MODEL_NOT_FOUND,
         "missing version: model_not_found (%s)", err.message);
  e = s->ops->model_get(s, "nosuch", 0, 1, &got, &err);
  tap_ok(e == ACED_E_MODEL_NOT_FOUND, "missing name: model_not_found (%s)",
         err.message);

  /* More names, one of them with a quote. */
  tap_ok(put(s, "zeta", "sha256:z", NULL, "{}", &created, &v, &err) == ACED_OK &&
             v == 1, "put zeta");
  tap_ok(put(s, "beta", "sha256:b", NULL, "{}", &created, &v, &err) == ACED_OK &&
             v == 1, "put beta");
  tap_ok(put(s, "o'brien", "sha256:o", "x'); --", "{}", &created, &v, &err) ==
             ACED_OK && v == 1, "put a name with a quote");
  e = s->ops->model_get(s, "o'brien", 0, 0, &got, &err);
  tap_ok(e == ACED_OK && strcmp(got.name, "o'brien") == 0 &&
             strcmp(got.description, "x'); --") == 0,
         "get a name with a quote");
  store_model_row_clear(&got);

  struct seen sn = {.body_null = 1};
  e = s->ops->model_list(s, seen_cb, &sn, &err);
  tap_ok(e == ACED_OK && sn.n == 4, "list has 4 models (%d)", sn.n);
  tap_ok(sn.n == 4 && strcmp(sn.names[0], "alpha") == 0 &&
             strcmp(sn.names[1], "beta") == 0 &&
             strcmp(sn.names[2], "o'brien") == 0 &&
             strcmp(sn.names[3], "zeta") == 0,
         "list is ordered by name");
  tap_ok(sn.versions[0] == 2 && strcmp(sn.digests[0], dig_b) == 0,
         "list shows the latest version of alpha (v=%d)", sn.versions[0]);
  tap_ok(sn.body_null, "list rows carry no body");
  memset(&sn, 0, sizeof sn);
  sn.stop_after = 2;
  e = s->ops->model_list(s, seen_cb, &sn, &err);
  tap_ok(e == ACED_OK && sn.n == 2, "list stops when the callback says so (%d)",
         sn.n);

  memset(&sn, 0, sizeof sn);
  sn.body_null = 1;
  e = s->ops->model_versions(s, "alpha", seen_cb, &sn, &err);
  tap_ok(e == ACED_OK && sn.n == 2 && sn.versions[0] == 1 &&
             sn.versions[1] == 2 && strcmp(sn.digests[1], dig_b) == 0 &&
             sn.body_null,
         "versions of alpha: 1 then 2");
  memset(&sn, 0, sizeof sn);
  e = s->ops->model_versions(s, "nosuch", seen_cb, &sn, &err);
  tap_ok(e == ACED_OK && sn.n == 0, "versions of an unknown name: none");

  n = -1;
  e = s->ops->model_count(s, &n, &err);
  tap_ok(e == ACED_OK && n == 4,
         "model_count counts names, not versions (%ld)", n);

  /* Cache. */
  struct store_cache_key k;
  key(&k, dig_b, 0, 1, "num=100;max_order=20");
  char *val = (char *)"sentinel";
  e = s->ops->cache_get(s, &k, &val, &err);
  tap_ok(e == ACED_OK && val == NULL, "cache miss: ACED_OK and NULL");
  tap_ok(cache_put1(s, &k, "{\"curve\":[1,2]}", &err) == ACED_OK,
         "cache put");
  e = s->ops->cache_get(s, &k, &val, &err);
  tap_ok(e == ACED_OK && val && strcmp(val, "{\"curve\":[1,2]}") == 0,
         "cache get returns what was put");
  free(val);
  struct store_cache_key k2 = k;
  k2.params = "num=100;max_order=21";
  e = s->ops->cache_get(s, &k2, &val, &err);
  tap_ok(e == ACED_OK && val == NULL, "cache: other params miss");
  free(val);
  k2 = k;
  k2.feature = 2;
  e = s->ops->cache_get(s, &k2, &val, &err);
  tap_ok(e == ACED_OK && val == NULL, "cache: other feature misses");
  free(val);
  tap_ok(cache_put1(s, &k, "{\"curve\":[3]}", &err) == ACED_OK,
         "cache put again replaces");
  e = s->ops->cache_get(s, &k, &val, &err);
  tap_ok(e == ACED_OK && val && strcmp(val, "{\"curve\":[3]}") == 0,
         "cache get returns the replacement");
  free(val);
  n = -1;
  e = s->ops->cache_count(s, &n, &err);
  tap_ok(e == ACED_OK && n == 1,
         "cache_count is 1 after a replace (%ld)", n);
  /* A batch: three outputs of one feature in one call. */
  {
    struct store_cache_key kb[3];
    const char *vb[3] = {"[b0]", "[b1]", "[b2]"};
    for (int i = 0; i < 3; i++)
      key(&kb[i], dig_b, i, 7, "num=50");
    tap_ok(s->ops->cache_put(s, kb, vb, 3, &err) == ACED_OK &&
               cache_has(s, dig_b, 0, 7, "num=50") == 1 &&
               cache_has(s, dig_b, 1, 7, "num=50") == 1 &&
               cache_has(s, dig_b, 2, 7, "num=50") == 1,
           "cache_put stores a batch of entries");
    n = -1;
    s->ops->cache_count(s, &n, &err);
    tap_ok(n == 4, "cache_count counts the batch (%ld)", n);
  }
  /* A digest no model has (its model was deleted while a worker fitted):
   * the put is accepted and stores nothing. */
  key(&k2, "sha256:nobody", 0, 0, "num=100");
  tap_ok(cache_put1(s, &k2, "[orphan]", &err) == ACED_OK &&
             cache_has(s, "sha256:nobody", 0, 0, "num=100") == 0,
         "cache_put for a digest no model has stores nothing");

  /* Delete and the cache: shared1 (digests s, only1) and shared2 (s). */
  put(s, "shared1", "sha256:s", NULL, "{}", &created, &v, &err);
  put(s, "shared1", "sha256:only1", NULL, "{}", &created, &v, &err);
  put(s, "shared2", "sha256:s", NULL, "{}", &created, &v, &err);
  key(&k, "sha256:s", 0, 0, "num=100");
  cache_put1(s, &k, "[s]", &err);
  key(&k, "sha256:only1", 0, 0, "num=100");
  cache_put1(s, &k, "[only1]", &err);
  key(&k, "sha256:only1", 1, 0, "num=100");
  cache_put1(s, &k, "[only1b]", &err);
  tap_ok(cache_has(s, "sha256:s", 0, 0, "num=100") == 1 &&
             cache_has(s, "sha256:only1", 0, 0, "num=100") == 1 &&
             cache_has(s, "sha256:only1", 1, 0, "num=100") == 1,
         "cache rows for shared and own digests are there");
  int deleted = -1;
  e = s->ops->model_delete(s, "shared1", &deleted, &err);
  tap_ok(e == ACED_OK && deleted == 2, "delete shared1: 2 versions (%d)", deleted);
  tap_ok(cache_has(s, "sha256:only1", 0, 0, "num=100") == 0 &&
             cache_has(s, "sha256:only1", 1, 0, "num=100") == 0,
         "delete removes the cache rows of its own digest");
  tap_ok(cache_has(s, "sha256:s", 0, 0, "num=100") == 1,
         "delete keeps cache rows of a digest shared2 still uses");
  tap_ok(cache_has(s, dig_b, 0, 1, "num=100;max_order=20") == 1,
         "delete keeps other models' cache rows");
  e = s->ops->model_get(s, "shared2", 0, 1, &got, &err);
  tap_ok(e == ACED_OK && strcmp(got.digest, "sha256:s") == 0,
         "the other name with the same digest is untouched");
  store_model_row_clear(&got);
  e = s->ops->model_delete(s, "shared2", &deleted, &err);
  tap_ok(e == ACED_OK && deleted == 1 &&
             cache_has(s, "sha256:s", 0, 0, "num=100") == 0,
         "deleting the last user of a digest removes its cache rows");

  deleted = -1;
  e = s->ops->model_delete(s, "nosuch", &deleted, &err);
  tap_ok(e == ACED_OK && deleted == 0, "delete of an unknown name: OK, 0 (%d)",
         deleted);

  e = s->ops->model_delete(s, "alpha", &deleted, &err);
  tap_ok(e == ACED_OK && deleted == 2, "delete alpha: 2 versions (%d)", deleted);
  e = s->ops->model_get(s, "alpha", 0, 0, &got, &err);
  tap_ok(e == ACED_E_MODEL_NOT_FOUND, "alpha is gone");
  e = s->ops->model_get(s, "alpha", 1, 0, &got, &err);
  tap_ok(e == ACED_E_MODEL_NOT_FOUND, "alpha v1 is gone too");
  memset(&sn, 0, sizeof sn);
  s->ops->model_versions(s, "alpha", seen_cb, &sn, &err);
  tap_ok(sn.n == 0, "no versions of alpha remain");
  tap_ok(cache_has(s, dig_b, 0, 1, "num=100;max_order=20") == 0,
         "alpha's cache rows are gone");
  n = -1;
  e = s->ops->model_count(s, &n, &err);
  tap_ok(e == ACED_OK && n == 3,
         "model_count after deletes (%ld)", n);
  e = put(s, "alpha", dig_b, NULL, BODY_B, &created, &v, &err);
  tap_ok(e == ACED_OK && created == 1 && v == 1,
         "a deleted name starts again at version 1 (v=%d)", v);

  s->ops->close(s);

  /* Persistence: everything is there after close and reopen. */
  s = B->open(dir, file, &err);
  tap_ok(s != NULL, "reopen");
  if (s == NULL)
    return;
  e = s->ops->model_get(s, "o'brien", 0, 1, &got, &err);
  tap_ok(e == ACED_OK && strcmp(got.digest, "sha256:o") == 0 &&
             strcmp(got.body, "{}") == 0,
         "model persists across close/reopen");
  store_model_row_clear(&got);
  e = s->ops->model_get(s, "alpha", 0, 1, &got, &err);
  tap_ok(e == ACED_OK && got.version == 1 && strcmp(got.body, BODY_B) == 0,
         "re-registered model persists");
  store_model_row_clear(&got);
  n = -1;
  e = s->ops->model_count(s, &n, &err);
  tap_ok(e == ACED_OK && n == 4,
         "model_count after reopen (%ld)", n);
  e = put(s, "zeta", "sha256:z2", NULL, "{}", &created, &v, &err);
  tap_ok(e == ACED_OK && v == 2, "versions continue after reopen (v=%d)", v);
  s->ops->close(s);

  if (!B->files)
    return;
  /* The file has the schema version and the WAL mode we promise. */
  char path[1024];
  db_path(path, sizeof path, dir, file);
  sqlite3 *db = NULL;
  int uv = -1;
  char *mode = NULL;
  if (sqlite3_open(path, &db) == SQLITE_OK) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      uv = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      mode = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  tap_ok(uv == 2, "user_version is 2 (%d)", uv);
  tap_ok(mode && strcmp(mode, "wal") == 0, "journal mode is WAL (%s)",
         mode ? mode : "?");
  free(mode);

  /* Damaged rows decode without crashing: NULLs and wrong types. */
  int rc = sqlite3_exec(
      db,
      "INSERT INTO models(name, version, digest, description, created_at,"
      " n_features, n_outputs, n_samples, n_params, body)"
      " VALUES ('damaged', 1, 'sha256:d', NULL, '', NULL, 'abc', -5, NULL, '{}');"
      "INSERT INTO models(name, version, digest, created_at, body)"
      " VALUES ('damaged', 2, x'00ff', 'not a date', '');",
      NULL, NULL, NULL);
  tap_ok(rc == SQLITE_OK, "insert damaged rows behind the store's back");
  sqlite3_close(db);
  s = B->open(dir, file, &err);
  if (s == NULL) {
    tap_ok(0, "reopen after damage: %s", err.message);
    return;
  }
  e = s->ops->model_get(s, "damaged", 1, 1, &got, &err);
  tap_ok(e == ACED_OK && got.description == NULL && got.n_features == 0 &&
             got.n_outputs == 0 && got.n_samples == 0 && got.n_params == 0,
         "NULL, text and negative numbers decode as 0 / NULL");
  store_model_row_clear(&got);
  e = s->ops->model_get(s, "damaged", 0, 1, &got, &err);
  tap_ok(e == ACED_OK && got.version == 2 && got.body != NULL,
         "a blob digest decodes without crashing");
  store_model_row_clear(&got);
  memset(&sn, 0, sizeof sn);
  e = s->ops->model_list(s, seen_cb, &sn, &err);
  tap_ok(e == ACED_OK && sn.n == 5,
         "list with damaged rows (%d)", sn.n);
  s->ops->close(s);
}

/* ---- files that are not usable ----------------------------------------- */

static void test_bad_files(const char *dir)
{
  char path[1024];
  struct aced_error err = {0};

  db_path(path, sizeof path, dir, "notadb.db");
  FILE *f = fopen(path, "w");
  for (int i = 0; i < 200; i++)
    fputs("this is not an SQLite database, just some text\n", f);
  fclose(f);
  struct store *s = store_sqlite_open(path, &err);
  tap_ok(s == NULL && err.code == ACED_E_STORE && err.message[0] != '\0',
         "a text file is refused: %s", err.message);
  tap_ok(strstr(err.message, "not a database") != NULL,
         "the message says why");
  if (s)
    s->ops->close(s);

  memset(&err, 0, sizeof err);
  db_path(path, sizeof path, dir, "no/such/dir/x.db");
  s = store_sqlite_open(path, &err);
  tap_ok(s == NULL && err.code == ACED_E_STORE && strstr(err.message, path),
         "a path in a missing directory is refused: %s", err.message);
  if (s)
    s->ops->close(s);

  memset(&err, 0, sizeof err);
  s = store_sqlite_open(dir, &err);
  tap_ok(s == NULL && err.code == ACED_E_STORE,
         "a directory is refused: %s", err.message);
  if (s)
    s->ops->close(s);

  /* A database from a newer aced. */
  db_path(path, sizeof path, dir, "future.db");
  sqlite3 *db;
  sqlite3_open(path, &db);
  sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
  sqlite3_close(db);
  memset(&err, 0, sizeof err);
  s = store_sqlite_open(path, &err);
  tap_ok(s == NULL && strstr(err.message, "99") != NULL,
         "a newer schema version is refused: %s", err.message);
  if (s)
    s->ops->close(s);

  memset(&err, 0, sizeof err);
  s = store_sqlite_open(NULL, &err);
  tap_ok(s == NULL && err.code == ACED_E_STORE, "a NULL path is refused");

  /* :memory: works without a reader pool. */
  s = store_sqlite_open(":memory:", &err);
  tap_ok(s != NULL, "open :memory:");
  if (s) {
    int created, v;
    struct store_model_row got;
    put(s, "m", "sha256:m", NULL, "{}", &created, &v, &err);
    tap_ok(s->ops->model_get(s, "m", 0, 1, &got, &err) == ACED_OK &&
               strcmp(got.body, "{}") == 0,
           ":memory: put/get");
    store_model_row_clear(&got);
    s->ops->close(s);
  }
}

/* A database of schema 1 (before the model row kept its source) opens,
 * is migrated in place, keeps its rows (source ""), and stores sources. */
static void test_migration(const char *dir)
{
  char path[512];
  struct aced_error err;
  sqlite3 *db;
  db_path(path, sizeof path, dir, "schema1.db");
  sqlite3_open(path, &db);
  int rc = sqlite3_exec(
      db,
      "CREATE TABLE models (name TEXT NOT NULL, version INTEGER NOT NULL,"
      " digest TEXT NOT NULL, description TEXT, created_at TEXT NOT NULL,"
      " n_features INTEGER, n_outputs INTEGER, n_samples INTEGER, n_params INTEGER,"
      " body TEXT NOT NULL, PRIMARY KEY (name, version));"
      "CREATE INDEX models_digest ON models(digest);"
      "CREATE TABLE regressor_cache (digest TEXT NOT NULL, output INTEGER NOT NULL,"
      " feature INTEGER NOT NULL, estimator TEXT NOT NULL, params TEXT NOT NULL,"
      " value TEXT NOT NULL, created_at TEXT NOT NULL,"
      " PRIMARY KEY (digest, output, feature, estimator, params));"
      "INSERT INTO models VALUES ('old', 1, 'sha256:old', NULL, '2026-01-01T00:00:00Z',"
      " 3, 2, 0, 42, '{}');"
      "PRAGMA user_version = 1;",
      NULL, NULL, NULL);
  sqlite3_close(db);
  tap_ok(rc == SQLITE_OK, "a schema-1 database is written");
  struct store *s = store_sqlite_open(path, &err);
  tap_ok(s != NULL, "a schema-1 database opens (migrated to 2)");
  if (s == NULL)
    return;
  struct store_model_row row, got;
  s->ops->model_get(s, "old", 0, 1, &got, &err);
  tap_ok(strcmp(got.digest, "sha256:old") == 0 && got.source[0] == '\0' &&
             strcmp(got.body, "{}") == 0,
         "its row is kept, without a source");
  store_model_row_clear(&got);
  memset(&row, 0, sizeof row);
  snprintf(row.name, sizeof row.name, "imported");
  snprintf(row.digest, sizeof row.digest, "sha256:imp");
  snprintf(row.source, sizeof row.source, "{\"opset\":13,\"producer\":\"pytorch 1.13.0\"}");
  int created = 0;
  s->ops->model_put(s, &row, "{}", &created, &err);
  s->ops->close(s);
  s = store_sqlite_open(path, &err);
  memset(&got, 0, sizeof got);
  if (s != NULL)
    s->ops->model_get(s, "imported", 0, 0, &got, &err);
  tap_ok(created && strcmp(got.source, row.source) == 0,
         "a row's source survives close/reopen (%s)", got.source);
  store_model_row_clear(&got);
  if (s != NULL)
    s->ops->close(s);
}

static void run_all(const char *dir)
{
  if (B->files)
    test_migration(dir); /* SQLite's schema 1 -> 2 (the ONNX source column) */
  test_registry(dir);
  test_latest_cache(dir);
  if (B->files)
    test_bad_files(dir);
}

int main(void)
{
  return run_backends(run_all);
}
