-- PostgreSQL twin of ../0003_health.sql: the row GET /readyz rewrites.

CREATE TABLE health (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	probes BIGINT  NOT NULL
);
