/*
 * main.c -- aced: start-up, signals, shutdown.
 *
 * Start-up order: configuration, tokens, database, workers, listener,
 * then READY.  Signals are taken synchronously with sigwait() in the main
 * thread (blocked everywhere else), so no work happens in signal context:
 *   SIGTERM/SIGINT  stop accepting, fail or finish in-flight work, close
 *                   the database, exit 0;
 *   SIGHUP          reload the token file and log level.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aced/auth.h"
#include "aced/config.h"
#include "aced/engine.h"
#include "aced/http.h"
#include "aced/jobs.h"
#include "aced/limits.h"
#include "aced/log.h"
#include "aced/notify.h"
#include "aced/store.h"
#include "aced/svc.h"

static void usage(FILE *f)
{
  fprintf(f,
          "Usage: aced [--config=FILE] [--check-config] [--KEY=VALUE ...]\n"
          "       aced --hash-token [LABEL [SCOPES]] < token\n"
          "\n"
          "Serves causal attributions of neural networks over HTTP.\n"
          "Without --config the embedded defaults are used.  Keys:\n");
  config_print_help(f);
  fprintf(f, "\nSee aced(8).\n");
}

/* mkdir -p of the folder holding `path`. */
static int make_parent(const char *path)
{
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  char *dir = dirname(buf);
  if (strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0)
    return 0;
  for (char *p = dir + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return -1;
      *p = '/';
    }
  return mkdir(dir, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

/* --hash-token [LABEL [SCOPES]]: the arguments are checked before the
 * token is read, so that a line the token file would refuse (an unknown
 * scope, a label the file would cut at a blank) is never printed. */
static int hash_token(int argc, char **argv)
{
  const char *label = argc > 0 ? argv[0] : "token";
  const char *scopes = argc > 1 ? argv[1] : "read,write";
  int bits;
  if (argc > 2) {
    fprintf(stderr, "aced: --hash-token takes at most LABEL and SCOPES\n");
    return 2;
  }
  if (auth_parse_scopes(scopes, &bits) != 0) {
    fprintf(stderr,
            "aced: --hash-token: unknown scopes '%s': give read, write or read,write\n",
            scopes);
    return 2;
  }
  size_t llen = strlen(label);
  if (llen == 0 || llen >= ACED_TOKEN_LABEL_MAX || label[strcspn(label, " \t\r\n")] != '\0') {
    fprintf(stderr,
            "aced: --hash-token: label '%s' must be 1 to %d characters without blanks\n",
            label, ACED_TOKEN_LABEL_MAX - 1);
    return 2;
  }
  char tok[4097];
  if (fgets(tok, sizeof tok, stdin) == NULL) {
    fprintf(stderr, "aced: no token on stdin\n");
    return 2;
  }
  tok[strcspn(tok, "\r\n")] = '\0';
  if (strlen(tok) < 16) {
    fprintf(stderr, "aced: tokens must be at least 16 characters\n");
    return 2;
  }
  char h[72];
  auth_hash_token(tok, strlen(tok), h);
  printf("%s %s %s\n", scopes, h, label);
  return 0;
}

struct options {
  const char *config_file;
  int check_only;
};

/* Parse flags: --config, --check-config, --help, --hash-token, and every
 * config key as --key=value (applied after the file, so flags win). */
static int parse_args(int argc, char **argv, struct aced_config *cfg, struct options *o)
{
  char err[512];
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], "--config=", 9) == 0)
      o->config_file = argv[i] + 9;
    else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
      o->config_file = argv[++i];
  if (o->config_file && config_load_file(cfg, o->config_file, err, sizeof err) != 0) {
    fprintf(stderr, "aced: %s\n", err);
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--config", 8) == 0) {
      if (a[8] == '\0')
        i++;
      continue;
    }
    if (strcmp(a, "--check-config") == 0) {
      o->check_only = 1;
      continue;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    }
    if (strcmp(a, "--version") == 0) {
      printf("aced %s\n", PACKAGE_VERSION);
      exit(0);
    }
    if (strncmp(a, "--", 2) != 0) {
      fprintf(stderr, "aced: unexpected argument '%s' (try --help)\n", a);
      return 2;
    }
    char key[64];
    const char *eq = strchr(a, '=');
    const char *value;
    if (eq) {
      snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
      value = eq + 1;
    } else if (i + 1 < argc) {
      snprintf(key, sizeof key, "%s", a + 2);
      value = argv[++i];
    } else {
      fprintf(stderr, "aced: %s needs a value\n", a);
      return 2;
    }
    for (char *p = key; *p; p++)
      if (*p == '-')
        *p = '_';
    if (config_set(cfg, key, value, err, sizeof err) != 0) {
      fprintf(stderr, "aced: --%s\n", err);
      return 2;
    }
  }
  if (config_validate(cfg, err, sizeof err) != 0) {
    fprintf(stderr, "aced: %s\n", err);
    return 2;
  }
  return 0;
}

/* Load tokens (NULL when no token file is configured). */
static int load_tokens(const struct aced_config *cfg, struct auth **out)
{
  *out = NULL;
  if (cfg->token_file[0] == '\0')
    return 0;
  char err[512];
  *out = auth_load(cfg->token_file, err, sizeof err);
  if (*out == NULL) {
    log_error("auth", "%s", err);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  if (argc >= 2 && strcmp(argv[1], "--hash-token") == 0)
    return hash_token(argc - 2, argv + 2);

  static struct server srv;
  struct options opt = {0};
  config_defaults(&srv.cfg);
  int rc = parse_args(argc, argv, &srv.cfg, &opt);
  if (rc != 0)
    return rc;
  enum log_level lvl = LOG_L_INFO;
  if (log_level_parse(srv.cfg.log_level, &lvl) != 0) {
    fprintf(stderr, "aced: log_level: '%s' is not error, warn, info or debug\n",
            srv.cfg.log_level);
    return 2;
  }
  log_set_level(lvl);
  log_access_config((size_t)srv.cfg.access_log_buffer, (int)srv.cfg.access_log_flush_ms);

  struct auth *auth = NULL;
  if (load_tokens(&srv.cfg, &auth) != 0)
    return 2;
  if (opt.check_only) {
    printf("aced: configuration OK (%s%s)\n", opt.config_file ? opt.config_file : "defaults",
           auth ? ", tokens loaded" : ", no token file: loopback only");
    auth_free(auth);
    return 0;
  }

  /* Signals: SIGPIPE ignored (a client closing early must not kill us);
   * the rest blocked in every thread and taken by sigwait below. */
  signal(SIGPIPE, SIG_IGN);
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  eng_init();
  if (!store_uri_is_server(srv.cfg.database) && make_parent(srv.cfg.database) != 0) {
    log_error("store", "cannot create the folder of %s: %s", srv.cfg.database, strerror(errno));
    return 1;
  }
  struct aced_error err;
  /* a connection for every thread that may call the store at once */
  srv.store = store_open_pool(srv.cfg.database, (int)(srv.cfg.workers + srv.cfg.http_threads + 1),
                              &err);
  if (srv.store == NULL) {
    log_error("store", "%s", err.message);
    return 1;
  }
  http_set_auth(auth);
  static struct svc svc;
  svc.store = srv.store;
  svc.cfg = &srv.cfg;
  srv.svc = &svc;
  srv.jobs = jobs_create(&svc, (int)srv.cfg.workers, srv.cfg.queue_max, srv.cfg.job_timeout);
  if (srv.jobs == NULL) {
    log_error("jobs", "cannot start workers");
    return 1;
  }
  if (svc_journal_start(&svc, srv.jobs) < 0) {
    log_error("jobs", "cannot start the journal of durable jobs");
    jobs_shutdown(srv.jobs);
    jobs_free(srv.jobs);
    return 1;
  }
  char ebuf[256];
  struct http *h = http_start(&srv, ebuf, sizeof ebuf);
  if (h == NULL) {
    log_error("http", "%s", ebuf);
    jobs_shutdown(srv.jobs);
    jobs_free(srv.jobs);
    srv.store->ops->close(srv.store);
    return 1;
  }
  char dbname[sizeof srv.cfg.database];
  store_uri_redact(srv.cfg.database, dbname, sizeof dbname);
  log_info("main", "aced %s listening on %s port %ld (database %s, %ld workers, auth %s)",
           PACKAGE_VERSION, srv.cfg.listen_address, srv.cfg.port, dbname,
           srv.cfg.workers, auth ? "on" : "off");
  notify_ready();

  for (;;) {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0)
      continue;
    if (sig == SIGHUP) {
      notify_reloading();
      /* Reload what can change without a restart: tokens and log level. */
      struct aced_config fresh;
      struct options o2 = {0};
      config_defaults(&fresh);
      if (parse_args(argc, argv, &fresh, &o2) != 0) {
        /* A broken file must not change anything, least of all auth. */
        log_error("main", "reload: configuration invalid; keeping the running one");
        notify_ready();
        continue;
      }
      if (log_level_parse(fresh.log_level, &lvl) == 0)
        log_set_level(lvl);
      log_access_config((size_t)fresh.access_log_buffer, (int)fresh.access_log_flush_ms);
      struct auth *a = NULL;
      if (load_tokens(&fresh, &a) == 0) {
        if (a == NULL && srv.cfg.token_file[0] != '\0')
          log_error("auth", "reload: token_file removed from the configuration; keeping "
                            "the old tokens (restart to turn authentication off)");
        else {
          http_set_auth(a);
          log_info("main", "reloaded: %zu tokens, log level %s", auth_count(a), fresh.log_level);
        }
      } else {
        log_error("auth", "reload failed; keeping the old tokens");
      }
      notify_ready();
      continue;
    }
    log_info("main", "signal %d: shutting down", sig);
    break;
  }
  notify_stopping();
  http_quiesce(h);          /* no new connections */
  svc_journal_quiesce();    /* durable jobs cut short go to other replicas */
  jobs_shutdown(srv.jobs);  /* waiting requests get their answer... */
  svc_journal_stop();
  http_drain(h, 5000);      /* ...and it is sent before we close */
  http_stop(h);
  jobs_free(srv.jobs);
  svc_clear();
  http_set_auth(NULL);
  srv.store->ops->close(srv.store);
  log_info("main", "stopped");
  log_flush();
  return 0;
}
