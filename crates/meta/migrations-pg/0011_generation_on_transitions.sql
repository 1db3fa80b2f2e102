-- SQLite's 0019: see crates/meta/migrations/0019_generation_on_transitions.sql (a transition
-- change moves the list generation, so counts filtered on transitions can be cached).
DROP TRIGGER list_generation_snapshot_update ON snapshots;
CREATE TRIGGER list_generation_snapshot_update AFTER UPDATE ON snapshots
    FOR EACH ROW
    WHEN ((OLD.id, OLD.account, OLD.zone, OLD.name, OLD.description, OLD.volume_id, OLD.volume_kind,
           OLD.instance_id, OLD.is_full, OLD.root_id, OLD.status, OLD.create_time, OLD.origin, OLD.encrypted,
           OLD.used_by_images, OLD.used_by_volumes, OLD.transition)
          IS DISTINCT FROM
          (NEW.id, NEW.account, NEW.zone, NEW.name, NEW.description, NEW.volume_id, NEW.volume_kind,
           NEW.instance_id, NEW.is_full, NEW.root_id, NEW.status, NEW.create_time, NEW.origin, NEW.encrypted,
           NEW.used_by_images, NEW.used_by_volumes, NEW.transition))
    EXECUTE FUNCTION list_generation_bump();
