/*
 * metrics.h -- Prometheus counters and histograms, lock-free (atomics).
 *
 * Requests are counted by route (the route table's pattern, never the raw
 * URL, so the label set stays bounded) and status; latency is one
 * histogram per route.  Gauges that live elsewhere (models registered,
 * queue depth, jobs) are passed in when /metrics is rendered.  The
 * process metrics (process_*: CPU, memory, descriptors, start time) are
 * read from /proc/self at each rendering; aced_build_info names the
 * version.
 */
#ifndef ACED_METRICS_H
#define ACED_METRICS_H

#include <stddef.h>

/* route names: index 0..n-1; index n is used for "unmatched". */
void metrics_init(int n_routes, const char *const *route_names);
void metrics_request(int route, unsigned status, double seconds);
void metrics_cache(int hit);
void metrics_cache_hits(long n); /* n lookups answered from memory at once */
void metrics_quick_answer(void); /* svc_quick_attributions answered */
void metrics_job_finished(const char *state); /* done, failed, cancelled */
/* One statement run against the database (the store backends call it per
 * statement): lets a test and an operator see that warm queries touch no
 * database. */
void metrics_store_statement(void);

struct metrics_gauges {
  long models;          /* registered model names, -1 if unknown */
  long cache_entries;   /* regressors in the cache, -1 if unknown */
  long queue_depth;     /* jobs waiting */
  long jobs_running;
  long workers;
  long workers_busy;
  long models_loaded;   /* prepared models in memory */
};

/* Render everything into a malloc'ed NUL-terminated buffer. */
char *metrics_render(const struct metrics_gauges *g);

#endif
