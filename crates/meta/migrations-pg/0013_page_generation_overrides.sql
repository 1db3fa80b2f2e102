-- SQLite's 0021: see crates/meta/migrations/0021_page_generation_overrides.sql (a status
-- override set or removed moves the page generation).
CREATE TRIGGER page_generation_override_insert AFTER INSERT ON request_state
    FOR EACH ROW WHEN (NEW.kind = 'status-override') EXECUTE FUNCTION page_generation_bump();
CREATE TRIGGER page_generation_override_update AFTER UPDATE ON request_state
    FOR EACH ROW WHEN (NEW.kind = 'status-override' OR OLD.kind = 'status-override')
    EXECUTE FUNCTION page_generation_bump();
CREATE TRIGGER page_generation_override_delete AFTER DELETE ON request_state
    FOR EACH ROW WHEN (OLD.kind = 'status-override') EXECUTE FUNCTION page_generation_bump();
