//! Alibaba Cloud ECS (RPC, Version 2014-05-26), as `aliyun-python-sdk-ecs` and the Tea SDK
//! `alibabacloud-ecs20140526` speak it (shared/design/dialects.md §4).
//!
//! Every action is served on `/`, which the OpenStack dialect also answers (Cinder version
//! discovery), so this crate does not mount a route: the binary asks [`wants`] and hands the
//! request to [`handle`].
//!
//! A request goes: parameters decoded (query, then a form body) → [`signature::verify`] (RPC v1
//! HMAC-SHA1 or V3 ACS3-HMAC-SHA256; key, signature, 15-minute window, nonce) → the action
//! ([`router::Endpoint`]) → [`handlers`] (parameters, service call) → [`wire`] (JSON, or XML
//! with `Format=XML`). Every refusal is an [`error::AliyunError`] in the vendor's envelope.

pub mod error;
pub mod handlers;
pub mod ids;
pub mod params;
pub mod regions;
pub mod router;
pub mod signature;
pub mod wire;

use axum::extract::Request;
use axum::response::Response;
use disksnap_api_common::encode::parse_pairs;
use disksnap_api_common::{ApiContext, RawRequest, RequestId};
use disksnap_service::Caller;
use serde_json::Value;

use crate::error::{invalid, AliyunError};
use crate::params::Params;
pub use crate::router::{body_names_action, wants, Endpoint};
use crate::wire::Format;

/// `Signature` keeps a literal `+` (base64); every other value decodes `+` as a space.
fn literal_plus(key: &str) -> bool {
    key == "Signature"
}

/// Serve `/`, which Aliyun shares with Cinder's version list: Aliyun's when the request names
/// an action in its query, an `x-acs-action` header, a form Content-Type, or a body that is a
/// form naming `Action` whatever the Content-Type claims; `otherwise` answers the rest.
pub async fn serve_root<F, Fut>(ctx: ApiContext, req: Request, otherwise: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    if wants(&req) {
        return handle(ctx, req).await;
    }
    let (parts, body) = req.into_parts();
    // A body past the limit (or unreadable) cannot be a parameter form: route by the head,
    // which named no action.
    let bytes = axum::body::to_bytes(body, disksnap_api_common::request::MAX_BODY).await.unwrap_or_default();
    let names_action = body_names_action(&bytes);
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    if names_action {
        handle(ctx, req).await
    } else {
        otherwise(req).await
    }
}

/// Answer one Aliyun request (one that [`wants`] accepted).
pub async fn handle(ctx: ApiContext, req: Request) -> Response {
    let rid = req.extensions().get::<RequestId>().cloned().unwrap_or_default();
    let request_id = rid.0.to_uppercase();
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    let raw = match RawRequest::read(req).await {
        Ok(r) => r,
        Err(why) => return wire::error(Format::Json, &request_id, &host, &invalid("body", why)),
    };
    let (params, query) = params_of(&raw);
    let format = Format::from_param(params.get("Format"));
    match run(&ctx, &raw, &params, &query, &host).await {
        Ok((endpoint, body)) => wire::ok(format, endpoint.name(), &request_id, body),
        Err(e) => {
            if e.is_internal() {
                tracing::error!(request_id = %rid.0, error = ?e, "aliyun: internal error");
            } else {
                tracing::debug!(request_id = %rid.0, code = e.code(), message = %e.message(), "aliyun: refused");
            }
            wire::error(format, &request_id, &host, &e)
        }
    }
}

/// Every decoded parameter (query, then a form body) and the query's alone (V3 signs only the
/// query). Public for the fuzz targets (fuzz/).
pub fn params_of(raw: &RawRequest) -> (Params, Vec<(String, String)>) {
    let query = parse_pairs(&raw.query, literal_plus);
    let mut all = query.clone();
    // A form body counts whatever the Content-Type says (it is what routed the request here).
    if !raw.body.is_empty() && (raw.body_is_form() || body_names_action(&raw.body)) {
        all.extend(parse_pairs(&String::from_utf8_lossy(&raw.body), literal_plus));
    }
    (Params(all), query)
}

async fn run(
    ctx: &ApiContext,
    raw: &RawRequest,
    params: &Params,
    query: &[(String, String)],
    host: &str,
) -> Result<(Endpoint, Value), AliyunError> {
    let who = signature::verify(ctx, raw, &params.0, query)?;
    let action = params.get("Action").or_else(|| raw.header("x-acs-action"));
    let version = params.get("Version").or_else(|| raw.header("x-acs-version"));
    let endpoint = Endpoint::from_request(action, version)?;
    if let Some(f) = params.get("Format") {
        if !["json", "xml", "none"].iter().any(|ok| f.eq_ignore_ascii_case(ok)) {
            return Err(error::vendor(
                "InvalidParameter.Format",
                400,
                format!("Specified Format \"{f}\" is not supported; use JSON or XML."),
            ));
        }
    }
    let caller = Caller::new(who.account);
    let body = handlers::call(ctx, &caller, endpoint, params, host).await?;
    Ok((endpoint, body))
}
