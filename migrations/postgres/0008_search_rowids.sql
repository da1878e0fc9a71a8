-- PostgreSQL twin of ../0008_search_rowids.sql, which rebuilds SQLite's
-- FTS5 search index in a smaller form. The trigram indexes of 0005 serve
-- the LIKE condition itself and need no change. Nothing changes here; the
-- step keeps the two lists of steps the same.
SELECT 1;
