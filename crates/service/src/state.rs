//! Request state: the small facts a dialect must remember between requests that are not
//! resources (issued tokens, ClientToken answers, status overrides, the request that made a
//! job, an Aliyun resource group). They live in the metadata store (migration 0009), not in
//! one process's memory, so a restart (or another node on the same store) keeps them; each
//! kind is bounded in rows and, where it has a life, expired by time.
//!
//! Dialects name the kind and give text; what the text means is theirs. Token kinds are
//! looked up by the token alone: the store keeps its SHA-256, never the token, so a copy of
//! the database holds no usable credential.

use std::time::Duration;

use disksnap_meta::StateRow;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::model::now_ms;
use crate::service::Service;

/// What a row of request state is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    /// A 51idc OAuth2 bearer token → the account it was issued to.
    OAuth2Token,
    /// A Keystone token → what it stands for (the dialect's JSON).
    KeystoneToken,
    /// An Aliyun `ClientToken` (`Action/token`) → the first answer given (JSON).
    ClientToken,
    /// A Cinder snapshot status override (bare snapshot id) → the override and when (JSON).
    StatusOverride,
    /// A job (bare id) → the id of the request that made it.
    JobRequest,
    /// An Aliyun resource (bare id) → the resource group it joined.
    ResourceGroup,
    /// Test control: how far the scheduler's clock is moved from the wall clock (ms), under
    /// account "" (one row), so a restart or another server on the data dir keeps it.
    SchedulerClock,
}

impl StateKind {
    /// The stored word (`request_state.kind`); never change one (rows hold it).
    pub fn word(self) -> &'static str {
        match self {
            StateKind::OAuth2Token => "oauth2-token",
            StateKind::KeystoneToken => "keystone-token",
            StateKind::ClientToken => "client-token",
            StateKind::StatusOverride => "status-override",
            StateKind::JobRequest => "job-request",
            StateKind::ResourceGroup => "resource-group",
            StateKind::SchedulerClock => "scheduler-clock",
        }
    }

    /// Rows kept per account (per kind, for the token kinds): past it the rows that expire
    /// first go, so no caller can grow the table without bound.
    pub fn keep(self) -> u64 {
        match self {
            StateKind::OAuth2Token | StateKind::KeystoneToken => 100_000,
            StateKind::ClientToken | StateKind::StatusOverride | StateKind::JobRequest => 10_000,
            StateKind::ResourceGroup => 100_000,
            StateKind::SchedulerClock => 1,
        }
    }

    /// Keyed by a secret (a bearer token): stored hashed, under no account.
    pub fn is_secret(self) -> bool {
        matches!(self, StateKind::OAuth2Token | StateKind::KeystoneToken)
    }
}

/// The stored key: a secret's SHA-256 (hex), any other key as given.
fn stored_key(kind: StateKind, key: &str) -> String {
    if kind.is_secret() {
        Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    } else {
        key.to_string()
    }
}

/// The account a row is kept under: none for the secret kinds (found by the token alone).
fn stored_account(kind: StateKind, account: &str) -> &str {
    if kind.is_secret() {
        ""
    } else {
        account
    }
}

impl Service {
    /// Remember `value` for (kind, account, key), replacing what was there, for `life` (None:
    /// until forgotten). The token kinds ignore `account`.
    pub async fn remember(
        &self,
        kind: StateKind,
        account: &str,
        key: &str,
        value: &str,
        life: Option<Duration>,
    ) -> Result<()> {
        let now = now_ms();
        let row = StateRow {
            kind: kind.word().to_string(),
            account: stored_account(kind, account).to_string(),
            key: stored_key(kind, key),
            value: value.to_string(),
            expires_at: life.map(|l| now.saturating_add(l.as_millis().min(i64::MAX as u128) as i64)),
        };
        Ok(self.meta().state_put(&row, kind.keep(), now).await?)
    }

    /// The live value of (kind, account, key) and when it expires (Unix ms).
    pub async fn recall(&self, kind: StateKind, account: &str, key: &str) -> Result<Option<(String, Option<i64>)>> {
        let row =
            self.meta().state_get(kind.word(), stored_account(kind, account), &stored_key(kind, key), now_ms()).await?;
        Ok(row.map(|r| (r.value, r.expires_at)))
    }

    /// The live values of `keys` of one kind and account, by key: one read for a page of
    /// items, not one per item. Not for the secret kinds (their keys are hashes).
    pub async fn recall_many(
        &self,
        kind: StateKind,
        account: &str,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, String>> {
        let rows = self.meta().state_get_many(kind.word(), stored_account(kind, account), keys, now_ms()).await?;
        Ok(rows.into_iter().map(|r| (r.key, r.value)).collect())
    }

    /// Every live (key, value) of one kind and account. Not for the secret kinds (their keys
    /// are hashes).
    pub async fn recall_all(&self, kind: StateKind, account: &str) -> Result<Vec<(String, String)>> {
        let rows = self.meta().state_list(kind.word(), stored_account(kind, account), now_ms()).await?;
        Ok(rows.into_iter().map(|r| (r.key, r.value)).collect())
    }

    /// The keys of one kind and account whose value is `value` (the resources of a group).
    pub async fn keys_holding(&self, kind: StateKind, account: &str, value: &str) -> Result<Vec<String>> {
        Ok(self.meta().state_keys(kind.word(), stored_account(kind, account), value, now_ms()).await?)
    }

    /// Forget (kind, account, key); whether it was there.
    pub async fn forget(&self, kind: StateKind, account: &str, key: &str) -> Result<bool> {
        Ok(self.meta().state_delete(kind.word(), stored_account(kind, account), &stored_key(kind, key)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stored_hashed_under_no_account() {
        let k = stored_key(StateKind::OAuth2Token, "abc");
        assert_eq!(k, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(stored_account(StateKind::KeystoneToken, "acct"), "");
        assert_eq!(stored_key(StateKind::ClientToken, "CreateDisk/t"), "CreateDisk/t");
        assert_eq!(stored_account(StateKind::ClientToken, "acct"), "acct");
    }
}
