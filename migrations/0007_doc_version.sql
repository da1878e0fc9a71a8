-- The format of each book's doc (0004): the docVersion of the code that
-- wrote it. A start with a newer docVersion writes older docs again, and
-- lists read a book whose doc is in another format from its columns, so a
-- change of the JSON a book is answered in never leaves lists serving the
-- old one. The docs written before this step are format 1: adding the
-- column with that default rewrites no row.

ALTER TABLE books ADD COLUMN doc_version INTEGER NOT NULL DEFAULT 1;

CREATE INDEX books_doc_version ON books(doc_version);
