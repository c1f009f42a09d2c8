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
/* Recurrent networks: the sequence length T.  The flattened inputs
 * (T x input_size) are bounded by ACED_MAX_INPUTS as any model's features;
 * 4096 steps is a one-feature sequence at that bound. */
#define ACED_MAX_SEQUENCE 4096
/* output_at every: the head's outputs at every step, T x outputs, each a
 * regressor fitted and cached by every (feature, timestep) grid; 4096 keeps
 * one grid's fits and cache writes to what a model at ACED_MAX_OUTPUTS
 * costs a few times over. */
#define ACED_MAX_STEP_OUTPUTS 4096
/* The time lag (Proposition 3) is a mean over at most this many stored
 * sequences, one forward and one backward pass per output each, when the
 * model is prepared: 256 keeps it a fraction of a second for the LSTM of
 * the benchmark (T 50, hidden 64) while the mean of tau_x is already
 * settled to a few hundredths of a step. */
#define ACED_LAG_SEQUENCES 256
/* Its reverse pass keeps every cell's pre-activations of one sequence
 * (T x layers x (2 gates*hidden + 2 hidden + input) doubles).  Above 16 Mi
 * doubles (128 MiB, a T = 4096 LSTM of hidden 400) the lag is not
 * computed: the metadata has none and jobs cover every timestep. */
#define ACED_LAG_TAPE_MAX (16L * 1024 * 1024)
/* The explanations' reverse passes through a recurrent network tape this
 * many doubles per batch of rows (2 Mi doubles, 16 MiB: a few hundred
 * sequences of the benchmark's LSTM per GEMM, and two concurrent tasks
 * stay far below the workers' budget); one sequence whose tape exceeds
 * ACED_LAG_TAPE_MAX is refused. */
#define ACED_GRAD_TAPE_DOUBLES (2L * 1024 * 1024)
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

/* The quick reader of query bodies (src/base/jsonr.c) hands a body to
 * jansson instead when it is longer than ACED_JSONR_BYTES_MAX (a query a
 * dashboard sends is under 4 KiB; past 64 KiB the parse is no longer the
 * request's main cost, and a body the reader gives up on late would be
 * read twice), nested deeper than ACED_JSONR_DEPTH_MAX (query bodies are
 * 4 levels deep: sequences of rows of steps), or holds a number longer
 * than ACED_JSONR_NUMBER_MAX characters (a double needs at most 24;
 * longer ones are left to jansson's own conversion).  None of these is a
 * limit a client sees: past them jansson parses as before. */
#define ACED_JSONR_BYTES_MAX 65536
#define ACED_JSONR_DEPTH_MAX 8
#define ACED_JSONR_NUMBER_MAX 64

/* ONNX import (src/model/onnx.c).  The file arrives as base64 inside the
 * body, so it is at most 3/4 of max_body_bytes; ACED_ONNX_BYTES_MAX is the
 * same bound written down against the hard cap, checked on the decoded
 * size before the buffer is allocated.  protobuf-c allocates each nested
 * message as a struct of ~100 bytes that may take 2 bytes of wire, so its
 * allocator gets a budget of FIXED + FACTOR x the file: a 48 MB export of
 * float32 weights decodes into about 1x its size (the data is copied once),
 * a hostile file of empty messages is refused at the budget instead of
 * taking 50x its size.  A chain of 32 layers with GELU as PyTorch writes it
 * is under 300 nodes and the recurrent exports with their shape
 * scaffolding under 200: 1024 nodes (and initializers) is ample.  Messages
 * nest 6 deep in a real model (model/graph/value_info/type/tensor type/
 * shape/dimension); 16 leaves room and keeps protobuf-c's recursion, which
 * has no limit of its own, shallow.  Opsets 7 to 21 spell the operators
 * aced imports the same way (tested: 11 to 17). */
#define ACED_ONNX_BYTES_MAX (ACED_BODY_MAX_HARD / 4 * 3)
#define ACED_ONNX_DECODE_FIXED (16L * 1024 * 1024)
#define ACED_ONNX_DECODE_FACTOR 3
#define ACED_ONNX_NODES_MAX 1024
#define ACED_ONNX_DIMS_MAX 8
#define ACED_ONNX_DEPTH_MAX 16
#define ACED_ONNX_OPSET_MIN 7
#define ACED_ONNX_OPSET_MAX 21
/* The origin an ONNX registration leaves in the model row ("source"):
 * {"opset":N,"producer":"<name> <version>"}, name and version cut to 63
 * bytes each. */
#define ACED_SOURCE_MAX 192

/* Query limits. */
#define ACED_GRID_MIN 2             /* regressor grid points */
#define ACED_GRID_MAX 10000
#define ACED_GRID_DEFAULT 100
#define ACED_ORDER_MAX_HARD 40      /* the authors tried orders 0..39 */
#define ACED_ORDER_MAX_DEFAULT 20
#define ACED_VALUES_MAX 10000       /* values per interventions request */
#define ACED_ATTR_ROWS_MAX 1000     /* input rows per attributions request */
/* Cached attributions answered from the body's bytes (src/svc/quick.c):
 * each HTTP thread remembers this many recent queries (a dashboard's
 * panels), each of at most this many features and a body of at most this
 * many bytes besides its rows; larger ones take the usual path. */
#define ACED_QUICK_SLOTS 16
#define ACED_QUICK_FEATURES_MAX 256
#define ACED_QUICK_KEY_MAX 4096
#define ACED_CURVE_POINTS 101       /* points in a regressor's plotted curve */
/* Integrated gradients: Gauss-Legendre with 64 nodes is exact for
 * polynomials of degree 127 along the path, far past what a network's
 * curvature needs for a completeness gap at rounding level; 1024 lets a
 * Riemann rule get there too (its error falls as 1/steps). */
#define ACED_IG_STEPS_DEFAULT 64
#define ACED_IG_STEPS_MAX 1024
#define ACED_MC_DIAG_POINTS 5       /* grid points compared with montecarlo */
/* Samples the taylor reliability check averages over: its standard error
 * is then about spread / sqrt(512) = 0.044 spread, a sixth of the 0.25
 * spread it judges, while it costs 5 x 512 forward passes of the layers
 * after the first per feature instead of 5 x n_samples full passes (on the
 * benchmark's 3,000-sample MNIST model that was as much again as Eq. 4). */
#define ACED_MC_DIAG_SAMPLES 512
/* A regressor fitted to Monte Carlo points takes their errors' covariance
 * across the grid as known noise (they share one set of samples): an n x n
 * eigendecomposition per output, about 0.3 s at 1000 points.  Finer grids
 * take the variances alone (a warning says the band then understates the
 * correlated part).  The covariances of a group of outputs are computed in
 * one pass over the samples, at most ACED_BAND_COV_CELLS doubles (32 MiB). */
#define ACED_BAND_GRID_MAX 1000
/* The randomization test (POST .../significance).  Epochs per retraining:
 * 100000 epochs of a small network is minutes, times the permutations
 * (at most 9999: p-values to 1e-4) an hour, the job timeout.  A statistic
 * "ace" is the range of E[y | do(x_i = a)] over ACED_SIG_ACE_GRID values. */
#define ACED_TRAIN_EPOCHS_MAX 100000
#define ACED_TRAIN_BATCH_DEFAULT 32
#define ACED_PERMUTATIONS_MAX 9999
#define ACED_PERMUTATIONS_DEFAULT 999
#define ACED_SIG_ACE_GRID 20
/* Statistics kept by one test, (permutations + 1) x outputs x features
 * doubles: 128 MiB. */
#define ACED_SIG_CELLS_MAX (16L * 1024 * 1024)
#define ACED_BAND_COV_CELLS (4L * 1024 * 1024)

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
/* The request head.  libmicrohttpd keeps the request line, the header
 * lines and what it parses out of them (about 60 bytes per query argument
 * and per header) in the connection's pool (connection_memory, 32 KiB by
 * default, 16 KiB at least).  When they do not fit it answers by itself:
 * 414 or 431 with an HTML body, and for about 480 query arguments no reply
 * at all until connection_timeout (the pool has no room left for one).
 * aced's own limits sit well inside the smallest pool, so that aced answers
 * first, in JSON naming the limit (dispatch.c); tests/e2e/test_edges.py
 * measures both sides of each.  None binds a real client:
 *   URL: the request target as sent (path and query, percent-escaped);
 *        the longest aced route with 64-byte names and 128-byte labels
 *        fully escaped is under 900 bytes; browsers and proxies allow
 *        2 KiB to 8 KiB.  Past it: 414 uri_too_long, field "url".
 *   query parameters: no route reads more than 4; counted in the raw
 *        target before libmicrohttpd parses them, and the query is then
 *        dropped unparsed, so a long list costs no pool at all.  Past it:
 *        414 uri_too_long, field "query".
 *   headers: a browser sends about 15, a proxy chain adds a handful;
 *        Apache allows 100 (LimitRequestFields).  Past it: 431
 *        header_fields_too_large, field "headers".
 *   header bytes: names and values, ": " and CRLF counted; nginx's
 *        default buffer for one header line is 8 KiB, Apache's limit
 *        for one field 8190 bytes; aced reads three short headers.
 *        Past it: 431 header_fields_too_large, field "headers".
 * One gap stays: libmicrohttpd 0.9.75 parses a Cookie header into the
 * pool as it completes the head, with no way to turn that off, so a few
 * hundred cookies (a 4 KB header; aced reads none) get its HTML 431. */
#define ACED_URL_MAX 1024
#define ACED_QUERY_PARAMS_MAX 32
#define ACED_HEADERS_MAX 64
#define ACED_HEADER_BYTES_MAX 8192
#define ACED_CONN_LIMIT_DEFAULT 1024
#define ACED_CONN_TIMEOUT_DEFAULT 30        /* seconds idle */
/* Per-connection libmicrohttpd pool (headers, read buffer, reply headers).
 * libmicrohttpd clears the used part of it after every request on a
 * keep-alive connection, so a big pool costs time on every request (at
 * 256 KiB it was a tenth of a cached query's CPU); bodies are streamed out
 * of it in chunks, so 32 KiB (libmicrohttpd's own default) is enough. */
#define ACED_CONN_MEMORY_DEFAULT 32768 /* a plain literal, as above */
#define ACED_TOKENS_MAX 1024
/* GET /openapi.yaml reads the installed document, about 70 KB; anything
 * over 1 MiB is not it. */
#define ACED_OPENAPI_MAX (1024 * 1024)
/* A token's label (logged with every request made with it) holds at most
 * 63 bytes: room for a pipeline or host name, and it fits the request's
 * `who` buffer (struct request, http.h) whole. */
#define ACED_TOKEN_LABEL_MAX 64
/* The URL prefix aced is mounted under (base_path, X-Forwarded-Prefix):
 * real mounts are a segment or two ("/aced", "/ml/aced"); 256 bytes is
 * ample and keeps a 202's Location header, prefix + "/v1/jobs/" + a
 * 32-digit id, far below any proxy's header limit. */
#define ACED_BASE_PATH_MAX 256
/* The web view's files (GET /ui/...): its own page, script and style are
 * a few tens of KB and the chart library (Debian's d3.min.js) 240 KB; a
 * file over 2 MiB is not one of them, and each is read whole per request. */
#define ACED_UI_FILE_MAX (2 * 1024 * 1024)
/* A web view file name: one path segment of letters, digits, '-', '_'
 * and '.', not starting with '.', at most 64 bytes. */
#define ACED_UI_NAME_MAX 64
/* How long a browser may keep a CORS preflight's answer (seconds, as the
 * header's text): 10 minutes, Chromium's own cap being 2 hours; a changed
 * cors_origins reaches browsers within it. */
#define ACED_CORS_MAX_AGE "600"
/* A request body must arrive at 1 KiB/s on average once connection_timeout
 * has passed since its headers: slower is a "slow POST" attack holding a
 * connection, not a client on any real network (a 64 MiB body at that
 * rate would take 18 hours; let the proxy buffer bodies from slow links). */
#define ACED_BODY_MIN_RATE 1024 /* bytes per second */
/* Access log (log.h): 32 KiB is nginx's own example buffer, some 200
 * lines, so a server answering 50k requests a second writes its log in
 * about 250 writes instead of 50,000; one second is as long as an operator
 * watching `journalctl -f` waits.  The buffer lives for the process, so a
 * megabyte is the most it may take. */
#define ACED_ACCESS_LOG_BUFFER_DEFAULT 32768
#define ACED_ACCESS_LOG_BUFFER_MAX 1048576
#define ACED_ACCESS_LOG_FLUSH_MS_DEFAULT 1000

/* In-memory regressor summaries (src/svc/regcache.c): a summary is under
 * 1 KiB, so 8192 slots hold every regressor of 20 models of 100 features
 * x 4 outputs in ~8 MiB.  A key probes PROBE slots from its hash and the
 * oldest of them is replaced: a bounded search on every cached query. */
#define ACED_REGCACHE_SLOTS 8192 /* a power of two */
#define ACED_REGCACHE_PROBE 8
/* A summary asked for by a regressor GET also keeps that GET's reply as
 * text (split around meta.elapsed_ms), so a warm GET reads no database and
 * parses nothing.  A reply is 20 to 60 KiB; 64 MiB of them is a dashboard's
 * working set of curves.  Past it, GETs take the path through the store. */
#define ACED_REGCACHE_REPLY_BYTES (64L << 20)

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

/* PostgreSQL (src/store/pg.c).  Connections: one per HTTP thread and
 * worker (each holds one for the length of one store call, so none ever
 * waits for another) plus one spare; the listener has its own.  The array
 * is sized for the largest configuration. */
#define ACED_PG_CONN_MAX (ACED_WORKERS_MAX + ACED_HTTP_THREADS_MAX + 1)
/* Seconds a (re)connection may take before the request it serves gets
 * 503: a database host that does not answer must not hold HTTP threads
 * for the kernel's two minutes.  A connection URI may set its own. */
#define ACED_PG_CONNECT_TIMEOUT_S 3
/* How often the listener (LISTEN aced_models: other replicas' writes)
 * tries again while the database is away, and how long it sleeps in
 * poll(): the bound on how late it notices a stop. */
#define ACED_PG_LISTEN_RETRY_MS 250

/* Durable jobs (PostgreSQL: src/store/pg_jobs.c, src/svc/journal.c).  A
 * replica renews the lease of each job it runs every HEARTBEAT_MS; a job
 * whose lease (LEASE_MS) runs out is taken over by another replica, so a
 * replica that dies costs its jobs about LEASE_MS, while a replica merely
 * slow for a moment (a long GC-free fit holds no lock, but a database
 * failover can take seconds) is not robbed of its jobs: five heartbeats.
 * A job is run at most ATTEMPTS_MAX times, so a request that kills its
 * replica does not go on to kill the others.  Registrations (their
 * request is the whole model) and requests over REQUEST_MAX bytes are
 * recorded without it: GET works everywhere, but another replica cannot run them again.
 * Ended jobs are forgotten after KEEP_S.  Plain literals: pasted into SQL. */
#define ACED_JOB_LEASE_MS 5000
#define ACED_JOB_HEARTBEAT_MS 1000
#define ACED_JOB_ATTEMPTS_MAX 3
#define ACED_JOB_REQUEST_MAX 4194304 /* 4 MiB */
#define ACED_JOB_KEEP_S 86400
/* How often a job's owner, its own tasks done, looks whether the tasks
 * other replicas run have ended (src/svc/split.c): a tenth of a second
 * is nothing next to a task (a feature's grid) and one small query. */
#define ACED_SPLIT_POLL_MS 100

/* Causal graphs among the inputs (src/model/graph.c, issue 14).  Edges:
 * a DAG over k features has at most k(k-1)/2, but a graph a person (or a
 * learner with max_parents) writes has a few per feature; 65536 is 16 per
 * feature at the largest k and keeps a graph's canonical text under 4 MB.
 * Learning is O(d^3) per iteration of the optimiser (a d x d matrix
 * exponential or log-determinant), so the learner takes at most 400
 * features: about a minute at d = 400 on one core. */
#define ACED_GRAPH_MAX_EDGES 65536
#define ACED_GRAPH_LEARN_MAX_FEATURES 400
/* Total-effect views (src/svc/effect.c) kept per loaded model: a view is
 * a prepared model of its own (factor and a copy of the samples), so a
 * model at the sample limit (32 Mi values, 256 MB) could hold gigabytes
 * if every feature's view were kept.  Up to 256 MiB of views are kept
 * with the model; past that a view is prepared for the request and
 * freed after it (the estimate then costs one more O(k^3 + n k)). */
#define ACED_EFFECT_VIEW_BYTES (256L * 1024 * 1024)

#endif
