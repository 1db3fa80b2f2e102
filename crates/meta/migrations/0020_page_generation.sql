-- The page generation (issue 16): moves on every write to anything a list page shows, so a page
-- rendered at one generation is exact for as long as it stands (the service's page cache). The
-- list generation (0004 §2) is narrower on purpose: it ignores what no filter reads (progress,
-- sizes, volume and instance names), so counts stay cached while a capture runs; a rendered
-- page shows those too. Every row change bumps it, in the row change's transaction, whichever
-- process writes (the server, the CLI on the same file).
CREATE TABLE page_generation (
    id  INTEGER PRIMARY KEY CHECK (id = 0),
    gen INTEGER NOT NULL
);
INSERT INTO page_generation (id, gen) VALUES (0, 0);

CREATE TRIGGER page_generation_snapshot_insert AFTER INSERT ON snapshots BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_snapshot_update AFTER UPDATE ON snapshots BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_snapshot_delete AFTER DELETE ON snapshots BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_volume_insert AFTER INSERT ON volumes BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_volume_update AFTER UPDATE ON volumes BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_volume_delete AFTER DELETE ON volumes BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_instance_insert AFTER INSERT ON instances BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_instance_update AFTER UPDATE ON instances BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_instance_delete AFTER DELETE ON instances BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_tag_insert AFTER INSERT ON tags BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_tag_update AFTER UPDATE ON tags BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_tag_delete AFTER DELETE ON tags BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_bind AFTER INSERT ON resource_tags BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_rebind AFTER UPDATE ON resource_tags BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_unbind AFTER DELETE ON resource_tags BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_metadata_insert AFTER INSERT ON snapshot_metadata BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_metadata_update AFTER UPDATE ON snapshot_metadata BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_metadata_delete AFTER DELETE ON snapshot_metadata BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
