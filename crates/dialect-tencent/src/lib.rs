//! Tencent Cloud CBS API v2 (`/v2/index.php`), as `qcloudapi-sdk-python` speaks it (dialects.md §5).
//!
//! - [`router`]: the actions served and the one route (GET query, POST form).
//! - [`signature`]: the HmacSHA1/HmacSHA256 signature, clock window and nonce; yields the
//!   [`signature::VerifiedRequest`] handlers need.
//! - [`wire`]: camelCase response items, ids (`snap-`, `disk-`, `ins-`), status words, times.
//! - [`handlers`]: parse parameters → call the service → render.
//! - [`error`]: every error as HTTP 200 `{"code": ≠0, "message", "codeDesc"}`.
//!
//! Depends on the service and api-common only (scripts/check-layers.sh).

pub mod error;
pub mod handlers;
pub mod router;
pub mod signature;
pub mod wire;

use axum::routing::any;
use axum::Router;
use disksnap_api_common::ApiContext;

/// The dialect's routes: [`router::PATH`], GET (query) and POST (form body); any other method is
/// answered in the vendor's envelope. Mounted here, not in [`router`], so the router does not
/// import the handlers that import it.
pub fn routes(ctx: ApiContext) -> Router {
    Router::new().route(router::PATH, any(handlers::entry)).with_state(ctx)
}
