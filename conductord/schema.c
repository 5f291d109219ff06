/*
 * The conductor's database schema, as store migrations (SQLite or
 * PostgreSQL, the same tables). Times are seconds since the epoch (BIGINT).
 * Nothing secret is stored in clear: pre-shared secrets are sealed under
 * the master key, admin tokens and session tokens are kept as SHA-256.
 */
#include "conductor.h"

#include "core/error.h"
#include "server/audit.h"
#include "server/store.h"

/* The tables every backend shares; only the id columns differ. */
#define TABLES(SERIAL)                                                                             \
	"CREATE TABLE routers ("                                                                   \
	" name TEXT PRIMARY KEY,"                                                                  \
	" asset_id TEXT NOT NULL UNIQUE,"                                                          \
	" config TEXT NOT NULL,"                                                                   \
	" config_sha256 TEXT NOT NULL,"                                                            \
	" config_acked TEXT,"                                                                      \
	" progress TEXT NOT NULL DEFAULT 'pending',"                                               \
	" resume TEXT,"                                                                            \
	" device_key TEXT,"                                                                        \
	" polling INTEGER NOT NULL DEFAULT 0,"                                                     \
	" last_contact BIGINT NOT NULL DEFAULT 0,"                                                 \
	" last_error TEXT,"                                                                        \
	" prod_addresses TEXT,"                                                                    \
	" prod_psk TEXT,"                                                                          \
	" prod_ca TEXT,"                                                                           \
	" created BIGINT NOT NULL);"                                                               \
	"CREATE TABLE foreign_assets ("                                                            \
	" asset_id TEXT NOT NULL,"                                                                 \
	" device_key TEXT NOT NULL,"                                                               \
	" state TEXT NOT NULL,"                                                                    \
	" router TEXT,"                                                                            \
	" peer TEXT,"                                                                              \
	" reason TEXT,"                                                                            \
	" first_seen BIGINT NOT NULL,"                                                             \
	" last_seen BIGINT NOT NULL,"                                                              \
	" attempts INTEGER NOT NULL DEFAULT 1,"                                                    \
	" PRIMARY KEY (asset_id, device_key));"                                                    \
	"CREATE TABLE psks ("                                                                      \
	" id TEXT PRIMARY KEY,"                                                                    \
	" name TEXT NOT NULL UNIQUE,"                                                              \
	" sealed TEXT NOT NULL,"                                                                   \
	" created BIGINT NOT NULL);"                                                               \
	"CREATE TABLE nonces ("                                                                    \
	" nonce TEXT PRIMARY KEY,"                                                                 \
	" subject TEXT NOT NULL,"                                                                  \
	" expires BIGINT NOT NULL);"                                                               \
	"CREATE INDEX nonces_subject ON nonces (subject);"                                         \
	"CREATE TABLE sessions ("                                                                  \
	" token_hash TEXT PRIMARY KEY,"                                                            \
	" router TEXT NOT NULL REFERENCES routers (name),"                                         \
	" binding TEXT NOT NULL,"                                                                  \
	" expires BIGINT NOT NULL);"                                                               \
	"CREATE INDEX sessions_router ON sessions (router);"                                       \
	"CREATE TABLE commands ("                                                                  \
	" id " SERIAL ","                                                                          \
	" router TEXT NOT NULL REFERENCES routers (name),"                                         \
	" kind TEXT NOT NULL,"                                                                     \
	" payload TEXT NOT NULL,"                                                                  \
	" state TEXT NOT NULL DEFAULT 'queued',"                                                   \
	" result TEXT,"                                                                            \
	" created BIGINT NOT NULL,"                                                                \
	" acked BIGINT);"                                                                          \
	"CREATE INDEX commands_router ON commands (router, state);"                                \
	"CREATE TABLE certificates ("                                                              \
	" serial TEXT PRIMARY KEY,"                                                                \
	" router TEXT NOT NULL REFERENCES routers (name),"                                         \
	" command_id BIGINT,"                                                                      \
	" key_id TEXT NOT NULL,"                                                                   \
	" sha256 TEXT NOT NULL,"                                                                   \
	" not_before BIGINT NOT NULL,"                                                             \
	" not_after BIGINT NOT NULL,"                                                              \
	" pem TEXT NOT NULL,"                                                                      \
	" issued BIGINT NOT NULL);"                                                                \
	"CREATE INDEX certificates_router ON certificates (router);"                               \
	"CREATE TABLE migrations ("                                                                \
	" id " SERIAL ","                                                                          \
	" router TEXT NOT NULL REFERENCES routers (name),"                                         \
	" addresses TEXT NOT NULL,"                                                                \
	" state TEXT NOT NULL,"                                                                    \
	" reason TEXT,"                                                                            \
	" started BIGINT NOT NULL,"                                                                \
	" finished BIGINT);"                                                                       \
	"CREATE TABLE alarms ("                                                                    \
	" id " SERIAL ","                                                                          \
	" severity TEXT NOT NULL,"                                                                 \
	" kind TEXT NOT NULL,"                                                                     \
	" subject TEXT NOT NULL,"                                                                  \
	" message TEXT NOT NULL,"                                                                  \
	" raised BIGINT NOT NULL,"                                                                 \
	" last BIGINT NOT NULL,"                                                                   \
	" count INTEGER NOT NULL DEFAULT 1,"                                                       \
	" UNIQUE (kind, subject));"                                                                \
	"CREATE TABLE events ("                                                                    \
	" id " SERIAL ","                                                                          \
	" router TEXT NOT NULL REFERENCES routers (name),"                                         \
	" step TEXT NOT NULL,"                                                                     \
	" outcome TEXT NOT NULL,"                                                                  \
	" reason TEXT,"                                                                            \
	" at BIGINT NOT NULL,"                                                                     \
	" received BIGINT NOT NULL);"                                                              \
	"CREATE INDEX events_router ON events (router, id);"                                       \
	"CREATE TABLE admin_tokens ("                                                              \
	" hash TEXT PRIMARY KEY,"                                                                  \
	" created BIGINT NOT NULL)"

static const struct store_migration migrations[] = {
	{1, NULL, TABLES("INTEGER PRIMARY KEY AUTOINCREMENT"), TABLES("BIGSERIAL PRIMARY KEY")},
	/* Issue 12: hello nonces in the order issued (microseconds): the oldest are evicted. */
	{2, "ALTER TABLE nonces ADD COLUMN issued BIGINT NOT NULL DEFAULT 0;", NULL, NULL},
	/* Issue 12: the cloud's pinned assertion certificate (one row). */
	{3,
	 "CREATE TABLE cloud_trust (id INTEGER PRIMARY KEY, cert_pem TEXT NOT NULL, "
	 "required INTEGER NOT NULL, set_at BIGINT NOT NULL)",
	 NULL, NULL},
	/*
	 * A revoked secret keeps its row and seal: routers onboarded with it still prove it, it
	 * binds no new device. A router's last error names its step, so that step's success
	 * clears it.
	 */
	{4,
	 "ALTER TABLE psks ADD COLUMN revoked BIGINT;"
	 "ALTER TABLE routers ADD COLUMN last_error_step TEXT",
	 NULL, NULL},
	/* Issue 14: the admin API's audit trail (lib/server/audit.h). */
	{5, NULL, AUDIT_SCHEMA_SQLITE, AUDIT_SCHEMA_POSTGRES},
	/*
	 * Issue 14: an operator acknowledges an alarm (it stays, marked) or clears it (it moves
	 * to the history with who and when; the same condition again raises a new alarm).
	 */
	{6,
	 "ALTER TABLE alarms ADD COLUMN acked BIGINT;"
	 "ALTER TABLE alarms ADD COLUMN acked_by TEXT;"
	 "CREATE TABLE alarm_history ("
	 " id BIGINT PRIMARY KEY,"
	 " severity TEXT NOT NULL,"
	 " kind TEXT NOT NULL,"
	 " subject TEXT NOT NULL,"
	 " message TEXT NOT NULL,"
	 " raised BIGINT NOT NULL,"
	 " last BIGINT NOT NULL,"
	 " count INTEGER NOT NULL,"
	 " acked BIGINT,"
	 " acked_by TEXT,"
	 " cleared BIGINT NOT NULL,"
	 " cleared_by TEXT NOT NULL)",
	 NULL, NULL},
};

/*
 * Opens the database and brings its schema up to date (serialised between instances by the
 * store).
 */
int
conductor_db_open(const struct conductor_settings *s, struct store **out)
{
	struct store *db = NULL;

	*out = NULL;
	if (store_open(s->database, &db) == -1)
		return or_error_prefix("conductor database");
	if (store_migrate(db, "conductor", migrations,
			  sizeof(migrations) / sizeof(migrations[0])) == -1) {
		store_close(db);
		return or_error_prefix("conductor database schema");
	}
	*out = db;
	return 0;
}
