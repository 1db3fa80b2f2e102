-- Busy points (issue 16): a count filtered on transitions (Tencent's lists leave out points being
-- deleted, Cinder's and EVS's `available` those being deleted or rolled back to) could not be
-- taken from `snapshot_counts` (0004), which does not group by transition, so it counted every
-- row: 35-60 ms at 100 000 points, again after every write (each moves the list generation),
-- on the same cores as the writes. The points in a transition are few at any instant (one
-- operation each); in this index alone, such a count is the groups' count less (or just) the busy
-- points it names.
CREATE INDEX snapshots_busy ON snapshots (account, transition) WHERE transition <> '';
