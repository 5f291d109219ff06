/*
 * The cloud's database schema, as versioned migrations. Times are seconds
 * since the epoch (BIGINT), so expiry and lockout are plain comparisons on
 * both backends; booleans are INTEGER 0/1. Secrets are stored sealed under
 * the master key (masterkey.h), tokens as SHA-256.
 */
#include "cloud.h"

#include "server/admin_tokens.h"
#include "server/audit.h"

#define CLOUD_SCHEMA_1                                                                             \
	ADMIN_TOKENS_SCHEMA                                                                        \
	"CREATE TABLE organizations (name TEXT PRIMARY KEY, created BIGINT NOT NULL);"             \
	"CREATE TABLE sites (org TEXT NOT NULL, name TEXT NOT NULL, "                              \
	"conductor_addresses TEXT, conductor_port INTEGER, psk_sealed TEXT, "                      \
	"conductor_ca_pem TEXT, created BIGINT NOT NULL, PRIMARY KEY (org, name));"                \
	"CREATE TABLE devices (serial TEXT PRIMARY KEY, model TEXT NOT NULL, "                     \
	"ocra_suite TEXT NOT NULL, ocra_key_sealed TEXT NOT NULL, claim_code TEXT UNIQUE, "        \
	"org TEXT, site TEXT, stage TEXT NOT NULL, last_error TEXT, last_error_time BIGINT, "      \
	"last_seen BIGINT, failures INTEGER NOT NULL DEFAULT 0, "                                  \
	"locked_until BIGINT NOT NULL DEFAULT 0, imported BIGINT NOT NULL);"                       \
	"CREATE INDEX devices_site ON devices (org, site);"                                        \
	"CREATE TABLE challenges (id TEXT PRIMARY KEY, serial TEXT NOT NULL, "                     \
	"client_q TEXT NOT NULL, server_q TEXT NOT NULL, expires BIGINT NOT NULL, "                \
	"used INTEGER NOT NULL DEFAULT 0);"                                                        \
	"CREATE INDEX challenges_serial ON challenges (serial, expires);"                          \
	"CREATE TABLE device_tokens (hash TEXT PRIMARY KEY, serial TEXT NOT NULL, "                \
	"expires BIGINT NOT NULL);"                                                                \
	"CREATE INDEX device_tokens_serial ON device_tokens (serial, expires);"

#define EVENTS_COLUMNS                                                                             \
	"serial TEXT NOT NULL, time BIGINT NOT NULL, received BIGINT NOT NULL, "                   \
	"source TEXT NOT NULL, step TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT);"           \
	"CREATE INDEX events_serial ON events (serial, id);"

/* Issue 12: the assertion key (sealed), and the asset ID a device is known by (NULL: its serial).
 */
#define CLOUD_SCHEMA_5                                                                             \
	"CREATE TABLE assertion_keys (id INTEGER PRIMARY KEY, cert_pem TEXT NOT NULL, "            \
	"key_sealed TEXT NOT NULL, created BIGINT NOT NULL);"                                      \
	"ALTER TABLE devices ADD COLUMN asset_id TEXT;"

/* Only the events' key differs: the backends number rows each their own way. */
const struct store_migration cloud_migrations[] = {
	{1, NULL,
	 CLOUD_SCHEMA_1
	 "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, " EVENTS_COLUMNS,
	 CLOUD_SCHEMA_1 "CREATE TABLE events (id BIGSERIAL PRIMARY KEY, " EVENTS_COLUMNS},
	/*
	 * Issue 12: a challenge is bound to the TLS connection it was issued on
	 * (SHA-256 of an exporter) and ordered by issue time (microseconds), so
	 * a flood evicts the oldest; a device keeps its claim secret, sealed.
	 * Open challenges of the old schema cannot be bound: they go.
	 */
	{2,
	 "DELETE FROM challenges;"
	 "ALTER TABLE challenges ADD COLUMN session_hash TEXT NOT NULL DEFAULT '';"
	 "ALTER TABLE challenges ADD COLUMN issued BIGINT NOT NULL DEFAULT 0;"
	 "ALTER TABLE devices ADD COLUMN claim_secret_sealed TEXT;",
	 NULL, NULL},
	/* The dashboard's sessions (the cookie's SHA-256, never the cookie), and when a site's
	 * secret was set. */
	{3,
	 "CREATE TABLE ui_sessions (hash TEXT PRIMARY KEY, name TEXT NOT NULL, "
	 "role TEXT NOT NULL, csrf TEXT NOT NULL, created BIGINT NOT NULL, "
	 "last_used BIGINT NOT NULL, expires BIGINT NOT NULL);"
	 "CREATE INDEX ui_sessions_expires ON ui_sessions (expires);"
	 "ALTER TABLE sites ADD COLUMN psk_updated BIGINT;",
	 NULL, NULL},
	/* The admin API's audit trail (lib/server/audit.h). */
	{4, NULL, AUDIT_SCHEMA_SQLITE, AUDIT_SCHEMA_POSTGRES},
	{5, CLOUD_SCHEMA_5, NULL, NULL},
	/*
	 * Issue 14: an operator's marks on an alarm a device raised, by the id of the event
	 * that raised it: acknowledged (it stays listed) or cleared (it moves to the history).
	 */
	{6,
	 "CREATE TABLE alarm_marks (event_id BIGINT PRIMARY KEY, serial TEXT NOT NULL, "
	 "severity TEXT NOT NULL, alarm TEXT NOT NULL, since BIGINT NOT NULL, acked BIGINT, "
	 "acked_by TEXT, cleared BIGINT, cleared_by TEXT)",
	 NULL, NULL},
	/*
	 * A device's open challenges, for the eviction at every auth/start
	 * (device_auth.c): without it that scanned every challenge the device
	 * was issued in the last ten minutes, used ones included.
	 */
	{7, "CREATE INDEX challenges_open ON challenges (serial, issued) WHERE used = 0;", NULL,
	 NULL},
	/*
	 * Challenges are now kept in the memory of the process that issued them
	 * (challenges.h): bound to their TLS connection, no other instance can use
	 * them, and writing them was a write transaction per auth/start. The table
	 * stays, unused, for this release: during a rolling upgrade
	 * (docs/operations.md) the instances not yet restarted still write it.
	 * A later release drops it.
	 */
};

const size_t cloud_n_migrations = sizeof(cloud_migrations) / sizeof(cloud_migrations[0]);
