/*
 * sd_notify(3) for the daemons and the agent. A failure to notify is logged
 * and otherwise ignored: the manager's own timeout tells the operator, and a
 * program that serves must not stop because its manager cannot be told.
 */
#include "core/notify.h"

#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

/* Sends one notification; logs why it could not be sent. */
static void
notify(const char *message)
{
	int rc = sd_notify(0, message);

	if (rc < 0)
		log_warn("cannot notify the service manager: %s", strerror(-rc));
}

/* See notify.h. */
void
notify_ready(const char *status)
{
	char message[512];

	snprintf(message, sizeof(message), "READY=1\nSTATUS=%s", status);
	notify(message);
}

/* See notify.h. */
void
notify_stopping(void)
{
	notify("STOPPING=1\nSTATUS=stopping");
}
