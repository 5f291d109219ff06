/*
 * onramp-redirectd, the global phone-home service: which cloud owns serial S?
 * Claims are written only by clouds (and admins) through the admin API, each
 * with the claim secret of a device the factory registered.
 */
#ifndef ONRAMP_REDIRECT_H
#define ONRAMP_REDIRECT_H

#include <stdbool.h>
#include <stddef.h>

struct admin_who;
struct http_ctx;
struct http_route;
#include "server/store.h"

#include "server/rate_limit.h"

struct redirect_app {
	unsigned long retry_after;     /* seconds, for unclaimed serials */
	struct rate_limit_policy rate; /* of phone-home */
	struct rate_limiter *limiter;  /* made when serving */
};

extern const struct store_migration redirect_migrations[];
extern const size_t redirect_n_migrations;

/* The routes of the device endpoint and the admin API, with app as their argument. */
size_t redirect_routes(struct redirect_app *app, const struct http_route **routes);

/*
 * GET, PUT (admin or factory) and DELETE (admin) /v1/admin/devices/SERIAL:
 * factory registrations of claim hashes (redirect_devices.c).
 */
void redirect_devices_serve(struct http_ctx *ctx, struct store *st, const struct admin_who *who,
			    const char *serial);

/*
 * *ok when claim_secret hashes to the claim hash registered for serial (false
 * for an unregistered serial); -1 on a database error.
 */
int redirect_claim_proof(struct store *st, const char *serial, const char *claim_secret, bool *ok);

#endif
