//! QingCloud's id renderings (also 51idc's, and the CLI's: disksnap shows ids the QingCloud way)
//! and the small helpers both QingCloud-family dialects read requests with.

use disksnap_service::Kind;

/// QingCloud's prefix of each kind of resource.
pub fn prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Volume => "vol-",
        Kind::Snapshot => "ss-",
        Kind::Instance => "i-",
        Kind::Image => "img-",
        Kind::Job => "j-",
        Kind::Tag => "tag-",
        Kind::Chain => "sl-",
        Kind::Policy => "sp-",
    }
}

/// A bare id shown the QingCloud way (`vol-k3x9a2bq`).
pub fn display(kind: Kind, bare: &str) -> String {
    format!("{}{bare}", prefix(kind))
}

/// `i-…` / `ins-…` name an instance; anything else given as a resource is a volume.
pub fn is_instance_id(id: &str) -> bool {
    let l = id.trim().to_ascii_lowercase();
    l.starts_with("i-") || l.starts_with("ins-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use disksnap_service::ids::{new_id, parse};

    #[test]
    fn every_rendering_reads_back() {
        let id = new_id();
        for kind in [Kind::Volume, Kind::Snapshot, Kind::Instance, Kind::Image, Kind::Job, Kind::Tag, Kind::Chain] {
            assert_eq!(parse(kind, &display(kind, &id)), Some(id.clone()), "{kind:?}");
        }
        assert_eq!(display(Kind::Snapshot, &id), format!("ss-{id}"));
        assert!(is_instance_id("ins-abc") && is_instance_id("I-abc") && !is_instance_id("vol-abc"));
    }
}
