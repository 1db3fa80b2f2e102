//! Sorted lists, the shown status and its overrides, on both backends against an order and a
//! filter computed here in Rust from the same rows (issue 11: Cinder's sort keys, status filter
//! and `os-reset_status` overrides are SQL, paged exactly by keyset cursors).

use std::cmp::Ordering;

use crate::filter::{Order, Shown, SnapshotFilter, Sort, SortKey, VolumeFilter};
use crate::rows::{SnapshotRow, VolumeRow};
use crate::sqlite::tests::snap;
use crate::testing::backends;
use crate::Batch;

const GIB: i64 = 1 << 30;

fn rules(pairs: &[(Option<&str>, Option<&str>, &str)]) -> Vec<(Option<String>, Option<String>, String)> {
    pairs.iter().map(|(s, t, w)| (s.map(String::from), t.map(String::from), w.to_string())).collect()
}

/// Cinder's snapshot words (dialect-openstack's wire::snapshot_status).
fn snapshot_words() -> Vec<(Option<String>, Option<String>, String)> {
    rules(&[
        (Some("creating"), None, "creating"),
        (None, Some("deleting"), "deleting"),
        (None, Some("rolling-back"), "restoring"),
        (Some("available"), None, "available"),
    ])
}

fn word_of(shown: &Shown, id: &str, status: &str, transition: &str, status_time: i64) -> String {
    if let Some((_, w, _)) = shown.overrides.iter().find(|(i, _, at)| i == id && *at >= status_time) {
        return w.clone();
    }
    shown
        .words
        .iter()
        .find(|(s, t, _)| s.as_deref().is_none_or(|s| s == status) && t.as_deref().is_none_or(|t| t == transition))
        .map(|(_, _, w)| w.clone())
        .unwrap_or_default()
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
enum V {
    I(i64),
    S(Vec<u8>),
}

/// What a sort key reads of a row of either table (None: the table has no such value, which
/// sorts as equal).
struct Keyed<'a> {
    id: &'a str,
    create_time: i64,
    status_time: i64,
    name: &'a str,
    description: &'a str,
    status: &'a str,
    transition: &'a str,
    volume_id: Option<&'a str>,
    size: i64,
    zone: &'a str,
    system: Option<bool>,
}

fn value(r: &Keyed, key: SortKey, shown: &Shown) -> V {
    let text = |t: &str| V::S(t.as_bytes().to_vec());
    match key {
        SortKey::Id => text(r.id),
        SortKey::CreateTime => V::I(r.create_time),
        SortKey::StatusTime => V::I(r.status_time),
        SortKey::Name => text(r.name),
        SortKey::Description => text(r.description),
        SortKey::Shown => text(&word_of(shown, r.id, r.status, r.transition, r.status_time)),
        SortKey::VolumeId => r.volume_id.map(text).unwrap_or(V::I(0)),
        SortKey::SizeGib => V::I((r.size + GIB - 1) / GIB),
        SortKey::Zone => text(r.zone),
        SortKey::System => V::I(r.system.map(i64::from).unwrap_or(0)),
    }
}

fn snap_value(r: &SnapshotRow, key: SortKey, shown: &Shown) -> V {
    let k = Keyed {
        id: &r.id,
        create_time: r.create_time,
        status_time: r.status_time,
        name: &r.name,
        description: &r.description,
        status: &r.status,
        transition: &r.transition,
        volume_id: Some(&r.volume_id),
        size: r.volume_size,
        zone: &r.zone,
        system: None,
    };
    value(&k, key, shown)
}

fn vol_value(r: &VolumeRow, key: SortKey, shown: &Shown) -> V {
    let k = Keyed {
        id: &r.id,
        create_time: r.create_time,
        status_time: r.status_time,
        name: &r.name,
        description: &r.description,
        status: &r.status,
        transition: &r.transition,
        volume_id: None,
        size: r.size,
        zone: &r.zone,
        system: Some(r.kind == "system"),
    };
    value(&k, key, shown)
}

/// `keys` in turn, then id ascending (the order the filter documents).
fn expected<T>(rows: &[T], keys: &[Sort], value: impl Fn(&T, SortKey) -> V, id: impl Fn(&T) -> String) -> Vec<String> {
    let mut rows: Vec<&T> = rows.iter().collect();
    rows.sort_by(|a, b| {
        keys.iter()
            .map(|k| {
                let o = value(a, k.key).cmp(&value(b, k.key));
                if k.ascending {
                    o
                } else {
                    o.reverse()
                }
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or_else(|| id(a).cmp(&id(b)))
    });
    rows.into_iter().map(id).collect()
}

fn asc(key: SortKey) -> Sort {
    Sort { key, ascending: true }
}

fn desc(key: SortKey) -> Sort {
    Sort { key, ascending: false }
}

fn snapshots() -> Vec<SnapshotRow> {
    let names = ["b", "a", "c", "a", "B", "", "ä", "a"];
    let sizes = [1, GIB, GIB + 1, 2 * GIB, 3 * GIB - 5, 0, 5 * GIB, GIB - 1];
    let states = [
        ("available", ""),
        ("available", "deleting"),
        ("available", "rolling-back"),
        ("creating", ""),
        ("available", "recovering"),
    ];
    (0..14)
        .map(|i| {
            let (status, transition) = states[i % states.len()];
            let id = format!("s{i:02}");
            SnapshotRow {
                zone: ["z1", "z2"][i % 2].into(),
                name: names[i % names.len()].into(),
                description: format!("d{}", (i * 5) % 7),
                volume_size: sizes[i % sizes.len()],
                root_id: id.clone(),
                transition: transition.into(),
                // Ties in create_time (three to a time), so `id` decides among them.
                create_time: 100 + (i as i64) / 3,
                status_time: 10 + ((i * 7) % 5) as i64,
                ..snap(&id, "a", ["v2", "v1", "v3"][i % 3], 1, status)
            }
        })
        .collect()
}

/// Every sort, paged 1, 3 and 5 at a time by the keyset cursor of the last item, gives the
/// order computed here; an offset skips into it; the total counts every match.
#[tokio::test]
async fn sorted_snapshot_lists_page_exactly_by_keyset() {
    let rows = snapshots();
    let mut gone = rows[0].clone();
    gone.id = "s99".into();
    gone.status = "deleted".into();
    let mut other = rows[1].clone();
    other.id = "x01".into();
    other.account = "b".into();
    // s02's override is alive (set at its status_time), s05's stale (set before its last
    // change), s07's alive and names a word no rule gives.
    let shown = Shown {
        words: snapshot_words(),
        overrides: vec![
            ("s02".into(), "error".into(), rows[2].status_time),
            ("s05".into(), "error".into(), rows[5].status_time - 1),
            ("s07".into(), "available".into(), rows[7].status_time + 5),
            ("x01".into(), "error".into(), i64::MAX),
        ],
    };
    let sorts: Vec<Vec<Sort>> = vec![
        vec![asc(SortKey::Name)],
        vec![desc(SortKey::SizeGib), asc(SortKey::Name)],
        vec![asc(SortKey::Shown)],
        vec![desc(SortKey::Shown), asc(SortKey::CreateTime)],
        vec![asc(SortKey::StatusTime), desc(SortKey::Id)],
        vec![desc(SortKey::Description), desc(SortKey::CreateTime)],
        vec![asc(SortKey::VolumeId), asc(SortKey::SizeGib), desc(SortKey::Zone)],
        vec![asc(SortKey::CreateTime)],
        // A key snapshots have no value for sorts them as equal.
        vec![desc(SortKey::System), desc(SortKey::Name)],
    ];
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let mut all = rows.clone();
        all.push(gone.clone());
        all.push(other.clone());
        m.commit(Batch { put_snapshots: all, ..Default::default() }).await.unwrap();
        for sort in &sorts {
            let want = expected(&rows, sort, |r, k| snap_value(r, k, &shown), |r| r.id.clone());
            let base = SnapshotFilter {
                account: "a".into(),
                statuses: vec!["creating".into(), "available".into()],
                shown: shown.clone(),
                sort: sort.clone(),
                ..Default::default()
            };
            for size in [1, 3, 5] {
                let mut got = Vec::new();
                let mut after = None;
                loop {
                    let f = SnapshotFilter { after: after.clone(), limit: size, ..base.clone() };
                    let page = m.snapshots(&f).await.unwrap();
                    assert_eq!(page.total, rows.len() as u64, "{sort:?}");
                    let n = page.items.len();
                    after = page.items.last().map(|r| (r.create_time, r.id.clone()));
                    got.extend(page.items.into_iter().map(|r| r.id));
                    if n < size as usize {
                        break;
                    }
                }
                assert_eq!(got, want, "{:?}, {sort:?}, pages of {size}", m.kind);
            }
            let f = SnapshotFilter { offset: 4, limit: 3, after: Some((0, want[2].clone())), ..base.clone() };
            let got: Vec<String> = m.snapshots(&f).await.unwrap().items.into_iter().map(|r| r.id).collect();
            assert_eq!(got, want[7..10], "{:?}, {sort:?}: marker then offset", m.kind);
        }
    }
}

/// A filter on the shown status sees the alive overrides and only them, counts exactly however
/// the overrides change (they move no list generation), and pages sorted by that status.
#[tokio::test]
async fn shown_status_filter_follows_overrides() {
    let rows = snapshots();
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        m.commit(Batch { put_snapshots: rows.clone(), ..Default::default() }).await.unwrap();
        let alive = |i: usize, w: &str| (rows[i].id.clone(), w.to_string(), rows[i].status_time);
        let stale = |i: usize, w: &str| (rows[i].id.clone(), w.to_string(), rows[i].status_time - 1);
        type Overrides = Vec<(String, String, i64)>;
        let cases: Vec<(Overrides, Vec<&str>)> = vec![
            (vec![], vec!["available"]),
            (vec![alive(0, "error")], vec!["available"]),
            (vec![alive(0, "error"), stale(5, "error")], vec!["error"]),
            (vec![alive(1, "available"), alive(3, "error")], vec!["available", "error"]),
            (vec![alive(1, "available")], vec!["deleting"]),
            (vec![alive(1, "x\0y")], vec!["x\0y"]),
            (vec![], vec!["no-such-word"]),
        ];
        for (overrides, words) in cases {
            let shown = Shown { words: snapshot_words(), overrides };
            let want: Vec<String> =
                expected(&rows, &[desc(SortKey::Shown)], |r, k| snap_value(r, k, &shown), |r| r.id.clone())
                    .into_iter()
                    .filter(|id| {
                        let r = rows.iter().find(|r| &r.id == id).unwrap();
                        let w = word_of(&shown, &r.id, &r.status, &r.transition, r.status_time);
                        // (NUL: PostgreSQL cannot hold it; no word a dialect shows has one.)
                        words.contains(&w.as_str()) && !w.contains('\0')
                    })
                    .collect();
            let f = SnapshotFilter {
                account: "a".into(),
                shown: shown.clone(),
                shown_in: words.iter().map(|w| w.to_string()).collect(),
                sort: vec![desc(SortKey::Shown)],
                limit: 100,
                ..Default::default()
            };
            let page = m.snapshots(&f).await.unwrap();
            let got: Vec<String> = page.items.into_iter().map(|r| r.id).collect();
            assert_eq!((page.total, got), (want.len() as u64, want.clone()), "{:?} {shown:?} {words:?}", m.kind);
        }
    }
}

/// Volume lists sort by size in GiB, by system disk, by shown status (transitions first, as
/// Cinder shows them), and filter on that status.
#[tokio::test]
async fn sorted_volume_lists_and_shown_status() {
    let words = rules(&[
        (None, Some("creating"), "creating"),
        (None, Some("resizing"), "extending"),
        (None, Some("rolling-back"), "reverting"),
        (None, Some("deleting"), "deleting"),
        (Some("creating"), None, "creating"),
        (Some("in-use"), None, "in-use"),
        (Some("available"), None, "available"),
    ]);
    let shown = Shown { words, overrides: Vec::new() };
    let states =
        [("available", ""), ("in-use", ""), ("available", "resizing"), ("in-use", "snapshotting"), ("creating", "")];
    let rows: Vec<VolumeRow> = (0..9)
        .map(|i| VolumeRow {
            id: format!("v{i}"),
            account: "a".into(),
            zone: "z".into(),
            name: ["b", "a", "c"][i % 3].into(),
            description: String::new(),
            size: [GIB, GIB + 1, 2 * GIB, 1][i % 4],
            kind: if i % 3 == 0 { "system" } else { "data" }.into(),
            status: states[i % states.len()].0.into(),
            transition: states[i % states.len()].1.into(),
            instance_id: None,
            path: format!("/v/{i}"),
            head_root: None,
            create_time: 5 + (i as i64) / 2,
            status_time: 5,
            source_snapshot: None,
            home_node: None,
            version: 0,
        })
        .collect();
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        m.commit(Batch { put_volumes: rows.clone(), ..Default::default() }).await.unwrap();
        for sort in [
            vec![desc(SortKey::System), asc(SortKey::SizeGib)],
            vec![asc(SortKey::Shown), desc(SortKey::CreateTime)],
            vec![desc(SortKey::VolumeId), asc(SortKey::Name)],
        ] {
            let want = expected(&rows, &sort, |r, k| vol_value(r, k, &shown), |r| r.id.clone());
            let mut got = Vec::new();
            let mut after = None;
            loop {
                let f = VolumeFilter {
                    account: "a".into(),
                    shown: shown.clone(),
                    sort: sort.clone(),
                    after: after.clone(),
                    limit: 2,
                    ..Default::default()
                };
                let page = m.volumes(&f).await.unwrap();
                assert_eq!(page.total, rows.len() as u64);
                let n = page.items.len();
                after = page.items.last().map(|r| (r.create_time, r.id.clone()));
                got.extend(page.items.into_iter().map(|r| r.id));
                if n < 2 {
                    break;
                }
            }
            assert_eq!(got, want, "{:?} {sort:?}", m.kind);
        }
        let f = VolumeFilter {
            account: "a".into(),
            shown: shown.clone(),
            shown_in: vec!["in-use".into(), "extending".into()],
            order: Order::OldestFirst,
            limit: 100,
            ..Default::default()
        };
        let page = m.volumes(&f).await.unwrap();
        let got: Vec<String> = page.items.into_iter().map(|r| r.id).collect();
        // in-use: v1, v3 (snapshotting shows its status), v6, v8; extending: v2, v7.
        assert_eq!((page.total, got), (6, ["v1", "v2", "v3", "v6", "v7", "v8"].map(String::from).to_vec()));
    }
}

/// A cached count filtered on transitions (Cinder's `available`) follows a transition change:
/// the change moves the list generation (migrations 0019 / pg 0011).
#[tokio::test]
async fn a_transition_change_moves_a_cached_count() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        m.commit(Batch { put_snapshots: snapshots(), ..Default::default() }).await.unwrap();
        let f = SnapshotFilter {
            account: "a".into(),
            statuses: vec!["available".into()],
            not_transitions: vec!["deleting".into(), "rolling-back".into()],
            limit: 1,
            ..Default::default()
        };
        let before = m.snapshots(&f).await.unwrap().total;
        assert_eq!(before as i64, m.fresh_count(&f).await);
        assert_eq!(m.snapshots(&f).await.unwrap().total, before, "the count again (from the cache)");
        let mut row = m.snapshot("a", "s00").await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.transition.as_str()), ("available", ""));
        row.transition = "deleting".into();
        m.commit(Batch { put_snapshots: vec![row], ..Default::default() }).await.unwrap();
        assert_eq!(m.snapshots(&f).await.unwrap().total, before - 1);
        assert_eq!((before - 1) as i64, m.fresh_count(&f).await);
    }
}

/// Tencent's multi-valued filters: any of several names; for each tag set, bound to at least
/// one of its tags (an empty set matches nothing); the count cached per filter stays exact.
#[tokio::test]
async fn any_of_names_and_tag_sets() {
    use crate::rows::TagRow;
    let rows = snapshots();
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let tag = |id: &str| TagRow {
            id: id.into(),
            account: "a".into(),
            key: id.into(),
            value: String::new(),
            create_time: 1,
        };
        let b = Batch {
            put_snapshots: rows.clone(),
            put_tags: vec![tag("t1"), tag("t2"), tag("t3")],
            bind_tags: [("t1", "s00"), ("t1", "s01"), ("t2", "s01"), ("t2", "s02"), ("t3", "s05")]
                .map(|(t, s)| (t.to_string(), s.to_string()))
                .to_vec(),
            ..Default::default()
        };
        m.commit(b).await.unwrap();
        let m = &m;
        let ids = |f: SnapshotFilter| async move {
            let f = SnapshotFilter { account: "a".into(), order: Order::OldestFirst, limit: 100, ..f };
            let page = m.snapshots(&f).await.unwrap();
            assert_eq!(page.total as i64, m.fresh_count(&f).await);
            page.items.into_iter().map(|r| r.id).collect::<Vec<_>>()
        };
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let want: Vec<String> =
            rows.iter().filter(|r| ["a", "c"].contains(&r.name.as_str())).map(|r| r.id.clone()).collect();
        assert_eq!(ids(SnapshotFilter { names: names(&["a", "c", "zz"]), ..Default::default() }).await, want);
        let sets = |s: &[&[&str]]| s.iter().map(|set| names(set)).collect::<Vec<_>>();
        assert_eq!(
            ids(SnapshotFilter { tag_any: sets(&[&["t1", "t3"]]), ..Default::default() }).await,
            ["s00", "s01", "s05"]
        );
        assert_eq!(
            ids(SnapshotFilter { tag_any: sets(&[&["t1", "t3"], &["t2"]]), ..Default::default() }).await,
            ["s01"]
        );
        assert!(ids(SnapshotFilter { tag_any: sets(&[&["t1"], &[]]), ..Default::default() }).await.is_empty());
        let unbind = Batch { unbind_tags: vec![("t3".into(), "s05".into())], ..Default::default() };
        m.commit(unbind).await.unwrap();
        assert_eq!(ids(SnapshotFilter { tag_any: sets(&[&["t1", "t3"]]), ..Default::default() }).await, ["s00", "s01"]);
    }
}
