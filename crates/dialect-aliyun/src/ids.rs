//! Aliyun's id renderings: its own prefix over the suffix every dialect shares. Its own module so
//! that the error table and the wire renderings both read it without reading each other.
//!
//! Any rendering of an id is read (dialects.md, the ID rule), but Aliyun's own prefix of another
//! kind (`s-…` given as a `DiskId`, `d-…` in `SnapshotIds`) names nothing: ECS answers such an
//! id as it answers any id it does not hold (`InvalidDiskId.NotFound`, an empty list), and
//! reading it as any prefix would find the volume whose suffix it carries.

use disksnap_service::{ids, Kind};

/// Aliyun's prefix of each kind.
pub fn prefix(kind: Kind) -> &'static str {
    match kind {
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
    }
}

/// Aliyun prints each id with its own prefix over the shared suffix.
pub fn show(kind: Kind, bare: &str) -> String {
    format!("{}{bare}", prefix(kind))
}

/// Is `text` Aliyun's own prefix of another kind than `kind` (or a UUID of another kind)?
pub fn names_other_kind(kind: Kind, text: &str) -> bool {
    matches!(ids::read_with(kind, text, prefix), Err(ids::IdError::WrongKind(_)))
}

/// The bare id `text` names as a `kind`, None when it names none ([`names_other_kind`] included).
pub fn parse(kind: Kind, text: &str) -> Option<String> {
    ids::read_with(kind, text, prefix).ok()
}

/// A filter's ids without those naming another kind; None when ids were given and none is left
/// (the filter then matches nothing, never everything).
pub fn kept(kind: Kind, list: Vec<String>) -> Option<Vec<String>> {
    let given = !list.is_empty();
    let out: Vec<String> = list.into_iter().filter(|i| !names_other_kind(kind, i)).collect();
    (!given || !out.is_empty()).then_some(out)
}

/// The parameters that name one resource, and its kind.
const ONE_ID: &[(&str, Kind)] = &[
    ("DiskId", Kind::Volume),
    ("SnapshotId", Kind::Snapshot),
    ("InstanceId", Kind::Instance),
    ("ImageId", Kind::Image),
    ("SnapshotLinkId", Kind::Chain),
    ("AutoSnapshotPolicyId", Kind::Policy),
];

/// The kind a parameter's value names: [`ONE_ID`], the batch forms `DiskIds.N` and
/// `DiskDeviceMapping.N.SnapshotId`.
fn kind_of(name: &str) -> Option<Kind> {
    if let Some((_, k)) = ONE_ID.iter().find(|(n, _)| *n == name) {
        return Some(*k);
    }
    let numbered = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
    if name.strip_prefix("DiskIds.").is_some_and(numbered) {
        return Some(Kind::Volume);
    }
    let mapping = name.strip_prefix("DiskDeviceMapping.").and_then(|r| r.strip_suffix(".SnapshotId"));
    mapping.is_some_and(numbered).then_some(Kind::Snapshot)
}

/// The first id parameter whose value is Aliyun's prefix of another kind: its kind and value.
/// An action answers it not found; a Describe filter matches nothing.
pub fn wrong_kind_param(params: &[(String, String)]) -> Option<(Kind, String)> {
    params.iter().find_map(|(name, value)| {
        let kind = kind_of(name)?;
        // `ImageId` of DescribeImages is a comma-separated list: each item is checked.
        let wrong = value.split(',').any(|v| !v.trim().is_empty() && names_other_kind(kind, v));
        wrong.then(|| (kind, value.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn own_prefix_of_another_kind_names_nothing() {
        let id = ids::new_id();
        assert!(names_other_kind(Kind::Volume, &format!("s-{id}")));
        assert!(names_other_kind(Kind::Snapshot, &format!("D-{id}")));
        assert!(names_other_kind(Kind::Snapshot, &ids::uuid(Kind::Volume, &id)));
        // its own prefix, the bare id, another vendor's prefix and the UUID are this kind
        for t in
            [format!("s-{id}"), id.clone(), format!("ss-{id}"), format!("snap-{id}"), ids::uuid(Kind::Snapshot, &id)]
        {
            assert_eq!(parse(Kind::Snapshot, &t).as_deref(), Some(id.as_str()), "{t}");
        }
        // a link is named by its full point
        assert_eq!(parse(Kind::Chain, &format!("s-{id}")).as_deref(), Some(id.as_str()));
        assert_eq!(parse(Kind::Chain, &format!("sl-{id}")).as_deref(), Some(id.as_str()));
        assert_eq!(parse(Kind::Volume, &format!("s-{id}")), None);
        assert_eq!(kept(Kind::Snapshot, vec![format!("d-{id}")]), None);
        assert_eq!(kept(Kind::Snapshot, vec![]), Some(vec![]));
        assert_eq!(kept(Kind::Snapshot, vec![format!("d-{id}"), format!("s-{id}")]), Some(vec![format!("s-{id}")]));
    }

    #[test]
    fn id_parameters_of_another_kind_are_found() {
        let id = ids::new_id();
        let s = format!("s-{id}");
        assert_eq!(wrong_kind_param(&p(&[("DiskId", &s)])), Some((Kind::Volume, s.clone())));
        assert_eq!(wrong_kind_param(&p(&[("DiskIds.2", &s)])), Some((Kind::Volume, s.clone())));
        let d = format!("d-{id}");
        assert_eq!(wrong_kind_param(&p(&[("DiskDeviceMapping.1.SnapshotId", &d)])), Some((Kind::Snapshot, d.clone())));
        assert_eq!(wrong_kind_param(&p(&[("ImageId", &format!("m-{id},{d}"))])).map(|w| w.0), Some(Kind::Image));
        assert_eq!(wrong_kind_param(&p(&[("DiskId", &d), ("SnapshotId", &s), ("DiskName", &s)])), None);
        assert_eq!(wrong_kind_param(&p(&[("DiskIds.x", &s), ("DiskIdsX", &s)])), None);
    }
}
