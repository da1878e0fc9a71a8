-- Failed logins, for throttling by username and by client address over a
-- sliding window. Rows older than the window are pruned as new ones arrive.

CREATE TABLE login_failures (
	id           INTEGER PRIMARY KEY,
	username_key TEXT,
	address      TEXT    NOT NULL,
	at           INTEGER NOT NULL
);
CREATE INDEX login_failures_user    ON login_failures(username_key, at);
CREATE INDEX login_failures_address ON login_failures(address, at);
CREATE INDEX login_failures_at      ON login_failures(at);
