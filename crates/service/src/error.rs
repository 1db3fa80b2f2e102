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
    /// The disk holding the data dir is full (ENOSPC, EDQUOT): nothing was kept; freeing
    /// space (or `disksnap gc`) and retrying works. Its text starts with
    /// [`INSUFFICIENT_STORAGE`], which is how a failed job's stored error is recognised.
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// Anything else: the database or the disk failed. Logged with details; users get a
    /// generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

/// How the text of [`ServiceError::InsufficientStorage`] starts (a job keeps its error as text).
pub const INSUFFICIENT_STORAGE: &str = "insufficient storage: ";

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
            // A name or value holding NUL, refused by PostgreSQL's text: the caller's bad input.
            disksnap_meta::MetaError::Unstorable { field } => {
                let reason = format!("{field} must not contain the NUL character (U+0000)");
                ServiceError::invalid(field.rsplit('.').next().unwrap_or(&field), reason)
            }
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

/// ENOSPC or EDQUOT: the file system (or the user's quota on it) is full.
fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

fn kind_of(what: &str) -> Kind {
    match what {
        "volume" => Kind::Volume,
        "job" => Kind::Job,
        "image" => Kind::Image,
        "policy" | "policy name" => Kind::Policy,
        "snapshot group" => Kind::SnapshotGroup,
        _ => Kind::Snapshot,
    }
}

impl From<disksnap_engine::EngineError> for ServiceError {
    fn from(e: disksnap_engine::EngineError) -> Self {
        use disksnap_engine::EngineError as E;
        match e {
            E::CorruptChunk { .. }
            | E::MissingChunk { .. }
            | E::MissingObject { .. }
            | E::CorruptIndex { .. }
            | E::MissingIndex { .. } => ServiceError::Corrupt(e.to_string()),
            E::Io { ref source, .. } if is_no_space(source) => ServiceError::InsufficientStorage(format!(
                "the data dir's disk is full ({e}); free space (delete snapshots, then `disksnap gc`) and retry"
            )),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_insufficient_storage_and_other_io_errors_stay_internal() {
        let io = |code| disksnap_engine::EngineError::Io {
            op: "write",
            path: "/data/store/chunks/abc/.tmp-1-2".into(),
            source: std::io::Error::from_raw_os_error(code),
        };
        for code in [libc::ENOSPC, libc::EDQUOT] {
            let e = ServiceError::from(io(code));
            assert!(matches!(e, ServiceError::InsufficientStorage(_)), "{e:?}");
            assert!(e.to_string().starts_with(INSUFFICIENT_STORAGE), "{e}");
        }
        assert!(matches!(ServiceError::from(io(libc::EIO)), ServiceError::Internal(_)));
    }
}
