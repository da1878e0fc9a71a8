-- One row that GET /readyz rewrites on every probe, so that readiness proves
-- the database takes a committed write (a full disk or a read-only file fails
-- it), not only that it answers a read. The service upserts the row, so the
-- table may start empty.

CREATE TABLE health (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	probes INTEGER NOT NULL
);
