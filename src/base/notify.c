/*
 * notify.c -- see notify.h.  READY=1 is only sent once the database is
 * open and the listener is bound, so `systemctl start` returning means
 * the API answers.
 */
#include "config.h"

#include <stdio.h>

#include "aced/notify.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#define NOTIFY(s) sd_notify(0, s)
#else
#define NOTIFY(s) ((void)0)
#endif

void notify_ready(void) { NOTIFY("READY=1\nSTATUS=serving"); }
void notify_reloading(void) { NOTIFY("RELOADING=1"); }
void notify_stopping(void) { NOTIFY("STOPPING=1\nSTATUS=stopping"); }

void notify_status(const char *status)
{
#ifdef HAVE_LIBSYSTEMD
  sd_notifyf(0, "STATUS=%s", status);
#else
  (void)status;
#endif
}
