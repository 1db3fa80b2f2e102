-- SQLite's 0022: see crates/meta/migrations/0022_page_generation_groups_token_generation.sql
-- (a resource group set or moved moves the page generation; every write to a Keystone token
-- moves the token generation).
CREATE TRIGGER page_generation_group_insert AFTER INSERT ON request_state
    FOR EACH ROW WHEN (NEW.kind = 'resource-group') EXECUTE FUNCTION page_generation_bump();
CREATE TRIGGER page_generation_group_update AFTER UPDATE ON request_state
    FOR EACH ROW WHEN (NEW.kind = 'resource-group' OR OLD.kind = 'resource-group')
    EXECUTE FUNCTION page_generation_bump();
CREATE TRIGGER page_generation_group_delete AFTER DELETE ON request_state
    FOR EACH ROW WHEN (OLD.kind = 'resource-group') EXECUTE FUNCTION page_generation_bump();

CREATE TABLE token_generation (
    id  INTEGER PRIMARY KEY CHECK (id = 0),
    gen BIGINT NOT NULL
);
INSERT INTO token_generation (id, gen) VALUES (0, 0);
CREATE FUNCTION token_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE token_generation SET gen = gen + 1 WHERE id = 0;
    RETURN NULL;
END;
$$;
CREATE TRIGGER token_generation_insert AFTER INSERT ON request_state
    FOR EACH ROW WHEN (NEW.kind = 'keystone-token') EXECUTE FUNCTION token_generation_bump();
CREATE TRIGGER token_generation_update AFTER UPDATE ON request_state
    FOR EACH ROW WHEN (NEW.kind = 'keystone-token' OR OLD.kind = 'keystone-token')
    EXECUTE FUNCTION token_generation_bump();
CREATE TRIGGER token_generation_delete AFTER DELETE ON request_state
    FOR EACH ROW WHEN (OLD.kind = 'keystone-token') EXECUTE FUNCTION token_generation_bump();
