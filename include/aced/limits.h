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
#define ACED_BODY_MAX_DEFAULT (64L * 1024 * 1024)
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
#define ACED_MC_DIAG_POINTS 5       /* grid points compared with montecarlo */

/* Job system. */
#define ACED_WORKERS_MAX 64
#define ACED_QUEUE_MAX_DEFAULT 1024
#define ACED_JOBS_KEPT 4096         /* finished jobs remembered for GET */
#define ACED_SYNC_WAIT_MS_DEFAULT 10000

/* HTTP. */
#define ACED_URL_MAX 1024
#define ACED_CONN_LIMIT_DEFAULT 1024
#define ACED_CONN_TIMEOUT_DEFAULT 30        /* seconds idle */
/* Per-connection libmicrohttpd pool (headers, read buffer, reply headers).
 * libmicrohttpd clears the used part of it after every request on a
 * keep-alive connection, so a big pool costs time on every request (at
 * 256 KiB it was a tenth of a cached query's CPU); bodies are streamed out
 * of it in chunks, so 32 KiB (libmicrohttpd's own default) is enough. */
#define ACED_CONN_MEMORY_DEFAULT (32 * 1024)
#define ACED_TOKENS_MAX 1024
/* A request body must arrive at 1 KiB/s on average once connection_timeout
 * has passed since its headers: slower is a "slow POST" attack holding a
 * connection, not a client on any real network (a 64 MiB body at that
 * rate would take 18 hours; let the proxy buffer bodies from slow links). */
#define ACED_BODY_MIN_RATE 1024 /* bytes per second */

#endif
