/*
 * The cloud's admin API (docs/protocol.md section 4): authentication,
 * dispatch, organisations, sites and their onboarding settings. Devices,
 * inventory and claims are in admin_devices.c. Every body field is checked
 * before anything is written; secrets are sealed before they are stored and
 * never shown again.
 */
#include "cloud.h"

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rfc3339.h"
#include "server/admin_tokens.h"
#include "server/api_path.h"
#include "server/audit.h"
#include "server/http_server.h"
#include "server/masterkey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const token_roles[] = {"admin"};

/* The "name" field of a creation body; replies 400 and returns NULL when bad. */
static const char *
body_name(struct http_ctx *ctx, json_t *body, const char *what)
{
	const char *name = NULL;

	if (json_get_string(body, "name", true, CLOUD_NAME_MAX, &name) == -1 ||
	    cloud_check_name(what, name) == -1) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		return NULL;
	}
	return name;
}

/* GET /v1/admin/organizations: every organisation, by name. */
static void
list_orgs(struct http_ctx *ctx, struct store *st)
{
	struct store_result *res = NULL;
	char when[RFC3339_LEN + 1];
	json_t *list;

	if (store_exec(st, "SELECT name, created FROM organizations ORDER BY name", NULL, 0,
		       &res) == -1) {
		cloud_internal(ctx, "listing organisations");
		return;
	}
	list = json_array();
	for (size_t i = 0; i < store_rows(res); i++) {
		rfc3339_format((time_t)strtoll(store_value(res, i, 1), NULL, 10), when);
		json_array_append_new(list, json_pack("{s:s,s:s}", "name", store_value(res, i, 0),
						      "created", when));
	}
	http_reply_json(ctx, 200, json_pack("{s:o}", "organizations", list));
	store_result_free(res);
}

/* POST /v1/admin/organizations {"name"}: checked, then one INSERT (409 when taken). */
static void
add_org(struct http_ctx *ctx, struct store *st, const struct admin_who *who)
{
	char now[CLOUD_NUM_LEN], when[RFC3339_LEN + 1];
	struct store_result *res = NULL;
	const char *name, *params[2];
	json_t *body = NULL;
	time_t t = time(NULL);

	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	if ((name = body_name(ctx, body, "organisation")) == NULL)
		goto out;
	cloud_num((long long)t, now);
	params[0] = name;
	params[1] = now;
	if (store_exec(st,
		       "INSERT INTO organizations (name, created) VALUES ($1, $2) "
		       "ON CONFLICT DO NOTHING",
		       params, 2, &res) == -1) {
		cloud_internal(ctx, "adding an organisation");
	} else if (store_changes(res) == 0) {
		http_reply_error(ctx, 409, "exists", "organisation '%s' exists already", name);
	} else {
		log_info("organisation '%s' added by '%s'", name, who->name);
		rfc3339_format(t, when);
		http_reply_json(ctx, 201, json_pack("{s:s,s:s}", "name", name, "created", when));
	}
out:
	store_result_free(res);
	json_decref(body);
}

/* DELETE /v1/admin/organizations/ORG (org checked by the caller): only one without sites. */
static void
delete_org(struct http_ctx *ctx, struct store *st, const struct admin_who *who, const char *org)
{
	const char *params[1] = {org};
	struct store_result *res = NULL;
	int found;

	/* One statement, so a site added meanwhile keeps its organisation. */
	if (store_exec(st,
		       "DELETE FROM organizations WHERE name = $1 AND NOT EXISTS "
		       "(SELECT 1 FROM sites WHERE org = $1)",
		       params, 1, &res) == -1) {
		cloud_internal(ctx, "deleting an organisation");
	} else if (store_changes(res) == 1) {
		log_info("organisation '%s' deleted by '%s'", org, who->name);
		http_reply_json(ctx, 200, json_pack("{s:s}", "deleted", org));
	} else if ((found = cloud_exists(st, "SELECT 1 FROM organizations WHERE name = $1", params,
					 1)) == -1) {
		cloud_internal(ctx, "deleting an organisation");
	} else if (found) {
		http_reply_error(ctx, 409, "in-use",
				 "organisation '%s' has sites; delete them first", org);
	} else {
		http_reply_error(ctx, 404, "not-found", "no organisation '%s'", org);
	}
	store_result_free(res);
}

#define SITE_COLUMNS                                                                               \
	"s.org, s.name, s.conductor_addresses, s.conductor_port, "                                 \
	"CASE WHEN s.psk_sealed IS NULL THEN 0 ELSE 1 END, s.conductor_ca_pem, "                   \
	"(SELECT COUNT(*) FROM devices d WHERE d.org = s.org AND d.site = s.name), "               \
	"s.psk_updated"

/* One SITE row (SITE_COLUMNS order) as the API shows it: the secret only as psk_set. */
static json_t *
site_json(const struct store_result *res, size_t row)
{
	const char *addrs = store_value(res, row, 2), *port = store_value(res, row, 3);
	json_t *a = addrs ? json_loads(addrs, 0, NULL) : NULL;
	const char *psk_updated = store_value(res, row, 7);
	bool psk = strcmp(store_value(res, row, 4), "1") == 0;
	char when[RFC3339_LEN + 1] = "";

	if (psk && psk_updated != NULL)
		rfc3339_format((time_t)strtoll(psk_updated, NULL, 10), when);
	return json_pack("{s:s,s:s,s:o,s:o,s:b,s:s?,s:s?,s:I,s:b}", "organization",
			 store_value(res, row, 0), "name", store_value(res, row, 1),
			 "conductor_addresses", a ? a : json_array(), "conductor_port",
			 port ? json_integer(strtol(port, NULL, 10)) : json_null(), "psk_set", psk,
			 "psk_updated", when[0] ? when : NULL, "conductor_ca_pem",
			 store_value(res, row, 5), "devices",
			 (json_int_t)strtoll(store_value(res, row, 6), NULL, 10), "ready",
			 a != NULL && port != NULL && psk);
}

/* GET sites of org, or the one site (site != NULL); replies. */
static void
get_sites(struct http_ctx *ctx, struct store *st, const char *org, const char *site, int status)
{
	const char *params[2] = {org, site};
	struct store_result *res = NULL;
	json_t *list;
	int found;

	if (store_exec(
		    st,
		    site ? "SELECT " SITE_COLUMNS " FROM sites s WHERE s.org = $1 AND s.name = $2"
			 : "SELECT " SITE_COLUMNS " FROM sites s WHERE s.org = $1 ORDER BY s.name",
		    params, site ? 2 : 1, &res) == -1) {
		cloud_internal(ctx, "reading sites");
	} else if (site != NULL && store_rows(res) == 1) {
		http_reply_json(ctx, status, site_json(res, 0));
	} else if (site != NULL) {
		http_reply_error(ctx, 404, "not-found", "no site '%s' in organisation '%s'", site,
				 org);
	} else if ((found = cloud_exists(st, "SELECT 1 FROM organizations WHERE name = $1", params,
					 1)) != 1) {
		if (found == -1)
			cloud_internal(ctx, "reading sites");
		else
			http_reply_error(ctx, 404, "not-found", "no organisation '%s'", org);
	} else {
		list = json_array();
		for (size_t i = 0; i < store_rows(res); i++)
			json_array_append_new(list, site_json(res, i));
		http_reply_json(ctx, 200, json_pack("{s:o}", "sites", list));
	}
	store_result_free(res);
}

/* POST .../sites {"name"}: the organisation must exist; one INSERT (409 when taken). */
static void
add_site(struct http_ctx *ctx, struct store *st, const struct admin_who *who, const char *org)
{
	char now[CLOUD_NUM_LEN];
	struct store_result *res = NULL;
	const char *name, *params[3];
	json_t *body = NULL;
	int found;

	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	if ((name = body_name(ctx, body, "site")) == NULL)
		goto out;
	params[0] = org;
	params[1] = name;
	params[2] = now;
	cloud_num((long long)time(NULL), now);
	if ((found = cloud_exists(st, "SELECT 1 FROM organizations WHERE name = $1", params, 1)) !=
	    1) {
		if (found == -1)
			cloud_internal(ctx, "adding a site");
		else
			http_reply_error(ctx, 404, "not-found", "no organisation '%s'", org);
	} else if (store_exec(st,
			      "INSERT INTO sites (org, name, created) VALUES ($1, $2, $3) "
			      "ON CONFLICT DO NOTHING",
			      params, 3, &res) == -1) {
		cloud_internal(ctx, "adding a site");
	} else if (store_changes(res) == 0) {
		http_reply_error(ctx, 409, "exists", "site '%s' exists already in '%s'", name, org);
	} else {
		log_info("site '%s/%s' added by '%s'", org, name, who->name);
		get_sites(ctx, st, org, name, 201);
	}
out:
	store_result_free(res);
	json_decref(body);
}

/* DELETE .../sites/SITE (names checked by the caller): only a site without claimed devices. */
static void
delete_site(struct http_ctx *ctx, struct store *st, const struct admin_who *who, const char *org,
	    const char *site)
{
	const char *params[2] = {org, site};
	struct store_result *res = NULL;
	int found;

	if (store_exec(st,
		       "DELETE FROM sites WHERE org = $1 AND name = $2 AND NOT EXISTS "
		       "(SELECT 1 FROM devices WHERE org = $1 AND site = $2)",
		       params, 2, &res) == -1) {
		cloud_internal(ctx, "deleting a site");
	} else if (store_changes(res) == 1) {
		log_info("site '%s/%s' deleted by '%s'", org, site, who->name);
		http_reply_json(ctx, 200,
				json_pack("{s:s,s:s}", "organization", org, "deleted", site));
	} else if ((found = cloud_exists(st, "SELECT 1 FROM sites WHERE org = $1 AND name = $2",
					 params, 2)) == -1) {
		cloud_internal(ctx, "deleting a site");
	} else if (found) {
		http_reply_error(ctx, 409, "in-use", "site '%s/%s' has claimed devices", org, site);
	} else {
		http_reply_error(ctx, 404, "not-found", "no site '%s' in organisation '%s'", site,
				 org);
	}
	store_result_free(res);
}

/* The settings body's addresses as compact JSON text (malloc'd); -1 when bad. */
static int
settings_addresses(json_t *v, char **out)
{
	size_t i, n = json_array_size(v);
	json_t *a;

	if (!json_is_array(v) || n == 0 || n > CLOUD_CONDUCTORS_MAX)
		return or_error("field 'conductor_addresses' must be an array of 1 to %d hosts",
				CLOUD_CONDUCTORS_MAX);
	json_array_foreach(v, i, a)
	{
		if (!json_is_string(a) || json_string_length(a) > CLOUD_HOST_MAX ||
		    strlen(json_string_value(a)) != json_string_length(a))
			return or_error("conductor_addresses[%zu] must be a host name or address",
					i);
		if (cloud_check_host(json_string_value(a)) == -1)
			return or_error_prefix("conductor_addresses[%zu]", i);
	}
	*out = json_dumps(v, JSON_COMPACT);
	return *out ? 0 : or_error("out of memory");
}

/*
 * PUT .../sites/SITE/settings: the fields given replace the stored ones. Read,
 * merged and written back in one transaction, so a concurrent change is not
 * half-applied.
 */
static void
put_settings(struct http_ctx *ctx, struct cloud_app *app, struct store *st,
	     const struct admin_who *who, const char *org, const char *site)
{
	const char *params[7] = {org, site, NULL, NULL, NULL, NULL, NULL}, *psk = NULL, *pem = NULL;
	char *addrs = NULL, *sealed = NULL, port[CLOUD_NUM_LEN], now[CLOUD_NUM_LEN],
	     context[2 * CLOUD_NAME_MAX + 8];
	struct store_result *res = NULL;
	json_t *body = NULL, *v;
	json_int_t p = 0;
	bool began = false;

	if (http_ctx_json_body(ctx, &body) == -1)
		return;
	if (((v = json_object_get(body, "conductor_addresses")) != NULL &&
	     settings_addresses(v, &addrs) == -1) ||
	    json_get_int(body, "conductor_port", false, 1, 65535, &p) == -1 ||
	    json_get_string(body, "psk", false, CLOUD_PSK_MAX, &psk) == -1 ||
	    (psk != NULL && cloud_check_psk(psk) == -1) ||
	    json_get_string(body, "conductor_ca_pem", false, CLOUD_PEM_MAX, &pem) == -1 ||
	    (pem != NULL && cloud_check_pem("conductor_ca_pem", pem) == -1)) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
		goto out;
	}
	if (v == NULL && p == 0 && psk == NULL &&
	    json_object_get(body, "conductor_ca_pem") == NULL) {
		http_reply_error(ctx, 400, "bad-request",
				 "no setting given: conductor_addresses, conductor_port, psk or "
				 "conductor_ca_pem");
		goto out;
	}
	snprintf(context, sizeof(context), "psk:%s/%s", org, site);
	if (psk != NULL && masterkey_seal(app->mk, context, psk, strlen(psk), &sealed) == -1) {
		cloud_internal(ctx, "sealing a site secret");
		goto out;
	}
	if (store_begin(st) == -1)
		goto fail;
	began = true;
	if (store_exec(st,
		       "SELECT conductor_addresses, conductor_port, psk_sealed, conductor_ca_pem "
		       "FROM sites WHERE org = $1 AND name = $2",
		       params, 2, &res) == -1)
		goto fail;
	if (store_rows(res) != 1) {
		store_rollback(st);
		began = false;
		http_reply_error(ctx, 404, "not-found", "no site '%s' in organisation '%s'", site,
				 org);
		goto out;
	}
	cloud_num((long long)p, port);
	params[2] = addrs ? addrs : store_value(res, 0, 0);
	params[3] = p ? port : store_value(res, 0, 1);
	params[4] = sealed ? sealed : store_value(res, 0, 2);
	/* conductor_ca_pem: given replaces, null removes, absent keeps. */
	params[5] = pem ? pem
		    : json_is_null(json_object_get(body, "conductor_ca_pem"))
			    ? NULL
			    : store_value(res, 0, 3);
	/* When the secret was set: the one thing about it the API shows, besides psk_set. */
	cloud_num((long long)time(NULL), now);
	params[6] = psk != NULL ? now : NULL;
	if (store_exec(st,
		       "UPDATE sites SET conductor_addresses = $3, conductor_port = $4, "
		       "psk_sealed = $5, conductor_ca_pem = $6, "
		       "psk_updated = COALESCE(CAST($7 AS BIGINT), psk_updated) "
		       "WHERE org = $1 AND name = $2",
		       params, 7, NULL) == -1 ||
	    store_commit(st) == -1)
		goto fail;
	began = false;
	log_info("site '%s/%s' settings changed by '%s':%s%s%s%s", org, site, who->name,
		 addrs ? " conductor addresses" : "", p ? " port" : "", psk ? " secret" : "",
		 json_object_get(body, "conductor_ca_pem") ? " root CA" : "");
	get_sites(ctx, st, org, site, 200);
	goto out;
fail:
	cloud_internal(ctx, "changing site settings");
out:
	if (began)
		store_rollback(st);
	store_result_free(res);
	free(addrs);
	free(sealed);
	json_decref(body);
}

/* /v1/admin/organizations...: the organisation and site endpoints. */
static void
organizations(struct http_ctx *ctx, struct cloud_app *app, struct store *st,
	      const struct admin_who *who, const struct api_path *p)
{
	const char *method = http_ctx_method(ctx);
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0,
	     del = strcmp(method, "DELETE") == 0, put = strcmp(method, "PUT") == 0;

	if ((p->n >= 2 && cloud_check_name("organisation", p->seg[1]) == -1) ||
	    (p->n >= 4 && cloud_check_name("site", p->seg[3]) == -1)) {
		http_reply_error(ctx, 400, "bad-request", "%s", or_errmsg());
	} else if (api_path_is(p, "organizations") && (get || post)) {
		if (get)
			list_orgs(ctx, st);
		else
			add_org(ctx, st, who);
	} else if (api_path_is(p, "organizations/*") && del) {
		delete_org(ctx, st, who, p->seg[1]);
	} else if (api_path_is(p, "organizations/*/sites") && (get || post)) {
		if (get)
			get_sites(ctx, st, p->seg[1], NULL, 200);
		else
			add_site(ctx, st, who, p->seg[1]);
	} else if (api_path_is(p, "organizations/*/sites/*") && (get || del)) {
		if (get)
			get_sites(ctx, st, p->seg[1], p->seg[3], 200);
		else
			delete_site(ctx, st, who, p->seg[1], p->seg[3]);
	} else if (api_path_is(p, "organizations/*/sites/*/settings") && put) {
		put_settings(ctx, app, st, who, p->seg[1], p->seg[3]);
	} else if (api_path_is(p, "organizations") || api_path_is(p, "organizations/*") ||
		   api_path_is(p, "organizations/*/sites") ||
		   api_path_is(p, "organizations/*/sites/*") ||
		   api_path_is(p, "organizations/*/sites/*/settings")) {
		http_reply_error(ctx, 405, "method-not-allowed", "%s is not allowed here", method);
	} else {
		http_reply_error(ctx, 404, "not-found", "no such admin endpoint");
	}
}

/* Serves an authenticated admin request by its path. */
static void
dispatch(struct http_ctx *ctx, struct cloud_app *app, struct store *st, const struct admin_who *who)
{
	struct api_path p;

	if (api_path_split(http_ctx_path(ctx), "/v1/admin/", &p) == -1 || p.n == 0) {
		http_reply_error(ctx, 404, "not-found", "no such admin endpoint");
		return;
	}
	if (strcmp(p.seg[0], "tokens") == 0 && p.n <= 2)
		admin_tokens_serve(ctx, st, who, p.n == 2 ? p.seg[1] : NULL, token_roles, 1);
	else if (strcmp(p.seg[0], "organizations") == 0)
		organizations(ctx, app, st, who, &p);
	else if (strcmp(p.seg[0], "fleet") == 0 && p.n == 1)
		cloud_admin_fleet(ctx, app, st);
	else if (strcmp(p.seg[0], "alarms") == 0)
		cloud_admin_alarms(ctx, st, who, &p);
	else if (strcmp(p.seg[0], "audit") == 0 && p.n == 1 &&
		 strcmp(http_ctx_method(ctx), "GET") == 0)
		audit_serve(ctx, st);
	else if (api_path_is(&p, "assertion-cert"))
		cloud_admin_assertion_cert(ctx, app, st);
	else
		cloud_admin_devices(ctx, app, st, who, &p);
}

/*
 * Every /v1/admin/ request: the admin token first, then the path decides (tokens,
 * organisations, devices).
 */
void
cloud_admin(struct http_ctx *ctx, void *arg)
{
	struct cloud_app *app = arg;
	struct store *st = http_ctx_thread_state(ctx);
	struct admin_who who;

	if (audit_request_begin(ctx, st) == -1)
		return;
	/* The dashboard's session stands for its admin token; anything else needs the token. */
	if (http_ctx_bearer(ctx) == NULL) {
		int in = cloud_ui_session(ctx, st, &who, NULL);

		if (in == 0)
			in = admin_authenticate(ctx, st, &who) == 0;
		if (in != 1) {
			audit_request_end(ctx, st, who.name[0] ? &who : NULL);
			return;
		}
	} else if (admin_authenticate(ctx, st, &who) == -1) {
		audit_request_end(ctx, st, NULL);
		return;
	}
	dispatch(ctx, app, st, &who);
	audit_request_end(ctx, st, &who);
}
