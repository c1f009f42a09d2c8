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

enum log_level { LOG_L_ERROR = 3, LOG_L_WARN = 4, LOG_L_INFO = 6, LOG_L_DEBUG = 7 };

void log_set_level(enum log_level l);
int log_level_parse(const char *s, enum log_level *out);
int log_enabled(enum log_level l);
void log_msg(enum log_level l, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_L_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_L_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_L_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_L_DEBUG, __VA_ARGS__)

#endif
