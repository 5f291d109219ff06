/*
 * onramp-redirectd, the global phone-home service: which cloud owns serial S?
 * Claims are written only by clouds (and admins) through the admin API.
 */
#ifndef ONRAMP_REDIRECT_H
#define ONRAMP_REDIRECT_H

#include <stddef.h>

struct http_route;
#include "server/store.h"

struct redirect_app {
	unsigned long retry_after; /* seconds, for unclaimed serials */
};

extern const struct store_migration redirect_migrations[];
extern const size_t redirect_n_migrations;

/* The routes of the device endpoint and the admin API, with app as their argument. */
size_t redirect_routes(struct redirect_app *app, const struct http_route **routes);

#endif
