//! What every dialect shares, so each adapter holds only its vendor's rules.
//!
//! - [`keys`]: who owns which credential (filled by the binary from the config).
//! - [`sign`]: HMAC-SHA1/SHA256, base64/hex, constant-time comparison.
//! - [`encode`]: RFC 3986 percent-encoding and query/form decoding with the vendors' `+` quirks.
//! - [`clock`]: is a client's timestamp inside the allowed window.
//! - [`nonce`]: remember (key, nonce) pairs until their request's window closes, so a replay is
//!   refused, in bounded memory.
//! - [`request`]: the raw request a signature is checked over, and the request id.
//! - [`pipeline`]: the one request flow (read → verify → endpoint → handle → render, with the
//!   request id, logging and the internal-error rule) and the [`Dialect`] trait each dialect
//!   implements with its own tables. docs/adding-a-dialect.md shows the steps of a new one.
//!
//! A dialect crate depends on this crate and on `disksnap-service`, never on the engine, the
//! metadata store or another dialect (scripts/check-layers.sh keeps it so).

pub mod clock;
pub mod encode;
pub mod keys;
pub mod nonce;
pub mod pipeline;
pub mod request;
pub mod sign;
pub mod time;

use std::sync::Arc;
use std::time::Duration;

pub use keys::{KeyKind, KeyRing, ProjectUser, Secret, Verified};
pub use nonce::{NonceCache, NonceUse};
pub use pipeline::{Call, Dialect, DialectError, EndpointName, Outcome};
pub use request::{RawRequest, RequestId};

use disksnap_service::Service;

/// Most items one list parameter of a request may name (ids, statuses, tags…) where the vendor
/// documents no smaller maximum (Aliyun's is 100). Ten pages of the largest page any dialect
/// serves; a request naming more gets the dialect's invalid-parameter error before any work.
/// README documents it.
pub const MAX_LIST_ITEMS: usize = 1000;

/// Everything a dialect's handlers need, cheap to clone (axum state).
#[derive(Clone)]
pub struct ApiContext {
    pub service: Service,
    pub keys: Arc<KeyRing>,
    pub nonces: Arc<NonceCache>,
    /// OAuth2 / Keystone tokens live this long.
    pub token_lifetime: Duration,
}

impl ApiContext {
    pub fn new(service: Service, keys: KeyRing) -> Self {
        ApiContext {
            service,
            keys: Arc::new(keys),
            nonces: Arc::new(NonceCache::default()),
            token_lifetime: Duration::from_secs(7200),
        }
    }

    /// Record a signature nonce of `key` (the dialect and access key, as `aliyun:LTAI…`) of a
    /// request signed at `signed`, which the clock check accepts for `window` after that: it
    /// is remembered until then. In a cluster (metadata on PostgreSQL) every node records it
    /// in the database, so a replay sent to another node is refused too; a single server keeps
    /// them in this process ([`NonceCache`]). Callers check it last, after the signature and
    /// the clock, so a forged request never uses one up.
    pub async fn first_use_nonce(
        &self,
        key: &str,
        nonce: &str,
        signed: chrono::DateTime<chrono::Utc>,
        window: Duration,
    ) -> Result<NonceUse, disksnap_service::ServiceError> {
        if self.service.shares_nonces() {
            let until = signed + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
            let first = self.service.nonce_first_use(key, nonce, until).await?;
            Ok(if first { NonceUse::First } else { NonceUse::Reused })
        } else {
            Ok(self.nonces.first_use(key, nonce, signed, window))
        }
    }
}
