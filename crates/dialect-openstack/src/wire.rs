//! The wire shapes: ids as reversible UUIDs, Cinder's time format, version documents and the
//! snapshot/volume views per endpoint and microversion (dialect-openstack.md §1, §4–§6, §9).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use disksnap_service::{
    ids, Kind, Shown, Snapshot, SnapshotStatus, SnapshotTransition, Volume, VolumeKind, VolumeStatus, VolumeTransition,
};

use crate::microversion::Version;

/// `k3x9a0b2` → `d15c0002-0000-4000-8000-016ee6771d0e`: the service's UUID rendering (the
/// suffix as a base-36 number), which every dialect reads back.
pub fn uuid(kind: Kind, suffix: &str) -> String {
    ids::uuid(kind, suffix)
}

/// The id a client sent, made ready for the service: any rendering (our UUIDs, other dialects'
/// `ss-…`, `vol-…`, the bare suffix) becomes the bare suffix; text that names nothing of this
/// kind (a UUID of another kind or not ours, no id at all) is marked `!text`, which the service
/// answers "not found" and error messages show as sent.
pub fn from_wire(kind: Kind, text: &str) -> String {
    match ids::read(kind, text) {
        Ok(bare) => bare,
        Err(_) => format!("!{}", text.trim()),
    }
}

/// `%Y-%m-%dT%H:%M:%S.%6f`, UTC, no zone (§5.3).
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// The base URL the client used (`http://host:port`).
pub fn base_url(headers: &axum::http::HeaderMap) -> String {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let host = h("x-forwarded-host").or_else(|| h("host")).unwrap_or("127.0.0.1");
    let scheme = h("x-forwarded-proto").unwrap_or("http");
    format!("{scheme}://{host}")
}

pub fn v3_version(base: &str) -> Value {
    json!({"id": "v3.0", "status": "CURRENT", "version": crate::microversion::MAX.to_string(),
        "min_version": crate::microversion::MIN.to_string(), "updated": "2023-08-31T00:00:00Z",
        "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                  {"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}]})
}

pub fn v2_version(base: &str) -> Value {
    json!({"id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "", "updated": "2017-02-25T12:00:00Z",
        "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                  {"rel": "self", "href": format!("{base}/v2/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=2"}]})
}

pub fn identity_version(base: &str) -> Value {
    json!({"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/identity/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]})
}

/// How a snapshot's state is spelled: Cinder (`/v3`) or Huawei EVS (`/v2`, `cloudsnapshots`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Cinder,
    Evs,
}

/// A status override set by `os-reset_status` / `os-update_snapshot_status` (§5.4).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Override {
    pub status: String,
    pub progress: Option<String>,
}

pub fn snapshot_status(s: &Snapshot, flavour: Flavour) -> &'static str {
    snapshot_word(s.status, s.transition, flavour)
}

fn snapshot_word(status: SnapshotStatus, transition: SnapshotTransition, flavour: Flavour) -> &'static str {
    match (status, transition) {
        (SnapshotStatus::Creating, _) => "creating",
        (_, SnapshotTransition::Deleting) => "deleting",
        (_, SnapshotTransition::RollingBack) if flavour == Flavour::Evs => "rollbacking",
        (_, SnapshotTransition::RollingBack) => "restoring",
        (SnapshotStatus::Available, _) => "available",
        (SnapshotStatus::Deleted | SnapshotStatus::Ceased, _) => "deleted",
    }
}

/// Which fields a snapshot view carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapView {
    /// `GET /snapshots` items: base 9 only.
    Summary,
    /// Create and update answers: base 9 + versioned.
    Created,
    /// Show and detail: everything.
    Detail,
}

pub struct SnapCtx<'a> {
    pub project_id: &'a str,
    pub user_id: &'a str,
    pub version: Version,
    pub flavour: Flavour,
}

pub fn snapshot(s: &Snapshot, meta: &[(String, String)], ov: Option<&Override>, view: SnapView, c: &SnapCtx) -> Value {
    let opt = |t: &str| if t.is_empty() { Value::Null } else { Value::String(t.to_string()) };
    let mut m = Map::new();
    m.insert("id".into(), uuid(Kind::Snapshot, &s.id).into());
    m.insert("created_at".into(), time(s.create_time).into());
    m.insert("updated_at".into(), time(s.status_time).into());
    m.insert("name".into(), opt(&s.name));
    m.insert("description".into(), opt(&s.description));
    m.insert("volume_id".into(), uuid(Kind::Volume, &s.volume_id).into());
    let status = ov.map(|o| o.status.clone()).unwrap_or_else(|| snapshot_status(s, c.flavour).to_string());
    m.insert("status".into(), status.into());
    m.insert("size".into(), s.volume_size.div_ceil(1 << 30).into());
    let mut md: Map<String, Value> = meta.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    if c.flavour == Flavour::Evs && s.instance_id.is_some() {
        // **disksnap choice** (§9.1): points of an instance carry Huawei's system-disk marker.
        let system = s.volume_kind == VolumeKind::System;
        md.insert("__system__enableActive".into(), if system { "true" } else { "false" }.into());
    }
    m.insert("metadata".into(), md.into());
    if view == SnapView::Detail {
        m.insert("os-extended-snapshot-attributes:project_id".into(), c.project_id.into());
        let progress = ov.and_then(|o| o.progress.clone()).unwrap_or_else(|| format!("{}%", s.progress));
        m.insert("os-extended-snapshot-attributes:progress".into(), progress.into());
    }
    if view != SnapView::Summary && c.flavour == Flavour::Cinder {
        if c.version.at_least(3, 14) {
            m.insert("group_snapshot_id".into(), Value::Null);
        }
        if c.version.at_least(3, 41) {
            m.insert("user_id".into(), c.user_id.into());
        }
        if c.version.at_least(3, 65) {
            m.insert("consumes_quota".into(), true.into());
        }
    }
    Value::Object(m)
}

pub fn volume_status(v: &Volume, flavour: Flavour) -> &'static str {
    volume_word(v.status, v.transition, flavour)
}

fn volume_word(status: VolumeStatus, transition: VolumeTransition, flavour: Flavour) -> &'static str {
    match transition {
        VolumeTransition::Creating => "creating",
        VolumeTransition::Resizing => "extending",
        VolumeTransition::RollingBack if flavour == Flavour::Evs => "rollbacking",
        VolumeTransition::RollingBack => "reverting",
        VolumeTransition::Deleting => "deleting",
        VolumeTransition::None | VolumeTransition::Snapshotting => match status {
            VolumeStatus::Creating => "creating",
            VolumeStatus::InUse => "in-use",
            VolumeStatus::Available => "available",
            VolumeStatus::Deleted => "deleted",
        },
    }
}

/// `(status, transition, word)` rules, first match wins (None: any).
type Rules = Vec<(Option<String>, Option<String>, String)>;

fn rule(status: Option<&str>, transition: Option<&str>, word: &str) -> (Option<String>, Option<String>, String) {
    (status.map(String::from), transition.map(String::from), word.to_string())
}

/// [`snapshot_status`] as rules the metadata store evaluates in SQL, so that lists filter and
/// sort on the status shown (with `os-reset_status` overrides on top: cinder::list_page).
pub fn snapshot_words(flavour: Flavour) -> Shown {
    use {SnapshotStatus as S, SnapshotTransition as T};
    let rollback = if flavour == Flavour::Evs { "rollbacking" } else { "restoring" };
    let words: Rules = vec![
        rule(Some(S::Creating.as_str()), None, "creating"),
        rule(None, Some(T::Deleting.as_str()), "deleting"),
        rule(None, Some(T::RollingBack.as_str()), rollback),
        rule(Some(S::Available.as_str()), None, "available"),
        rule(Some(S::Deleted.as_str()), None, "deleted"),
        rule(Some(S::Ceased.as_str()), None, "deleted"),
    ];
    Shown { words, overrides: Vec::new() }
}

/// [`volume_status`] as rules, as [`snapshot_words`].
pub fn volume_words(flavour: Flavour) -> Shown {
    use {VolumeStatus as S, VolumeTransition as T};
    let rollback = if flavour == Flavour::Evs { "rollbacking" } else { "reverting" };
    let words: Rules = vec![
        rule(None, Some(T::Creating.as_str()), "creating"),
        rule(None, Some(T::Resizing.as_str()), "extending"),
        rule(None, Some(T::RollingBack.as_str()), rollback),
        rule(None, Some(T::Deleting.as_str()), "deleting"),
        rule(Some(S::Creating.as_str()), None, "creating"),
        rule(Some(S::InUse.as_str()), None, "in-use"),
        rule(Some(S::Available.as_str()), None, "available"),
        rule(Some(S::Deleted.as_str()), None, "deleted"),
    ];
    Shown { words, overrides: Vec::new() }
}

pub struct VolCtx<'a> {
    pub base: &'a str,
    pub project_id: &'a str,
    pub user_id: &'a str,
    pub version: Version,
    pub flavour: Flavour,
    pub admin: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolView {
    Summary,
    Created,
    Detail,
}

pub fn volume(v: &Volume, view: VolView, c: &VolCtx) -> Value {
    let id = uuid(Kind::Volume, &v.id);
    let links = json!([{"href": format!("{}/v3/{}/volumes/{id}", c.base, c.project_id), "rel": "self"},
                       {"href": format!("{}/{}/volumes/{id}", c.base, c.project_id), "rel": "bookmark"}]);
    let opt = |t: &str| if t.is_empty() { Value::Null } else { Value::String(t.to_string()) };
    if view == VolView::Summary {
        return json!({"id": id, "name": opt(&v.name), "links": links});
    }
    let attachments: Vec<Value> = match &v.instance_id {
        Some(i) => vec![json!({"server_id": uuid(Kind::Instance, i), "attachment_id": uuid(Kind::Instance, i),
            "host_name": null, "volume_id": id, "device": "/dev/vdb", "id": id, "attached_at": time(v.status_time)})],
        None => vec![],
    };
    let mut m = Map::new();
    m.insert("id".into(), id.clone().into());
    m.insert("status".into(), volume_status(v, c.flavour).into());
    m.insert("size".into(), v.size_gib().into());
    m.insert("availability_zone".into(), v.zone.clone().into());
    m.insert("created_at".into(), time(v.create_time).into());
    m.insert("updated_at".into(), time(v.status_time).into());
    m.insert("name".into(), opt(&v.name));
    m.insert("description".into(), opt(&v.description));
    m.insert("volume_type".into(), "__DEFAULT__".into());
    let source = v.source_snapshot.as_ref().map(|s| Value::String(uuid(Kind::Snapshot, s)));
    m.insert("snapshot_id".into(), source.unwrap_or(Value::Null));
    m.insert("source_volid".into(), Value::Null);
    m.insert("metadata".into(), json!({}));
    m.insert("links".into(), links);
    m.insert("user_id".into(), c.user_id.into());
    m.insert("bootable".into(), if v.kind == VolumeKind::System { "true" } else { "false" }.into());
    m.insert("encrypted".into(), false.into());
    m.insert("replication_status".into(), "disabled".into());
    m.insert("consistencygroup_id".into(), Value::Null);
    m.insert("multiattach".into(), false.into());
    m.insert("attachments".into(), attachments.into());
    if view == VolView::Detail {
        m.insert("os-vol-tenant-attr:tenant_id".into(), c.project_id.into());
        if c.admin && c.flavour == Flavour::Cinder {
            m.insert("migration_status".into(), Value::Null);
            m.insert("os-vol-host-attr:host".into(), format!("disksnap@engine#{}", v.zone).into());
            m.insert("os-vol-mig-status-attr:migstat".into(), Value::Null);
            m.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
        }
    }
    if c.flavour == Flavour::Cinder {
        let ver = c.version;
        if ver.at_least(3, 13) {
            m.insert("group_id".into(), Value::Null);
        }
        if ver.at_least(3, 48) {
            m.insert("shared_targets".into(), false.into());
            m.insert("service_uuid".into(), Value::Null);
        }
        if ver.at_least(3, 63) {
            m.insert("volume_type_id".into(), "d15c0000-0000-4000-8000-000000000000".into());
        }
        if ver.at_least(3, 64) {
            m.insert("encryption_key_id".into(), Value::Null);
        }
        if ver.at_least(3, 65) {
            m.insert("consumes_quota".into(), true.into());
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_as_documented() {
        assert_eq!(uuid(Kind::Snapshot, "k3x9a0b2"), "d15c0002-0000-4000-8000-016ee6771d0e");
        assert_eq!(from_wire(Kind::Snapshot, "d15c0002-0000-4000-8000-016ee6771d0e"), "k3x9a0b2");
        assert_eq!(from_wire(Kind::Snapshot, "D15C0002-0000-4000-8000-016EE6771D0E"), "k3x9a0b2");
        assert_eq!(from_wire(Kind::Snapshot, "00000000"), "00000000");
        assert_eq!(from_wire(Kind::Snapshot, &uuid(Kind::Snapshot, "zzzzzzzz")), "zzzzzzzz");
        // The volume tag on a snapshot path names nothing; random UUIDs name nothing.
        assert!(from_wire(Kind::Snapshot, "d15c0001-0000-4000-8000-016ee6771d0e").starts_with('!'));
        assert!(from_wire(Kind::Volume, "6d0b8a3e-8c1f-4bd2-9a1c-1b2c3d4e5f60").starts_with('!'));
        assert!(from_wire(Kind::Snapshot, "d15c0002-0000-4000-8000-ffffffffffff").starts_with('!'));
        // Any dialect's rendering names the same snapshot (dialects.md, the ID rule).
        assert_eq!(from_wire(Kind::Snapshot, "ss-k3x9a0b2"), "k3x9a0b2");
        assert_eq!(from_wire(Kind::Snapshot, "snap-K3X9A0B2"), "k3x9a0b2");
        assert!(from_wire(Kind::Snapshot, "not an id").starts_with('!'));
    }

    /// The rules the store evaluates give, for every status and transition, the word the views
    /// show.
    #[test]
    fn word_rules_agree_with_the_views() {
        let eval = |shown: &Shown, status: &str, transition: &str| {
            shown
                .words
                .iter()
                .find(|(s, t, _)| {
                    s.as_deref().is_none_or(|s| s == status) && t.as_deref().is_none_or(|t| t == transition)
                })
                .map(|(_, _, w)| w.clone())
        };
        for flavour in [Flavour::Cinder, Flavour::Evs] {
            for s in SnapshotStatus::ALL {
                for t in SnapshotTransition::ALL {
                    let want = snapshot_word(*s, *t, flavour);
                    assert_eq!(
                        eval(&snapshot_words(flavour), s.as_str(), t.as_str()).as_deref(),
                        Some(want),
                        "{s} {t}"
                    );
                }
            }
            for s in VolumeStatus::ALL {
                for t in VolumeTransition::ALL {
                    let want = volume_word(*s, *t, flavour);
                    assert_eq!(eval(&volume_words(flavour), s.as_str(), t.as_str()).as_deref(), Some(want), "{s} {t}");
                }
            }
        }
    }

    #[test]
    fn cinder_time_format() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T00:16:04.464445Z").unwrap().with_timezone(&Utc);
        assert_eq!(time(t), "2026-11-23T00:16:04.464445");
    }
}
