-- PostgreSQL twin of ../0005_search.sql: substring search from trigram
-- indexes. pg_trgm's GIN operator class serves LIKE '%...%' on the folded
-- title_key and author_key, the very condition the service runs on both
-- databases; PostgreSQL checks each book the index finds against it, and
-- keeps the indexes in step with the table itself.
--
-- pg_trgm is a trusted extension (PostgreSQL 13 on): a role with CREATE on
-- the database may create it; with an older server, or without that right,
-- a superuser must create it once (CREATE EXTENSION pg_trgm) before this
-- step runs. It may live in any schema: the operator class is named with
-- its schema, found in the catalog, so it need not be on the search_path.
--
-- fastupdate is off: each create writes its trigrams into the indexes at
-- once. With it on they would wait in a pending list, up to 4 MB, that every
-- search reads whole and that the create which fills it must merge.
-- Building the indexes over the books already there took 15 s for a
-- million books on 2 cores (docs/scale.md); the start logs the step.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

DO $$
DECLARE
	ops text := (SELECT quote_ident(n.nspname) || '.gin_trgm_ops'
		FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE e.extname = 'pg_trgm');
BEGIN
	EXECUTE 'CREATE INDEX books_title_search ON books USING gin (title_key ' || ops || ') WITH (fastupdate = off)';
	EXECUTE 'CREATE INDEX books_author_search ON books USING gin (author_key ' || ops || ') WITH (fastupdate = off)';
END
$$;
