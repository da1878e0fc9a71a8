-- Substring search (q on GET /bookapi/books) from an index rather than a
-- read of every book: an FTS5 table of the trigrams of each book's folded
-- title and author (title_key, author_key). A search of 3 or more characters
-- is a phrase of its trigrams, found in the trigram lists in id order; the
-- service still applies the exact LIKE condition to each book it finds.
--
-- The keys are indexed as they are (case_sensitive 1): they hold the
-- service's Unicode case fold already, the one the LIKE condition compares,
-- so the phrase of a folded query matches exactly the keys holding it.
-- FTS5's own folding would fold again by other tables, and its diacritics
-- option would drop accents; neither may change what a search finds.
--
-- The table stores no text of its own (content = 'books'), and no column
-- sizes, which only ranking reads (columnsize = 0). The triggers keep it in
-- step with every insert, every change of id, title_key or author_key, and
-- every delete, those of a user's cascade included: a 'delete' must name the
-- values that were indexed, and only these triggers write it. (An INSERT OR
-- REPLACE into books would delete a row without its trigger, as recursive
-- triggers are off; the service never does one.) The rebuild indexes the
-- books already there, and optimize merges what it wrote into one segment:
-- FTS5 reads every segment of a term's list, and a search for a rare term
-- took about six times as long before it (100,000 books). Both took 17 s
-- for a million books on 2 cores (docs/scale.md); the start logs the step.

CREATE VIRTUAL TABLE books_search USING fts5(
	title_key, author_key,
	content = 'books', content_rowid = 'id', columnsize = 0,
	tokenize = 'trigram case_sensitive 1'
);

CREATE TRIGGER books_search_insert AFTER INSERT ON books
BEGIN
	INSERT INTO books_search (rowid, title_key, author_key) VALUES (NEW.id, NEW.title_key, NEW.author_key);
END;

CREATE TRIGGER books_search_delete AFTER DELETE ON books
BEGIN
	INSERT INTO books_search (books_search, rowid, title_key, author_key)
	VALUES ('delete', OLD.id, OLD.title_key, OLD.author_key);
END;

CREATE TRIGGER books_search_update AFTER UPDATE OF id, title_key, author_key ON books
WHEN NEW.id IS NOT OLD.id OR NEW.title_key IS NOT OLD.title_key OR NEW.author_key IS NOT OLD.author_key
BEGIN
	INSERT INTO books_search (books_search, rowid, title_key, author_key)
	VALUES ('delete', OLD.id, OLD.title_key, OLD.author_key);
	INSERT INTO books_search (rowid, title_key, author_key) VALUES (NEW.id, NEW.title_key, NEW.author_key);
END;

INSERT INTO books_search (books_search) VALUES ('rebuild');
INSERT INTO books_search (books_search) VALUES ('optimize');
