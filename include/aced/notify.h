/*
 * notify.h -- all talk with the service manager (sd_notify) in one place;
 * without libsystemd these do nothing.
 */
#ifndef ACED_NOTIFY_H
#define ACED_NOTIFY_H

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *status);

#endif
