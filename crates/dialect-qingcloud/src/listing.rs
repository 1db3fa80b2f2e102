//! The snapshot and volume list filters of both QingCloud surfaces (the IaaS API's
//! DescribeSnapshots/DescribeVolumes and 51idc's `GET …/snapshots`, `…/volumes`): one reading of
//! the list parameters into the service's filter, so the two cannot drift apart (51idc once
//! lacked `is_manually` and `owner`). Each surface keeps its own parameter reader, paging and
//! answer shape.

use disksnap_service::{Kind, Origin, SnapshotFilter, VolumeFilter};

use crate::error::QcError;
use crate::ids::{check_volume_or_instance, filter_ids, is_instance_id};
use crate::wire;

/// What a list reads from a request, as each surface reads it (query string and form, or query
/// string and JSON body).
pub trait ListParams {
    fn text(&self, key: &str) -> Option<String>;
    fn list(&self, key: &str) -> Result<Vec<String>, QcError>;
    /// A 0/1 parameter.
    fn flag(&self, key: &str) -> Result<Option<bool>, QcError>;
}

impl ListParams for crate::params::Params {
    fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_string)
    }
    fn list(&self, key: &str) -> Result<Vec<String>, QcError> {
        Ok(crate::params::Params::list(self, key))
    }
    fn flag(&self, key: &str) -> Result<Option<bool>, QcError> {
        Ok(crate::params::Params::flag(self, key, &[0, 1])?.map(|v| v == 1))
    }
}

/// The filter of a snapshot list in `zone` for `account`'s caller, or None when the request
/// can match nothing (a status word no point has, another owner, ids that all name another
/// kind: [`filter_ids`]). Paging is the caller's.
pub fn snapshot_filter(p: &impl ListParams, zone: &str, account: &str) -> Result<Option<SnapshotFilter>, QcError> {
    let (ids, root_id, tag_ids) = (
        filter_ids(Kind::Snapshot, p.list("snapshots")?),
        filter_ids(Kind::Chain, p.text("root_id").into_iter().collect()),
        filter_ids(Kind::Tag, p.list("tags")?),
    );
    let mut nothing = ids.is_none() || root_id.is_none() || tag_ids.is_none();
    let mut q = SnapshotFilter {
        ids: ids.unwrap_or_default(),
        root_id: root_id.unwrap_or_default().pop(),
        is_full: p.flag("snapshot_type")?,
        search: p.text("search_word"),
        tag_ids: tag_ids.unwrap_or_default(),
        zone: Some(zone.to_string()),
        origin: p.flag("is_manually")?.map(|m| if m { Origin::User } else { Origin::Auto }.into()),
        ..Default::default()
    };
    if let Some(r) = p.text("resource_id") {
        nothing |= check_volume_or_instance(&r).is_err();
        if is_instance_id(&r) {
            q.instance_ids = vec![r];
        } else {
            q.volume_ids = vec![r];
        }
    }
    let statuses = statuses(p, wire::snapshot_statuses_of, "pending, available, suspended, deleted, ceased")?;
    nothing |= statuses.is_none() || other_owner(p, account);
    q.statuses = statuses.unwrap_or_default();
    Ok((!nothing).then_some(q))
}

/// The filter of a volume list, as [`snapshot_filter`].
pub fn volume_filter(p: &impl ListParams, zone: &str, account: &str) -> Result<Option<VolumeFilter>, QcError> {
    let (ids, instance_ids, tag_ids) = (
        filter_ids(Kind::Volume, p.list("volumes")?),
        filter_ids(Kind::Instance, p.text("instance_id").into_iter().collect()),
        filter_ids(Kind::Tag, p.list("tags")?),
    );
    let mut nothing = ids.is_none() || instance_ids.is_none() || tag_ids.is_none();
    let mut q = VolumeFilter {
        ids: ids.unwrap_or_default(),
        instance_ids: instance_ids.unwrap_or_default(),
        zone: Some(zone.to_string()),
        search: p.text("search_word"),
        tag_ids: tag_ids.unwrap_or_default(),
        ..Default::default()
    };
    let statuses = statuses(p, wire::volume_statuses_of, "pending, available, in-use, suspended, deleted, ceased")?;
    nothing |= statuses.is_none() || other_owner(p, account);
    q.statuses = statuses.unwrap_or_default();
    Ok((!nothing).then_some(q))
}

/// The service's statuses the `status` words name (any of them; empty: no words given), or None
/// when words were given but name no status disksnap keeps (`suspended`): nothing matches. A
/// word QingCloud does not have is an error listing `known`.
fn statuses<W: Into<String>>(
    p: &impl ListParams,
    of: fn(&str) -> Option<Vec<W>>,
    known: &str,
) -> Result<Option<Vec<String>>, QcError> {
    let words = p.list("status")?;
    let mut out = Vec::new();
    for w in &words {
        let s = of(w).ok_or_else(|| QcError::invalid(format!("parameter [status] [{w}] is not one of {known}")))?;
        out.extend(s.into_iter().map(Into::into));
    }
    Ok((words.is_empty() || !out.is_empty()).then_some(out))
}

/// `owner` filters match this account's `usr-…` id only.
fn other_owner(p: &impl ListParams, account: &str) -> bool {
    p.text("owner").is_some_and(|o| o != wire::owner(account))
}
