//! QingCloud IaaS: `GET|POST /iaas/?action=…` (dialects.md §2). Every answer is HTTP 200 with a
//! JSON object: the SDK turns any other status into `None` and retries.

mod handlers;
pub mod router;
pub mod signature;

use std::time::Duration;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use disksnap_api_common::{
    encode, ApiContext, Call, Dialect, DialectError, EndpointName, KeyKind, RawRequest, RequestId, Verified,
};
use disksnap_service::Kind;
use serde_json::json;

use crate::error::QcError;
use crate::params::Params;
use router::Action;

/// `signature` keeps `+` literal (the docs show unencoded base64 in URLs); elsewhere `+` is a space.
/// Public for the fuzz targets (fuzz/), which feed it hostile requests.
pub fn params_of(raw: &RawRequest) -> Params {
    let mut pairs = encode::parse_pairs(&raw.query, |k| k == "signature");
    if raw.body_is_form() {
        pairs.extend(encode::parse_pairs(&String::from_utf8_lossy(&raw.body), |k| k == "signature"));
    }
    Params(pairs)
}

/// Signed `time_stamp`s may be this far from the server clock (dialects.md §2.4).
pub const CLOCK_WINDOW: Duration = Duration::from_secs(60);

/// The IaaS dialect (served by the pipeline of api-common).
pub struct Iaas {
    pub ctx: ApiContext,
}

/// The request's parameters, and the action as written (success answers echo it).
pub struct Frame {
    params: Params,
    action: String,
}

impl EndpointName for Action {
    fn name(&self) -> String {
        Action::name(*self).to_string()
    }
}

impl DialectError for QcError {
    fn unreadable(why: String) -> Self {
        QcError::invalid(why)
    }
    fn is_internal(&self) -> bool {
        QcError::is_internal(self)
    }
    fn code(&self) -> String {
        self.ret_code().to_string()
    }
}

impl Dialect for Iaas {
    const NAME: &'static str = "qingcloud";
    const KEY_KIND: KeyKind = crate::KEYS;
    const CLOCK_WINDOW: Duration = CLOCK_WINDOW;
    type Frame = Frame;
    type Caller = Verified;

    fn show_id(kind: Kind, bare: &str) -> String {
        crate::ids::display(kind, bare)
    }

    type Endpoint = Action;
    type Error = QcError;

    fn frame(&self, raw: &RawRequest) -> Frame {
        let params = params_of(raw);
        let action = params.get("action").unwrap_or("").to_string();
        Frame { params, action }
    }

    async fn verify(&self, raw: &RawRequest, frame: &mut Frame) -> Result<Verified, QcError> {
        let who = signature::verify(&self.ctx, raw.method.as_str(), &raw.path, &frame.params).await?;
        frame.params.check_list_sizes()?;
        Ok(who)
    }

    fn endpoint(&self, _raw: &RawRequest, frame: &mut Frame, _who: &Verified) -> Result<Action, QcError> {
        Action::parse(&frame.action).ok_or_else(|| QcError::UnknownAction(frame.action.clone()))
    }

    async fn handle(&self, call: Call<'_, Self>) -> Result<Response, QcError> {
        let answer = handlers::handle(&self.ctx, &call.caller, call.endpoint, &call.frame.params).await?;
        Ok(render(answer, &call.frame.action))
    }

    fn error_response(&self, _frame: &Frame, e: &QcError, request_id: &RequestId) -> Response {
        let body = json!({"ret_code": e.ret_code(), "message": e.message(&request_id.0)});
        ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

fn render(answer: handlers::Answer, action: &str) -> Response {
    let body = match answer {
        handlers::Answer::SnapshotSet { items, total } => {
            // The keys in the order a serde_json map writes them (byte order), as for any answer.
            let mut body = Vec::with_capacity(items.len() + 128);
            body.extend_from_slice(b"{\"action\":");
            serde_json::to_writer(&mut body, &format!("{action}Response")).expect("in memory");
            body.extend_from_slice(b",\"ret_code\":0,\"snapshot_set\":");
            body.extend_from_slice(&items);
            body.extend_from_slice(format!(",\"total_count\":{total}}}").as_bytes());
            return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
        handlers::Answer::Json(mut v) => {
            if let Some(m) = v.as_object_mut() {
                m.insert("action".into(), format!("{action}Response").into());
                m.insert("ret_code".into(), 0.into());
            }
            v
        }
    };
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}
