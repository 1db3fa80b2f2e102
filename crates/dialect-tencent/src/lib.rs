//! Tencent Cloud CBS API v2 (`/v2/index.php`), as `qcloudapi-sdk-python` speaks it (dialects.md §5).
//!
//! - [`router`]: the actions served and the one route (GET query, POST form).
//! - [`signature`]: the HmacSHA1/HmacSHA256 signature, clock window and nonce; yields the
//!   verified caller handlers need.
//! - [`wire`]: camelCase response items, ids (`snap-`, `disk-`, `ins-`), status words, times.
//! - [`handlers`]: the [`Tencent`] dialect's steps of api-common's pipeline; parse parameters →
//!   call the service → render.
//! - [`error`]: every error as HTTP 200 `{"code": ≠0, "message", "codeDesc"}`.
//!
//! Depends on the service and api-common only (scripts/check-layers.sh).

pub mod error;
pub mod handlers;
pub mod router;
pub mod signature;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::any;
use axum::Router;
use disksnap_api_common::{pipeline, ApiContext, KeyKind};

/// The account's `tencent` SecretId/SecretKey pair (config section `tencent`).
pub const KEYS: KeyKind = KeyKind("tencent");

/// `Timestamp` may be this far from the server clock, either way (dialects.md §5.3).
pub const CLOCK_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The CBS v2 dialect; its [`Dialect`](disksnap_api_common::Dialect) steps are in [`handlers`].
pub struct Tencent {
    pub ctx: ApiContext,
}

/// The dialect's routes: [`router::PATH`], GET (query) and POST (form body); any other method is
/// answered in the vendor's envelope. Mounted here, not in [`router`], so the router does not
/// import the handlers that import it.
pub fn routes(ctx: ApiContext) -> Router {
    Router::new().route(router::PATH, any(pipeline::handler::<Tencent>)).with_state(Arc::new(Tencent { ctx }))
}
