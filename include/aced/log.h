/*
 * log.h -- one-line log records on stderr, journal friendly.
 *
 * Each record is "<N>level component: message" where <N> is the syslog
 * priority prefix that systemd-journald understands (SyslogLevelPrefix),
 * so `journalctl -p warning -u aced` works without any journal library.
 * The level can be changed at run time (SIGHUP reload).
 */
#ifndef ACED_LOG_H
#define ACED_LOG_H

#include <stddef.h>

enum log_level { LOG_L_ERROR = 3, LOG_L_WARN = 4, LOG_L_INFO = 6, LOG_L_DEBUG = 7 };

void log_set_level(enum log_level l);
int log_level_parse(const char *s, enum log_level *out);
int log_enabled(enum log_level l);
void log_msg(enum log_level l, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The access log: one info line per request ("http" component).  Written
 * one write(2) per line, a busy server spends more on those writes than on
 * its answers, so access lines are buffered, as nginx's access_log
 * buffer=/flush= do: they go to stderr in batches of up to `bytes`, at most
 * `flush_ms` after the first of a batch was logged (log_flush_stale, called
 * by a timer, sees to that).  bytes 0: one write per line.  Each thread
 * that logs them has its own buffer (a request takes no lock another HTTP
 * thread takes); every other record first writes what all of them hold,
 * so lines keep their order. */
void log_access_config(size_t bytes, int flush_ms);
/* One access line from its parts, written without printf (the default
 * info level logs every request, so its cost is paid on each):
 * "<client> <method> <url> <status> <ms with one decimal>ms who=<who>",
 * control characters blanked as in every record. */
void log_access(const char *client, const char *method, const char *url, unsigned status,
                long long us, const char *who);
/* Write what is buffered (shutdown, reload); the timer's check. */
void log_flush(void);
void log_flush_stale(void);

#define log_error(...) log_msg(LOG_L_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_L_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_L_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_L_DEBUG, __VA_ARGS__)

#endif
