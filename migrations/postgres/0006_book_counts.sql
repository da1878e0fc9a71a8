-- PostgreSQL twin of ../0006_book_counts.sql, on purpose without its
-- column. A count in the user's row would be written by every create of
-- that user's, so a user's concurrent creates, from every instance, would
-- wait for one another on that row's lock. PostgreSQL counts a user's books
-- at read time, over books_owner, as before. Nothing changes here; the step keeps the two
-- lists of steps the same.
SELECT 1;
