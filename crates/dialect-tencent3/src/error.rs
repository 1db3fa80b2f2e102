//! Every refusal as Tencent Cloud API 3.0 answers it: HTTP 200,
//! `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`, with the codes spelled as the
//! vendor's common error table and CBS's `errorcodes.py` (tencentcloud-sdk-python-cbs) spell them.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use disksnap_api_common::RequestId;
use disksnap_service::{Kind, ServiceError};
use serde::Serialize;

#[derive(Debug)]
pub enum Tc3Error {
    /// The Authorization header is not `TC3-HMAC-SHA256 Credential=…, SignedHeaders=…,
    /// Signature=…`, or its scope is not `date/cbs/tc3_request`.
    InvalidAuthorization(String),
    /// The signature does not match.
    SignatureFailure(String),
    /// No account holds this SecretId.
    SecretIdNotFound(String),
    /// The timestamp is outside the window.
    SignatureExpire(String),
    /// `X-TC-Token` / `Token`: temporary credentials are not served.
    TokenFailure,
    /// This signed request (TC3 signature, or v1 Nonce) was already used within the window.
    Replay(String),
    /// `X-TC-Action` names no action served here.
    InvalidAction(String),
    /// `X-TC-Version` is not 2017-03-12.
    NoSuchVersion(String),
    /// `X-TC-Region` names no zone or alias of this disksnap.
    UnsupportedRegion(String),
    /// A required parameter is missing.
    MissingParameter(String),
    /// The request is malformed (wrong JSON type, unreadable body, conflicting parameters).
    InvalidParameter(String),
    /// A parameter's value cannot work.
    InvalidParameterValue { name: String, reason: String },
    /// `Limit` (or a list) above its maximum.
    LimitExceeded { name: String, reason: String },
    /// A `Filters.N.Name` not documented for the action.
    InvalidFilter(String),
    /// An operation disksnap does not offer (encrypted disks, other disk types, a prepaid
    /// disk, instances that do not exist…).
    Unsupported(String),
    /// The account has this many automatic snapshot policies already.
    PolicyQuota(usize),
    /// What the service refused.
    Service(ServiceError),
}

impl From<ServiceError> for Tc3Error {
    fn from(e: ServiceError) -> Self {
        Tc3Error::Service(e)
    }
}

impl Tc3Error {
    pub fn value(name: &str, reason: impl Into<String>) -> Self {
        Tc3Error::InvalidParameterValue { name: name.to_string(), reason: reason.into() }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Tc3Error::InvalidAuthorization(_) => "AuthFailure.InvalidAuthorization",
            Tc3Error::SignatureFailure(_) => "AuthFailure.SignatureFailure",
            Tc3Error::SecretIdNotFound(_) => "AuthFailure.SecretIdNotFound",
            Tc3Error::SignatureExpire(_) => "AuthFailure.SignatureExpire",
            Tc3Error::TokenFailure => "AuthFailure.TokenFailure",
            // Tencent's own spelling of a replay refusal (used by its other products); the
            // `LimitExceeded` family is one CBS documents.
            Tc3Error::Replay(_) => "LimitExceeded.ReplayAttack",
            Tc3Error::InvalidAction(_) => "InvalidAction",
            Tc3Error::NoSuchVersion(_) => "NoSuchVersion",
            Tc3Error::UnsupportedRegion(_) => "UnsupportedRegion",
            Tc3Error::MissingParameter(_) => "MissingParameter",
            Tc3Error::InvalidParameter(_) => "InvalidParameter",
            Tc3Error::InvalidParameterValue { .. } => "InvalidParameterValue",
            Tc3Error::LimitExceeded { .. } => "InvalidParameterValue.LimitExceeded",
            Tc3Error::InvalidFilter(_) => "InvalidFilter",
            Tc3Error::Unsupported(_) => "UnsupportedOperation",
            Tc3Error::PolicyQuota(_) => "LimitExceeded.AutoSnapshotPolicyOutOfQuota",
            Tc3Error::Service(e) => service_code(e),
        }
    }

    /// What the client reads; internal details never leave the server (the request id does).
    pub fn message(&self, request_id: &RequestId) -> String {
        match self {
            Tc3Error::InvalidAuthorization(m)
            | Tc3Error::SignatureFailure(m)
            | Tc3Error::SignatureExpire(m)
            | Tc3Error::InvalidParameter(m)
            | Tc3Error::Unsupported(m) => m.clone(),
            Tc3Error::SecretIdNotFound(id) => {
                format!("SecretId {id:?} is not known to this disksnap; use the account's tencent secret_id")
            }
            Tc3Error::TokenFailure => "temporary credentials (X-TC-Token / Token) are not supported by disksnap; \
                 sign with the account's SecretId and SecretKey"
                .into(),
            Tc3Error::Replay(m) => m.clone(),
            Tc3Error::InvalidAction(a) => format!(
                "action {a:?} is not served here; CBS 2017-03-12 actions served: {}",
                crate::router::Endpoint::ALL.iter().map(|e| e.name()).collect::<Vec<_>>().join(", ")
            ),
            Tc3Error::NoSuchVersion(v) => {
                format!("version {v:?} is not served; this endpoint speaks CBS {}", crate::VERSION)
            }
            Tc3Error::UnsupportedRegion(r) => {
                format!("region {r:?} is not a zone or zone alias of this disksnap")
            }
            Tc3Error::MissingParameter(p) => format!("the request is missing the required parameter `{p}`"),
            Tc3Error::InvalidParameterValue { name, reason } | Tc3Error::LimitExceeded { name, reason } => {
                format!("invalid value of `{name}`: {reason}")
            }
            Tc3Error::InvalidFilter(m) => m.clone(),
            Tc3Error::PolicyQuota(n) => {
                format!("the account has {n} automatic snapshot policies, the most it may have; delete one first")
            }
            Tc3Error::Service(e) => service_message(e, request_id),
        }
    }

    pub fn is_internal(&self) -> bool {
        matches!(self, Tc3Error::Service(ServiceError::Internal(_) | ServiceError::Corrupt(_)))
    }

    pub fn render(&self, request_id: &RequestId) -> Response {
        json_200(&envelope_error(self.code(), &self.message(request_id), request_id))
    }
}

/// `{"Response": {"Error": {...}, "RequestId"}}` as a JSON value.
pub fn envelope_error(code: &str, message: &str, request_id: &RequestId) -> serde_json::Value {
    serde_json::json!({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id.0}})
}

/// A body with HTTP 200 and exactly `application/json`: the SDK reads the error inside only when
/// the Content-Type is that string (`AbstractClient._check_error`).
/// A rendered JSON body as a 200 answer.
pub fn json_bytes_200(body: Vec<u8>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub fn json_200(body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "tencent3: response could not be encoded");
            let fallback = r#"{"Response":{"Error":{"Code":"InternalError","Message":"internal error: the response could not be encoded"},"RequestId":""}}"#;
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], fallback).into_response()
        }
    }
}

fn service_code(e: &ServiceError) -> &'static str {
    match e {
        ServiceError::MissingParameter(_) => "MissingParameter",
        ServiceError::InvalidParameter { .. } => "InvalidParameterValue",
        ServiceError::NotFound { kind: Kind::Snapshot | Kind::Chain, .. } => "InvalidSnapshotId.NotFound",
        ServiceError::NotFound { kind: Kind::Volume, .. } => "InvalidDiskId.NotFound",
        ServiceError::NotFound { kind: Kind::Instance, .. } => "InvalidInstanceId.NotFound",
        ServiceError::NotFound { kind: Kind::Policy, .. } => "InvalidAutoSnapshotPolicyId.NotFound",
        ServiceError::NotFound { .. } => "ResourceNotFound.NotFound",
        // A disk busy with another operation; an attached disk for what needs it detached.
        ServiceError::WrongState { kind: Kind::Volume, state, .. } if state == "in-use" => "ResourceInUse",
        ServiceError::WrongState { kind: Kind::Volume, state, .. } if state == "rolling-back" => {
            "ResourceInUse.DiskRollbacking"
        }
        ServiceError::WrongState { kind: Kind::Volume, state, .. } if state == "snapshotting" => {
            "ResourceUnavailable.SnapshotCreating"
        }
        // Detaching a disk that is not attached.
        ServiceError::WrongState { kind: Kind::Volume, state, .. } if state == "available" => {
            "UnsupportedOperation.StateError"
        }
        ServiceError::WrongState { kind: Kind::Volume, .. } => "ResourceBusy",
        ServiceError::WrongState { kind: Kind::Snapshot, state, .. } if state == "creating" => {
            "ResourceUnavailable.SnapshotCreating"
        }
        ServiceError::WrongState { kind: Kind::Snapshot, state, .. } if state == "rolling-back" => {
            "ResourceInUse.DiskRollbacking"
        }
        ServiceError::WrongState { .. } => "UnsupportedOperation.StateError",
        ServiceError::Conflict { .. } => "ResourceBusy",
        ServiceError::UnknownZone(_) => "InvalidParameterValue",
        ServiceError::UnknownAccount(_) => "AuthFailure.SecretIdNotFound",
        ServiceError::LimitExceeded(_) => "LimitExceeded",
        ServiceError::InsufficientStorage(_) => "ResourceInsufficient",
        ServiceError::Corrupt(_) | ServiceError::Internal(_) => "InternalError",
    }
}

fn service_message(e: &ServiceError, request_id: &RequestId) -> String {
    use crate::wire::reshow;
    match e {
        ServiceError::MissingParameter(p) => format!("the request is missing the required parameter `{p}`"),
        ServiceError::InvalidParameter { name, reason } => format!("invalid value of `{name}`: {reason}"),
        ServiceError::NotFound { kind: Kind::Snapshot | Kind::Chain, id } => {
            format!("snapshot {} does not exist in this account", reshow(Kind::Snapshot, id))
        }
        ServiceError::NotFound { kind: Kind::Volume, id } => {
            format!("disk {} does not exist in this account", reshow(Kind::Volume, id))
        }
        ServiceError::NotFound { kind, id } => format!("{kind} {} does not exist in this account", reshow(*kind, id)),
        ServiceError::WrongState { kind, id, state, reason } => {
            let what = if *kind == Kind::Volume { "disk".to_string() } else { kind.to_string() };
            format!("{what} {} is {state}: {reason}", reshow(*kind, id))
        }
        ServiceError::Conflict { kind, id } => {
            format!("{kind} {} was changed by another request at the same moment; retry", reshow(*kind, id))
        }
        ServiceError::UnknownZone(z) => format!("zone {z:?} is not a zone of this disksnap"),
        ServiceError::UnknownAccount(a) => {
            format!("the account {a:?} this SecretId belongs to is not configured; check the server's config")
        }
        ServiceError::LimitExceeded(m) => m.clone(),
        ServiceError::InsufficientStorage(_) => {
            "the server's storage is full, so nothing was done; retry once space is freed".into()
        }
        ServiceError::Corrupt(_) => format!(
            "internal error: stored data failed its integrity check; the operator can run `disksnap verify` \
             (request id {})",
            request_id.0
        ),
        ServiceError::Internal(_) => format!("internal error; please retry (request id {})", request_id.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(e: Tc3Error) -> String {
        let rid = RequestId("00000000-0000-4000-8000-000000000000".into());
        envelope_error(e.code(), &e.message(&rid), &rid).to_string()
    }

    #[test]
    fn golden_envelopes() {
        let rid = r#""RequestId":"00000000-0000-4000-8000-000000000000""#;
        let cases: Vec<(Tc3Error, &str, &str)> = vec![
            (Tc3Error::SignatureFailure("no".into()), "AuthFailure.SignatureFailure", "no"),
            (
                Tc3Error::SecretIdNotFound("AKIDx".into()),
                "AuthFailure.SecretIdNotFound",
                "SecretId \\\"AKIDx\\\" is not known to this disksnap; use the account's tencent secret_id",
            ),
            (Tc3Error::SignatureExpire("old".into()), "AuthFailure.SignatureExpire", "old"),
            (Tc3Error::InvalidAuthorization("bad".into()), "AuthFailure.InvalidAuthorization", "bad"),
            (Tc3Error::Replay("again".into()), "LimitExceeded.ReplayAttack", "again"),
            (
                Tc3Error::MissingParameter("DiskId".into()),
                "MissingParameter",
                "the request is missing the required parameter `DiskId`",
            ),
            (Tc3Error::value("Limit", "at most 100"), "InvalidParameterValue", "invalid value of `Limit`: at most 100"),
            (Tc3Error::InvalidFilter("f".into()), "InvalidFilter", "f"),
            (Tc3Error::Unsupported("u".into()), "UnsupportedOperation", "u"),
            (
                ServiceError::not_found(Kind::Snapshot, "s-k3x9a2bq").into(),
                "InvalidSnapshotId.NotFound",
                "snapshot snap-k3x9a2bq does not exist in this account",
            ),
            (
                ServiceError::not_found(Kind::Volume, "vol-k3x9a2bq").into(),
                "InvalidDiskId.NotFound",
                "disk disk-k3x9a2bq does not exist in this account",
            ),
            (
                ServiceError::not_found(Kind::Job, "j").into(),
                "ResourceNotFound.NotFound",
                "job j does not exist in this account",
            ),
            (
                ServiceError::wrong_state(Kind::Volume, "k3x9a2bq", "resizing", "busy").into(),
                "ResourceBusy",
                "disk disk-k3x9a2bq is resizing: busy",
            ),
            (
                ServiceError::wrong_state(Kind::Volume, "k3x9a2bq", "in-use", "detach it first").into(),
                "ResourceInUse",
                "disk disk-k3x9a2bq is in-use: detach it first",
            ),
            (
                ServiceError::wrong_state(Kind::Volume, "k3x9a2bq", "available", "it is not attached").into(),
                "UnsupportedOperation.StateError",
                "disk disk-k3x9a2bq is available: it is not attached",
            ),
            (ServiceError::LimitExceeded("64 max".into()).into(), "LimitExceeded", "64 max"),
            (
                ServiceError::InsufficientStorage("x".into()).into(),
                "ResourceInsufficient",
                "the server's storage is full, so nothing was done; retry once space is freed",
            ),
            (
                ServiceError::Internal("database is locked".into()).into(),
                "InternalError",
                "internal error; please retry (request id 00000000-0000-4000-8000-000000000000)",
            ),
        ];
        for (e, code, msg) in cases {
            let want = format!(r#"{{"Response":{{"Error":{{"Code":"{code}","Message":"{msg}"}},{rid}}}}}"#);
            assert_eq!(line(e), want);
        }
        assert!(!line(ServiceError::Corrupt("chunk ab12".into()).into()).contains("ab12"));
    }
}
