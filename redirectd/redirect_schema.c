/*
 * The redirector's database schema, as versioned migrations. Portable SQL:
 * the same statements run on SQLite and on PostgreSQL.
 */
#include "redirect.h"

#include "server/admin_tokens.h"
#include "server/audit.h"
#include "server/store.h"

const struct store_migration redirect_migrations[] = {
	{1,
	 ADMIN_TOKENS_SCHEMA
	 "CREATE TABLE claims (serial TEXT PRIMARY KEY, cloud_url TEXT NOT NULL, "
	 "cloud_ca_pem TEXT NOT NULL, owner TEXT NOT NULL, updated BIGINT NOT NULL);"
	 "CREATE INDEX claims_owner ON claims (owner);",
	 NULL, NULL},
	/* Issue 12: devices the factory registered, by the SHA-256 of their claim secret. */
	{2,
	 "CREATE TABLE devices (serial TEXT PRIMARY KEY, claim_hash TEXT NOT NULL, "
	 "registrar TEXT NOT NULL, registered BIGINT NOT NULL);",
	 NULL, NULL},
	/* Issue 14: the admin API's audit trail (lib/server/audit.h). */
	{3, NULL, AUDIT_SCHEMA_SQLITE, AUDIT_SCHEMA_POSTGRES},
};

const size_t redirect_n_migrations = sizeof(redirect_migrations) / sizeof(redirect_migrations[0]);
