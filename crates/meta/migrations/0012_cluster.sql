-- Cluster state (issue 13). `nonces`: every signature nonce (and TC3 signature) a dialect
-- accepted, as the SHA-256 of (dialect:key, nonce), until the end of twice the clock window;
-- several processes on one database refuse each other's replays. Expired rows are ignored by
-- the insert and purged with expired request state. `nodes`: each `disksnap serve` of the
-- cluster, its zone and its latest heartbeat (Unix ms), which `disksnap cluster status` and
-- /metrics show.
CREATE TABLE nonces (
    digest TEXT NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX nonces_expiry ON nonces (expires_at);

CREATE TABLE nodes (
    name TEXT NOT NULL PRIMARY KEY,
    zone TEXT NOT NULL,
    address TEXT NOT NULL,
    free_bytes INTEGER NOT NULL,
    started INTEGER NOT NULL,
    heartbeat INTEGER NOT NULL,
    running_jobs INTEGER NOT NULL
);
