//! QingCloud's error vocabulary (`api/error_code.md`), shared by the IaaS API (HTTP 200 +
//! `ret_code`) and 51idc's REST API (an HTTP status + the ret_code as a string; dialects.md §3.6).

use disksnap_service::{Kind, ServiceError};

/// Everything this vendor family can answer with instead of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QcError {
    /// An error of the service (resource, state, parameters the service checks).
    Service(ServiceError),
    /// A parameter this dialect parses is missing or malformed (1100).
    Invalid(String),
    /// The action (or REST path) does not exist (1101).
    UnknownAction(String),
    /// Unknown key, bad signature, unsupported signing method, bad or expired token (1200).
    Auth(String),
    /// The request's time has passed, or its `req_id` was used already (1300).
    Expired(String),
}

impl From<ServiceError> for QcError {
    fn from(e: ServiceError) -> Self {
        QcError::Service(e)
    }
}

/// How a resource is named in messages: QingCloud's own prefixes.
fn shown(kind: Kind, id: &str) -> String {
    let bare = disksnap_service::ids::parse(kind, id);
    match bare {
        Some(b) if !id.contains('-') => crate::ids::display(kind, &b),
        _ => id.to_string(),
    }
}

/// The message of ret_code 5200, for requests and for failed jobs alike.
pub const INSUFFICIENT_RESOURCES: &str =
    "InsufficientResources, the server's storage is full; nothing was kept. Retry once space is freed";

impl QcError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        QcError::Invalid(msg.into())
    }

    /// QingCloud's `ret_code`.
    pub fn ret_code(&self) -> u32 {
        match self {
            QcError::Invalid(_) => 1100,
            QcError::UnknownAction(_) => 1101,
            QcError::Auth(_) => 1200,
            QcError::Expired(_) => 1300,
            QcError::Service(e) => match e {
                ServiceError::MissingParameter(_) => 1100,
                ServiceError::InvalidParameter { .. } => 1100,
                ServiceError::UnknownZone(_) => 1100,
                ServiceError::NotFound { .. } => 2100,
                ServiceError::WrongState { .. } => 1400,
                // Nothing was committed; the SDK retries 5100 itself (dialects.md §2).
                ServiceError::Conflict { .. } => 5100,
                // The key names an account the service does not know: the credential is stale.
                ServiceError::UnknownAccount(_) => 1200,
                ServiceError::LimitExceeded(_) => 2500,
                // QingCloud's "insufficient resources" (api/error_code.md).
                ServiceError::InsufficientStorage(_) => 5200,
                ServiceError::Corrupt(_) => 5000,
                ServiceError::Internal(_) => 5000,
            },
        }
    }

    /// HTTP status for 51idc (IaaS always answers 200).
    pub fn http_status(&self) -> u16 {
        match self.ret_code() {
            1100 => 400,
            1101 => 404,
            1200 => 401,
            1300 => 401,
            1400 => 409,
            2100 => 404,
            2500 => 403,
            5200 => 507,
            5100 => 503,
            _ => 500,
        }
    }

    /// `<Type>, <detail>`: the type word QingCloud's documented messages start with, then what
    /// went wrong in words a person can act on. Internal details are never shown (they are
    /// logged with the request id instead).
    pub fn message(&self, request_id: &str) -> String {
        match self {
            QcError::Invalid(m) => format!("InvalidParameter, {m}"),
            QcError::UnknownAction(a) => format!("InvalidAction, action [{a}] is not supported"),
            QcError::Auth(m) => format!("AuthFailure, {m}"),
            QcError::Expired(m) => format!("RequestExpired, {m}"),
            QcError::Service(e) => match e {
                ServiceError::MissingParameter(p) => format!("InvalidParameter, parameter [{p}] is required"),
                ServiceError::InvalidParameter { name, reason } => {
                    format!("InvalidParameter, parameter [{name}] is invalid: {reason}")
                }
                ServiceError::UnknownZone(z) => format!("InvalidParameter, zone [{z}] does not exist"),
                ServiceError::NotFound { kind, id } => {
                    format!("ResourceNotFound, {kind} [{}] does not exist", shown(*kind, id))
                }
                ServiceError::WrongState { kind, id, state, reason } => {
                    format!("PermissionDenied, {kind} [{}] is [{state}]: {reason}", shown(*kind, id))
                }
                ServiceError::Conflict { kind, id } => {
                    format!(
                        "ServerBusy, {kind} [{}] was changed by another request at the same moment; retry",
                        shown(*kind, id)
                    )
                }
                ServiceError::UnknownAccount(_) => "AuthFailure, the access key's account is not configured".into(),
                ServiceError::LimitExceeded(m) => format!("QuotaExceeded, {m}"),
                ServiceError::Corrupt(_) => {
                    format!("InternalError, stored snapshot data failed its integrity check (request {request_id}); the operator's `disksnap verify` names the damage")
                }
                ServiceError::InsufficientStorage(_) => INSUFFICIENT_RESOURCES.into(),
                ServiceError::Internal(_) => format!("InternalError, the server failed (request {request_id})"),
            },
        }
    }

    /// The server failed: the client sees only the request id (the pipeline logs the cause).
    pub fn is_internal(&self) -> bool {
        matches!(self, QcError::Service(ServiceError::Internal(_) | ServiceError::Corrupt(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per variant: code, 51idc status and message start (golden).
    #[test]
    fn every_error_renders() {
        let cases: Vec<(QcError, u32, u16, &str)> = vec![
            (QcError::invalid("x"), 1100, 400, "InvalidParameter, x"),
            (QcError::UnknownAction("Foo".into()), 1101, 404, "InvalidAction, action [Foo] is not supported"),
            (QcError::Auth("bad".into()), 1200, 401, "AuthFailure, bad"),
            (QcError::Expired("late".into()), 1300, 401, "RequestExpired, late"),
            (
                ServiceError::MissingParameter("snapshot".into()).into(),
                1100,
                400,
                "InvalidParameter, parameter [snapshot] is required",
            ),
            (
                ServiceError::invalid("limit", "too big").into(),
                1100,
                400,
                "InvalidParameter, parameter [limit] is invalid: too big",
            ),
            (
                ServiceError::UnknownZone("mars".into()).into(),
                1100,
                400,
                "InvalidParameter, zone [mars] does not exist",
            ),
            (
                ServiceError::not_found(Kind::Snapshot, "s-abcdefgh").into(),
                2100,
                404,
                "ResourceNotFound, snapshot [s-abcdefgh] does not exist",
            ),
            (
                ServiceError::not_found(Kind::Snapshot, "abcdefgh").into(),
                2100,
                404,
                "ResourceNotFound, snapshot [ss-abcdefgh] does not exist",
            ),
            (
                ServiceError::wrong_state(Kind::Volume, "vol-abcdefgh", "in-use", "detach it first").into(),
                1400,
                409,
                "PermissionDenied, volume [vol-abcdefgh] is [in-use]: detach it first",
            ),
            (ServiceError::UnknownAccount("x".into()).into(), 1200, 401, "AuthFailure, "),
            (ServiceError::LimitExceeded("100 max".into()).into(), 2500, 403, "QuotaExceeded, 100 max"),
            (ServiceError::Corrupt("chunk".into()).into(), 5000, 500, "InternalError, stored snapshot data"),
            (
                ServiceError::InsufficientStorage("disk full".into()).into(),
                5200,
                507,
                "InsufficientResources, the server's storage is full",
            ),
            (
                ServiceError::Internal("disk on fire".into()).into(),
                5000,
                500,
                "InternalError, the server failed (request r1)",
            ),
        ];
        for (e, code, status, start) in cases {
            assert_eq!(e.ret_code(), code, "{e:?}");
            assert_eq!(e.http_status(), status, "{e:?}");
            let m = e.message("r1");
            assert!(m.starts_with(start), "{m}");
            assert!(!m.contains("disk on fire") && !m.contains("chunk"), "internals leak: {m}");
        }
    }
}
