-- Request state: SQLite's 0009_request_state.sql (see there for what it holds). Text columns
-- COLLATE "C" as in 0001 (byte order, as SQLite: the lists order by key), times BIGINT ms.
CREATE TABLE request_state (
    kind       TEXT COLLATE "C" NOT NULL,
    account    TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (kind, account, key)
);
-- the purge of expired rows and the per-account bound read rows in expiry order
CREATE INDEX request_state_expiry ON request_state (kind, account, expires_at);
-- the keys holding a value (Aliyun: the resources of one resource group)
CREATE INDEX request_state_value ON request_state (kind, account, value);
