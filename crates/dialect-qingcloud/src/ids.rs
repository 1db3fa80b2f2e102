//! QingCloud's id renderings (also 51idc's, and the CLI's: disksnap shows ids the QingCloud way)
//! and the small helpers both QingCloud-family dialects read requests with.

use disksnap_service::{ids, Kind};

use crate::error::QcError;

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
    }
}

/// A bare id shown the QingCloud way (`vol-k3x9a2bq`).
pub fn display(kind: Kind, bare: &str) -> String {
    format!("{}{bare}", prefix(kind))
}

/// `i-…` / `ins-…` (Tencent's) or an instance's UUID name an instance; anything else given as a
/// resource is a volume.
pub fn is_instance_id(id: &str) -> bool {
    let l = id.trim().to_ascii_lowercase();
    l.starts_with("ins-") || ids::named_kind(&l, prefix) == Some(Kind::Instance)
}

/// Check an id parameter of `kind` (`key` names it in the message). Any rendering is read by the
/// service (dialects.md, the ID rule: a UUID, Aliyun's `d-…`, the bare suffix); QingCloud's own
/// prefix of another kind (`vol-…` given as a snapshot), or a UUID of another kind, is a
/// malformed parameter (1100). Text that is no id at all is left to the service, which finds
/// nothing by it (2100, or an empty list).
pub fn check(key: &str, kind: Kind, text: &str) -> Result<(), QcError> {
    match ids::read_with(kind, text, prefix) {
        Err(ids::IdError::WrongKind(named)) => Err(QcError::invalid(format!(
            "parameter [{key}] [{text}] is a {named} id; a {kind} id looks like {}",
            display(kind, "k3x9a2bq")
        ))),
        _ => Ok(()),
    }
}

/// [`check`] every id of a list parameter and hand the list back.
pub fn checked(key: &str, kind: Kind, list: Vec<String>) -> Result<Vec<String>, QcError> {
    for id in &list {
        check(&format!("{key}.n"), kind, id)?;
    }
    Ok(list)
}

/// A resource that is a volume or an instance ([`is_instance_id`] says which): anything else
/// QingCloud's prefixes (or a UUID) name is malformed (1100).
pub fn check_volume_or_instance(key: &str, text: &str) -> Result<(), QcError> {
    check(key, if is_instance_id(text) { Kind::Instance } else { Kind::Volume }, text)
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
        assert!(is_instance_id(&ids::uuid(Kind::Instance, &id)) && !is_instance_id(&ids::uuid(Kind::Volume, &id)));
    }

    #[test]
    fn own_prefix_of_another_kind_is_1100() {
        let id = new_id();
        let e = check("snapshots.n", Kind::Snapshot, &format!("vol-{id}")).unwrap_err();
        assert_eq!(e.ret_code(), 1100);
        assert!(e.message("r").contains("snapshots.n") && e.message("r").contains(&format!("vol-{id}")));
        assert_eq!(check("volume", Kind::Volume, &ids::uuid(Kind::Snapshot, &id)).unwrap_err().ret_code(), 1100);
        for ok in
            [format!("ss-{id}"), format!("s-{id}"), format!("snap-{id}"), id.clone(), ids::uuid(Kind::Snapshot, &id)]
        {
            assert!(check("snapshot", Kind::Snapshot, &ok).is_ok(), "{ok}");
        }
        assert!(check("root_id", Kind::Chain, &format!("ss-{id}")).is_ok());
        assert!(check("snapshot", Kind::Snapshot, "not an id").is_ok(), "left to the service");
        assert!(check_volume_or_instance("resources.n", &format!("ins-{id}")).is_ok());
        assert_eq!(check_volume_or_instance("resources.n", &format!("ss-{id}")).unwrap_err().ret_code(), 1100);
    }
}
