//! Alibaba Cloud ECS (RPC, Version 2014-05-26), as `aliyun-python-sdk-ecs` and the Tea SDK
//! `alibabacloud-ecs20140526` speak it (shared/design/dialects.md §4).
//!
//! Every action is served on `/`, which the OpenStack dialect also answers (Cinder version
//! discovery), so this crate does not mount a route: the binary asks [`wants`] and hands the
//! request to [`handle`].
//!
//! A request goes through api-common's pipeline ([`Aliyun`] is the [`Dialect`]): parameters
//! decoded (query, then a form body) → [`signature::verify`] (RPC v1 HMAC-SHA1 or V3
//! ACS3-HMAC-SHA256; key, signature, 15-minute window, nonce) → the action
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

use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use disksnap_api_common::encode::parse_pairs;
use disksnap_api_common::{
    pipeline, ApiContext, Call, Dialect, DialectError, EndpointName, KeyKind, RawRequest, RequestId, Verified,
};

use disksnap_service::Kind;

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

/// How far `Timestamp` / `x-acs-date` may be from the server clock, either way; nonces are
/// remembered this long (README: 15 min).
pub const CLOCK_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The account's `aliyun` key pair (config section `aliyun`).
pub const KEYS: KeyKind = KeyKind("aliyun");

/// Answer one Aliyun request (one that [`wants`] accepted), through the pipeline.
pub async fn handle(ctx: ApiContext, req: Request) -> Response {
    pipeline::serve(&Aliyun { ctx }, req).await
}

/// The ECS dialect.
pub struct Aliyun {
    pub ctx: ApiContext,
}

/// What every answer needs: the format asked for, the `Host` (errors echo it as `HostId`),
/// the request id in Aliyun's upper case, and the decoded parameters.
pub struct Frame {
    format: Format,
    host: String,
    request_id: String,
    params: Params,
    query: Vec<(String, String)>,
}

impl EndpointName for Endpoint {
    fn name(&self) -> String {
        Endpoint::name(*self).to_string()
    }
}

impl DialectError for AliyunError {
    fn unreadable(why: String) -> Self {
        invalid("body", why)
    }
    fn is_internal(&self) -> bool {
        AliyunError::is_internal(self)
    }
    fn code(&self) -> String {
        AliyunError::code(self).to_string()
    }
}

impl Dialect for Aliyun {
    const NAME: &'static str = "aliyun";
    const KEY_KIND: KeyKind = KEYS;
    const CLOCK_WINDOW: Duration = CLOCK_WINDOW;
    type Frame = Frame;
    type Caller = Verified;

    fn show_id(kind: Kind, bare: &str) -> String {
        ids::show(kind, bare)
    }

    type Endpoint = Endpoint;
    type Error = AliyunError;

    fn frame(&self, raw: &RawRequest) -> Frame {
        let (params, query) = params_of(raw);
        Frame {
            format: Format::from_param(params.get("Format")),
            host: raw.header("host").unwrap_or("").to_string(),
            request_id: raw.request_id.0.to_uppercase(),
            params,
            query,
        }
    }

    async fn verify(&self, raw: &RawRequest, f: &mut Frame) -> Result<Verified, AliyunError> {
        signature::verify(&self.ctx, raw, &f.params.0, &f.query).await
    }

    fn endpoint(&self, raw: &RawRequest, f: &mut Frame, _who: &Verified) -> Result<Endpoint, AliyunError> {
        let action = f.params.get("Action").or_else(|| raw.header("x-acs-action"));
        let version = f.params.get("Version").or_else(|| raw.header("x-acs-version"));
        let endpoint = Endpoint::from_request(action, version)?;
        if let Some(fmt) = f.params.get("Format") {
            if !["json", "xml", "none"].iter().any(|ok| fmt.eq_ignore_ascii_case(ok)) {
                return Err(error::vendor(
                    "InvalidParameter.Format",
                    400,
                    format!("Specified Format \"{fmt}\" is not supported; use JSON or XML."),
                ));
            }
        }
        Ok(endpoint)
    }

    async fn handle(&self, call: Call<'_, Self>) -> Result<Response, AliyunError> {
        let f = call.frame;
        if call.endpoint == Endpoint::DescribeSnapshots {
            let caller = call.caller.caller();
            let body =
                handlers::describe_snapshots_body(&self.ctx, &caller, &f.params, f.format, &f.request_id).await?;
            return Ok(wire::raw(f.format, 200, body));
        }
        let body = handlers::call(&self.ctx, &call.caller.caller(), call.endpoint, &f.params, &f.host).await?;
        Ok(wire::ok(f.format, call.endpoint.name(), &f.request_id, body))
    }

    fn error_response(&self, f: &Frame, e: &AliyunError, _request_id: &RequestId) -> Response {
        wire::error(f.format, &f.request_id, &f.host, e)
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
