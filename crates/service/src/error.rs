//! The service's one error type. Dialects map every variant to their vendor's code and envelope
//! (exhaustively: a new variant breaks each dialect's build until it decides).

use crate::model::Kind;

pub type Result<T> = std::result::Result<T, ServiceError>;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ServiceError {
    /// A required parameter was not given.
    #[error("missing parameter {0}")]
    MissingParameter(String),
    /// A parameter has a value that can never work (bad format, out of range).
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: String, reason: String },
    /// No such resource in this account (another account's resources are not found, too).
    #[error("{kind} {id} not found")]
    NotFound { kind: Kind, id: String },
    /// The resource exists but its state forbids the operation now (busy, deleted, wrong type).
    #[error("{kind} {id} is {state}: {reason}")]
    WrongState { kind: Kind, id: String, state: String, reason: String },
    /// Another operation wrote the resource at the same moment, and retrying did not get
    /// through (the service retries such races itself; this reaches a caller only under a
    /// storm of writes to one resource). Safe to retry.
    #[error("{kind} {id} was changed by another operation at the same moment; retry")]
    Conflict { kind: Kind, id: String },
    /// The location names no configured zone.
    #[error("zone {0} does not exist")]
    UnknownZone(String),
    /// The caller's account is not configured.
    #[error("account {0} does not exist")]
    UnknownAccount(String),
    /// A quota or size limit would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// Stored data failed its checks (a corrupt or missing chunk). Logged; users get the id.
    #[error("stored data failed its integrity check: {0}")]
    Corrupt(String),
    /// Anything else: the database or the disk failed. Logged with details; users get a
    /// generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn invalid(name: &str, reason: impl Into<String>) -> Self {
        ServiceError::InvalidParameter { name: name.to_string(), reason: reason.into() }
    }
    pub fn not_found(kind: Kind, id: &str) -> Self {
        ServiceError::NotFound { kind, id: id.to_string() }
    }
    pub fn wrong_state(kind: Kind, id: &str, state: impl Into<String>, reason: impl Into<String>) -> Self {
        ServiceError::WrongState { kind, id: id.to_string(), state: state.into(), reason: reason.into() }
    }
}

impl From<disksnap_meta::MetaError> for ServiceError {
    fn from(e: disksnap_meta::MetaError) -> Self {
        match e {
            disksnap_meta::MetaError::Conflict { what, id, found, .. } => ServiceError::WrongState {
                kind: kind_of(what),
                state: found.filter(|s| !s.is_empty()).unwrap_or_else(|| "busy".into()),
                id,
                reason: "another operation changed it first; retry when it is done".into(),
            },
            disksnap_meta::MetaError::Stale { what, id } => ServiceError::Conflict { kind: kind_of(what), id },
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

fn kind_of(what: &str) -> Kind {
    match what {
        "volume" => Kind::Volume,
        "job" => Kind::Job,
        "image" => Kind::Image,
        _ => Kind::Snapshot,
    }
}

impl From<disksnap_engine::EngineError> for ServiceError {
    fn from(e: disksnap_engine::EngineError) -> Self {
        use disksnap_engine::EngineError as E;
        match e {
            E::CorruptChunk { .. } | E::MissingChunk { .. } | E::CorruptIndex { .. } | E::MissingIndex { .. } => {
                ServiceError::Corrupt(e.to_string())
            }
            other => ServiceError::Internal(other.to_string()),
        }
    }
}
