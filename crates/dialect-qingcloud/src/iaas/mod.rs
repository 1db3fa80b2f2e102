//! QingCloud IaaS: `GET|POST /iaas/?action=…` (dialects.md §2). Every answer is HTTP 200 with a
//! JSON object: the SDK turns any other status into `None` and retries.

mod handlers;
pub mod router;
pub mod signature;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use disksnap_api_common::{encode, ApiContext, RawRequest};
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

pub async fn endpoint(State(ctx): State<ApiContext>, req: Request) -> Response {
    let raw = match RawRequest::read(req).await {
        Ok(r) => r,
        Err(m) => return render(Err(QcError::invalid(m)), "", ""),
    };
    let rid = raw.request_id.0.clone();
    let p = params_of(&raw);
    let action_name = p.get("action").unwrap_or("").to_string();
    let result = async {
        let who = signature::verify(&ctx, raw.method.as_str(), &raw.path, &p)?;
        p.check_list_sizes()?;
        let action = Action::parse(&action_name).ok_or_else(|| QcError::UnknownAction(action_name.clone()))?;
        handlers::handle(&ctx, &who, action, &p).await
    }
    .await;
    render(result, &action_name, &rid)
}

fn render(result: Result<handlers::Answer, QcError>, action: &str, request_id: &str) -> Response {
    let body = match result {
        Ok(handlers::Answer::SnapshotSet { items, total }) => {
            // The keys in the order a serde_json map writes them (byte order), as for any answer.
            let mut body = Vec::with_capacity(items.len() + 128);
            body.extend_from_slice(b"{\"action\":");
            serde_json::to_writer(&mut body, &format!("{action}Response")).expect("in memory");
            body.extend_from_slice(b",\"ret_code\":0,\"snapshot_set\":");
            body.extend_from_slice(&items);
            body.extend_from_slice(format!(",\"total_count\":{total}}}").as_bytes());
            return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
        Ok(handlers::Answer::Json(mut v)) => {
            if let Some(m) = v.as_object_mut() {
                m.insert("action".into(), format!("{action}Response").into());
                m.insert("ret_code".into(), 0.into());
            }
            v
        }
        Err(e) => {
            e.log(request_id);
            json!({"ret_code": e.ret_code(), "message": e.message(request_id)})
        }
    };
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}
