-- SQLite's 0015: how a point's bytes were frozen ('instant', 'read-pass', '' before it was recorded).
ALTER TABLE snapshots ADD COLUMN consistency TEXT NOT NULL DEFAULT '';
