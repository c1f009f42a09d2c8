/*
 * test_store_durability.c -- the store under stress, against both
 * backends (SQLite in a fresh mkdtemp directory; PostgreSQL in a cluster
 * started by tests/pgcluster.sh, or a TAP SKIP naming the package):
 * concurrent writers and readers, crash durability (a child killed with
 * SIGKILL after acknowledged writes), and for PostgreSQL only several
 * stores on one database (replicas), a durable job's tasks claimed by
 * threads of two replicas, and a database restart.  Registry
 * semantics are test_store.c; the helpers both use are in storetest.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include "storetest.h"

/* ---- concurrency ------------------------------------------------------- */

#define CONC_THREADS 4
#define CONC_ITERS 40
#define CONC_COMMON 10

struct conc_arg {
  struct store *s;
  int id;
  int errors;
  char last_error[ACED_MESSAGE_MAX];
  int own_version[CONC_ITERS];        /* version of digest t<id>-<i> */
  int common_version[CONC_COMMON];    /* version of digest c<k> (0: unset) */
  int common_mismatch;
};

static void conc_fail(struct conc_arg *a, const struct aced_error *err)
{
  a->errors++;
  snprintf(a->last_error, sizeof a->last_error, "%s", err->message);
}

static void *conc_thread(void *p)
{
  struct conc_arg *a = p;
  struct store *s = a->s;
  struct aced_error err;
  char digest[72], body[64], val[64];
  for (int i = 0; i < CONC_ITERS; i++) {
    int created, v;
    snprintf(digest, sizeof digest, "sha256:t%d-%d", a->id, i);
    snprintf(body, sizeof body, "{\"t\":%d,\"i\":%d}", a->id, i);
    if (put(s, "conc", digest, NULL, body, &created, &v, &err) != ACED_OK ||
        !created)
      conc_fail(a, &err);
    a->own_version[i] = v;

    /* Everybody registers the same few digests under "common". */
    int c = (i + a->id) % CONC_COMMON;
    snprintf(digest, sizeof digest, "sha256:c%d", c);
    if (put(s, "common", digest, NULL, "{}", &created, &v, &err) != ACED_OK)
      conc_fail(a, &err);
    if (a->common_version[c] && a->common_version[c] != v)
      a->common_mismatch++;
    a->common_version[c] = v;

    struct store_model_row row;
    if (s->ops->model_get(s, "conc", 0, 1, &row, &err) != ACED_OK)
      conc_fail(a, &err);
    store_model_row_clear(&row);

    struct store_cache_key k;
    snprintf(digest, sizeof digest, "sha256:t%d-%d", a->id, i);
    key(&k, digest, i, a->id, "num=100");
    snprintf(val, sizeof val, "[%d,%d]", a->id, i);
    if (cache_put1(s, &k, val, &err) != ACED_OK)
      conc_fail(a, &err);
    char *got = NULL;
    if (s->ops->cache_get(s, &k, &got, &err) != ACED_OK || got == NULL ||
        strcmp(got, val) != 0) {
      a->errors++;
      snprintf(a->last_error, sizeof a->last_error, "cache read back %s",
               got ? got : "(miss)");
    }
    free(got);

    long n;
    struct seen sn = {0};
    if (s->ops->model_count(s, &n, &err) != ACED_OK ||
        s->ops->model_list(s, seen_cb, &sn, &err) != ACED_OK ||
        s->ops->ping(s, &err) != ACED_OK)
      conc_fail(a, &err);
  }
  return NULL;
}

struct version_map {
  int n;
  int versions[CONC_THREADS * CONC_ITERS + 8];
  char digests[CONC_THREADS * CONC_ITERS + 8][72];
};

static int vm_cb(void *cls, const struct store_model_row *row)
{
  struct version_map *m = cls;
  if (m->n < (int)(sizeof m->versions / sizeof m->versions[0])) {
    m->versions[m->n] = row->version;
    snprintf(m->digests[m->n], sizeof m->digests[0], "%s", row->digest);
  }
  m->n++;
  return 0;
}

static void test_concurrency(const char *dir)
{
  const char *file = "conc.db";
  struct aced_error err = {0};
  struct store *s = B->open(dir, file, &err);
  if (!tap_ok(s != NULL, "open for concurrency"))
    return;
  static struct conc_arg args[CONC_THREADS];
  pthread_t th[CONC_THREADS];
  for (int t = 0; t < CONC_THREADS; t++) {
    memset(&args[t], 0, sizeof args[t]);
    args[t].s = s;
    args[t].id = t;
    pthread_create(&th[t], NULL, conc_thread, &args[t]);
  }
  int errors = 0, mismatch = 0;
  for (int t = 0; t < CONC_THREADS; t++) {
    pthread_join(th[t], NULL);
    errors += args[t].errors;
    mismatch += args[t].common_mismatch;
    if (args[t].errors)
      tap_diag("thread %d: %d errors, last: %s", t, args[t].errors,
               args[t].last_error);
  }
  tap_ok(errors == 0, "%d threads x %d rounds: no errors (%d)", CONC_THREADS,
         CONC_ITERS, errors);

  /* Each distinct digest of "conc" got its own version, 1..N without gaps,
   * and the store agrees with what put answered. */
  enum { N = CONC_THREADS * CONC_ITERS };
  static int seen_v[N + 1];
  memset(seen_v, 0, sizeof seen_v);
  int bad = 0;
  for (int t = 0; t < CONC_THREADS; t++)
    for (int i = 0; i < CONC_ITERS; i++) {
      int v = args[t].own_version[i];
      if (v < 1 || v > N || seen_v[v]++)
        bad++;
    }
  tap_ok(bad == 0, "every distinct digest got a distinct version in 1..%d (%d bad)",
         N, bad);
  static struct version_map m;
  memset(&m, 0, sizeof m);
  s->ops->model_versions(s, "conc", vm_cb, &m, &err);
  int agree = m.n == N;
  for (int j = 0; agree && j < m.n; j++) {
    int t, i;
    if (m.versions[j] != j + 1 ||
        sscanf(m.digests[j], "sha256:t%d-%d", &t, &i) != 2 || t < 0 ||
        t >= CONC_THREADS || i < 0 || i >= CONC_ITERS ||
        args[t].own_version[i] != m.versions[j])
      agree = 0;
  }
  tap_ok(agree, "stored versions of conc match what put answered (%d rows)", m.n);

  memset(&m, 0, sizeof m);
  s->ops->model_versions(s, "common", vm_cb, &m, &err);
  tap_ok(m.n == CONC_COMMON, "racing puts of %d shared digests made %d versions",
         CONC_COMMON, m.n);
  int digests_ok = m.n == CONC_COMMON;
  for (int j = 0; digests_ok && j < m.n; j++)
    for (int j2 = j + 1; j2 < m.n; j2++)
      if (strcmp(m.digests[j], m.digests[j2]) == 0)
        digests_ok = 0;
  tap_ok(digests_ok, "no digest is stored twice under one name");
  int threads_agree = mismatch == 0;
  for (int c = 0; c < CONC_COMMON; c++)
    for (int t = 1; t < CONC_THREADS; t++)
      if (args[t].common_version[c] != args[0].common_version[c])
        threads_agree = 0;
  tap_ok(threads_agree, "all threads were told the same version per digest");
  long n = -1;
  enum aced_err e = s->ops->cache_count(s, &n, &err);
  tap_ok(e == ACED_OK && n == N,
         "cache holds one row per put (%ld)", n);
  s->ops->close(s);
}

/* ---- crash durability -------------------------------------------------- */

/* Child: register models "crash" with digests k<i> and bodies b<i>, and
 * write i to the pipe only once put has returned.  With `n_then_wait` > 0
 * it stops right after acknowledging that many and waits, store open, for
 * the parent's SIGKILL (no close, no checkpoint); otherwise it keeps
 * registering until the parent kills it. */
static void crash_child(const char *dir, const char *file, int fd, int n_then_wait)
{
  struct aced_error err;
  struct store *s = B->open(dir, file, &err);
  if (s == NULL)
    _exit(2);
  for (int i = 0; n_then_wait == 0 || i < n_then_wait; i++) {
    char digest[72], body[64];
    int created, v;
    snprintf(digest, sizeof digest, "sha256:k%d", i);
    snprintf(body, sizeof body, "{\"b\":%d}", i);
    if (put(s, "crash", digest, "d", body, &created, &v, &err) != ACED_OK ||
        v != i + 1)
      _exit(3);
    if (write(fd, &i, sizeof i) != (ssize_t)sizeof i)
      _exit(4);
  }
  for (;;)
    pause();
}

/* Read acknowledgements until EOF; returns how many arrived. */
static int read_acks(int fd, int want, int *acked)
{
  int i;
  while (*acked < want && read(fd, &i, sizeof i) == (ssize_t)sizeof i)
    (*acked)++;
  return *acked;
}

static void check_acked(const char *dir, const char *file, int acked, const char *what)
{
  struct aced_error err = {0};
  struct store *s = B->open(dir, file, &err);
  if (!tap_ok(s != NULL, "%s: reopen after the child died (%s)", what,
              s ? "" : err.message))
    return;
  int missing = 0;
  for (int i = 0; i < acked; i++) {
    struct store_model_row row;
    char digest[72], body[64];
    snprintf(digest, sizeof digest, "sha256:k%d", i);
    snprintf(body, sizeof body, "{\"b\":%d}", i);
    if (s->ops->model_get(s, "crash", i + 1, 1, &row, &err) != ACED_OK ||
        strcmp(row.digest, digest) != 0 || row.body == NULL ||
        strcmp(row.body, body) != 0) {
      if (missing++ == 0)
        tap_diag("model crash v%d: %s", i + 1, err.message);
    }
    store_model_row_clear(&row);
  }
  tap_ok(missing == 0, "%s: all %d acknowledged models are there (%d missing)",
         what, acked, missing);
  tap_ok(s->ops->ping(s, &err) == ACED_OK, "%s: database usable", what);
  s->ops->close(s);
}

static void test_crash(const char *dir)
{
  char path[1024];
  int fds[2];

  /* SIGKILL at an arbitrary moment after some acknowledgements. */
  const char *file = "crash-kill.db";
  if (pipe(fds) != 0) {
    tap_ok(0, "pipe: %s", strerror(errno));
    return;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    crash_child(dir, file, fds[1], 0);
  }
  close(fds[1]);
  int acked = 0;
  read_acks(fds[0], 25, &acked);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  /* Acknowledgements written before the kill still count. */
  read_acks(fds[0], 1 << 30, &acked);
  close(fds[0]);
  tap_ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && acked >= 25,
         "child killed with SIGKILL after %d acknowledged puts", acked);
  check_acked(dir, file, acked, "after SIGKILL");

  /* SIGKILL right after the 15th put returned: the WAL is left behind,
   * not checkpointed, and every acknowledged put must be in it. */
  file = "crash-ack.db";
  db_path(path, sizeof path, dir, file);
  if (pipe(fds) != 0)
    return;
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    close(fds[0]);
    crash_child(dir, file, fds[1], 15);
  }
  close(fds[1]);
  acked = 0;
  read_acks(fds[0], 15, &acked);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  read_acks(fds[0], 1 << 30, &acked);
  close(fds[0]);
  tap_ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && acked == 15,
         "child killed right after its %d-th put returned (status %d)",
         acked, status);
  /* The models must be in the uncheckpointed WAL, or this test would not
   * be testing recovery from it. */
  char wal[1100];
  struct stat stw;
  snprintf(wal, sizeof wal, "%s-wal", path);
  if (B->files)
    tap_ok(stat(wal, &stw) == 0 && stw.st_size > 0,
         "the killed child left a WAL behind (%lld bytes)",
         (long long)(stat(wal, &stw) == 0 ? stw.st_size : -1));
  check_acked(dir, file, acked, "after SIGKILL on acknowledgement");
}

/* ---- PostgreSQL: replicas on one database, and a database restart ----- */

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Poll model_get(name, latest) on s until it answers `want` (ACED_OK or
 * ACED_E_MODEL_NOT_FOUND) with version `v` (when OK), for up to 2 s;
 * returns the seconds it took or -1. */
static double wait_latest(struct store *s, const char *name, enum aced_err want, int v)
{
  double t0 = now_s();
  while (now_s() - t0 < 2.0) {
    struct store_model_row row;
    struct aced_error err;
    enum aced_err e = s->ops->model_get(s, name, 0, 0, &row, &err);
    int ver = row.version;
    store_model_row_clear(&row);
    if (e == want && (e != ACED_OK || ver == v))
      return now_s() - t0;
    usleep(1000);
  }
  return -1;
}

static void test_replicas(const char *dir)
{
  struct aced_error err = {0};
  struct store *a = B->open(dir, "replicas.db", &err);
  struct store *b = B->open(dir, "replicas.db", &err);
  if (!tap_ok(a != NULL && b != NULL, "two stores (replicas) on one database"))
    return;
  usleep(300000); /* both listeners connected */
  int created = -1, v = 0;
  put(a, "shared", "sha256:one", "d", "{\"one\":1}", &created, &v, &err);
  struct store_model_row row;
  enum aced_err e = b->ops->model_get(b, "shared", 0, 1, &row, &err);
  tap_ok(e == ACED_OK && row.version == 1 && row.body && strcmp(row.body, "{\"one\":1}") == 0,
         "registered through A, read through B");
  store_model_row_clear(&row);
  /* B remembers the latest row now; A's next version must reach it */
  b->ops->model_get(b, "shared", 0, 0, &row, &err);
  store_model_row_clear(&row);
  put(a, "shared", "sha256:two", NULL, "{}", &created, &v, &err);
  double dt = wait_latest(b, "shared", ACED_OK, 2);
  tap_ok(dt >= 0, "a new version through A is B's latest after %.1f ms", dt * 1e3);
  e = put(b, "shared", "sha256:one", NULL, "{\"one\":1}", &created, &v, &err);
  tap_ok(e == ACED_OK && created == 0 && v == 1,
         "the same digest through B is not registered again (created=%d v=%d)", created, v);
  int deleted = 0;
  a->ops->model_delete(a, "shared", &deleted, &err);
  dt = wait_latest(b, "shared", ACED_E_MODEL_NOT_FOUND, 0);
  tap_ok(deleted == 2 && dt >= 0, "deleted through A: gone on B after %.1f ms", dt * 1e3);

  /* Racing registrations through both stores: one version per digest. */
  static struct conc_arg args[CONC_THREADS];
  pthread_t th[CONC_THREADS];
  for (int t = 0; t < CONC_THREADS; t++) {
    memset(&args[t], 0, sizeof args[t]);
    args[t].s = t % 2 ? b : a;
    args[t].id = t;
    pthread_create(&th[t], NULL, conc_thread, &args[t]);
  }
  int errors = 0, agree = 1;
  for (int t = 0; t < CONC_THREADS; t++) {
    pthread_join(th[t], NULL);
    errors += args[t].errors + args[t].common_mismatch;
    if (args[t].errors)
      tap_diag("thread %d: %d errors, last: %s", t, args[t].errors, args[t].last_error);
  }
  for (int c = 0; c < CONC_COMMON; c++)
    for (int t = 1; t < CONC_THREADS; t++)
      if (args[t].common_version[c] != args[0].common_version[c])
        agree = 0;
  static struct version_map m;
  memset(&m, 0, sizeof m);
  a->ops->model_versions(a, "common", vm_cb, &m, &err);
  tap_ok(errors == 0 && agree && m.n == CONC_COMMON,
         "threads on two replicas racing the same digests: %d versions, all told the same",
         m.n);
  a->ops->close(a);
  b->ops->close(b);
}

static void test_restart(const char *dir)
{
  struct aced_error err = {0};
  struct store *s = B->open(dir, "restart.db", &err);
  if (!tap_ok(s != NULL, "open for the restart test"))
    return;
  int created, v;
  put(s, "r", "sha256:r1", NULL, "{}", &created, &v, &err);
  struct store_model_row row;
  s->ops->model_get(s, "r", 0, 0, &row, &err);
  store_model_row_clear(&row);
  pgt_ctl(&pg_cluster, "stop", "immediate");
  usleep(300000); /* the listener notices */
  enum aced_err e = s->ops->model_get(s, "r", 0, 0, &row, &err);
  tap_ok(e == ACED_E_DB_UNAVAILABLE && aced_err_status(e) == 503,
         "database down: model_get answers database_unavailable, not a remembered row (%s)",
         err.message);
  store_model_row_clear(&row);
  e = put(s, "r", "sha256:r2", NULL, "{}", &created, &v, &err);
  tap_ok(e == ACED_E_DB_UNAVAILABLE, "database down: model_put fails with 503 (%s)", err.message);
  e = s->ops->ping(s, &err);
  tap_ok(e == ACED_E_DB_UNAVAILABLE, "database down: ping fails");
  pgt_ctl(&pg_cluster, "restart", "fast");
  e = s->ops->model_get(s, "r", 0, 1, &row, &err);
  tap_ok(e == ACED_OK && row.version == 1, "database back: the same store reads again (%s)",
         e == ACED_OK ? "ok" : err.message);
  store_model_row_clear(&row);
  e = put(s, "r", "sha256:r2", NULL, "{}", &created, &v, &err);
  tap_ok(e == ACED_OK && created == 1 && v == 2, "database back: registration works (v=%d)", v);
  /* A restart while the connections are idle: the first use of each must
   * not fail (the pool notices the closed sockets). */
  pgt_ctl(&pg_cluster, "restart", "fast");
  int fails = 0;
  for (int i = 0; i < 20; i++) {
    if (s->ops->model_get(s, "r", 2, 0, &row, &err) != ACED_OK)
      fails++;
    store_model_row_clear(&row);
  }
  tap_ok(fails == 0, "after a restart between requests: no request fails (%d did)", fails);
  s->ops->close(s);
}
/* A durable job's tasks (PostgreSQL only): replicas x threads claim the
 * tasks of one job at once, each task exactly once; a lease that ran out
 * makes a task claimable again; sums; task_find; single flight of a fit. */
#define TASKS_N 200
#define TASK_THREADS 6
struct task_arg {
  struct store *s;
  char owner[32];
  int got[TASKS_N];
  int n, errors;
};

static void *task_thread(void *p)
{
  struct task_arg *a = p;
  struct aced_error err;
  for (;;) {
    int i = -1, pending = 0;
    if (a->s->ops->task_claim(a->s, "tasksjob", a->owner, 60000, &i, &pending, &err) != ACED_OK) {
      a->errors++;
      break;
    }
    if (i < 0)
      break;
    a->got[a->n++] = i;
    if (a->s->ops->task_done(a->s, "tasksjob", i, a->owner, 2, 1, &err) != ACED_OK)
      a->errors++;
  }
  return NULL;
}

static void test_tasks(const char *dir)
{
  struct aced_error err = {0};
  struct store *a = B->open(dir, "tasks.db", &err);
  struct store *b = a ? B->open(dir, "tasks.db", &err) : NULL;
  if (!tap_ok(a != NULL && b != NULL, "two stores (replicas) for tasks"))
    return;
  if (a->ops->task_plan == NULL) {
    tap_ok(a->ops->task_claim == NULL && a->ops->fit_claim == NULL,
           "SQLite keeps no tasks: every job runs whole here");
    a->ops->close(a);
    b->ops->close(b);
    return;
  }
  tap_ok(a->ops->task_plan(a, "nosuchjob", 4, &err) != ACED_OK,
         "tasks of a job without a row are refused (it runs whole)");
  struct store_job job = {.id = "tasksjob", .kind = "regressors", .model = "m", .request = "{}"};
  enum aced_err e = a->ops->job_insert(a, &job, "ownerA", 60000, "{\"state\":\"running\"}", &err);
  e = e == ACED_OK ? a->ops->task_plan(a, "tasksjob", TASKS_N, &err) : e;
  e = e == ACED_OK ? a->ops->task_plan(a, "tasksjob", TASKS_N, &err) : e;
  tap_ok(e == ACED_OK, "a job's %d tasks recorded (twice: kept as they are)", TASKS_N);
  struct store_job row = {0};
  int found = 0;
  e = b->ops->task_find(b, "ownerB", &row, &found, &err);
  tap_ok(e == ACED_OK && found && strcmp(row.id, "tasksjob") == 0 && row.request != NULL,
         "another replica finds the job to help with");
  free(row.request);
  found = 1;
  e = a->ops->task_find(a, "ownerA", &row, &found, &err);
  tap_ok(e == ACED_OK && !found, "its owner does not");

  static struct task_arg args[TASK_THREADS];
  pthread_t th[TASK_THREADS];
  for (int t = 0; t < TASK_THREADS; t++) {
    memset(&args[t], 0, sizeof args[t]);
    args[t].s = t % 2 ? b : a;
    snprintf(args[t].owner, sizeof args[t].owner, "owner%c", t % 2 ? 'B' : 'A');
    pthread_create(&th[t], NULL, task_thread, &args[t]);
  }
  int seen[TASKS_N] = {0}, errors = 0, twice = 0, by_b = 0;
  for (int t = 0; t < TASK_THREADS; t++) {
    pthread_join(th[t], NULL);
    errors += args[t].errors;
    for (int k = 0; k < args[t].n; k++)
      twice += seen[args[t].got[k]]++ > 0;
    if (t % 2)
      by_b += args[t].n;
  }
  int missing = 0;
  for (int i = 0; i < TASKS_N; i++)
    missing += seen[i] == 0;
  tap_ok(errors == 0 && twice == 0 && missing == 0,
         "%d threads on two replicas claim the %d tasks: each once (%d twice, %d missed, %d errors, "
         "%d by B)", TASK_THREADS, TASKS_N, twice, missing, errors, by_b);
  long units = 0, computed = 0;
  int done = 0, total = 0;
  e = b->ops->task_sum(b, "tasksjob", &units, &computed, &done, &total, &err);
  tap_ok(e == ACED_OK && total == TASKS_N && done == TASKS_N && units == 2 * TASKS_N &&
             computed == TASKS_N,
         "the sums over the task rows (%d of %d done, %ld units, %ld computed)", done, total, units,
         computed);
  found = 1;
  e = b->ops->task_find(b, "ownerB", &row, &found, &err);
  tap_ok(e == ACED_OK && !found, "a job with no free task is not offered for help");

  /* a lease that ran out: the task is claimable again, by anyone */
  struct store_job j2 = {.id = "tasksjob2", .kind = "regressors", .model = "m", .request = "{}"};
  a->ops->job_insert(a, &j2, "ownerA", 60000, "{}", &err);
  a->ops->task_plan(a, "tasksjob2", 2, &err);
  int i1 = -1, i2 = -1, i3 = -1, pending = -1;
  a->ops->task_claim(a, "tasksjob2", "ownerB", 1, &i1, &pending, &err);
  a->ops->task_claim(a, "tasksjob2", "ownerA", 60000, &i2, &pending, &err);
  usleep(20000);
  b->ops->task_claim(b, "tasksjob2", "ownerC", 60000, &i3, &pending, &err);
  tap_ok(i1 == 0 && i2 == 1 && i3 == 0, "a task whose lease ran out is claimed again (%d %d %d)", i1,
         i2, i3);
  i3 = 5;
  b->ops->task_claim(b, "tasksjob2", "ownerC", 60000, &i3, &pending, &err);
  tap_ok(i3 == -1 && pending == 2, "then none is left to claim, 2 pending (%d)", pending);
  e = b->ops->task_release(b, "tasksjob2", 0, "ownerA", &err); /* not A's: kept */
  e = e == ACED_OK ? b->ops->task_release(b, "tasksjob2", 0, "ownerC", &err) : e;
  i3 = -1;
  a->ops->task_claim(a, "tasksjob2", "ownerD", 60000, &i3, &pending, &err);
  tap_ok(e == ACED_OK && i3 == 0, "a task given back by its holder is claimable at once (%d)", i3);
  char *body = NULL;
  int fin = 0;
  a->ops->job_cancel(a, "tasksjob2", &body, &fin, &err);
  free(body);
  b->ops->task_claim(b, "tasksjob2", "ownerC", 60000, &i3, &pending, &err);
  tap_ok(i3 == -1 && pending == 0, "a cancelled job has no task to claim or wait for");

  /* single flight of a fit */
  int m1 = 0, m2 = 1, m3 = 0;
  a->ops->fit_claim(a, "fitkey", "ownerA", 60000, &m1, &err);
  b->ops->fit_claim(b, "fitkey", "ownerB", 60000, &m2, &err);
  a->ops->fit_release(a, "fitkey", "ownerA", &err);
  b->ops->fit_claim(b, "fitkey", "ownerB", 60000, &m3, &err);
  tap_ok(m1 == 1 && m2 == 0 && m3 == 1,
         "a fit is claimed by one replica; the other gets it once released (%d %d %d)", m1, m2, m3);
  m1 = m2 = 0;
  a->ops->fit_claim(a, "fitkey2", "ownerA", 1, &m1, &err);
  usleep(20000);
  b->ops->fit_claim(b, "fitkey2", "ownerB", 60000, &m2, &err);
  tap_ok(m1 == 1 && m2 == 1, "or once its lease ran out");
  a->ops->close(a);
  b->ops->close(b);
}

static void run_all(const char *dir)
{
  test_concurrency(dir);
  test_crash(dir);
  test_tasks(dir);
  if (!B->files) {
    test_replicas(dir);
    test_restart(dir);
  }
}

int main(void)
{
  return run_backends(run_all);
}
