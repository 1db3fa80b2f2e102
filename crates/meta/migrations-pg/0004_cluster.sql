-- Cluster state: SQLite's 0012_cluster.sql (see there for what it holds).
CREATE TABLE nonces (
    digest TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX nonces_expiry ON nonces (expires_at);

CREATE TABLE nodes (
    name TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    zone TEXT COLLATE "C" NOT NULL,
    address TEXT COLLATE "C" NOT NULL,
    free_bytes BIGINT NOT NULL,
    started BIGINT NOT NULL,
    heartbeat BIGINT NOT NULL,
    running_jobs BIGINT NOT NULL
);

CREATE TABLE runners (
    runner TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    node TEXT COLLATE "C" NOT NULL,
    lease_until BIGINT NOT NULL
);
