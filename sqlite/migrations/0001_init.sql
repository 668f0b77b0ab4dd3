-- Apps, their secrets, admin tokens and access-token signing keys.
-- Times are Unix microseconds (UTC). Secret and admin tokens are stored only
-- as their SHA-256; signing keys only sealed by the key-encryption key.
CREATE TABLE apps (
	id                  TEXT PRIMARY KEY,
	name                TEXT NOT NULL,
	public_token        TEXT NOT NULL UNIQUE,
	access_token_ttl_ms INTEGER NOT NULL DEFAULT 0,
	created_at          INTEGER NOT NULL,
	revoked_at          INTEGER
) STRICT;

CREATE TABLE app_origins (
	origin TEXT NOT NULL,
	app_id TEXT NOT NULL REFERENCES apps(id),
	PRIMARY KEY (origin, app_id)
) STRICT;
CREATE INDEX app_origins_app ON app_origins(app_id);

CREATE TABLE secrets (
	id           TEXT PRIMARY KEY,
	app_id       TEXT NOT NULL REFERENCES apps(id),
	name         TEXT NOT NULL,
	hash         BLOB NOT NULL UNIQUE,
	created_at   INTEGER NOT NULL,
	last_used_at INTEGER,
	revoked_at   INTEGER
) STRICT;
CREATE INDEX secrets_app ON secrets(app_id, created_at);

CREATE TABLE admin_tokens (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	hash         BLOB NOT NULL UNIQUE,
	created_at   INTEGER NOT NULL,
	last_used_at INTEGER,
	revoked_at   INTEGER
) STRICT;

CREATE TABLE signing_keys (
	id             TEXT PRIMARY KEY,
	public_key     BLOB NOT NULL,
	sealed_private BLOB NOT NULL,
	created_at     INTEGER NOT NULL,
	retired_at     INTEGER
) STRICT;
