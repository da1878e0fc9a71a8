-- PostgreSQL twin of ../0009_search_insert.sql, which moves the writing of
-- a new book's entry in SQLite's search index, and of its owner's book
-- count, from triggers to the service. PostgreSQL's trigram indexes are
-- kept by the table itself, and it counts books when it reads them. Nothing
-- changes here; the step keeps the two lists of steps the same.
SELECT 1;
