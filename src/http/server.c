/*
 * server.c -- the libmicrohttpd listener: start, quiesce, drain, stop;
 * connection tracking and the header watchdog; token reloads.
 *
 * The request side is in dispatch.c (the access handler), reply.c (every
 * reply) and routes.c (the route table and its matching).
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "aced/auth.h"
#include "aced/limits.h"
#include "aced/log.h"
#include "aced/metrics.h"
#include "http/internal.h"

/* ---- header deadline ----
 * libmicrohttpd's connection timeout is an *idle* timeout: a client that
 * sends its request headers one byte a second never looks idle and would
 * hold its connection (and a connection_limit slot) for ever.  Every
 * connection is therefore tracked from accept (NOTIFY_CONNECTION); while
 * it has no request whose headers are complete, a watchdog thread shuts
 * the socket down once connection_timeout seconds have passed since the
 * connection opened or its last request ended.  A body upload gets the
 * same time and must then keep up an average of ACED_BODY_MIN_RATE.
 * libmicrohttpd then sees the end of the stream and closes the connection
 * itself.  A request being handled (or waiting for a worker) is not
 * touched. */


pthread_rwlock_t http_auth_lock = PTHREAD_RWLOCK_INITIALIZER;
atomic_int http_n_suspended;
struct auth *http_auth_current;
atomic_int http_auth_on;

void http_set_auth(struct auth *a)
{
  pthread_rwlock_wrlock(&http_auth_lock);
  struct auth *old = http_auth_current;
  http_auth_current = a;
  atomic_store_explicit(&http_auth_on, a != NULL, memory_order_release);
  pthread_rwlock_unlock(&http_auth_lock);
  auth_free(old);
}


static struct http *the_http; /* for conn_mark: one listener per process */

/* Move conn's tracking to `state` (a new state restarts its clock, at
 * now_us if the caller has the time, else read here), or count `bytes`
 * more of body in the current one. */
void http_conn_mark(struct MHD_Connection *conn, enum conn_state state, size_t bytes,
                      int64_t now_us)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  struct http *h = the_http;
  if (ci == NULL || ci->socket_context == NULL || h == NULL)
    return;
  struct conn_track *t = ci->socket_context;
  /* No lock: this runs several times per request, and only this thread
   * writes these fields.  A timed state (IDLE, BODY) gets its clock and
   * count before the state itself (release), so a watchdog that sees the
   * new state (acquire) sees them too; one that still sees the old state
   * may see the new clock, which is "now", younger than the old one: that
   * can only delay a shutdown.  BUSY is never timed, so entering it leaves
   * the clock and count alone (and saves a clock reading). */
  if (atomic_load_explicit(&t->state, memory_order_relaxed) == (int)state) {
    if (bytes != 0)
      atomic_fetch_add_explicit(&t->body_bytes, bytes, memory_order_relaxed);
    return;
  }
  if (state != CS_BUSY) {
    atomic_store_explicit(&t->since_us, now_us != 0 ? now_us : aced_now_us(),
                          memory_order_relaxed);
    atomic_store_explicit(&t->body_bytes, bytes, memory_order_relaxed);
  }
  atomic_store_explicit(&t->state, (int)state, memory_order_release);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
  struct http *h = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    struct conn_track *t = calloc(1, sizeof *t);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_context = t;
    if (t == NULL || ci == NULL) {
      free(t);
      *socket_context = NULL;
      return;
    }
    t->fd = ci->connect_fd;
    atomic_init(&t->state, CS_IDLE);
    atomic_init(&t->since_us, aced_now_us());
    atomic_init(&t->body_bytes, 0);
    pthread_mutex_lock(&h->track_lock);
    t->next = h->tracked;
    if (h->tracked)
      h->tracked->prev = t;
    h->tracked = t;
    pthread_mutex_unlock(&h->track_lock);
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL) {
    /* Called before libmicrohttpd closes the socket, so the watchdog never
     * touches a descriptor number that has been reused. */
    struct conn_track *t = *socket_context;
    pthread_mutex_lock(&h->track_lock);
    if (t->prev)
      t->prev->next = t->next;
    else
      h->tracked = t->next;
    if (t->next)
      t->next->prev = t->prev;
    pthread_mutex_unlock(&h->track_lock);
    free(t);
    *socket_context = NULL;
  }
}

static void *watchdog_main(void *arg)
{
  struct http *h = arg;
  int64_t limit = h->srv->cfg.connection_timeout * 1000000L;
  pthread_mutex_lock(&h->track_lock);
  while (!h->stop) {
    /* buffered access-log lines older than access_log_flush_ms */
    log_flush_stale();
    int64_t now = aced_now_us();
    for (struct conn_track *t = h->tracked; t; t = t->next) {
      int st = atomic_load_explicit(&t->state, memory_order_acquire);
      int64_t age = now - atomic_load_explicit(&t->since_us, memory_order_relaxed);
      size_t bytes = atomic_load_explicit(&t->body_bytes, memory_order_relaxed);
      int late = st == CS_IDLE && age > limit;
      int slow = st == CS_BODY && age > limit &&
                 (double)bytes < ACED_BODY_MIN_RATE * (age / 1e6);
      if ((late || slow) && !t->shut) {
        shutdown(t->fd, SHUT_RDWR);
        t->shut = 1;
      }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 250 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&h->stop_cv, &h->track_lock, &ts);
  }
  pthread_mutex_unlock(&h->track_lock);
  return NULL;
}


static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  size_t n = strlen(buf);
  while (n > 0 && buf[n - 1] == '\n')
    buf[--n] = '\0';
  log_warn("mhd", "%s", buf);
}

struct http *http_start(struct server *srv, char *errbuf, size_t errlen)
{
  struct aced_config *c = &srv->cfg;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG | MHD_USE_ITC;
  const char *addr = strcmp(c->listen_address, "localhost") == 0 ? "127.0.0.1"
                                                                  : c->listen_address;
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)c->port);
  } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)c->port);
    flags |= MHD_USE_IPv6;
  } else {
    snprintf(errbuf, errlen, "listen_address '%s' is not an IP address", addr);
    return NULL;
  }
  struct http *h = calloc(1, sizeof *h);
  if (h == NULL) {
    snprintf(errbuf, errlen, "out of memory");
    return NULL;
  }
  h->srv = srv;
  pthread_mutex_init(&h->track_lock, NULL);
  pthread_cond_init(&h->stop_cv, NULL);
  the_http = h;
  /* Metric labels are "METHOD pattern": bounded, whatever the URLs. */
  static char labels[64][96];
  static const char *label_ptrs[64];
  for (int i = 0; i < aced_n_routes && i < 64; i++) {
    snprintf(labels[i], sizeof labels[i], "%s %s", aced_routes[i].method,
             aced_routes[i].pattern);
    label_ptrs[i] = labels[i];
  }
  metrics_init(aced_n_routes, label_ptrs);
  /* The logger comes first: libmicrohttpd reports problems with the
   * options as it reads them, and warns (through its default logger, to
   * stderr) when MHD_OPTION_EXTERNAL_LOGGER is not the first option. */
  h->d = MHD_start_daemon(
      flags, 0, NULL, NULL, http_on_request, srv,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)c->http_threads,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)c->connection_limit,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)c->connection_timeout,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)c->connection_memory,
      MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, srv,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
      MHD_OPTION_UNESCAPE_CALLBACK, http_unescape, NULL,
      MHD_OPTION_URI_LOG_CALLBACK, http_on_uri, srv,
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 1U,
      MHD_OPTION_END);
  if (h->d == NULL) {
    snprintf(errbuf, errlen, "cannot listen on %s port %ld (address in use?)",
             c->listen_address, c->port);
    the_http = NULL;
    free(h);
    return NULL;
  }
  pthread_create(&h->watchdog, NULL, watchdog_main, h);
  return h;
}

void http_quiesce(struct http *h)
{
  if (h == NULL || h->d == NULL)
    return;
  MHD_socket fd = MHD_quiesce_daemon(h->d);
  if (fd != MHD_INVALID_SOCKET)
    close(fd);
}

void http_drain(struct http *h, int timeout_ms)
{
  int64_t end = aced_now_us() + (int64_t)timeout_ms * 1000;
  while (h != NULL && atomic_load(&http_n_suspended) > 0 && aced_now_us() < end) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

void http_stop(struct http *h)
{
  if (h == NULL)
    return;
  pthread_mutex_lock(&h->track_lock);
  h->stop = 1;
  pthread_cond_signal(&h->stop_cv);
  pthread_mutex_unlock(&h->track_lock);
  pthread_join(h->watchdog, NULL);
  MHD_stop_daemon(h->d);
  the_http = NULL;
  pthread_mutex_destroy(&h->track_lock);
  pthread_cond_destroy(&h->stop_cv);
  free(h);
}

