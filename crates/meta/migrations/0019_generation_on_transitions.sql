-- The list generation (0004 §2) moves when a snapshot's transition changes, too. Dialects whose
-- status words mix status and transition (Cinder's `available` is "available and neither being
-- deleted nor rolled back to") filter on transitions; with the generation blind to them such a
-- count could never be cached, and Cinder's and EVS's `status=available` counted ~100 000 rows
-- on every page (issue 16). A transition changes once per operation on a point, not with
-- progress: the cache stays useful.
DROP TRIGGER list_generation_snapshot_update;
CREATE TRIGGER list_generation_snapshot_update AFTER UPDATE ON snapshots
WHEN OLD.id IS NOT NEW.id OR OLD.account IS NOT NEW.account OR OLD.zone IS NOT NEW.zone
  OR OLD.name IS NOT NEW.name OR OLD.description IS NOT NEW.description OR OLD.volume_id IS NOT NEW.volume_id
  OR OLD.volume_kind IS NOT NEW.volume_kind OR OLD.instance_id IS NOT NEW.instance_id
  OR OLD.is_full IS NOT NEW.is_full OR OLD.root_id IS NOT NEW.root_id OR OLD.status IS NOT NEW.status
  OR OLD.create_time IS NOT NEW.create_time OR OLD.origin IS NOT NEW.origin OR OLD.encrypted IS NOT NEW.encrypted
  OR OLD.used_by_images IS NOT NEW.used_by_images OR OLD.used_by_volumes IS NOT NEW.used_by_volumes
  OR OLD.transition IS NOT NEW.transition
BEGIN
    UPDATE list_generation SET gen = gen + 1 WHERE id = 0;
END;
