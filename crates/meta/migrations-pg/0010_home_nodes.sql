-- SQLite's 0018: see crates/meta/migrations/0018_home_nodes.sql.
ALTER TABLE volumes ADD COLUMN home_node TEXT;
ALTER TABLE jobs ADD COLUMN node TEXT;
