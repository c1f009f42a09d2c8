/*
 * metrics.c -- see metrics.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include "aced/metrics.h"

#define MAX_ROUTES 32
static const unsigned statuses[] = {200, 201, 202, 204, 400, 401, 403, 404,
                                    405, 409, 413, 415, 422, 429, 500, 503};
#define N_STATUS (sizeof statuses / sizeof statuses[0])
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                 5,      10,    30};
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])

static int n_routes;
static const char *const *names;

/* The per-request counters are kept in shards, one per thread (threads
 * beyond SHARDS share): two HTTP threads adding to the same counters at
 * tens of thousands of requests a second spend more time passing the
 * cache lines back and forth than counting.  /metrics adds the shards up. */
#define SHARDS 8
struct shard {
  /* [route][status], plus one column for statuses not in the list */
  atomic_ulong requests[MAX_ROUTES + 1][N_STATUS + 1];
  atomic_ulong hist[MAX_ROUTES + 1][N_BUCKETS + 1];
  atomic_ulong hist_sum_us[MAX_ROUTES + 1];
  atomic_ulong cache_hits, cache_misses;
  atomic_ulong quick_answers;
  atomic_ulong store_statements;
} __attribute__((aligned(64)));
static struct shard shards[SHARDS];
static atomic_uint next_shard;
static _Thread_local struct shard *my_shard;

static struct shard *shard(void)
{
  if (my_shard == NULL)
    my_shard = &shards[atomic_fetch_add(&next_shard, 1) % SHARDS];
  return my_shard;
}

/* Sum of one counter over the shards, named by its place in shard 0. */
static unsigned long total(atomic_ulong *in_first)
{
  size_t off = (size_t)((char *)in_first - (char *)&shards[0]);
  unsigned long v = 0;
  for (int i = 0; i < SHARDS; i++)
    v += atomic_load((atomic_ulong *)((char *)&shards[i] + off));
  return v;
}
#define TOTAL(field) total(&shards[0].field)

static atomic_ulong jobs_done, jobs_failed, jobs_cancelled;
static double process_start_time(void);
static double start_time = -1; /* set by metrics_init */

void metrics_init(int n, const char *const *route_names)
{
  n_routes = n < MAX_ROUTES ? n : MAX_ROUTES;
  names = route_names;
  start_time = process_start_time();
}

void metrics_request(int route, unsigned status, double seconds)
{
  if (route < 0 || route > n_routes)
    route = n_routes;
  size_t s = 0;
  while (s < N_STATUS && statuses[s] != status)
    s++;
  size_t b = 0;
  while (b < N_BUCKETS && seconds > buckets[b])
    b++;
  struct shard *sh = shard();
  atomic_fetch_add_explicit(&sh->requests[route][s], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&sh->hist[route][b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&sh->hist_sum_us[route], (unsigned long)(seconds * 1e6),
                            memory_order_relaxed);
}

void metrics_cache(int hit)
{
  struct shard *sh = shard();
  atomic_fetch_add_explicit(hit ? &sh->cache_hits : &sh->cache_misses, 1,
                            memory_order_relaxed);
}

void metrics_cache_hits(long n)
{
  atomic_fetch_add_explicit(&shard()->cache_hits, (unsigned long)n, memory_order_relaxed);
}

void metrics_quick_answer(void)
{
  atomic_fetch_add_explicit(&shard()->quick_answers, 1, memory_order_relaxed);
}

void metrics_store_statement(void)
{
  atomic_fetch_add_explicit(&shard()->store_statements, 1, memory_order_relaxed);
}

void metrics_job_finished(const char *state)
{
  if (strcmp(state, "done") == 0)
    atomic_fetch_add(&jobs_done, 1);
  else if (strcmp(state, "failed") == 0)
    atomic_fetch_add(&jobs_failed, 1);
  else
    atomic_fetch_add(&jobs_cancelled, 1);
}

struct buf {
  char *p;
  size_t n, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
  if (b->p == NULL)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k < 0)
      return;
    if ((size_t)k < b->cap - b->n) {
      b->n += (size_t)k;
      return;
    }
    char *q = realloc(b->p, b->cap * 2 + (size_t)k);
    if (q == NULL) {
      free(b->p);
      b->p = NULL;
      return;
    }
    b->p = q;
    b->cap = b->cap * 2 + (size_t)k;
  }
}

/* ---- process metrics ----
 * The names and meanings of the Prometheus client libraries' process
 * collector, so that the usual dashboards and alerts work unchanged.
 * Read from /proc/self at each scrape (a scrape is rare: every 15 s or
 * so), except the start time, which never changes. */

/* Seconds since the epoch at which the process started: the boot time
 * (/proc/stat btime) plus field 22 of /proc/self/stat (clock ticks after
 * boot).  -1 when /proc cannot tell. */
static double process_start_time(void)
{
  double btime = -1, ticks = -1;
  char line[256];
  FILE *f = fopen("/proc/stat", "r");
  if (f != NULL) {
    while (fgets(line, sizeof line, f) != NULL)
      if (strncmp(line, "btime ", 6) == 0)
        btime = strtod(line + 6, NULL);
    fclose(f);
  }
  char stat[1024];
  f = fopen("/proc/self/stat", "r");
  if (f != NULL) {
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    stat[n] = '\0';
    fclose(f);
    /* the command name (field 2) may hold blanks: count from its ')' */
    char *p = strrchr(stat, ')');
    for (int field = 2; p != NULL && field < 22; field++)
      p = strchr(p + 1, ' ');
    if (p != NULL)
      ticks = strtod(p + 1, NULL);
  }
  long hz = sysconf(_SC_CLK_TCK);
  if (btime < 0 || ticks < 0 || hz <= 0)
    return -1;
  return btime + ticks / (double)hz;
}

static long count_open_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -1;
  long n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* not the descriptor opendir itself holds */
}


static void render_process(struct buf *b)
{
  struct rusage ru;
  double cpu = -1;
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
          (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  long vsize_pages = -1, rss_pages = -1;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &vsize_pages, &rss_pages) != 2)
      vsize_pages = rss_pages = -1;
    fclose(f);
  }
  long page = sysconf(_SC_PAGESIZE);
  struct rlimit rl;
  double max_fds = -1;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
  long fds = count_open_fds();
  /* what /proc cannot tell is left out rather than reported as 0 */
  if (cpu >= 0)
    put(b, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
           "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.6f\n", cpu);
  if (rss_pages >= 0 && page > 0)
    put(b, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
           "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %.0f\n"
           "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
           "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %.0f\n",
        (double)rss_pages * page, (double)vsize_pages * page);
  if (fds >= 0)
    put(b, "# HELP process_open_fds Number of open file descriptors.\n"
           "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n", fds);
  if (max_fds >= 0)
    put(b, "# HELP process_max_fds Maximum number of open file descriptors.\n"
           "# TYPE process_max_fds gauge\nprocess_max_fds %.0f\n", max_fds);
  if (start_time >= 0)
    put(b, "# HELP process_start_time_seconds Start time of the process since unix epoch in "
           "seconds.\n"
           "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
        start_time);
  put(b, "# HELP aced_build_info The aced version running; always 1.\n"
         "# TYPE aced_build_info gauge\naced_build_info{version=\"%s\"} 1\n",
      PACKAGE_VERSION);
}

static const char *route_name(int r) { return r < n_routes ? names[r] : "unmatched"; }

char *metrics_render(const struct metrics_gauges *g)
{
  struct buf b = {malloc(8192), 0, 8192};
  put(&b, "# HELP aced_http_requests_total HTTP requests by route and status.\n"
          "# TYPE aced_http_requests_total counter\n");
  for (int r = 0; r <= n_routes; r++)
    for (size_t s = 0; s <= N_STATUS; s++) {
      unsigned long v = TOTAL(requests[r][s]);
      if (v == 0)
        continue;
      if (s < N_STATUS)
        put(&b, "aced_http_requests_total{route=\"%s\",status=\"%u\"} %lu\n",
            route_name(r), statuses[s], v);
      else
        put(&b, "aced_http_requests_total{route=\"%s\",status=\"other\"} %lu\n",
            route_name(r), v);
    }
  put(&b, "# HELP aced_http_request_duration_seconds Time from request start to response sent.\n"
          "# TYPE aced_http_request_duration_seconds histogram\n");
  for (int r = 0; r <= n_routes; r++) {
    unsigned long cum = 0;
    for (size_t i = 0; i <= N_BUCKETS; i++)
      cum += TOTAL(hist[r][i]);
    if (cum == 0)
      continue;
    cum = 0;
    for (size_t i = 0; i < N_BUCKETS; i++) {
      cum += TOTAL(hist[r][i]);
      put(&b, "aced_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %lu\n",
          route_name(r), buckets[i], cum);
    }
    cum += TOTAL(hist[r][N_BUCKETS]);
    put(&b, "aced_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lu\n",
        route_name(r), cum);
    put(&b, "aced_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
        route_name(r), TOTAL(hist_sum_us[r]) / 1e6);
    put(&b, "aced_http_request_duration_seconds_count{route=\"%s\"} %lu\n",
        route_name(r), cum);
  }
  put(&b, "# HELP aced_models_registered Model names in the registry.\n"
          "# TYPE aced_models_registered gauge\naced_models_registered %ld\n",
      g->models);
  put(&b, "# HELP aced_cache_entries Regressors in the cache.\n"
          "# TYPE aced_cache_entries gauge\naced_cache_entries %ld\n",
      g->cache_entries);
  put(&b, "# HELP aced_cache_requests_total Regressor cache lookups by result.\n"
          "# TYPE aced_cache_requests_total counter\n"
          "aced_cache_requests_total{result=\"hit\"} %lu\n"
          "aced_cache_requests_total{result=\"miss\"} %lu\n",
      TOTAL(cache_hits), TOTAL(cache_misses));
  put(&b, "# HELP aced_quick_answers_total Cached attributions answered from the body's bytes "
          "(a query repeated with other rows, quick_queries).\n"
          "# TYPE aced_quick_answers_total counter\naced_quick_answers_total %lu\n",
      TOTAL(quick_answers));
  put(&b, "# HELP aced_store_statements_total Statements run against the database; a query "
          "answered from memory (a warm cached query) runs none.\n"
          "# TYPE aced_store_statements_total counter\naced_store_statements_total %lu\n",
      TOTAL(store_statements));
  put(&b, "# HELP aced_queue_depth Jobs waiting for a worker.\n"
          "# TYPE aced_queue_depth gauge\naced_queue_depth %ld\n",
      g->queue_depth);
  put(&b, "# HELP aced_jobs_running Jobs being worked on.\n"
          "# TYPE aced_jobs_running gauge\naced_jobs_running %ld\n",
      g->jobs_running);
  put(&b, "# HELP aced_jobs_finished_total Jobs finished by final state.\n"
          "# TYPE aced_jobs_finished_total counter\n"
          "aced_jobs_finished_total{state=\"done\"} %lu\n"
          "aced_jobs_finished_total{state=\"failed\"} %lu\n"
          "aced_jobs_finished_total{state=\"cancelled\"} %lu\n",
      atomic_load(&jobs_done), atomic_load(&jobs_failed),
      atomic_load(&jobs_cancelled));
  put(&b, "# HELP aced_workers Worker threads.\n# TYPE aced_workers gauge\n"
          "aced_workers %ld\n"
          "# HELP aced_workers_busy Worker threads computing.\n"
          "# TYPE aced_workers_busy gauge\naced_workers_busy %ld\n",
      g->workers, g->workers_busy);
  put(&b, "# HELP aced_models_loaded Prepared models held in memory.\n"
          "# TYPE aced_models_loaded gauge\naced_models_loaded %ld\n",
      g->models_loaded);
  render_process(&b);
  return b.p;
}
