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

    /// [`Service::recall`] of a Keystone token (issue 16: an OpenStack request's check of its
    /// token was a read through the pool, a hand-off to a worker thread and back, as much as
    /// the rest of a cached list request). Kept in memory by the store's token generation,
    /// which every write to a Keystone token moves in its own transaction, whichever process
    /// or node writes: a token read between two equal reads of the generation is served while
    /// the generation still reads the same, so a revocation is seen by the next request. Its
    /// expiry is checked against the clock each time, as the store's read does.
    pub async fn recall_keystone_token(&self, key: &str) -> Result<Option<(String, Option<i64>)>> {
        let kind = StateKind::KeystoneToken;
        let Some(gen) = self.meta().token_generation().await? else { return self.recall(kind, "", key).await };
        if let Some((value, expires)) = self.inner.tokens.get(gen, key) {
            let live = expires.is_none_or(|e| e > now_ms());
            return Ok(live.then_some((value, expires)));
        }
        let found = self.recall(kind, "", key).await?;
        if let Some(row) = &found {
            if self.meta().token_generation().await? == Some(gen) {
                self.inner.tokens.put(gen, key, row.clone());
            }
        }
        Ok(found)
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

/// Keystone tokens as read at one token generation ([`Service::recall_keystone_token`]).
/// Bounded: full, it is emptied (the next checks read the store again).
#[derive(Default)]
pub struct TokenCache(std::sync::Mutex<TokenState>);

#[derive(Default)]
struct TokenState {
    gen: i64,
    rows: std::collections::HashMap<String, (String, Option<i64>)>,
}

/// Tokens kept at most (a few hundred bytes each).
const MAX_TOKENS: usize = 4096;

impl TokenCache {
    fn get(&self, gen: i64, key: &str) -> Option<(String, Option<i64>)> {
        let state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if state.gen != gen {
            return None;
        }
        state.rows.get(key).cloned()
    }

    fn put(&self, gen: i64, key: &str, row: (String, Option<i64>)) {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if gen < state.gen {
            return; // read before a write another request has already seen
        }
        if gen > state.gen || state.rows.len() >= MAX_TOKENS {
            state.rows.clear();
            state.gen = gen;
        }
        state.rows.insert(key.to_string(), row);
    }
}

#[cfg(test)]
mod token_cache_tests {
    use super::*;

    #[test]
    fn a_token_is_served_only_at_its_generation() {
        let c = TokenCache::default();
        c.put(2, "t", ("v".into(), None));
        assert!(c.get(2, "t").is_some());
        assert!(c.get(3, "t").is_none() && c.get(1, "t").is_none());
        c.put(3, "u", ("w".into(), None));
        assert!(c.get(3, "t").is_none(), "a newer generation forgets what was read before it");
        c.put(2, "t", ("v".into(), None));
        assert!(c.get(3, "t").is_none() && c.get(2, "t").is_none());
    }
}
