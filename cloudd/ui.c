/*
 * The fleet dashboard's pages (docs/dashboard.md): plain HTML, CSS and
 * JavaScript written here, built into the binary (ui_assets.c is generated
 * from cloudd/ui/ by scripts/embed-assets.py), served under /ui/ on the
 * cloud's HTTPS port. The page talks to the admin API with its session
 * cookie (ui_session.c); nothing here reads the database. Every answer
 * forbids framing, sniffing and any origin but this one.
 */
#include "cloud.h"

#include "server/http_server.h"
#include "ui_assets.h"

#include <string.h>

/* Headers every dashboard answer carries: only this origin, never in a frame. */
static void
page_headers(struct http_ctx *ctx)
{
	http_reply_header(ctx, "Content-Security-Policy",
			  "default-src 'none'; script-src 'self'; style-src 'self'; "
			  "img-src 'self'; connect-src 'self'; form-action 'self'; "
			  "base-uri 'none'; frame-ancestors 'none'");
	http_reply_header(ctx, "X-Content-Type-Options", "nosniff");
	http_reply_header(ctx, "X-Frame-Options", "DENY");
	http_reply_header(ctx, "Referrer-Policy", "no-referrer");
}

/* The built-in file called name, or NULL. */
static const struct ui_asset *
asset(const char *name)
{
	for (size_t i = 0; i < ui_n_assets; i++)
		if (strcmp(ui_assets[i].name, name) == 0)
			return &ui_assets[i];
	return NULL;
}

/* See cloud.h: /ui and /ui/ are the page, /ui/static/NAME its files, /ui/api/ the session. */
void
cloud_ui(struct http_ctx *ctx, void *arg)
{
	struct cloud_app *app = arg;
	const char *path = http_ctx_path(ctx), *method = http_ctx_method(ctx);
	const struct ui_asset *a;

	page_headers(ctx);
	if (strncmp(path, "/ui/api/", 8) == 0) {
		if (!cloud_ui_session_api(ctx, app, http_ctx_thread_state(ctx), path + 8))
			http_reply_error(ctx, 404, "not-found", "no such dashboard endpoint");
		return;
	}
	if (strcmp(method, "GET") != 0) {
		http_reply_error(ctx, 405, "method-not-allowed",
				 "dashboard pages are read with GET");
		return;
	}
	if (strcmp(path, "/ui") == 0 || strcmp(path, "/ui/") == 0)
		a = asset("index.html");
	else if (strncmp(path, "/ui/static/", 11) == 0)
		a = asset(path + 11);
	else
		a = NULL;
	if (a == NULL) {
		http_reply_error(ctx, 404, "not-found", "no such dashboard page");
		return;
	}
	http_reply_body(ctx, 200, a->type, a->data, a->len);
}
