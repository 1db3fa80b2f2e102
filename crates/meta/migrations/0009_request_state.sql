-- Small facts a client relies on that are not resources: issued bearer tokens (51idc OAuth2,
-- Keystone), the first answer to an Aliyun ClientToken, Cinder status overrides, the request
-- that made a job, an Aliyun resource's resource group. Before, each dialect held them in one
-- process's memory and a restart lost them. One generic table serves them all: `kind` names
-- the fact, `account` scopes it ('' for kinds looked up by a secret alone, such as tokens),
-- `value` is the dialect's text (often JSON). `expires_at` (Unix ms) bounds a fact's life:
-- reads ignore expired rows and writes purge them; NULL keeps a row until it is deleted.
-- Plain SQL on purpose (no JSON functions, no triggers) so the PostgreSQL backend can use
-- the same statements.
CREATE TABLE request_state (
    kind TEXT NOT NULL,
    account TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (kind, account, key)
);
-- the purge of expired rows and the per-account bound read rows in expiry order
CREATE INDEX request_state_expiry ON request_state (kind, account, expires_at);
-- the keys holding a value (Aliyun: the resources of one resource group)
CREATE INDEX request_state_value ON request_state (kind, account, value);
