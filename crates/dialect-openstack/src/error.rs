//! Errors in the envelopes of §7 (Cinder), §9.5 (Huawei EVS) and §3.4 (Keystone 401), with an
//! exhaustive mapping of every `ServiceError`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use disksnap_service::{Kind, ServiceError};

use crate::wire;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsError {
    /// Anything the service refused or failed at.
    Service(ServiceError),
    /// 400 `badRequest`: malformed body, parameter, filter or state.
    BadRequest(String),
    /// 404 `itemNotFound`.
    NotFound(String),
    /// 403 `forbidden`: another project's URL, a role without the right.
    Forbidden(String),
    /// 401 in Keystone's shape: no, unknown or expired token; bad password.
    Unauthorized(String),
    /// 401 in Huawei API Gateway's shape: AK/SK signature, date or key refused.
    SignatureRefused(String),
    /// 409 `conflictingRequest`.
    Conflict(String),
    /// 405 `badMethod`.
    BadMethod,
    /// 406 `computeFault`: microversion outside the served range.
    NotAcceptable(String),
}

/// Which envelope a route answers errors in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// `{"<name>":{"code":<int>,"message":…}}`.
    Cinder,
    /// The Cinder names with a string code `EVS.4040` (`/v2/{pid}/snapshots…`).
    EvsCinder,
    /// `{"error":{"message":…,"code":"EVS.4000"}}` (`cloudsnapshots`).
    EvsNative,
    /// Keystone: `{"error":{"code":…,"title":…,"message":…}}`.
    Keystone,
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Volume => "Volume",
        Kind::Snapshot => "Snapshot",
        Kind::Instance => "Instance",
        Kind::Image => "Image",
        Kind::Job => "Job",
        Kind::Tag => "Tag",
        Kind::Chain => "Snapshot chain",
        Kind::Policy => "Snapshot policy",
        Kind::SnapshotGroup => "GroupSnapshot",
    }
}

/// An id as the service saw it, shown the way this dialect renders it.
pub fn shown_id(kind: Kind, id: &str) -> String {
    if let Some(raw) = id.strip_prefix('!') {
        return raw.to_string();
    }
    let bare = id.rsplit('-').next().unwrap_or(id);
    if bare.len() == 8 && bare.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) {
        wire::uuid(kind, bare)
    } else {
        id.to_string()
    }
}

impl OsError {
    pub fn status(&self) -> StatusCode {
        match self {
            OsError::Service(e) => match e {
                ServiceError::MissingParameter(_) => StatusCode::BAD_REQUEST,
                ServiceError::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
                ServiceError::NotFound { .. } => StatusCode::NOT_FOUND,
                ServiceError::WrongState { .. } => StatusCode::BAD_REQUEST,
                ServiceError::Conflict { .. } => StatusCode::CONFLICT,
                ServiceError::UnknownZone(_) => StatusCode::BAD_REQUEST,
                ServiceError::UnknownAccount(_) => StatusCode::FORBIDDEN,
                ServiceError::LimitExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
                ServiceError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
                ServiceError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
                ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            OsError::BadRequest(_) => StatusCode::BAD_REQUEST,
            OsError::NotFound(_) => StatusCode::NOT_FOUND,
            OsError::Forbidden(_) => StatusCode::FORBIDDEN,
            OsError::Unauthorized(_) | OsError::SignatureRefused(_) => StatusCode::UNAUTHORIZED,
            OsError::Conflict(_) => StatusCode::CONFLICT,
            OsError::BadMethod => StatusCode::METHOD_NOT_ALLOWED,
            OsError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
        }
    }

    /// Cinder's fault name for the status (§7).
    pub fn name(&self) -> &'static str {
        match self.status().as_u16() {
            400 => "badRequest",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "itemNotFound",
            405 => "badMethod",
            409 => "conflictingRequest",
            413 => "overLimit",
            _ => "computeFault",
        }
    }

    /// What the client reads. Internal details never leave: they are logged instead.
    pub fn message(&self) -> String {
        match self {
            OsError::Service(e) => match e {
                ServiceError::MissingParameter(p) => format!("Invalid input received: {p} is required."),
                ServiceError::InvalidParameter { name, reason } => {
                    format!("Invalid input received: {name}: {reason}")
                }
                ServiceError::NotFound { kind, id } => {
                    format!("{} {} could not be found.", kind_word(*kind), shown_id(*kind, id))
                }
                ServiceError::WrongState { kind, id, state, reason } => format!(
                    "Invalid {}: {} {} is {state}: {reason}",
                    kind_word(*kind).to_lowercase(),
                    kind_word(*kind),
                    shown_id(*kind, id)
                ),
                ServiceError::Conflict { kind, id } => format!(
                    "{} {} was changed by another request at the same moment; retry.",
                    kind_word(*kind),
                    shown_id(*kind, id)
                ),
                ServiceError::UnknownZone(z) => format!("Invalid input received: Availability zone '{z}' is invalid."),
                ServiceError::UnknownAccount(_) => "Policy doesn't allow this operation.".into(),
                ServiceError::LimitExceeded(m) => m.clone(),
                ServiceError::InsufficientStorage(_) => {
                    "The server's storage is full, so nothing was done; retry once space is freed.".into()
                }
                ServiceError::Corrupt(_) | ServiceError::Internal(_) => {
                    "The server has either erred or is incapable of performing the requested operation.".into()
                }
            },
            OsError::BadRequest(m)
            | OsError::NotFound(m)
            | OsError::Forbidden(m)
            | OsError::Unauthorized(m)
            | OsError::SignatureRefused(m)
            | OsError::Conflict(m)
            | OsError::NotAcceptable(m) => m.clone(),
            OsError::BadMethod => "The method is not allowed for the requested URL.".into(),
        }
    }

    pub fn body(&self, envelope: Envelope, request_id: &str) -> Value {
        let status = self.status().as_u16();
        let message = self.message();
        match (self, envelope) {
            (OsError::SignatureRefused(m), _) => json!({"error_code": "APIGW.0301",
                "error_msg": format!("Incorrect IAM authentication information: {m}"), "request_id": request_id}),
            (OsError::Unauthorized(_), _) | (_, Envelope::Keystone) => {
                let title = match status {
                    401 => "Unauthorized",
                    403 => "Forbidden",
                    404 => "Not Found",
                    400 => "Bad Request",
                    405 => "Method Not Allowed",
                    _ => "Internal Server Error",
                };
                json!({"error": {"code": status, "title": title, "message": message}})
            }
            (_, Envelope::Cinder) => {
                let mut inner = json!({"code": status, "message": message});
                if status == 413 {
                    inner["retryAfter"] = json!("0");
                }
                json!({ self.name(): inner })
            }
            (_, Envelope::EvsCinder) => json!({ self.name(): {"code": format!("EVS.{status}0"), "message": message} }),
            (_, Envelope::EvsNative) => json!({"error": {"message": message, "code": format!("EVS.{status}0")}}),
        }
    }

    /// The response (the pipeline has logged an internal error already).
    pub fn render(&self, envelope: Envelope, request_id: &str) -> Response {
        let mut resp = (self.status(), axum::Json(self.body(envelope, request_id))).into_response();
        if matches!(self, OsError::Unauthorized(_)) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Keystone uri=\"/identity\""));
        }
        if self.status() == StatusCode::PAYLOAD_TOO_LARGE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
        }
        resp
    }
}

impl From<ServiceError> for OsError {
    fn from(e: ServiceError) -> Self {
        OsError::Service(e)
    }
}

pub type OsResult<T> = Result<T, OsError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn every_error() -> Vec<OsError> {
        vec![
            OsError::Service(ServiceError::MissingParameter("volume_id".into())),
            OsError::Service(ServiceError::invalid("size", "must be 1 to 32768 GiB")),
            OsError::Service(ServiceError::not_found(Kind::Snapshot, "k3x9a0b2")),
            OsError::Service(ServiceError::wrong_state(Kind::Volume, "vol-k3x9a0b2", "in-use", "attached")),
            OsError::Service(ServiceError::UnknownZone("mars".into())),
            OsError::Service(ServiceError::UnknownAccount("ghost".into())),
            OsError::Service(ServiceError::LimitExceeded("Maximum number of snapshots allowed (10) exceeded".into())),
            OsError::Service(ServiceError::Corrupt("chunk abc".into())),
            OsError::Service(ServiceError::Internal("disk full at /secret/path".into())),
            OsError::BadRequest("limit param must be an integer".into()),
            OsError::NotFound("Snapshot x could not be found.".into()),
            OsError::Forbidden("Policy doesn't allow this operation.".into()),
            OsError::Unauthorized("The request you have made requires authentication.".into()),
            OsError::SignatureRefused("verify aksk signature fail".into()),
            OsError::Conflict("busy".into()),
            OsError::BadMethod,
            OsError::NotAcceptable("Version 3.99 is not supported by the API.".into()),
        ]
    }

    #[test]
    fn golden_cinder_bodies() {
        let got: Vec<String> = every_error()
            .iter()
            .map(|e| format!("{} {}", e.status().as_u16(), e.body(Envelope::Cinder, "r")))
            .collect();
        let want = [
            r#"400 {"badRequest":{"code":400,"message":"Invalid input received: volume_id is required."}}"#,
            r#"400 {"badRequest":{"code":400,"message":"Invalid input received: size: must be 1 to 32768 GiB"}}"#,
            r#"404 {"itemNotFound":{"code":404,"message":"Snapshot d15c0002-0000-4000-8000-016ee6771d0e could not be found."}}"#,
            r#"400 {"badRequest":{"code":400,"message":"Invalid volume: Volume d15c0001-0000-4000-8000-016ee6771d0e is in-use: attached"}}"#,
            r#"400 {"badRequest":{"code":400,"message":"Invalid input received: Availability zone 'mars' is invalid."}}"#,
            r#"403 {"forbidden":{"code":403,"message":"Policy doesn't allow this operation."}}"#,
            r#"413 {"overLimit":{"code":413,"message":"Maximum number of snapshots allowed (10) exceeded","retryAfter":"0"}}"#,
            r#"500 {"computeFault":{"code":500,"message":"The server has either erred or is incapable of performing the requested operation."}}"#,
            r#"500 {"computeFault":{"code":500,"message":"The server has either erred or is incapable of performing the requested operation."}}"#,
            r#"400 {"badRequest":{"code":400,"message":"limit param must be an integer"}}"#,
            r#"404 {"itemNotFound":{"code":404,"message":"Snapshot x could not be found."}}"#,
            r#"403 {"forbidden":{"code":403,"message":"Policy doesn't allow this operation."}}"#,
            r#"401 {"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}"#,
            r#"401 {"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: verify aksk signature fail","request_id":"r"}"#,
            r#"409 {"conflictingRequest":{"code":409,"message":"busy"}}"#,
            r#"405 {"badMethod":{"code":405,"message":"The method is not allowed for the requested URL."}}"#,
            r#"406 {"computeFault":{"code":406,"message":"Version 3.99 is not supported by the API."}}"#,
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn golden_evs_bodies() {
        let nf = OsError::Service(ServiceError::not_found(Kind::Snapshot, "k3x9a0b2"));
        assert_eq!(
            nf.body(Envelope::EvsCinder, "r").to_string(),
            r#"{"itemNotFound":{"code":"EVS.4040","message":"Snapshot d15c0002-0000-4000-8000-016ee6771d0e could not be found."}}"#
        );
        assert_eq!(
            OsError::BadRequest("bad".into()).body(Envelope::EvsNative, "r").to_string(),
            r#"{"error":{"code":"EVS.4000","message":"bad"}}"#
        );
        let internal = OsError::Service(ServiceError::Internal("disk full at /secret/path".into()));
        for env in [Envelope::Cinder, Envelope::EvsCinder, Envelope::EvsNative, Envelope::Keystone] {
            assert!(!internal.body(env, "r").to_string().contains("secret"));
        }
    }
}
