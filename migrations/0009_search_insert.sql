-- A new book's entry in the search index (0008_search_rowids.sql) and its
-- owner's book count (0006_book_counts.sql) are written by the service, in
-- the transaction that stores the book (store.createBook), no longer by
-- triggers on INSERT.
--
-- FTS5 writes the entries it holds as a segment of their own at every
-- statement that opens a statement journal, as one that runs a trigger
-- does, and at every savepoint. With triggers, each book created got a
-- segment of its own, soon merged with others: a fifth of the writer's
-- time under a flood of creates. Written directly, the entries of all the
-- creates committed together make one segment.
--
-- The triggers for deletes and for changes of id, title_key, author_key or
-- owner_id stay: they are not on the create path. Anything else that
-- inserts into books must write the entry and the count too, or rebuild
-- them, as the tests' loaders do.

DROP TRIGGER books_search_insert;
DROP TRIGGER books_count_insert;
