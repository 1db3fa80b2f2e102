-- Status overrides (Cinder's os-reset_status, request state of kind 'status-override') move the
-- page generation too (0020): a list body cached while an account had none stays exact without
-- reading them on every request, since setting one moves the generation and expiry only ever
-- removes one. Other request state (tokens, client tokens, job requests) is not shown by any
-- list and moves nothing.
CREATE TRIGGER page_generation_override_insert AFTER INSERT ON request_state
WHEN NEW.kind = 'status-override' BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_override_update AFTER UPDATE ON request_state
WHEN NEW.kind = 'status-override' OR OLD.kind = 'status-override' BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_override_delete AFTER DELETE ON request_state
WHEN OLD.kind = 'status-override' BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
