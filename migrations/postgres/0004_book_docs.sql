-- PostgreSQL twin of ../0004_book_docs.sql: each book's answer kept in its
-- row, cleared by any change that does not write it too.

ALTER TABLE books ADD COLUMN doc TEXT;

CREATE INDEX books_doc_missing ON books(id) WHERE doc IS NULL;

CREATE FUNCTION books_doc_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.doc IS NOT DISTINCT FROM OLD.doc THEN
		NEW.doc := NULL;
	END IF;
	RETURN NEW;
END;
$$;

CREATE TRIGGER books_doc_stale
BEFORE UPDATE OF id, title, author, isbn, owner_id, created_at, updated_at ON books
FOR EACH ROW EXECUTE FUNCTION books_doc_stale();

CREATE FUNCTION users_doc_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE books SET doc = NULL WHERE owner_id = NEW.id;
	RETURN NULL;
END;
$$;

CREATE TRIGGER users_doc_stale
AFTER UPDATE OF username ON users
FOR EACH ROW WHEN (NEW.username IS DISTINCT FROM OLD.username)
EXECUTE FUNCTION users_doc_stale();
