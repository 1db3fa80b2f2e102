-- SQLite's 0023: see crates/meta/migrations/0023_busy_points.sql (the points in a transition, few
-- at any instant, in an index of their own, so a count filtered on transitions is the groups'
-- count less, or just, the busy points it names).
CREATE INDEX snapshots_busy ON snapshots (account, transition) WHERE transition <> '';
