//! Aliyun's id renderings: its own prefix over the suffix every dialect shares. Its own module so
//! that the error table and the wire renderings both read it without reading each other.

use disksnap_service::Kind;

/// Aliyun prints each id with its own prefix over the shared suffix.
pub fn show(kind: Kind, bare: &str) -> String {
    let prefix = match kind {
        Kind::Volume => "d-",
        Kind::Snapshot => "s-",
        Kind::Instance => "i-",
        Kind::Image => "m-",
        Kind::Chain => "sl-",
        Kind::Policy => "sp-",
        Kind::SnapshotGroup => "ssg-",
        // ECS has no jobs or tag ids of its own: QingCloud's words, as every id once was.
        Kind::Job => "j-",
        Kind::Tag => "tag-",
    };
    format!("{prefix}{bare}")
}
