//! Web console sessions, kept in the metadata store so a server restart (or another server on
//! the same data dir) keeps people signed in. The console hands over only a hash of each
//! session's cookie; this layer stores rows and expires idle ones, the console owns the rules
//! (how long is idle, what a session may do).

use std::time::Duration;

use chrono::{DateTime, Utc};
use disksnap_meta::ConsoleSessionRow;

use crate::error::Result;
use crate::model::to_time;
use crate::service::Service;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    pub account: String,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

impl Service {
    /// Record a new session for `account` (`token_hash`: the console's hash of its cookie),
    /// first expiring every session idle for `idle` or longer, so the table holds live ones.
    pub async fn console_session_create(
        &self,
        token_hash: &str,
        account: &str,
        now: DateTime<Utc>,
        idle: Duration,
    ) -> Result<()> {
        let now = now.timestamp_millis();
        self.meta().console_sessions_expire(now - idle.as_millis() as i64).await?;
        let row = ConsoleSessionRow {
            token_hash: token_hash.to_string(),
            account: account.to_string(),
            created_at: now,
            last_seen: now,
        };
        Ok(self.meta().console_session_put(&row).await?)
    }

    pub async fn console_session(&self, token_hash: &str) -> Result<Option<ConsoleSession>> {
        Ok(self.meta().console_session(token_hash).await?.map(|r| ConsoleSession {
            account: r.account,
            created: to_time(r.created_at),
            last_seen: to_time(r.last_seen),
        }))
    }

    pub async fn console_session_touch(&self, token_hash: &str, now: DateTime<Utc>) -> Result<()> {
        Ok(self.meta().console_session_touch(token_hash, now.timestamp_millis()).await?)
    }

    pub async fn console_session_end(&self, token_hash: &str) -> Result<()> {
        Ok(self.meta().console_session_delete(token_hash).await?)
    }
}
