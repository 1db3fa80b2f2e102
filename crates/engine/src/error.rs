//! The engine's errors. Callers map them to their own vocabulary; none is a vendor word.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, EngineError>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An operating-system I/O failure, with the path it happened on.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A chunk whose bytes no longer hash to its name (bit rot, tampering, truncation).
    #[error("chunk {digest} is corrupt: {why}")]
    CorruptChunk { digest: String, why: String },
    /// A chunk an index needs is not in the store.
    #[error("chunk {digest} is missing from the store")]
    MissingChunk { digest: String },
    /// An index file that fails its own checks.
    #[error("index {name} is corrupt: {why}")]
    CorruptIndex { name: String, why: String },
    /// An index the caller named does not exist.
    #[error("index {name} does not exist")]
    MissingIndex { name: String },
    /// The store directory was created with settings this build cannot use.
    #[error("store at {path} is not usable: {why}")]
    BadStore { path: PathBuf, why: String },
    /// A pack whose trailer or footer fails its checks.
    #[error("pack {pack} is corrupt: {why}")]
    CorruptPack { pack: String, why: String },
    /// An object the store needs (a pack, an index) is not in the backend.
    #[error("object {key} is missing from the store")]
    MissingObject { key: String },
    /// A remote backend (S3) failed after its retries; `op` and `key` say what was attempted.
    #[error("{op} {key}: {why}")]
    Backend { op: &'static str, key: String, why: String },
    /// The chunk index (kept by the caller, e.g. in its metadata database) failed.
    #[error("chunk index: {0}")]
    Index(String),
    /// A caller asked for something impossible (e.g. an index name with a slash).
    #[error("{0}")]
    Invalid(String),
}

/// Attach a path and an operation to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| EngineError::Io { op, path: path.into(), source })
    }
}
