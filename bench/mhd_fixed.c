/*
 * mhd_fixed.c -- the bare libmicrohttpd baseline for the HTTP benchmark.
 *
 * Answers every request (any method, any URL; an upload is read and
 * dropped) with one fixed JSON body of --size bytes, using the daemon
 * flags and options of src/http/server.c's http_start: epoll with an internal
 * thread pool, suspend/resume allowed, the same connection limit, timeout
 * and per-connection memory limit.  What aced adds on top of this (routing,
 * JSON parsing, the cache lookup, the reply) is what the throughput ratio
 * measures.
 *
 *   mhd_fixed --port=N [--size=BYTES] [--threads=2] [--spin-ns=NS]
 *
 * --spin-ns adds NS nanoseconds of CPU work (a calibrated busy loop) to
 * every request: a calibration, not a peer.  It shows how p99 latency on
 * a machine shared with the load generator depends on the server having
 * idle time at all, independently of what the extra work is.
 *
 * Runs until SIGINT or SIGTERM.  Benchmark code: not part of the daemon.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "aced/limits.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

static volatile sig_atomic_t g_stop;
static long spin_iters; /* busy-loop iterations per request (--spin-ns) */

static void spin(long n)
{
  volatile long x = 0;
  for (long k = 0; k < n; k++)
    x += k;
}

/* Iterations of spin() per nanosecond of this process's CPU time. */
static double spin_rate(void)
{
  struct timespec a, b;
  long n = 20 * 1000 * 1000;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
  spin(n);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
  double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
  return ns > 0 ? n / ns : 1.0;
}

static void on_signal(int sig)
{
  (void)sig;
  g_stop = 1;
}

/* The request body, if any, is consumed chunk by chunk and dropped; the
 * reply is queued on the final call, as aced does. */
static MHD_RESULT on_request(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
  static int marker;
  struct MHD_Response *resp = cls;
  if (*con_cls == NULL) {
    *con_cls = &marker;
    return MHD_YES;
  }
  if (*upload_size != 0) {
    *upload_size = 0;
    return MHD_YES;
  }
  if (spin_iters > 0)
    spin(spin_iters);
  return MHD_queue_response(conn, MHD_HTTP_OK, resp);
}

/* A JSON object of exactly n bytes (n >= 32) shaped like an attributions
 * reply: numbers in an array, padded with spaces inside the array. */
static char *fixed_body(size_t n)
{
  char *s = malloc(n + 1);
  if (s == NULL)
    return NULL;
  const char *head = "{\"attributions\":[[";
  const char *tail = "]],\"meta\":{\"cache\":\"hit\"}}";
  size_t hl = strlen(head), tl = strlen(tail);
  if (n < hl + tl + 1)
    n = hl + tl + 1;
  memcpy(s, head, hl);
  size_t i = hl;
  int first = 1;
  while (i + tl + 24 < n) {
    i += (size_t)snprintf(s + i, n + 1 - i, "%s%.17g", first ? "" : ",", 0.123456789012345);
    first = 0;
  }
  if (first)
    s[i++] = '0';
  while (i + tl < n)
    s[i++] = ' ';
  memcpy(s + i, tail, tl);
  s[i + tl] = '\0';
  return s;
}

int main(int argc, char **argv)
{
  long port = 0, size = 600, threads = 2, spin_ns = 0;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--port=", 7) == 0)
      port = strtol(argv[i] + 7, NULL, 10);
    else if (strncmp(argv[i], "--size=", 7) == 0)
      size = strtol(argv[i] + 7, NULL, 10);
    else if (strncmp(argv[i], "--spin-ns=", 10) == 0)
      spin_ns = strtol(argv[i] + 10, NULL, 10);
    else if (strncmp(argv[i], "--threads=", 10) == 0)
      threads = strtol(argv[i] + 10, NULL, 10);
    else {
      fprintf(stderr, "usage: mhd_fixed --port=N [--size=BYTES] [--threads=N] [--spin-ns=NS]\n");
      return 2;
    }
  }
  if (port < 1 || port > 65535 || size < 1 || size > 16 * 1024 * 1024 || threads < 1 ||
      threads > 64 || spin_ns < 0 || spin_ns > 1000000) {
    fprintf(stderr, "mhd_fixed: bad arguments\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  if (spin_ns > 0)
    spin_iters = (long)(spin_ns * spin_rate());
  char *body = fixed_body((size_t)size);
  if (body == NULL)
    return 1;
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_PERSISTENT);
  if (resp == NULL || MHD_add_response_header(resp, "Content-Type", "application/json") != MHD_YES)
    return 1;
  struct sockaddr_in sa; /* loopback only, like aced's default */
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG | MHD_USE_ITC;
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, (uint16_t)port, NULL, NULL, on_request, resp,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)ACED_CONN_LIMIT_DEFAULT,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)ACED_CONN_TIMEOUT_DEFAULT,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ACED_CONN_MEMORY_DEFAULT,
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 1U,
      MHD_OPTION_END);
  if (d == NULL) {
    fprintf(stderr, "mhd_fixed: cannot listen on port %ld\n", port);
    return 1;
  }
  fprintf(stderr, "mhd_fixed: port %ld, %zu-byte body, %ld threads, %ld spin iterations\n",
          port, strlen(body), threads, spin_iters);
  while (!g_stop)
    pause();
  MHD_stop_daemon(d);
  MHD_destroy_response(resp);
  free(body);
  return 0;
}
