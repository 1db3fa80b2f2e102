//! Tencent Cloud API 3.0 for CBS (Version 2017-03-12), as `tencentcloud-sdk-python-cbs`, tccli
//! and the Terraform provider speak it.
//!
//! A separate crate from `dialect-tencent` (API v2): the two share only the key kind and the
//! id prefixes (`snap-`, `disk-`, `ins-`, repeated in [`wire`] because a dialect never imports
//! another); everything else differs — the signature (TC3-HMAC-SHA256 over a canonical
//! request, or the v1 HmacSHA1/HmacSHA256 form on `/`), nested JSON parameters, PascalCase
//! fields, upper-case state words, string error codes inside `{"Response": …}`.
//!
//! - [`router`]: the actions served; [`wants`] tells a 3.0 request on the shared `/`.
//! - [`params`]: the parameters as one JSON object (a POST's JSON body, or the flattened
//!   `Filters.0.Name=…` pairs of a GET or a v1 form, unflattened).
//! - [`signature`]: TC3-HMAC-SHA256 and v1, clock window, replay refusal.
//! - [`wire`]: ids, state words, times, the Snapshot and Disk structures.
//! - [`handlers`]: the [`Tencent3`] dialect's pipeline steps.
//! - [`error`]: every error as HTTP 200 `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`.

pub mod error;
pub mod handlers;
pub mod params;
pub mod router;
pub mod signature;
pub mod wire;

use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use disksnap_api_common::{pipeline, ApiContext, KeyKind};

pub use router::wants_head;

/// API 3.0 signs with the account's `tencent` SecretId/SecretKey, the same keys as v2.
pub const KEYS: KeyKind = KeyKind("tencent");

/// `X-TC-Timestamp` (or `Timestamp`) may be this far from the server clock, either way: the
/// vendor's documented five minutes.
pub const CLOCK_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The only API version served.
pub const VERSION: &str = "2017-03-12";

/// The signing service name in the TC3 credential scope (`date/cbs/tc3_request`).
pub const SERVICE: &str = "cbs";

/// The CBS 3.0 dialect; its [`Dialect`](disksnap_api_common::Dialect) steps are in [`handlers`].
pub struct Tencent3 {
    pub ctx: ApiContext,
}

/// Answer one API 3.0 request through the pipeline.
pub async fn handle(ctx: ApiContext, req: Request) -> Response {
    pipeline::serve(&Tencent3 { ctx }, req).await
}

/// Serve `/`, which API 3.0 shares with Aliyun ECS and Cinder's version list: ours when the
/// request carries `X-TC-Action` (TC3), or names `SecretId` among its query or form parameters
/// (the v1 form; Aliyun's key parameter is `AccessKeyId`); `otherwise` answers the rest.
pub async fn serve_root<F, Fut>(ctx: ApiContext, req: Request, otherwise: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    if wants_head(&req) {
        return handle(ctx, req).await;
    }
    if !router::may_be_form(&req) {
        return otherwise(req).await;
    }
    let (parts, body) = req.into_parts();
    // A body past the limit cannot be a parameter form of ours: route it by the head.
    let bytes = axum::body::to_bytes(body, disksnap_api_common::request::MAX_BODY).await.unwrap_or_default();
    let ours = router::form_names_secret_id(&bytes);
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    if ours {
        handle(ctx, req).await
    } else {
        otherwise(req).await
    }
}
