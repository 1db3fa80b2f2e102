//! QingCloud's id renderings (also 51idc's, and the CLI's: disksnap shows ids the QingCloud way)
//! and the small helpers both QingCloud-family dialects read requests with.

use disksnap_service::{ids, Kind, ServiceError};

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
        Kind::Policy => "sp-",
        Kind::SnapshotGroup => "ssg-",
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

/// Check an id parameter of `kind`. Any rendering is read by the service (dialects.md, the ID
/// rule: a UUID, Aliyun's `d-…`, the bare suffix), but QingCloud's own prefix of another kind
/// (`vol-…` given as a snapshot), or a UUID of another kind, names nothing of this kind: 2100
/// ResourceNotFound, as QingCloud answers any id that names nothing (and as before every
/// prefix was read as any kind, when `vol-<a snapshot's suffix>` found that snapshot).
pub fn check(kind: Kind, text: &str) -> Result<(), QcError> {
    match ids::read_with(kind, text, prefix) {
        Err(ids::IdError::WrongKind(_)) => Err(ServiceError::not_found(kind, text).into()),
        _ => Ok(()),
    }
}

/// [`check`] every id of a list and hand the list back.
pub fn checked(kind: Kind, list: Vec<String>) -> Result<Vec<String>, QcError> {
    for id in &list {
        check(kind, id)?;
    }
    Ok(list)
}

/// A list filter's ids of `kind` without those that name another kind ([`check`]); None when
/// ids were given and none is left: the filter matches nothing (never everything).
pub fn filter_ids(kind: Kind, list: Vec<String>) -> Option<Vec<String>> {
    let given = !list.is_empty();
    let kept: Vec<String> = list.into_iter().filter(|i| check(kind, i).is_ok()).collect();
    (!given || !kept.is_empty()).then_some(kept)
}

/// A resource that is a volume or an instance ([`is_instance_id`] says which), checked as that
/// kind.
pub fn check_volume_or_instance(text: &str) -> Result<(), QcError> {
    check(if is_instance_id(text) { Kind::Instance } else { Kind::Volume }, text)
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
    fn own_prefix_of_another_kind_names_nothing() {
        let id = new_id();
        let e = check(Kind::Snapshot, &format!("vol-{id}")).unwrap_err();
        assert_eq!(e.ret_code(), 2100);
        assert!(e.message("r").contains(&format!("snapshot [vol-{id}]")), "{}", e.message("r"));
        assert_eq!(check(Kind::Volume, &ids::uuid(Kind::Snapshot, &id)).unwrap_err().ret_code(), 2100);
        for ok in
            [format!("ss-{id}"), format!("s-{id}"), format!("snap-{id}"), id.clone(), ids::uuid(Kind::Snapshot, &id)]
        {
            assert!(check(Kind::Snapshot, &ok).is_ok(), "{ok}");
        }
        assert!(check(Kind::Chain, &format!("ss-{id}")).is_ok());
        assert!(check(Kind::Snapshot, "not an id").is_ok(), "left to the service");
        assert!(check_volume_or_instance(&format!("ins-{id}")).is_ok());
        assert_eq!(check_volume_or_instance(&format!("ss-{id}")).unwrap_err().ret_code(), 2100);
        let wrong = vec![format!("vol-{id}")];
        assert_eq!(filter_ids(Kind::Snapshot, wrong), None, "matches nothing, not everything");
        assert_eq!(filter_ids(Kind::Snapshot, vec![]), Some(vec![]));
        let mixed = vec![format!("vol-{id}"), format!("ss-{id}")];
        assert_eq!(filter_ids(Kind::Snapshot, mixed), Some(vec![format!("ss-{id}")]));
    }
}
