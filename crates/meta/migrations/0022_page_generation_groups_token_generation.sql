-- Issue 16, two more generations' worth of request state:
-- 1. Aliyun shows a snapshot's resource group in DescribeSnapshots (request state of kind
--    'resource-group'): setting or moving one moves the page generation, as a status override
--    does (0021), so a cached page shows the group the store holds.
-- 2. The token generation: every write to a Keystone token (issued, revoked, expired and
--    removed) moves it, in the write's own transaction, whichever process or node writes. A
--    token read at one generation is the store's while the generation reads the same, so the
--    OpenStack dialect keeps checked tokens by it and a revocation is seen by the next request.
CREATE TRIGGER page_generation_group_insert AFTER INSERT ON request_state
WHEN NEW.kind = 'resource-group' BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_group_update AFTER UPDATE ON request_state
WHEN NEW.kind = 'resource-group' OR OLD.kind = 'resource-group' BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER page_generation_group_delete AFTER DELETE ON request_state
WHEN OLD.kind = 'resource-group' BEGIN
    UPDATE page_generation SET gen = gen + 1 WHERE id = 0;
END;

CREATE TABLE token_generation (
    id  INTEGER PRIMARY KEY CHECK (id = 0),
    gen INTEGER NOT NULL
);
INSERT INTO token_generation (id, gen) VALUES (0, 0);
CREATE TRIGGER token_generation_insert AFTER INSERT ON request_state
WHEN NEW.kind = 'keystone-token' BEGIN
    UPDATE token_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER token_generation_update AFTER UPDATE ON request_state
WHEN NEW.kind = 'keystone-token' OR OLD.kind = 'keystone-token' BEGIN
    UPDATE token_generation SET gen = gen + 1 WHERE id = 0;
END;
CREATE TRIGGER token_generation_delete AFTER DELETE ON request_state
WHEN OLD.kind = 'keystone-token' BEGIN
    UPDATE token_generation SET gen = gen + 1 WHERE id = 0;
END;
