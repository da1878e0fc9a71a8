-- The search index of 0005_search.sql, rebuilt to keep less: for each
-- trigram, only which books hold it (detail = 'none'), not where in the
-- title or author it stands. A search asks for the books holding the
-- trigrams that cover its term (an AND, not a phrase: FTS5 cannot match a
-- phrase without positions), and the service still applies the exact LIKE
-- condition to each book found; a book holding them apart is read and
-- dropped.
--
-- Positions made the list of a common trigram several times as long, and a
-- search whose trigrams are all common, though it finds nothing, reads all
-- of its lists. At a million books, "crown garden" took 17 ms as a phrase
-- of its ten trigrams, 7 ms as an AND of them over these lists, and 4 ms as
-- an AND of the four that cover it; the index takes 49 MB instead of 147 MB
-- (docs/scale.md).
--
-- Everything else is as in 0005: folded keys indexed as they are, no
-- content of its own, no column sizes. Its three triggers on books stay:
-- they name books_search, which they find again once it is made anew, in
-- this same transaction, before any book changes.

DROP TABLE books_search;

CREATE VIRTUAL TABLE books_search USING fts5(
	title_key, author_key,
	content = 'books', content_rowid = 'id', columnsize = 0, detail = 'none',
	tokenize = 'trigram case_sensitive 1'
);

INSERT INTO books_search (books_search) VALUES ('rebuild');
INSERT INTO books_search (books_search) VALUES ('optimize');
