//! Chain bookkeeping after points leave or come back.
//!
//! Indexes are logically full, so the engine restores any point alone; a chain is only the
//! story the APIs tell about the points (QingCloud's root/parent/is_head, Aliyun's
//! SnapshotLinkId). When points go, the story is retold here: each remaining point's parent is
//! the previous remaining point, a chain whose full point is gone for good promotes its oldest
//! remaining point to full, and the head is the newest available point.

use disksnap_meta::SnapshotRow;

use crate::model::SnapshotStatus;

/// The outcome of [`rebuild`].
pub(crate) struct Rebuilt {
    /// Rows whose fields changed.
    pub changed: Vec<SnapshotRow>,
    /// The chain's root afterwards; None when no point of it is left alive.
    pub root: Option<String>,
    /// The newest available point; None when none is available (the next snapshot of the
    /// volume must then start a new chain).
    pub head: Option<String>,
}

/// Recompute parent, root, full and head flags for one chain's rows (any order, ceased ones
/// included or not).
pub(crate) fn rebuild(mut rows: Vec<SnapshotRow>) -> Rebuilt {
    let before = rows.clone();
    rows.sort_by(|a, b| (a.snapshot_time, a.create_time, &a.id).cmp(&(b.snapshot_time, b.create_time, &b.id)));
    let alive = |r: &SnapshotRow| r.status != SnapshotStatus::Ceased.as_str();
    let alive_ids: Vec<usize> = (0..rows.len()).filter(|&i| alive(&rows[i])).collect();
    let root = alive_ids.first().map(|&i| rows[i].id.clone());
    let head = alive_ids.iter().rev().find(|&&i| rows[i].status == SnapshotStatus::Available.as_str()).copied();
    let mut prev: Option<String> = None;
    for &i in &alive_ids {
        let r = &mut rows[i];
        if Some(&r.id) == root.as_ref() {
            r.is_full = true;
            r.parent_id = None;
        } else {
            r.parent_id = prev.clone();
        }
        r.root_id = root.clone().unwrap();
        r.is_head = Some(i) == head;
        prev = Some(r.id.clone());
    }
    for r in rows.iter_mut().filter(|r| !alive(r)) {
        r.is_head = false;
    }
    let head = head.map(|i| rows[i].id.clone());
    let changed = rows.into_iter().filter(|r| !before.contains(r)).collect();
    Rebuilt { changed, root, head }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, t: i64, full: bool, status: &str) -> SnapshotRow {
        SnapshotRow {
            id: id.into(),
            account: "a".into(),
            zone: "z".into(),
            name: String::new(),
            description: String::new(),
            volume_id: "v".into(),
            volume_size: 1,
            volume_kind: "data".into(),
            instance_id: None,
            is_full: full,
            root_id: "s1".into(),
            parent_id: None,
            is_head: false,
            status: status.into(),
            transition: String::new(),
            is_taken: true,
            progress: 100,
            snapshot_time: t,
            create_time: t,
            status_time: t,
            deleted_time: None,
            expire_time: None,
            size: 0,
            origin: "user".into(),
            retention_days: None,
            encrypted: false,
            used_by_images: 0,
            used_by_volumes: 0,
            logical_size: None,
            consistency: String::new(),
            version: 1,
        }
    }

    #[test]
    fn middle_point_removed_relinks_and_head_is_newest_available() {
        let rows =
            vec![row("s1", 1, true, "available"), row("s2", 2, false, "ceased"), row("s3", 3, false, "available")];
        let Rebuilt { changed, root, head } = rebuild(rows);
        assert_eq!(root.as_deref(), Some("s1"));
        assert_eq!(head.as_deref(), Some("s3"));
        let s3 = changed.iter().find(|r| r.id == "s3").unwrap();
        assert_eq!(s3.parent_id.as_deref(), Some("s1"));
        assert!(s3.is_head);
    }

    #[test]
    fn ceased_root_promotes_the_oldest_remaining_point() {
        let rows =
            vec![row("s1", 1, true, "ceased"), row("s2", 2, false, "available"), row("s3", 3, false, "available")];
        let Rebuilt { changed, root, .. } = rebuild(rows);
        assert_eq!(root.as_deref(), Some("s2"));
        let s2 = changed.iter().find(|r| r.id == "s2").unwrap();
        assert!(s2.is_full && s2.parent_id.is_none());
        let s3 = changed.iter().find(|r| r.id == "s3").unwrap();
        assert_eq!(s3.root_id, "s2");
    }

    #[test]
    fn deleted_root_keeps_its_chain_and_nothing_left_means_no_root() {
        let r = rebuild(vec![row("s1", 1, true, "deleted"), row("s2", 2, false, "available")]);
        assert_eq!((r.root.as_deref(), r.head.as_deref()), (Some("s1"), Some("s2")));
        let r = rebuild(vec![row("s1", 1, true, "deleted")]);
        assert_eq!((r.root.as_deref(), r.head), (Some("s1"), None));
        let r = rebuild(vec![row("s1", 1, true, "ceased")]);
        assert_eq!(r.root, None);
    }
}
