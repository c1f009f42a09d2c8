/*
 * limits.h -- every hard limit of aced in one place.
 *
 * Each value says why it is what it is.  Limits that an operator may want
 * to lower at run time (body size, connections, ...) have a configuration
 * key whose default is taken from here; the value here is then also the
 * largest the configuration accepts, so a typo in aced.conf cannot lift a
 * limit past what the code was written and tested for.
 */
#ifndef ACED_LIMITS_H
#define ACED_LIMITS_H

/* Model names are used in URLs and log lines; this set needs no escaping
 * anywhere and the length keeps log lines readable. */
#define ACED_NAME_MAX 64

/* Feature and output names: printable, at most this long. */
#define ACED_LABEL_MAX 128

/* Free-text model description. */
#define ACED_DESCRIPTION_MAX 4096

/* Network shape.  4096 inputs is the largest model issue #4 asks for; a
 * 4096 x 4096 covariance in float64 is 128 MiB, which is about as much as
 * one registration should be allowed to pin. */
#define ACED_MAX_LAYERS 32
#define ACED_MAX_UNITS 8192     /* units in any one layer (inputs included) */
#define ACED_MAX_INPUTS 4096    /* features */
#define ACED_MAX_OUTPUTS 1024
/* Total weights: 16M doubles = 128 MiB, well above the 1M-parameter models
 * we benchmark and below what would starve the other workers. */
#define ACED_MAX_PARAMS (16L * 1024 * 1024)

/* Data sample: rows x features is bounded so a sample costs at most
 * 256 MiB of doubles; Monte Carlo cost grows linearly with the rows. */
#define ACED_MAX_SAMPLES 100000
#define ACED_MAX_SAMPLE_CELLS (32L * 1024 * 1024)

/* Request bodies.  A 1M-parameter model in JSON is about 20 MB; 256 MiB
 * allows the largest model the shape limits above admit. The configured
 * max_body_bytes (default 64 MiB) must not exceed this. */
#define ACED_BODY_MAX_HARD (256L * 1024 * 1024)
#define ACED_BODY_MAX_DEFAULT 67108864 /* 64 MiB; a plain literal: config.c
                                          turns defaults into text */
/* Query bodies (interventions, attributions, regressor sets): the largest
 * an attributions request can be is ACED_ATTR_ROWS_MAX rows of
 * ACED_MAX_INPUTS numbers, ~100 MB written out in full, but a dashboard
 * sends a handful of rows; 16 MiB is 400 rows of the widest model and
 * keeps a burst of oversized queries from pinning gigabytes of buffers. */
#define ACED_QUERY_BODY_MAX (16L * 1024 * 1024)

/* JSON nesting: a registration body is at most 5 levels deep
 * (root/network/layers/[i]/weights/[j]); anything deeper is hostile. */
#define ACED_JSON_DEPTH_MAX 16

/* Query limits. */
#define ACED_GRID_MIN 2             /* regressor grid points */
#define ACED_GRID_MAX 10000
#define ACED_GRID_DEFAULT 100
#define ACED_ORDER_MAX_HARD 40      /* the authors tried orders 0..39 */
#define ACED_ORDER_MAX_DEFAULT 20
#define ACED_VALUES_MAX 10000       /* values per interventions request */
#define ACED_ATTR_ROWS_MAX 1000     /* input rows per attributions request */
#define ACED_CURVE_POINTS 101       /* points in a regressor's plotted curve */
/* Integrated gradients: Gauss-Legendre with 64 nodes is exact for
 * polynomials of degree 127 along the path, far past what a network's
 * curvature needs for a completeness gap at rounding level; 1024 lets a
 * Riemann rule get there too (its error falls as 1/steps). */
#define ACED_IG_STEPS_DEFAULT 64
#define ACED_IG_STEPS_MAX 1024
#define ACED_MC_DIAG_POINTS 5       /* grid points compared with montecarlo */

/* Job system.  Two workers keep the numerical work on two cores, the
 * machines aced is sized for; a job running an hour is a mistake (a 784-
 * feature regressor set takes five minutes). */
#define ACED_WORKERS_MAX 64
#define ACED_WORKERS_DEFAULT 2
#define ACED_JOB_TIMEOUT_DEFAULT 3600 /* seconds */
/* Prepared models in memory: a prepared 784-input model is ~10 MB, the
 * largest (4096 inputs) ~400 MB; 16 is room for a dashboard's working set. */
#define ACED_MODEL_CACHE_DEFAULT 16
#define ACED_QUEUE_MAX_DEFAULT 1024
#define ACED_JOBS_KEPT 4096         /* finished jobs remembered for GET */
#define ACED_SYNC_WAIT_MS_DEFAULT 10000

/* HTTP.  HTTP threads: no more than the cores (they never block). */
#define ACED_HTTP_THREADS_MAX 64
#define ACED_HTTP_THREADS_DEFAULT 2
#define ACED_URL_MAX 1024
#define ACED_CONN_LIMIT_DEFAULT 1024
#define ACED_CONN_TIMEOUT_DEFAULT 30        /* seconds idle */
/* Per-connection libmicrohttpd pool (headers, read buffer, reply headers).
 * libmicrohttpd clears the used part of it after every request on a
 * keep-alive connection, so a big pool costs time on every request (at
 * 256 KiB it was a tenth of a cached query's CPU); bodies are streamed out
 * of it in chunks, so 32 KiB (libmicrohttpd's own default) is enough. */
#define ACED_CONN_MEMORY_DEFAULT 32768 /* a plain literal, as above */
#define ACED_TOKENS_MAX 1024
/* A request body must arrive at 1 KiB/s on average once connection_timeout
 * has passed since its headers: slower is a "slow POST" attack holding a
 * connection, not a client on any real network (a 64 MiB body at that
 * rate would take 18 hours; let the proxy buffer bodies from slow links). */
#define ACED_BODY_MIN_RATE 1024 /* bytes per second */

/* In-memory regressor summaries (src/svc/regcache.c): a summary is under
 * 1 KiB, so 8192 slots hold every regressor of 20 models of 100 features
 * x 4 outputs in ~8 MiB.  A key probes PROBE slots from its hash and the
 * oldest of them is replaced: a bounded search on every cached query. */
#define ACED_REGCACHE_SLOTS 8192 /* a power of two */
#define ACED_REGCACHE_PROBE 8

/* SQLite (src/store/sqlite.c).  Readers: enough for the HTTP threads and
 * workers that read at the same moment in practice; more would only hold
 * more file descriptors and page caches (a reader beyond these waits for
 * one to be given back). */
#define ACED_DB_READERS 4
/* How long a statement waits for a lock held by another process before
 * giving up with SQLITE_BUSY: long enough for a checkpoint of a large WAL
 * or an operator's short transaction, short enough to answer /readyz. */
#define ACED_DB_BUSY_TIMEOUT_MS 10000
/* After a checkpoint, the WAL is truncated back to this size: one
 * registration of a large model can grow it to hundreds of MB.  A plain
 * literal: it is pasted into a PRAGMA. */
#define ACED_DB_WAL_SIZE_LIMIT 67108864 /* 64 MiB */

#endif
