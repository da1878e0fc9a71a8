-- Each book as the API writes it ({"id":...}), kept in its row, so that a
-- list reads one column a book rather than seven. The service writes doc in
-- the same transaction as the columns it is made of. Any other change to
-- those columns, or to the owner's username, clears it (the triggers), and
-- a page with a book whose doc is NULL is answered from the columns instead:
-- doc is never stale, only missing. The service fills missing docs when it
-- starts; books_doc_missing finds them without reading the table.

ALTER TABLE books ADD COLUMN doc TEXT;

CREATE INDEX books_doc_missing ON books(id) WHERE doc IS NULL;

CREATE TRIGGER books_doc_stale
AFTER UPDATE OF id, title, author, isbn, owner_id, created_at, updated_at ON books
WHEN NEW.doc IS OLD.doc
BEGIN
	UPDATE books SET doc = NULL WHERE id = NEW.id;
END;

CREATE TRIGGER users_doc_stale
AFTER UPDATE OF username ON users
WHEN NEW.username IS NOT OLD.username
BEGIN
	UPDATE books SET doc = NULL WHERE owner_id = NEW.id;
END;
