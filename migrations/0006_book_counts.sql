-- Each user's number of books, kept in their row, for GET /admin/users:
-- counting a user's books reads one index entry per book, which for a user
-- who imported a catalog of a hundred thousand books is several
-- milliseconds per listed user. The triggers keep the count exact in the
-- transaction that adds, deletes or moves a book, whoever runs it; SQLite
-- has one writer, so the user's row is no point of contention. (PostgreSQL
-- counts at read time instead: see postgres/0006_book_counts.sql.)

ALTER TABLE users ADD COLUMN book_count INTEGER NOT NULL DEFAULT 0;

UPDATE users SET book_count = (SELECT COUNT(*) FROM books WHERE owner_id = users.id);

CREATE TRIGGER books_count_insert AFTER INSERT ON books
BEGIN
	UPDATE users SET book_count = book_count + 1 WHERE id = NEW.owner_id;
END;

CREATE TRIGGER books_count_delete AFTER DELETE ON books
BEGIN
	UPDATE users SET book_count = book_count - 1 WHERE id = OLD.owner_id;
END;

CREATE TRIGGER books_count_owner AFTER UPDATE OF owner_id ON books
WHEN NEW.owner_id IS NOT OLD.owner_id
BEGIN
	UPDATE users SET book_count = book_count - 1 WHERE id = OLD.owner_id;
	UPDATE users SET book_count = book_count + 1 WHERE id = NEW.owner_id;
END;
