-- How a point's bytes were frozen (issue 18): 'instant' (a reflink clone of the volume at one
-- instant, taken on XFS/btrfs), 'read-pass' (the live volume read start to end: no reflink on
-- its file system), '' for points taken before this was recorded.
ALTER TABLE snapshots ADD COLUMN consistency TEXT NOT NULL DEFAULT '';
