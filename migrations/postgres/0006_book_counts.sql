-- PostgreSQL twin of ../0006_book_counts.sql, on purpose without its
-- column. A count in the user's row would be written by every create of
-- that user's, and concurrent SERIALIZABLE transactions that write one row
-- abort all but the first: a user's burst of creates would turn into
-- retries and 503s. PostgreSQL counts a user's books at read time, over
-- books_owner, as before. Nothing changes here; the step keeps the two
-- lists of steps the same.
SELECT 1;
