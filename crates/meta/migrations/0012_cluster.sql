-- Cluster state (issue 13). `nonces`: every signature nonce (and TC3 signature) a dialect
-- accepted, as the SHA-256 of (dialect:key, nonce), until the end of twice the clock window;
-- several processes on one database refuse each other's replays. Expired rows are ignored by
-- the insert and purged with expired request state. `nodes`: each `disksnap serve` of the
-- cluster, its zone and its latest heartbeat (Unix ms), which `disksnap cluster status` and
-- /metrics show. `runners`: on PostgreSQL, the lease of each process that runs jobs (the
-- `jobs.runner` it stamps), renewed every few seconds; a job whose runner's lease ran out
-- belongs to a dead process and is taken over (SQLite's processes share one machine and
-- use lock files under DATA/runners/ instead).
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

CREATE TABLE runners (
    runner TEXT NOT NULL PRIMARY KEY,
    node TEXT NOT NULL,
    lease_until INTEGER NOT NULL
);
