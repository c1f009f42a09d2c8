/*
 * test_jobs.c -- the worker pool (src/jobs/pool.c) with job kinds defined
 * here, and the services' kinds (src/svc/) run through it on a real SQLite
 * store: single flight (also with names that differ only late), joining a
 * job as it finishes, cancelling a running task, a full queue, kinds that
 * fail in plan and in a task, and the engine's stop check.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aced/clock.h"
#include "aced/config.h"
#include "aced/engine.h"
#include "aced/jobs.h"
#include "aced/model.h"
#include "aced/store.h"
#include "aced/svc.h"
#include "tap.h"

/* ---- test kinds ---- */

static atomic_int n_plans;

/* "sum": params {"n": tasks, "sleep_ms": per task, "fail_plan": bool,
 * "fail_task": index or -1, "spin": bool (tasks run until cancelled)} */
struct sum_work {
  struct job *job;
  int n, sleep_ms, fail_task, spin;
  atomic_long total;
};

static void *sum_plan(void *ctx, struct job *job, const struct job_request *req, int *n_tasks,
                      long *units, struct aced_error *err)
{
  (void)ctx;
  atomic_fetch_add(&n_plans, 1);
  const json_t *p = req->params;
  if (json_is_true(json_object_get(p, "fail_plan"))) {
    aced_error_set(err, ACED_E_INVALID, "n", "plan refuses");
    return NULL;
  }
  struct sum_work *w = calloc(1, sizeof *w);
  w->job = job;
  w->n = (int)json_integer_value(json_object_get(p, "n"));
  w->sleep_ms = (int)json_integer_value(json_object_get(p, "sleep_ms"));
  json_t *ft = json_object_get(p, "fail_task");
  w->fail_task = ft ? (int)json_integer_value(ft) : -1;
  w->spin = json_is_true(json_object_get(p, "spin"));
  *n_tasks = w->n;
  *units = w->n;
  return w;
}

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static long sum_task(void *work, int i, struct aced_error *err)
{
  struct sum_work *w = work;
  if (i == w->fail_task) {
    aced_error_set(err, ACED_E_INVALID, "task", "task %d refuses", i);
    return -1;
  }
  if (w->spin) {
    /* a long task that polls its job, as the engine does between grid
     * points; gives up by itself after 20 s */
    for (int k = 0; k < 20000; k++) {
      if (job_cancelled(w->job)) {
        aced_error_set(err, ACED_E_UNAVAILABLE, "", "stopped");
        return -1;
      }
      sleep_ms(1);
    }
  }
  if (w->sleep_ms > 0)
    sleep_ms(w->sleep_ms);
  atomic_fetch_add(&w->total, i + 1);
  return 1;
}

static json_t *sum_finish(void *work, struct aced_error *err)
{
  (void)err;
  struct sum_work *w = work;
  return json_pack("{s:I}", "sum", (json_int_t)atomic_load(&w->total));
}

static void sum_free(void *work)
{
  free(work);
}

static const struct job_ops kind_sum = {"sum", sum_plan, sum_task, sum_finish, sum_free, 0};

/* ---- waiting ---- */

struct waitbox {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  int called, timed_out;
  enum job_state state;
  json_t *result; /* a copy */
  struct aced_error err;
};

static void waitbox_init(struct waitbox *b)
{
  memset(b, 0, sizeof *b);
  pthread_mutex_init(&b->lock, NULL);
  pthread_cond_init(&b->cv, NULL);
}

static void on_done(void *cls, struct job *j, int timed_out)
{
  struct waitbox *b = cls;
  pthread_mutex_lock(&b->lock);
  b->called++;
  b->timed_out = timed_out;
  b->state = job_state(j);
  b->result = job_result(j) ? json_deep_copy(job_result(j)) : NULL;
  job_error(j, &b->err);
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->lock);
}

static void waitbox_wait(struct waitbox *b)
{
  pthread_mutex_lock(&b->lock);
  while (!b->called)
    pthread_cond_wait(&b->cv, &b->lock);
  pthread_mutex_unlock(&b->lock);
}

static struct job_request sum_request(const char *model, json_t *params)
{
  struct job_request r;
  memset(&r, 0, sizeof r);
  r.ops = &kind_sum;
  snprintf(r.model, sizeof r.model, "%s", model);
  snprintf(r.digest, sizeof r.digest, "sha256:test");
  r.params = params;
  return r;
}

static enum aced_err submit_wait(struct jobs *js, struct job_request *r, struct waitbox *b,
                                 int *shared)
{
  struct job_wait w = {on_done, b, aced_now_us() + 30 * 1000000LL};
  struct job *j = NULL;
  struct aced_error err;
  enum aced_err rc = jobs_submit(js, r, &w, &j, shared, &err);
  if (rc == ACED_OK)
    job_unref(j);
  return rc;
}

/* ---- single flight from many threads ---- */

struct flight_arg {
  struct jobs *js;
  const char *model;
  json_t *params;
  struct waitbox box;
  int shared;
};

static void *flight_thread(void *p)
{
  struct flight_arg *a = p;
  struct job_request r = sum_request(a->model, a->params);
  r.single_flight = 1;
  submit_wait(a->js, &r, &a->box, &a->shared);
  waitbox_wait(&a->box);
  return NULL;
}

static void test_single_flight(struct jobs *js)
{
  enum { N = 8 };
  struct flight_arg a[N];
  pthread_t t[N];
  /* the same request from 8 threads while it runs: one job */
  atomic_store(&n_plans, 0);
  json_t *params = json_pack("{s:i,s:i}", "n", 4, "sleep_ms", 100);
  for (int i = 0; i < N; i++) {
    a[i] = (struct flight_arg){.js = js, .model = "m", .params = params};
    waitbox_init(&a[i].box);
    pthread_create(&t[i], NULL, flight_thread, &a[i]);
  }
  int shared = 0, ok = 1;
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    shared += a[i].shared;
    ok &= a[i].box.state == JOB_DONE && a[i].box.result &&
          json_integer_value(json_object_get(a[i].box.result, "sum")) == 10;
    json_decref(a[i].box.result);
  }
  tap_ok(ok, "8 identical concurrent requests all get sum 1+2+3+4 = 10");
  tap_ok(atomic_load(&n_plans) == 1 && shared == N - 1,
         "they share one job (plans %d, joined %d)", atomic_load(&n_plans), shared);
  json_decref(params);

  /* names that differ only after character 60 (names may be 128): one job
   * each, and each its own answer */
  char n1[130], n2[130];
  memset(n1, 'o', 100);
  memcpy(n2, n1, 100);
  strcpy(n1 + 100, "_first");
  strcpy(n2 + 100, "_second");
  atomic_store(&n_plans, 0);
  for (int i = 0; i < N; i++) {
    json_t *p = json_pack("{s:i,s:i,s:s}", "n", i % 2 ? 3 : 5, "sleep_ms", 100, "output",
                          i % 2 ? n1 : n2);
    a[i] = (struct flight_arg){.js = js, .model = "m", .params = p};
    waitbox_init(&a[i].box);
    pthread_create(&t[i], NULL, flight_thread, &a[i]);
  }
  ok = 1;
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    long want = i % 2 ? 6 : 15;
    ok &= a[i].box.state == JOB_DONE &&
          json_integer_value(json_object_get(a[i].box.result, "sum")) == want;
    json_decref(a[i].box.result);
    json_decref(a[i].params);
  }
  tap_ok(ok, "requests differing only after character 100 of a name get their own answers");
  tap_ok(atomic_load(&n_plans) == 2, "two jobs for the two names (%d)", atomic_load(&n_plans));

  struct job_request r1 = sum_request("m", NULL), r2 = r1;
  char k1[JOB_FLIGHT_KEY_MAX], k2[JOB_FLIGHT_KEY_MAX];
  r1.params = json_pack("{s:s}", "output", n1);
  r2.params = json_pack("{s:s}", "output", n2);
  tap_ok(jobs_flight_key(&r1, k1) == 0 && jobs_flight_key(&r2, k2) == 0 && strcmp(k1, k2) != 0,
         "flight keys of the two differ");
  json_decref(r1.params);
  json_decref(r2.params);
}

/* ---- joining a job just as it finishes ---- */

static void *join_thread(void *p)
{
  struct flight_arg *a = p;
  for (int k = 0; k < 300; k++) {
    struct job_request r = sum_request(a->model, a->params);
    r.single_flight = 1;
    waitbox_init(&a->box);
    if (submit_wait(a->js, &r, &a->box, &a->shared) != ACED_OK)
      continue;
    waitbox_wait(&a->box);
    if (a->box.state != JOB_DONE || a->box.result == NULL) {
      a->box.called = -1; /* remember the failure */
      return NULL;
    }
    json_decref(a->box.result);
  }
  a->box.called = 1;
  return NULL;
}

static void test_join_race(struct jobs *js)
{
  /* A request that joins a job must get its result even when the job
   * finishes between the joining and the waiting: synchronous results are
   * dropped once their waiters have them (issue #9's 500s). */
  enum { N = 4 };
  struct flight_arg a[N];
  pthread_t t[N];
  json_t *params = json_pack("{s:i,s:i}", "n", 1, "sleep_ms", 0);
  for (int i = 0; i < N; i++) {
    a[i] = (struct flight_arg){.js = js, .model = "race", .params = params};
    pthread_create(&t[i], NULL, join_thread, &a[i]);
  }
  int ok = 1;
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    ok &= a[i].box.called == 1;
  }
  tap_ok(ok, "1200 joins of quickly finishing jobs from 4 threads: every waiter got a result");
  json_decref(params);
}

/* ---- cancel, queue full, failures ---- */

static void test_cancel_running(struct jobs *js)
{
  json_t *params = json_pack("{s:i,s:b}", "n", 2, "spin", 1);
  struct job_request r = sum_request("spinner", params);
  struct waitbox b;
  waitbox_init(&b);
  struct job_wait w = {on_done, &b, aced_now_us() + 60 * 1000000LL};
  struct job *j = NULL;
  int shared;
  struct aced_error err;
  tap_ok(jobs_submit(js, &r, &w, &j, &shared, &err) == ACED_OK, "a long job is submitted");
  for (int k = 0; k < 2000 && job_state(j) != JOB_RUNNING; k++)
    sleep_ms(1);
  sleep_ms(50); /* its tasks are inside their loops */
  int64_t t0 = aced_now_us();
  tap_ok(jobs_cancel(js, j) == 0, "cancel while its tasks run");
  waitbox_wait(&b);
  double ms = (aced_now_us() - t0) / 1e3;
  tap_ok(b.state == JOB_CANCELLED, "the job ends cancelled (%s)", job_state_name(b.state));
  tap_ok(ms < 2000, "its running tasks stopped at their next poll: %.0f ms, not 20 s", ms);
  tap_ok(jobs_cancel(js, j) == -1, "cancelling a finished job says so");
  job_unref(j);
  json_decref(params);
}

static void test_queue_full(void)
{
  struct jobs *js = jobs_create(NULL, 1, 2, 60);
  json_t *spin = json_pack("{s:i,s:b}", "n", 1, "spin", 1);
  json_t *quick = json_pack("{s:i}", "n", 1);
  struct job_request r = sum_request("q", spin);
  struct job *running = NULL, *j = NULL;
  int shared;
  struct aced_error err;
  jobs_submit(js, &r, NULL, &running, &shared, &err);
  for (int k = 0; k < 2000 && job_state(running) != JOB_RUNNING; k++)
    sleep_ms(1);
  r.params = quick;
  int ok = 1;
  for (int i = 0; i < 2; i++) {
    ok &= jobs_submit(js, &r, NULL, &j, &shared, &err) == ACED_OK;
    job_unref(j);
  }
  tap_ok(ok, "two jobs queue behind a running one (queue_max 2)");
  enum aced_err rc = jobs_submit(js, &r, NULL, &j, &shared, &err);
  tap_ok(rc == ACED_E_QUEUE_FULL && j == NULL, "a third is refused: queue full (%s)",
         aced_err_code(rc));
  struct jobs_stats st;
  jobs_stats(js, &st);
  tap_ok(st.queued == 2 && st.running == 1, "stats: 2 queued, 1 running (%ld, %ld)", st.queued,
         st.running);
  int64_t t0 = aced_now_us();
  jobs_shutdown(js);
  tap_ok(aced_now_us() - t0 < 5000000, "shutdown stops the running task and fails the rest");
  tap_ok(job_state(running) == JOB_FAILED, "the running job failed at shutdown (%s)",
         job_state_name(job_state(running)));
  job_unref(running);
  jobs_free(js);
  json_decref(spin);
  json_decref(quick);
}

static void test_failures(struct jobs *js)
{
  struct waitbox b;
  int shared;
  json_t *p = json_pack("{s:i,s:b}", "n", 3, "fail_plan", 1);
  struct job_request r = sum_request("f", p);
  waitbox_init(&b);
  submit_wait(js, &r, &b, &shared);
  waitbox_wait(&b);
  tap_ok(b.state == JOB_FAILED && b.err.code == ACED_E_INVALID && strcmp(b.err.field, "n") == 0,
         "a kind failing in plan: job failed with its error (%s, field %s)",
         aced_err_code(b.err.code), b.err.field);
  json_decref(p);

  p = json_pack("{s:i,s:i,s:i}", "n", 6, "fail_task", 2, "sleep_ms", 20);
  r = sum_request("f", p);
  waitbox_init(&b);
  submit_wait(js, &r, &b, &shared);
  waitbox_wait(&b);
  tap_ok(b.state == JOB_FAILED && strcmp(b.err.field, "task") == 0 && b.result == NULL,
         "a kind failing in a task: job failed with the task's error (%s)", b.err.message);
  json_decref(p);

  p = json_pack("{s:i}", "n", 0);
  r = sum_request("f", p);
  waitbox_init(&b);
  submit_wait(js, &r, &b, &shared);
  waitbox_wait(&b);
  tap_ok(b.state == JOB_DONE && json_integer_value(json_object_get(b.result, "sum")) == 0,
         "a kind with no tasks finishes after its plan");
  json_decref(b.result);
  json_decref(p);
}

/* ---- the engine's stop check ---- */

static int stop_after(void *cls)
{
  return --*(int *)cls < 0;
}

static void test_engine_stop(void)
{
  /* 3 inputs, 2 layers, 2000 samples: montecarlo checks between chunks */
  enum { K = 3, NS = 5000 };
  struct eng_layer ly[2];
  double W1[8 * K], b1[8], W2[2 * 8], b2[2];
  for (int i = 0; i < 8 * K; i++)
    W1[i] = sin(i + 1.0);
  for (int i = 0; i < 8; i++)
    b1[i] = 0.1 * i;
  for (int i = 0; i < 16; i++)
    W2[i] = cos(i + 2.0);
  b2[0] = b2[1] = 0;
  ly[0] = (struct eng_layer){.n_in = K, .n_out = 8, .W = W1, .b = b1, .act = ENG_ACT_TANH};
  ly[1] = (struct eng_layer){.n_in = 8, .n_out = 2, .W = W2, .b = b2, .act = ENG_ACT_IDENTITY};
  struct eng_net net = {.n_layers = 2, .layers = ly};
  double *x = malloc(sizeof(double) * NS * K), mean[K] = {0}, cov[K * K] = {0};
  for (int s = 0; s < NS; s++)
    for (int i = 0; i < K; i++)
      x[s * K + i] = sin(7.0 * s + 3.0 * i);
  for (int i = 0; i < K; i++)
    cov[i * K + i] = 1;
  struct eng_model_input in = {.net = &net, .k = K, .mean = mean, .cov = cov,
                               .n_samples = NS, .samples = x};
  struct eng_model *em = NULL;
  char ebuf[128];
  tap_ok(eng_model_prepare(&in, &em, ebuf, sizeof ebuf) == 0, "engine model prepared");
  double alpha[50], E[100], se[100];
  for (int a = 0; a < 50; a++)
    alpha[a] = a / 50.0;
  int budget = 0;
  eng_set_stop(stop_after, &budget);
  tap_ok(eng_montecarlo(em, 0, alpha, 50, E, se) == ENG_STOPPED, "montecarlo stops when told");
  budget = 0;
  tap_ok(eng_taylor(em, 0, alpha, 50, E, NULL) == ENG_STOPPED, "taylor stops when told");
  budget = 0;
  tap_ok(eng_finite_difference(em, 0, alpha, 50, 1e-4, E) == ENG_STOPPED,
         "finite_difference stops when told");
  eng_set_stop(NULL, NULL);
  tap_ok(eng_montecarlo(em, 0, alpha, 50, E, se) == 0, "without a stop check it runs through");
  eng_model_free(em);
  free(x);
}

/* ---- the services' kinds on a real store ---- */

static void test_svc_kinds(const char *dir)
{
  char path[512], mpath[512];
  snprintf(path, sizeof path, "%s/test_jobs.%d.db", dir, (int)getpid());
  unlink(path);
  struct aced_error err;
  struct store *st = store_open(path, &err);
  tap_ok(st != NULL, "store opened at %s", path);
  if (st == NULL)
    return;
  struct aced_config cfg;
  config_defaults(&cfg);
  struct svc svc = {.store = st, .cfg = &cfg};
  struct jobs *js = jobs_create(&svc, 2, 16, 60);
  const char *src = getenv("ACED_SRCDIR");
  snprintf(mpath, sizeof mpath, "%s/tests/data/models/good_tiny_linear.json", src ? src : ".");
  json_t *body = json_load_file(mpath, 0, NULL);
  tap_ok(body != NULL, "loaded %s", mpath);

  struct job_request r;
  memset(&r, 0, sizeof r);
  r.ops = svc_kind_find("register");
  snprintf(r.model, sizeof r.model, "tiny_linear");
  r.params = body;
  struct waitbox b;
  int shared;
  waitbox_init(&b);
  submit_wait(js, &r, &b, &shared);
  waitbox_wait(&b);
  tap_ok(b.state == JOB_DONE && json_is_true(json_object_get(b.result, "created")) &&
             json_integer_value(json_object_get(b.result, "version")) == 1,
         "register kind: created version 1");
  json_decref(b.result);

  /* interventions: a linear-in-a... model; compare with the engine */
  memset(&r, 0, sizeof r);
  r.ops = &svc_kind_interventions;
  snprintf(r.model, sizeof r.model, "tiny_linear");
  r.params = json_pack("{s:s,s:s,s:[f,f],s:s}", "output", "y", "feature", "a", "values", 0.25,
                       0.75, "estimator", "montecarlo");
  waitbox_init(&b);
  submit_wait(js, &r, &b, &shared);
  waitbox_wait(&b);
  /* montecarlo by hand: mean over the 4 samples with a set */
  static const double S[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, -1}};
  int ok = b.state == JOB_DONE;
  for (int v = 0; v < 2 && ok; v++) {
    double a = v ? 0.75 : 0.25, sum = 0;
    for (int s = 0; s < 4; s++) {
      double bb = S[s][1];
      sum += tanh(a + 0.5 * bb) + tanh(-2 * bb + 0.25);
    }
    double got = json_real_value(json_array_get(json_object_get(b.result, "expectations"), v));
    ok &= fabs(got - sum / 4) < 1e-12;
  }
  tap_ok(ok, "interventions kind: montecarlo equals the mean computed here");
  json_decref(b.result);
  json_decref(r.params);

  r.params = json_pack("{s:s,s:s,s:[f]}", "output", "nope", "feature", "a", "values", 0.5);
  waitbox_init(&b);
  submit_wait(js, &r, &b, &shared);
  waitbox_wait(&b);
  tap_ok(b.state == JOB_FAILED && b.err.code == ACED_E_UNKNOWN_OUTPUT &&
             strcmp(b.err.field, "output") == 0,
         "interventions kind: an unknown output fails naming the field");
  json_decref(r.params);

  /* regressors: every (output, feature) fitted, then all cached */
  memset(&r, 0, sizeof r);
  r.ops = svc_kind_find("regressors");
  snprintf(r.model, sizeof r.model, "tiny_linear");
  r.params = json_pack("{s:i}", "num", 20);
  for (int round = 0; round < 2; round++) {
    waitbox_init(&b);
    submit_wait(js, &r, &b, &shared);
    waitbox_wait(&b);
    json_int_t computed = json_integer_value(json_object_get(b.result, "computed"));
    json_int_t cached = json_integer_value(json_object_get(b.result, "cached"));
    tap_ok(b.state == JOB_DONE && computed == (round ? 0 : 2) && cached == (round ? 2 : 0),
           "regressors kind, round %d: computed %d, cached %d", round + 1, (int)computed,
           (int)cached);
    json_decref(b.result);
  }
  json_decref(r.params);
  tap_ok(svc_kind_find("no_such_kind") == NULL && svc_kind_find("attributions") ==
                                                       &svc_kind_attributions,
         "the kind table finds kinds by name");
  jobs_shutdown(js);
  jobs_free(js);
  svc_clear();
  st->ops->close(st);
  json_decref(body);
  unlink(path);
}

int main(void)
{
  eng_init();
  struct jobs *js = jobs_create(NULL, 2, 64, 60);
  test_single_flight(js);
  test_join_race(js);
  test_cancel_running(js);
  test_failures(js);
  jobs_shutdown(js);
  jobs_free(js);
  test_queue_full();
  test_engine_stop();
  const char *tmp = getenv("TMPDIR");
  test_svc_kinds(tmp && tmp[0] ? tmp : "/tmp");
  return tap_done();
}
