/*
 * Telling the service manager how a program is doing, with sd_notify(3):
 * READY=1 once it serves (units use Type=notify), STOPPING=1 when it begins
 * to stop, and a one-line STATUS= that `systemctl status` shows. Outside
 * systemd (no NOTIFY_SOCKET) every call does nothing.
 */
#ifndef ONRAMP_CORE_NOTIFY_H
#define ONRAMP_CORE_NOTIFY_H

/* The program serves now; status is the line systemctl shows (no secrets). */
void notify_ready(const char *status);

/* The program has begun to stop. */
void notify_stopping(void);

#endif
