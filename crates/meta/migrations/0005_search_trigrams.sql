-- search_word (a substring of id, name or description) matched with LIKE '%w%' can use no
-- B-tree index: a page of a word that 100 of 100 000 snapshots carry walked every row of the
-- account (~100 ms), and so did its count. A trigram full-text index finds the rows holding
-- the word; the LIKE conditions stay in the query and decide exactly (the index folds case
-- like LIKE does for ASCII, and more for other letters, so it only ever finds more rows, never
-- fewer). Words shorter than three characters have no trigram and still scan.
-- The index keeps its own copy of the three columns (a few MB at 100 000 rows), keyed by the
-- snapshot's rowid, and `SqliteMeta::commit` keeps it in step in the same transaction as the
-- snapshot rows (every writer, server or CLI, goes through it). Triggers would be the natural
-- keeper, but with sqlx's bundled SQLite 3.46 any trigger from snapshots into an FTS5 table
-- created by a migration made every insert fail with "no such table: snapshots".
-- Nothing in disksnap runs VACUUM, which may renumber rowids; whoever does must refill this table.
CREATE VIRTUAL TABLE snapshots_search USING fts5(id, name, description, tokenize = 'trigram');
INSERT INTO snapshots_search (rowid, id, name, description) SELECT rowid, id, name, description FROM snapshots;
