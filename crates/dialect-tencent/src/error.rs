//! Tencent v2 errors: always HTTP 200 (the SDK treats any other status as a network failure) with
//! `{"code": <int ≠ 0>, "message": "…", "codeDesc": "…"}` (dialects.md §5.6). Every
//! [`ServiceError`] variant is mapped explicitly: a new variant breaks this build until it is
//! given a code here.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use disksnap_api_common::RequestId;
use disksnap_service::{Kind, ServiceError};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TencentError {
    /// A common parameter (SecretId, Timestamp, Nonce, Signature, Action) is missing or malformed,
    /// or the request itself is unusable (method, body). 4000.
    InvalidCommon(String),
    /// `Region` names no configured zone. 4000.
    UnknownRegion(String),
    /// `Action` is not one this dialect serves. 6100.
    UnsupportedAction(String),
    /// No account has this SecretId. 4104.
    SecretIdNotFound(String),
    /// The signature does not match; carries what the server signed. 4100.
    AuthFailure(String),
    /// `Timestamp` outside the clock window. 4500.
    RequestExpired(String),
    /// `Nonce` already used by this SecretId within the window. 4500.
    NonceUsed(String),
    /// `Token` (temporary credentials) is not supported. 4105.
    InvalidToken,
    /// An action parameter is missing or invalid. 9003.
    InvalidParameter { name: String, reason: String },
    /// A snapshot's disk type does not allow the operation (a disk from a root-disk snapshot). 16007.
    DiskTypeInvalid(String),
    /// What the service refused.
    Service(ServiceError),
}

impl From<ServiceError> for TencentError {
    fn from(e: ServiceError) -> Self {
        TencentError::Service(e)
    }
}

impl TencentError {
    pub fn invalid(name: &str, reason: impl Into<String>) -> Self {
        TencentError::InvalidParameter { name: name.to_string(), reason: reason.into() }
    }

    /// The numeric code and the English name put in `codeDesc`.
    pub fn code(&self) -> (i64, &'static str) {
        match self {
            TencentError::InvalidCommon(_) | TencentError::UnknownRegion(_) => (4000, "InvalidParameter"),
            TencentError::UnsupportedAction(_) => (6100, "UnsupportedAction"),
            TencentError::SecretIdNotFound(_) => (4104, "SecretIdNotFound"),
            TencentError::AuthFailure(_) => (4100, "AuthFailure"),
            TencentError::RequestExpired(_) => (4500, "RequestExpired"),
            TencentError::NonceUsed(_) => (4500, "NonceUsed"),
            TencentError::InvalidToken => (4105, "InvalidToken"),
            TencentError::InvalidParameter { .. } => (9003, "InvalidParameter"),
            TencentError::DiskTypeInvalid(_) => (16007, "IncorrectInstanceStatus.DiskTypeInvalid"),
            TencentError::Service(e) => service_code(e),
        }
    }

    /// What the client reads. Internal details never leave the server: those errors carry the
    /// request id instead (the log has the rest).
    pub fn message(&self, request_id: &RequestId) -> String {
        match self {
            TencentError::InvalidCommon(m) => m.clone(),
            TencentError::UnknownRegion(r) => {
                format!("(100001)Region {r:?} is not a region of this disksnap; use a configured zone name or alias")
            }
            TencentError::UnsupportedAction(a) => format!(
                "Action {a:?} is not supported; this endpoint serves DescribeSnapshots, CreateSnapshot, \
                 DeleteSnapshot, ModifySnapshot, ApplySnapshot, DescribeCbsStorages, CreateCbsStorages"
            ),
            TencentError::SecretIdNotFound(id) => format!("SecretId {id:?} is not known to this disksnap"),
            TencentError::AuthFailure(m) => m.clone(),
            TencentError::RequestExpired(m) => m.clone(),
            TencentError::NonceUsed(n) => {
                format!("Nonce {n} was already used with this SecretId; send a fresh random Nonce with every request")
            }
            TencentError::InvalidToken => {
                "Token (temporary credentials) is not supported by disksnap; sign with a SecretId and SecretKey".into()
            }
            TencentError::InvalidParameter { name, reason } => format!("(100004)invalid parameter {name}: {reason}"),
            TencentError::DiskTypeInvalid(m) => m.clone(),
            TencentError::Service(e) => service_message(e, request_id),
        }
    }

    pub fn is_internal(&self) -> bool {
        matches!(self, TencentError::Service(ServiceError::Internal(_) | ServiceError::Corrupt(_)))
    }

    /// The vendor envelope, HTTP 200 (the pipeline has logged an internal error already).
    pub fn render(&self, request_id: &RequestId) -> Response {
        let (code, desc) = self.code();
        let body = ErrorBody { code, message: self.message(request_id), code_desc: desc };
        json_200(&body)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    code: i64,
    message: String,
    code_desc: &'static str,
}

/// Any body as JSON with HTTP 200 (success and error alike).
/// A rendered JSON body as a 200 answer.
pub fn json_bytes_200(body: impl Into<axum::body::Body>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.into()).into_response()
}

pub fn json_200(body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], bytes).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "tencent: response could not be encoded");
            let fallback = r#"{"code":6000,"message":"internal error: the response could not be encoded","codeDesc":"InternalError"}"#;
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], fallback).into_response()
        }
    }
}

fn service_code(e: &ServiceError) -> (i64, &'static str) {
    match e {
        ServiceError::MissingParameter(_) | ServiceError::InvalidParameter { .. } => (9003, "InvalidParameter"),
        ServiceError::NotFound { .. } => (5000, "ResourceNotFound"),
        ServiceError::WrongState { kind: Kind::Volume, state, .. } if state == "snapshotting" => {
            (16027, "IncorrectInstanceStatus.CbsCreatingSnapshot")
        }
        ServiceError::WrongState { kind: Kind::Volume, .. } => (16005, "IncorrectInstanceStatus.DiskBusy"),
        ServiceError::WrongState { kind: Kind::Snapshot, state, .. } if state == "rolling-back" => {
            (16005, "IncorrectInstanceStatus.DiskBusy")
        }
        ServiceError::WrongState { .. } => (5100, "FailedOperation"),
        ServiceError::Conflict { kind: Kind::Volume, .. } => (16005, "IncorrectInstanceStatus.DiskBusy"),
        ServiceError::Conflict { .. } => (5100, "FailedOperation"),
        ServiceError::UnknownZone(_) => (4000, "InvalidParameter"),
        ServiceError::UnknownAccount(_) => (4104, "SecretIdNotFound"),
        ServiceError::LimitExceeded(_) => (16006, "SnapshotQuotaExceeded"),
        // 5200: "resources insufficient" in Tencent's common codes.
        ServiceError::InsufficientStorage(_) => (5200, "ResourceInsufficient"),
        ServiceError::Corrupt(_) | ServiceError::Internal(_) => (6000, "InternalError"),
    }
}

fn service_message(e: &ServiceError, request_id: &RequestId) -> String {
    match e {
        ServiceError::MissingParameter(p) => format!("(100004)missing parameter {p}"),
        ServiceError::InvalidParameter { name, reason } => format!("(100004)invalid parameter {name}: {reason}"),
        ServiceError::NotFound { kind: Kind::Snapshot, id } => {
            format!("(16003)snap not exist: snapshot {id} does not exist in this account")
        }
        ServiceError::NotFound { kind: Kind::Volume, id } => {
            format!("(16001)disk not exist: CBS disk {id} does not exist in this account")
        }
        ServiceError::NotFound { kind, id } => format!("{kind} {id} does not exist in this account"),
        ServiceError::WrongState { kind, id, state, reason } => {
            let what = if *kind == Kind::Volume { "disk".to_string() } else { kind.to_string() };
            format!("{what} {} is {}: {reason}", crate::wire::reshow(*kind, id), crate::wire::state_word(*kind, state))
        }
        ServiceError::Conflict { kind, id } => {
            let what = if *kind == Kind::Volume { "disk".to_string() } else { kind.to_string() };
            format!(
                "{what} {} was changed by another request at the same moment; retry",
                crate::wire::reshow(*kind, id)
            )
        }
        ServiceError::UnknownZone(z) => format!("(100001)zone {z:?} is not a zone of this disksnap"),
        ServiceError::UnknownAccount(a) => {
            format!("the account {a:?} this SecretId belongs to is not configured; check the server's config")
        }
        ServiceError::LimitExceeded(m) => m.clone(),
        ServiceError::Corrupt(_) => format!(
            "internal error: stored data failed its integrity check; the operator can run `disksnap verify` \
             (request id {})",
            request_id.0
        ),
        ServiceError::InsufficientStorage(_) => {
            "the server's storage is full, so nothing was done; retry once space is freed".into()
        }
        ServiceError::Internal(_) => format!("internal error; please retry (request id {})", request_id.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(e: TencentError) -> String {
        let (code, desc) = e.code();
        let rid = RequestId("00000000-0000-4000-8000-000000000000".into());
        serde_json::to_string(&ErrorBody { code, message: e.message(&rid), code_desc: desc }).unwrap()
    }

    /// One golden line per variant (and per service error variant).
    #[test]
    fn golden_envelopes() {
        let cases: Vec<(TencentError, &str)> = vec![
            (
                TencentError::InvalidCommon("missing common parameter Nonce".into()),
                r#"{"code":4000,"message":"missing common parameter Nonce","codeDesc":"InvalidParameter"}"#,
            ),
            (
                TencentError::UnknownRegion("mars".into()),
                r#"{"code":4000,"message":"(100001)Region \"mars\" is not a region of this disksnap; use a configured zone name or alias","codeDesc":"InvalidParameter"}"#,
            ),
            (
                TencentError::UnsupportedAction("RunInstances".into()),
                r#"{"code":6100,"message":"Action \"RunInstances\" is not supported; this endpoint serves DescribeSnapshots, CreateSnapshot, DeleteSnapshot, ModifySnapshot, ApplySnapshot, DescribeCbsStorages, CreateCbsStorages","codeDesc":"UnsupportedAction"}"#,
            ),
            (
                TencentError::SecretIdNotFound("AKIDx".into()),
                r#"{"code":4104,"message":"SecretId \"AKIDx\" is not known to this disksnap","codeDesc":"SecretIdNotFound"}"#,
            ),
            (
                TencentError::AuthFailure("signature mismatch".into()),
                r#"{"code":4100,"message":"signature mismatch","codeDesc":"AuthFailure"}"#,
            ),
            (
                TencentError::RequestExpired("Timestamp is 10s older".into()),
                r#"{"code":4500,"message":"Timestamp is 10s older","codeDesc":"RequestExpired"}"#,
            ),
            (
                TencentError::NonceUsed("11886".into()),
                r#"{"code":4500,"message":"Nonce 11886 was already used with this SecretId; send a fresh random Nonce with every request","codeDesc":"NonceUsed"}"#,
            ),
            (
                TencentError::InvalidToken,
                r#"{"code":4105,"message":"Token (temporary credentials) is not supported by disksnap; sign with a SecretId and SecretKey","codeDesc":"InvalidToken"}"#,
            ),
            (
                TencentError::invalid("limit", "must be 1 to 100"),
                r#"{"code":9003,"message":"(100004)invalid parameter limit: must be 1 to 100","codeDesc":"InvalidParameter"}"#,
            ),
            (
                TencentError::DiskTypeInvalid("root".into()),
                r#"{"code":16007,"message":"root","codeDesc":"IncorrectInstanceStatus.DiskTypeInvalid"}"#,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(render(e), want);
        }
    }

    #[test]
    fn golden_service_errors() {
        use ServiceError as S;
        let cases: Vec<(ServiceError, &str)> = vec![
            (
                S::MissingParameter("snapshotIds".into()),
                r#"{"code":9003,"message":"(100004)missing parameter snapshotIds","codeDesc":"InvalidParameter"}"#,
            ),
            (
                S::invalid("size", "too big"),
                r#"{"code":9003,"message":"(100004)invalid parameter size: too big","codeDesc":"InvalidParameter"}"#,
            ),
            (
                S::not_found(Kind::Snapshot, "snap-zzzzzzzz"),
                r#"{"code":5000,"message":"(16003)snap not exist: snapshot snap-zzzzzzzz does not exist in this account","codeDesc":"ResourceNotFound"}"#,
            ),
            (
                S::not_found(Kind::Volume, "disk-zzzzzzzz"),
                r#"{"code":5000,"message":"(16001)disk not exist: CBS disk disk-zzzzzzzz does not exist in this account","codeDesc":"ResourceNotFound"}"#,
            ),
            (
                S::not_found(Kind::Job, "j-1"),
                r#"{"code":5000,"message":"job j-1 does not exist in this account","codeDesc":"ResourceNotFound"}"#,
            ),
            (
                S::wrong_state(Kind::Volume, "vol-abcdefgh", "snapshotting", "it is busy with another operation"),
                r#"{"code":16027,"message":"disk disk-abcdefgh is snapshotCreating: it is busy with another operation","codeDesc":"IncorrectInstanceStatus.CbsCreatingSnapshot"}"#,
            ),
            (
                S::wrong_state(Kind::Volume, "vol-abcdefgh", "rolling-back", "it is busy with another operation"),
                r#"{"code":16005,"message":"disk disk-abcdefgh is rollback: it is busy with another operation","codeDesc":"IncorrectInstanceStatus.DiskBusy"}"#,
            ),
            (
                S::wrong_state(Kind::Snapshot, "snap-abcdefgh", "rolling-back", "it is busy with another operation"),
                r#"{"code":16005,"message":"snapshot snap-abcdefgh is rollbacking: it is busy with another operation","codeDesc":"IncorrectInstanceStatus.DiskBusy"}"#,
            ),
            (
                S::wrong_state(Kind::Snapshot, "snap-abcdefgh", "creating", "only an available snapshot can be used"),
                r#"{"code":5100,"message":"snapshot snap-abcdefgh is creating: only an available snapshot can be used","codeDesc":"FailedOperation"}"#,
            ),
            (
                S::UnknownZone("mars".into()),
                r#"{"code":4000,"message":"(100001)zone \"mars\" is not a zone of this disksnap","codeDesc":"InvalidParameter"}"#,
            ),
            (
                S::UnknownAccount("carol".into()),
                r#"{"code":4104,"message":"the account \"carol\" this SecretId belongs to is not configured; check the server's config","codeDesc":"SecretIdNotFound"}"#,
            ),
            (
                S::LimitExceeded("at most 64 snapshots per disk".into()),
                r#"{"code":16006,"message":"at most 64 snapshots per disk","codeDesc":"SnapshotQuotaExceeded"}"#,
            ),
            (
                S::Corrupt("chunk ab12 hash mismatch".into()),
                r#"{"code":6000,"message":"internal error: stored data failed its integrity check; the operator can run `disksnap verify` (request id 00000000-0000-4000-8000-000000000000)","codeDesc":"InternalError"}"#,
            ),
            (
                S::Internal("database is locked".into()),
                r#"{"code":6000,"message":"internal error; please retry (request id 00000000-0000-4000-8000-000000000000)","codeDesc":"InternalError"}"#,
            ),
        ];
        for (e, want) in cases {
            let leaked = matches!(e, S::Internal(_) | S::Corrupt(_));
            let got = render(TencentError::Service(e));
            assert_eq!(got, want);
            if leaked {
                assert!(!got.contains("database") && !got.contains("ab12"), "internal details leaked: {got}");
            }
        }
    }
}
