-- PostgreSQL twin of ../0007_doc_version.sql. A constant default rewrites
-- no row here either.

ALTER TABLE books ADD COLUMN doc_version INTEGER NOT NULL DEFAULT 1;

CREATE INDEX books_doc_version ON books(doc_version);
