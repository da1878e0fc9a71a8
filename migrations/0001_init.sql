-- Users, their login sessions and refresh tokens, and books.
-- Case-insensitive uniqueness lives in *_key columns computed by the
-- service (a Unicode case fold), so the same schema works on any SQL database.

CREATE TABLE users (
	id            INTEGER PRIMARY KEY,
	public_id     TEXT    NOT NULL UNIQUE,
	username      TEXT    NOT NULL,
	username_key  TEXT    NOT NULL UNIQUE,
	password_hash TEXT    NOT NULL,
	admin         INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
	id         TEXT    PRIMARY KEY,
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE refresh_tokens (
	hash       BLOB    PRIMARY KEY,
	session_id TEXT    NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER
);
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);

CREATE TABLE books (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	title      TEXT    NOT NULL,
	title_key  TEXT    NOT NULL UNIQUE,
	author     TEXT    NOT NULL,
	author_key TEXT    NOT NULL,
	isbn       TEXT,
	owner_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE INDEX books_owner  ON books(owner_id, id);
CREATE INDEX books_author ON books(author_key, id);
