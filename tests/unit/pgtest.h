/*
 * pgtest.h -- a throw-away PostgreSQL cluster for C unit tests: started
 * with tests/pgcluster.sh (initdb + pg_ctl in a temporary folder, on a
 * free port), databases made with CREATE DATABASE, stopped and removed at
 * the end.  Without libpq in the build or PostgreSQL on the machine the
 * caller prints a TAP SKIP naming the package.
 */
#ifndef ACED_PGTEST_H
#define ACED_PGTEST_H

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#endif

struct pgt {
  char dir[512];
  char script[1024];
  int port;
  int up;
};

/* A TCP port nobody listens on right now (bound, read back, released). */
static inline int pgt_free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t n = sizeof a;
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &n) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

static inline int pgt_sh(struct pgt *t, const char *args)
{
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' %s", t->script, args);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Start a cluster: 0 when up; 77 when PostgreSQL is not installed or
 * libpq not built in (*why says which); else a failure. */
static inline int pgt_start(struct pgt *t, const char **why)
{
  memset(t, 0, sizeof *t);
#ifndef HAVE_LIBPQ
  *why = "aced built without libpq (Debian package libpq-dev)";
  return 77;
#else
  const char *src = getenv("ACED_SRCDIR");
  snprintf(t->script, sizeof t->script, "%s/tests/pgcluster.sh",
           src && *src ? src : ACED_ABS_SRCDIR);
  if (pgt_sh(t, "bindir >/dev/null") != 0) {
    *why = "PostgreSQL server not installed (Debian package postgresql)";
    return 77;
  }
  const char *base = getenv("TMPDIR");
  snprintf(t->dir, sizeof t->dir, "%s/aced-pg-XXXXXX", base && *base ? base : "/tmp");
  if (mkdtemp(t->dir) == NULL) {
    *why = "mkdtemp failed";
    return 1;
  }
  t->port = pgt_free_port();
  char args[700];
  snprintf(args, sizeof args, "start '%s' %d", t->dir, t->port);
  if (pgt_sh(t, args) != 0) {
    *why = "initdb/pg_ctl failed (see the output above)";
    return 1;
  }
  t->up = 1;
  return 0;
#endif
}

/* pgcluster.sh stop|restart DIR MODE */
static inline int pgt_ctl(struct pgt *t, const char *what, const char *mode)
{
  char args[700];
  snprintf(args, sizeof args, "%s '%s' %s", what, t->dir, mode);
  return pgt_sh(t, args);
}

static inline void pgt_stop(struct pgt *t)
{
  if (!t->up)
    return;
  pgt_ctl(t, "stop", "fast");
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
  if (system(cmd) != 0)
    fprintf(stderr, "pgtest: could not remove %s\n", t->dir);
  t->up = 0;
}

/* The URI of database `db` (created when missing). */
static inline void pgt_uri(struct pgt *t, const char *db, char *out, size_t n)
{
  snprintf(out, n, "postgresql://aced@127.0.0.1:%d/%s", t->port, db);
#ifdef HAVE_LIBPQ
  char admin[256];
  snprintf(admin, sizeof admin, "postgresql://aced@127.0.0.1:%d/postgres", t->port);
  PGconn *pg = PQconnectdb(admin);
  if (PQstatus(pg) == CONNECTION_OK) {
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", db);
    PQclear(PQexec(pg, sql)); /* "already exists" is fine */
  }
  PQfinish(pg);
#endif
}

#endif
