-- SQLite's 0020: see crates/meta/migrations/0020_page_generation.sql (a generation every write
-- to what a list page shows moves, for the service's page cache; every node reads it here, so a
-- write on another node is seen by the next list on this one).
CREATE TABLE page_generation (
    id  INTEGER PRIMARY KEY CHECK (id = 0),
    gen BIGINT NOT NULL
);
INSERT INTO page_generation (id, gen) VALUES (0, 0);

CREATE FUNCTION page_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The list generation's row first: a snapshot write locks it in its row triggers before
    -- this statement trigger runs, so every writer takes the two rows in one order (a volume
    -- write followed by a snapshot write in one transaction would otherwise deadlock with it).
    PERFORM 1 FROM list_generation WHERE id = 0 FOR UPDATE;
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
    RETURN NULL;
END;
$$;
-- Once per statement: one bump tells every cached page it is stale.
CREATE TRIGGER page_generation_snapshots AFTER INSERT OR UPDATE OR DELETE ON snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION page_generation_bump();
CREATE TRIGGER page_generation_volumes AFTER INSERT OR UPDATE OR DELETE ON volumes
    FOR EACH STATEMENT EXECUTE FUNCTION page_generation_bump();
CREATE TRIGGER page_generation_instances AFTER INSERT OR UPDATE OR DELETE ON instances
    FOR EACH STATEMENT EXECUTE FUNCTION page_generation_bump();
CREATE TRIGGER page_generation_tags AFTER INSERT OR UPDATE OR DELETE ON tags
    FOR EACH STATEMENT EXECUTE FUNCTION page_generation_bump();
CREATE TRIGGER page_generation_resource_tags AFTER INSERT OR UPDATE OR DELETE ON resource_tags
    FOR EACH STATEMENT EXECUTE FUNCTION page_generation_bump();
CREATE TRIGGER page_generation_snapshot_metadata AFTER INSERT OR UPDATE OR DELETE ON snapshot_metadata
    FOR EACH STATEMENT EXECUTE FUNCTION page_generation_bump();
