-- Web console sessions, kept here so a server restart (or another server on the same data
-- dir) keeps people signed in. Only a SHA-256 of the cookie's value is stored: a copy of the
-- database signs nobody in. The console derives each session's CSRF token from the cookie
-- value too, so nothing secret is kept.
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY,      -- hex SHA-256 of the session cookie's value
    account    TEXT NOT NULL,
    created_at INTEGER NOT NULL,      -- ms since the epoch
    last_seen  INTEGER NOT NULL       -- ms since the epoch; idle sessions are expired by it
) WITHOUT ROWID;

CREATE INDEX console_sessions_by_last_seen ON console_sessions(last_seen);
