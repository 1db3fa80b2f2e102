//! The metadata store against real databases: every test runs on SQLite and, when a server is
//! configured, on PostgreSQL (crate::testing), and both must give the same answers.

use super::snapshots::count_key;
use crate::filter::{JobFilter, Order, Page, SnapshotFilter, VolumeFilter};
use crate::rows::*;
use crate::testing::{backends, Kind, TestMeta};
use crate::{Batch, Expect, MetaError};

pub(crate) fn snap(id: &str, account: &str, volume: &str, t: i64, status: &str) -> SnapshotRow {
    SnapshotRow {
        id: id.into(),
        account: account.into(),
        zone: "z".into(),
        name: format!("n-{id}"),
        description: "nightly 100% done_ok".into(),
        volume_id: volume.into(),
        volume_size: 1,
        volume_kind: "data".into(),
        instance_id: None,
        is_full: t == 1,
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
        size: 10 * t,
        origin: "user".into(),
        retention_days: None,
        encrypted: false,
        used_by_images: 0,
        used_by_volumes: 0,
        logical_size: None,
        consistency: String::new(),
        version: 0,
    }
}

/// A job row of `account` made (and last changed) at `t`.
pub(crate) fn job(id: &str, account: &str, status: &str, t: i64) -> JobRow {
    JobRow {
        id: id.into(),
        account: account.into(),
        action: "create-snapshots".into(),
        status: status.into(),
        resources: "[]".into(),
        params: "{}".into(),
        error: None,
        runner: None,
        create_time: t,
        status_time: t,
        node: None,
    }
}

#[tokio::test]
async fn a_write_from_a_stale_read_is_refused_and_writes_nothing() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        m.commit(Batch { put_snapshots: vec![snap("s1", "a", "v", 1, "available")], ..Default::default() })
            .await
            .unwrap();
        let read_by_a = m.snapshot("a", "s1").await.unwrap().unwrap();
        let read_by_b = read_by_a.clone();
        assert_eq!(read_by_a.version, 1);
        let mut a = read_by_a;
        a.status = "deleted".into();
        m.commit(Batch { put_snapshots: vec![a], ..Default::default() }).await.unwrap();
        assert_eq!(m.snapshot("a", "s1").await.unwrap().unwrap().version, 2);
        // b read before a wrote: its whole-row write would put `available` back
        let mut b = read_by_b;
        b.name = "renamed".into();
        let other = snap("s2", "a", "v", 2, "available");
        let r = m.commit(Batch { put_snapshots: vec![other, b], ..Default::default() }).await;
        assert!(matches!(r, Err(MetaError::Stale { what: "snapshot", ref id }) if id == "s1"), "{r:?}");
        let now = m.snapshot("a", "s1").await.unwrap().unwrap();
        assert_eq!((now.status.as_str(), now.name.as_str(), now.version), ("deleted", "n-s1", 2));
        assert!(m.snapshot("a", "s2").await.unwrap().is_none(), "the batch wrote nothing");
        // creating a row that exists, or writing one that is gone, is stale too
        let r = m.commit(Batch { put_snapshots: vec![snap("s1", "a", "v", 1, "available")], ..Default::default() });
        assert!(matches!(r.await, Err(MetaError::Stale { .. })));
        m.commit(Batch { delete_snapshots: vec!["s1".into()], ..Default::default() }).await.unwrap();
        let mut gone = now;
        gone.name = "back from the dead".into();
        let r = m.commit(Batch { put_snapshots: vec![gone], ..Default::default() }).await;
        assert!(matches!(r, Err(MetaError::Stale { .. })), "{r:?}");
        assert!(m.snapshot("a", "s1").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn one_batch_writing_a_row_twice_from_one_read_keeps_the_last_write() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        // created and changed in one batch
        let mut later = snap("s1", "a", "v", 1, "available");
        later.name = "second".into();
        m.commit(Batch { put_snapshots: vec![snap("s1", "a", "v", 1, "available"), later], ..Default::default() })
            .await
            .unwrap();
        let read = m.snapshot("a", "s1").await.unwrap().unwrap();
        assert_eq!((read.name.as_str(), read.version), ("second", 2));
        // the same read written twice (an id a caller listed twice)
        let (mut x, mut y) = (read.clone(), read.clone());
        x.name = "x".into();
        y.name = "y".into();
        m.commit(Batch { put_snapshots: vec![x, y], ..Default::default() }).await.unwrap();
        let now = m.snapshot("a", "s1").await.unwrap().unwrap();
        assert_eq!((now.name.as_str(), now.version), ("y", 4));
        // a write from an older read is still stale, in a batch or not
        let mut stale = read;
        stale.name = "stale".into();
        let r = m.commit(Batch { put_snapshots: vec![now.clone(), stale], ..Default::default() }).await;
        assert!(matches!(r, Err(MetaError::Stale { .. })), "{r:?}");
        assert_eq!(m.snapshot("a", "s1").await.unwrap().unwrap().name, "y");
    }
}

#[tokio::test]
async fn a_failed_expectation_writes_nothing() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        m.commit(Batch { put_snapshots: vec![snap("s1", "a", "v", 1, "available")], ..Default::default() })
            .await
            .unwrap();
        let err = m
            .commit(Batch {
                expect: vec![Expect::SnapshotStatus { id: "s1".into(), expected: "deleted".into() }],
                put_snapshots: vec![snap("s2", "a", "v", 2, "available")],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, MetaError::Conflict { .. }), "{err}");
        assert!(m.snapshot("a", "s2").await.unwrap().is_none());
    }
}

/// Commits that read their expectations and then write, racing each other, all land:
/// a deferred transaction would fail some with SQLITE_BUSY_SNAPSHOT ("database is locked").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_with_expectations_all_land() {
    for tm in backends().await {
        eprintln!("backend: {:?}", tm.kind);
        let m = tm.arc();
        m.commit(Batch { put_snapshots: vec![snap("s1", "a", "v", 1, "available")], ..Default::default() })
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let m = m.clone();
            tasks.push(tokio::spawn(async move {
                for j in 0..10 {
                    let _ = m.snapshot("a", "s1").await.unwrap();
                    m.commit(Batch {
                        expect: vec![Expect::SnapshotStatus { id: "s1".into(), expected: "available".into() }],
                        put_snapshots: vec![snap(&format!("c{i}-{j}"), "a", "v", 2, "available")],
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let all = m.snapshots(&SnapshotFilter { account: "a".into(), limit: 1000, ..Default::default() }).await;
        assert_eq!(all.unwrap().total, 161);
    }
}

/// No caller's input makes SQLite refuse a statement: lists longer than SQLite's 32 766
/// variables, search words holding NUL or too long for a LIKE pattern, FTS5 syntax
/// characters. Each still matches exactly what it names.
#[tokio::test]
async fn long_lists_and_any_search_word_work() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        let mut b = Batch::default();
        for (id, t) in [("s1", 1), ("s2", 2), ("s3", 3)] {
            b.put_snapshots.push(snap(id, "a", "v1", t, "available"));
        }
        // PostgreSQL's text cannot hold NUL (the server refuses it): there no name has one, and a
        // word with one matches nothing.
        let nul = m.kind == Kind::Sqlite;
        if !nul {
            // refused as a bad value, naming it, not as a database failure
            let mut bad = b.clone();
            bad.put_snapshots[1].name = "with\0nul-inside".into();
            let r = m.commit(bad).await;
            assert!(matches!(&r, Err(MetaError::Unstorable { field }) if field == "snapshot.name"), "{r:?}");
        }
        b.put_snapshots[1].name = if nul { "with\0nul-inside" } else { "with-nul-inside" }.into();
        b.put_snapshots[2].name = "Quote\"*(NEAR)-:^".into();
        b.put_tags = (0..40)
            .map(|i| TagRow {
                id: format!("t{i}"),
                account: "a".into(),
                key: format!("k{i}"),
                value: "v".into(),
                create_time: 1,
            })
            .collect();
        b.bind_tags = (0..40).map(|i| (format!("t{i}"), "s1".to_string())).collect();
        b.bind_tags.push(("t0".into(), "s2".into()));
        m.commit(b).await.unwrap();
        let many = |keep: &[&str]| -> Vec<String> {
            (0..40_000).map(|i| format!("x{i}")).chain(keep.iter().map(|k| k.to_string())).collect()
        };
        let ids = |p: Page<SnapshotRow>| p.items.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let f = |f: SnapshotFilter| SnapshotFilter { account: "a".into(), limit: 10, ..f };
        let got = m.snapshots(&f(SnapshotFilter { ids: many(&["s1", "s3"]), ..Default::default() })).await.unwrap();
        assert_eq!((got.total, ids(got)), (2, vec!["s3".to_string(), "s1".to_string()]));
        let lists = [
            SnapshotFilter { volume_ids: many(&["v1"]), ..Default::default() },
            SnapshotFilter { instance_ids: many(&[]), ..Default::default() },
            SnapshotFilter { statuses: many(&["available"]), ..Default::default() },
            SnapshotFilter { transitions: many(&[""]), ..Default::default() },
            SnapshotFilter { not_transitions: many(&[]), ..Default::default() },
            SnapshotFilter { tag_ids: many(&[]), ..Default::default() },
            SnapshotFilter { tag_pairs: (0..40_000).map(|i| (format!("k{i}"), None)).collect(), ..Default::default() },
        ];
        let want = [3, 0, 3, 3, 3, 0, 0];
        for (l, n) in lists.into_iter().zip(want) {
            let got = m.snapshots(&f(l.clone())).await;
            assert_eq!(got.map(|p| p.total).map_err(|e| e.to_string()), Ok(n), "{:?}", count_key(&l).len());
        }
        // All 40 tags are bound to s1 only; every pair of its 40 matches it.
        let tags: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        let got = m.snapshots(&f(SnapshotFilter { tag_ids: tags.clone(), ..Default::default() })).await.unwrap();
        assert_eq!(ids(got), ["s1"]);
        let pairs: Vec<_> = (0..40).map(|i| (format!("k{i}"), Some("v".to_string()))).collect();
        let got = m.snapshots(&f(SnapshotFilter { tag_pairs: pairs.clone(), ..Default::default() })).await.unwrap();
        assert_eq!(ids(got), ["s1"]);
        let mut off = pairs.clone();
        off[39].1 = Some("other".into());
        assert_eq!(m.snapshots(&f(SnapshotFilter { tag_pairs: off, ..Default::default() })).await.unwrap().total, 0);
        let words: Vec<(String, Vec<&str>)> = vec![
            ("\0".into(), if nul { vec!["s2"] } else { vec![] }),
            ("h\0nul".into(), if nul { vec!["s2"] } else { vec![] }),
            ("WITH\0N".into(), if nul { vec!["s2"] } else { vec![] }),
            ("x\0".into(), vec![]),
            ("\"*(near)".into(), vec!["s3"]),
            ("-:^".into(), vec!["s3"]),
            ("%".into(), vec!["s1", "s2", "s3"].into_iter().rev().collect()),
            ("a".repeat(60_000), vec![]),
            ("'; DROP".into(), vec![]),
        ];
        for (w, want) in words {
            let got = m.snapshots(&f(SnapshotFilter { search: Some(w.clone()), ..Default::default() })).await;
            let got = got.map(ids).map_err(|e| e.to_string());
            let want = Ok(want.iter().map(|s| s.to_string()).collect());
            assert_eq!(got, want, "{:?} search {:?}", m.kind, &w[..w.len().min(20)]);
        }
        // NUL in any filter value or looked-up id: no match, on either backend, never an error
        let nul_filters = [
            SnapshotFilter { name: Some("n-s1\0".into()), ..Default::default() },
            SnapshotFilter { ids: vec!["s1\0".into()], ..Default::default() },
            SnapshotFilter { zone: Some("\0".into()), ..Default::default() },
            SnapshotFilter { tag_ids: vec!["t0\0".into()], ..Default::default() },
            SnapshotFilter { tag_pairs: vec![("k0\0".into(), None)], ..Default::default() },
        ];
        for l in nul_filters {
            let got = m.snapshots(&f(l.clone())).await.map(|p| p.total).map_err(|e| e.to_string());
            assert_eq!(got, Ok(0), "{:?} {l:?}", m.kind);
        }
        let got = m.snapshots(&f(SnapshotFilter { not_transitions: vec!["\0".into()], ..Default::default() })).await;
        assert_eq!(got.map(|p| p.total).map_err(|e| e.to_string()), Ok(3));
        assert!(m.snapshot("a", "s1\0").await.unwrap().is_none());
        assert!(m.snapshot_metadata("s1\0").await.unwrap().is_empty());
        assert!(m.chain("s1\0").await.unwrap().is_empty());
        let vf = |v: VolumeFilter| VolumeFilter { account: "a".into(), limit: 10, ..v };
        for v in [
            VolumeFilter { ids: many(&[]), ..Default::default() },
            VolumeFilter { instance_ids: many(&[]), ..Default::default() },
            VolumeFilter { statuses: many(&[]), ..Default::default() },
            VolumeFilter { tag_ids: many(&[]), ..Default::default() },
            VolumeFilter { search: Some("a\0b".into()), ..Default::default() },
            VolumeFilter { search: Some("a".repeat(60_000)), ..Default::default() },
        ] {
            assert_eq!(m.volumes(&vf(v)).await.map(|p| p.total).map_err(|e| e.to_string()), Ok(0));
        }
        let jf = JobFilter { ids: many(&[]), statuses: many(&[]), limit: 10, ..Default::default() };
        assert_eq!(m.jobs(&jf).await.map(|p| p.total).map_err(|e| e.to_string()), Ok(0));
        assert_eq!(m.instances_by_id("a", &many(&[])).await.map(|v| v.len()).map_err(|e| e.to_string()), Ok(0));
        assert_eq!(m.volumes_by_id("a", &many(&[])).await.map(|v| v.len()).map_err(|e| e.to_string()), Ok(0));
        let md = m.snapshots_metadata("a", &many(&["s1"])).await.map_err(|e| e.to_string());
        assert_eq!(md, Ok(vec![]));
        let t = m.tags_of(&many(&["s2"])).await.map(|v| v.len()).map_err(|e| e.to_string());
        assert_eq!(t, Ok(1));
        let c = m.chain_totals(&many(&["s1"])).await.map(|v| v.len()).map_err(|e| e.to_string());
        assert_eq!(c, Ok(1));
    }
}

/// Keyset pages: strictly after `(create_time, id)` in either order, ties broken by id, the
/// total unaffected by the cursor (or skipped); transitions filter; metadata in one query.
#[tokio::test]
async fn keyset_pages_transitions_and_batched_metadata() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        let mut b = Batch::default();
        // s1..s3 at t=1 (one batch shares its create_time), s4 at 2, s5 at 3 (deleting).
        for (id, t) in [("s1", 1), ("s2", 1), ("s3", 1), ("s4", 2), ("s5", 3)] {
            let mut r = snap(id, "a", "v1", t, "available");
            if id == "s5" {
                r.transition = "deleting".into();
            }
            b.put_snapshots.push(r);
        }
        b.put_snapshots.push(snap("x1", "b", "v1", 1, "available"));
        b.snapshot_metadata = vec![
            ("s2".into(), "k".into(), Some("v".into())),
            ("s2".into(), "a".into(), Some("w".into())),
            ("s4".into(), "k".into(), Some("u".into())),
            ("x1".into(), "k".into(), Some("secret".into())),
        ];
        m.commit(b).await.unwrap();
        let ids = |p: Page<SnapshotRow>| p.items.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let f = |after: Option<(i64, &str)>, order: Order| SnapshotFilter {
            account: "a".into(),
            after: after.map(|(t, i)| (t, i.to_string())),
            order,
            limit: 2,
            ..Default::default()
        };
        let p = m.snapshots(&f(Some((2, "s4")), Order::NewestFirst)).await.unwrap();
        assert_eq!((p.total, ids(p)), (5, vec!["s3".to_string(), "s2".to_string()]));
        assert_eq!(ids(m.snapshots(&f(Some((1, "s2")), Order::NewestFirst)).await.unwrap()), ["s1"]);
        assert_eq!(ids(m.snapshots(&f(Some((1, "s1")), Order::OldestFirst)).await.unwrap()), ["s2", "s3"]);
        assert_eq!(ids(m.snapshots(&f(Some((1, "s3")), Order::OldestFirst)).await.unwrap()), ["s4", "s5"]);
        let skipped = m.snapshots(&SnapshotFilter { skip_count: true, ..f(None, Order::NewestFirst) }).await.unwrap();
        assert_eq!((skipped.total, ids(skipped)), (0, vec!["s5".to_string(), "s4".to_string()]));
        let deleting = SnapshotFilter { transitions: vec!["deleting".into()], ..f(None, Order::NewestFirst) };
        assert_eq!(ids(m.snapshots(&deleting).await.unwrap()), ["s5"]);
        let other =
            SnapshotFilter { not_transitions: vec!["deleting".into()], limit: 10, ..f(None, Order::NewestFirst) };
        assert_eq!(ids(m.snapshots(&other).await.unwrap()), ["s4", "s3", "s2", "s1"]);
        let all = ["s1", "s2", "s4", "x1"].map(String::from);
        let md = m.snapshots_metadata("a", &all).await.unwrap();
        let want = [("s2", "a", "w"), ("s2", "k", "v"), ("s4", "k", "u")]
            .map(|(i, k, v)| (i.to_string(), k.to_string(), v.to_string()));
        assert_eq!(md, want, "another account's metadata never shows");
    }
}

/// Totals come from `snapshot_counts` or the generation-keyed cache; both must follow every
/// kind of write exactly as a fresh COUNT(*) would.
#[tokio::test]
async fn totals_follow_inserts_updates_deletes_and_tag_bindings() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        let filters = |tag: &str| {
            let f = |f: SnapshotFilter| SnapshotFilter { account: "a".into(), limit: 2, ..f };
            vec![
                f(Default::default()),
                f(SnapshotFilter { statuses: vec!["deleted".into()], ..Default::default() }),
                f(SnapshotFilter { is_full: Some(true), ..Default::default() }),
                f(SnapshotFilter { origin: Some("auto".into()), ..Default::default() }),
                f(SnapshotFilter { volume_ids: vec!["v1".into()], ..Default::default() }),
                f(SnapshotFilter { search: Some("N-S".into()), ..Default::default() }),
                f(SnapshotFilter { tag_ids: vec![tag.into()], ..Default::default() }),
            ]
        };
        async fn check(m: &TestMeta, fs: &[SnapshotFilter], round: &str) {
            for f in fs {
                let got = m.snapshots(f).await.unwrap().total;
                let want = m.fresh_count(f).await;
                assert_eq!(got, want as u64, "{:?} {round}: {f:?}", m.kind);
            }
        }
        let fs = filters("t1");
        let mut b = Batch::default();
        for t in 1..=6 {
            b.put_snapshots.push(snap(&format!("s{t}"), "a", if t % 2 == 0 { "v2" } else { "v1" }, t, "available"));
        }
        b.put_snapshots.push(snap("x1", "b", "v1", 7, "available"));
        m.commit(b).await.unwrap();
        check(m, &fs, "inserted").await;
        check(m, &fs, "inserted, cached").await;
        // status, origin and volume change through the upsert; a progress update changes nothing
        let mut s2 = snap("s2", "a", "v1", 2, "deleted");
        s2.origin = "auto".into();
        let mut s3 = snap("s3", "a", "v2", 3, "ceased");
        // a rename leaves the search word's matches (the trigram index follows the row)
        let mut s4 = snap("s4", "a", "v2", 4, "available");
        s4.name = "renamed".into();
        for s in [&mut s2, &mut s3, &mut s4] {
            s.version = 1; // as read after the insert
        }
        m.commit(Batch { put_snapshots: vec![s2, s3, s4], ..Default::default() }).await.unwrap();
        check(m, &fs, "updated").await;
        m.commit(Batch { snapshot_progress: vec![("s4".into(), 50, true)], ..Default::default() }).await.unwrap();
        check(m, &fs, "progress").await;
        // into a group that exists already (the end of every capture: creating -> available)
        let mut s7 = snap("s7", "a", "v1", 7, "creating");
        s7.is_full = false;
        m.commit(Batch { put_snapshots: vec![s7.clone()], ..Default::default() }).await.unwrap();
        s7.status = "available".into();
        s7.version = 1;
        m.commit(Batch { put_snapshots: vec![s7], ..Default::default() }).await.unwrap();
        check(m, &fs, "captured").await;
        let tag =
            TagRow { id: "t1".into(), account: "a".into(), key: "k".into(), value: String::new(), create_time: 1 };
        m.commit(Batch {
            put_tags: vec![tag],
            bind_tags: vec![("t1".into(), "s1".into()), ("t1".into(), "s5".into())],
            ..Default::default()
        })
        .await
        .unwrap();
        check(m, &fs, "tagged").await;
        // the listing's lookups give what the separate calls give
        let vol = VolumeRow {
            id: "v1".into(),
            account: "a".into(),
            zone: "z".into(),
            name: "vol one".into(),
            description: String::new(),
            size: 1,
            kind: "data".into(),
            status: "available".into(),
            transition: String::new(),
            instance_id: None,
            path: "/x".into(),
            head_root: Some("s1".into()),
            source_snapshot: None,
            home_node: None,
            create_time: 1,
            status_time: 1,
            version: 0,
        };
        m.commit(Batch { put_volumes: vec![vol], ..Default::default() }).await.unwrap();
        let all = SnapshotFilter { limit: 100, ..fs[0].clone() };
        let l = m.snapshot_listing(&all).await.unwrap();
        let page = m.snapshots(&all).await.unwrap();
        assert_eq!(l.page.items, page.items);
        assert_eq!(l.page.total, page.total);
        let ids: Vec<String> = l.page.items.iter().map(|r| r.id.clone()).collect();
        let roots: Vec<String> = l.page.items.iter().filter(|r| r.is_full).map(|r| r.id.clone()).collect();
        assert_eq!(l.tags, m.tags_of(&ids).await.unwrap());
        assert_eq!(l.tags.len(), 2);
        assert_eq!(l.chain_totals, m.chain_totals(&roots).await.unwrap());
        assert_eq!(l.volumes, m.volumes_by_id("a", &["v1".into(), "v2".into()]).await.unwrap());
        assert_eq!(l.volumes.len(), 1);
        m.commit(Batch {
            delete_snapshots: vec!["s1".into(), "s6".into()],
            unbind_tags: vec![("t1".into(), "s5".into())],
            ..Default::default()
        })
        .await
        .unwrap();
        check(m, &fs, "deleted").await;
    }
}

#[tokio::test]
async fn filters_order_paging_totals_and_accounts() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        let mut b = Batch::default();
        for t in 1..=5 {
            b.put_snapshots.push(snap(&format!("s{t}"), "a", if t % 2 == 0 { "v2" } else { "v1" }, t, "available"));
        }
        b.put_snapshots.push(snap("s6", "a", "v1", 6, "ceased"));
        let mut other = snap("x1", "b", "v1", 7, "available");
        other.root_id = "x1".into();
        b.put_snapshots.push(other);
        m.commit(b).await.unwrap();
        let f = |f: SnapshotFilter| SnapshotFilter {
            account: "a".into(),
            limit: if f.limit == 0 { 100 } else { f.limit },
            ..f
        };
        let ids = |p: Page<SnapshotRow>| p.items.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(m.snapshots(&f(Default::default())).await.unwrap()), ["s5", "s4", "s3", "s2", "s1"]);
        let page = m.snapshots(&f(SnapshotFilter { offset: 1, limit: 2, ..Default::default() })).await.unwrap();
        assert_eq!((page.total, ids(page)), (5, vec!["s4".to_string(), "s3".to_string()]));
        assert_eq!(
            ids(m.snapshots(&f(SnapshotFilter { volume_ids: vec!["v2".into()], ..Default::default() })).await.unwrap()),
            ["s4", "s2"]
        );
        assert_eq!(
            ids(m
                .snapshots(&f(SnapshotFilter { statuses: vec!["ceased".into()], ..Default::default() }))
                .await
                .unwrap()),
            ["s6"]
        );
        assert_eq!(
            ids(m.snapshots(&f(SnapshotFilter { is_full: Some(true), ..Default::default() })).await.unwrap()),
            ["s1"]
        );
        assert_eq!(
            ids(m
                .snapshots(&f(SnapshotFilter { created_from: Some(2), created_to: Some(3), ..Default::default() }))
                .await
                .unwrap()),
            ["s3", "s2"]
        );
        // LIKE wildcards in a search word are literal characters
        assert_eq!(
            m.snapshots(&f(SnapshotFilter { search: Some("100%".into()), ..Default::default() })).await.unwrap().total,
            5
        );
        assert_eq!(
            m.snapshots(&f(SnapshotFilter { search: Some("0_%".into()), ..Default::default() })).await.unwrap().total,
            0
        );
        assert_eq!(
            m.snapshots(&f(SnapshotFilter { search: Some("n-s3".into()), ..Default::default() })).await.unwrap().total,
            1
        );
        // Aliyun's Usage filter: made an image, a volume, both or neither
        let mut b = Batch::default();
        for (id, imgs, vols) in [("u1", 1, 0), ("u2", 0, 2), ("u3", 1, 1)] {
            let mut r = snap(id, "u", "v9", 1, "available");
            r.root_id = id.into();
            (r.used_by_images, r.used_by_volumes) = (imgs, vols);
            b.put_snapshots.push(r);
        }
        m.commit(b).await.unwrap();
        let used = |i: Option<bool>, v: Option<bool>| SnapshotFilter {
            account: "u".into(),
            used_by_images: i,
            used_by_volumes: v,
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(m.snapshots(&used(Some(true), Some(false))).await.unwrap()), ["u1"]);
        assert_eq!(ids(m.snapshots(&used(Some(false), Some(true))).await.unwrap()), ["u2"]);
        assert_eq!(ids(m.snapshots(&used(Some(true), Some(true))).await.unwrap()), ["u3"]);
        assert_eq!(m.snapshots(&used(Some(false), Some(false))).await.unwrap().total, 0);
        // another account's rows are invisible, by id too
        assert!(m.snapshot("a", "x1").await.unwrap().is_none());
        let totals = m.chain_totals(&["s1".into()]).await.unwrap();
        assert_eq!((totals[0].total_count, totals[0].total_size, totals[0].latest_snapshot_time), (5, 150, 5));
    }
}

fn state(kind: &str, account: &str, key: &str, value: &str, expires_at: Option<i64>) -> StateRow {
    StateRow { kind: kind.into(), account: account.into(), key: key.into(), value: value.into(), expires_at }
}

#[tokio::test]
async fn request_state_expires_is_bounded_and_survives_a_reopen() {
    for first in backends().await {
        eprintln!("backend: {:?}", first.kind);
        first.state_put(&state("tok", "", "k1", "a", Some(100)), 10, 0).await.unwrap();
        first.state_put(&state("tok", "", "k2", "b", None), 10, 0).await.unwrap();
        // the same key again replaces its value and expiry
        first.state_put(&state("tok", "", "k1", "a2", Some(200)), 10, 0).await.unwrap();
        // another account's row with the same kind and key is its own
        first.state_put(&state("tok", "x", "k1", "other", Some(200)), 10, 0).await.unwrap();
        let m = &first.reopen().await;
        assert_eq!(m.state_get("tok", "", "k1", 150).await.unwrap().unwrap().value, "a2");
        assert_eq!(m.state_get("tok", "x", "k1", 150).await.unwrap().unwrap().value, "other");
        // expired: not read, then purged by the next write of its kind and account
        assert_eq!(m.state_get("tok", "", "k1", 200).await.unwrap(), None);
        assert_eq!(m.state_list("tok", "", 150).await.unwrap().len(), 2);
        m.state_put(&state("tok", "", "k3", "b", Some(900)), 10, 300).await.unwrap();
        assert_eq!(m.state_get("tok", "", "k1", 0).await.unwrap(), None, "purged");
        assert_eq!(m.state_keys("tok", "", "b", 300).await.unwrap(), vec!["k2".to_string(), "k3".to_string()]);
        // several keys in one read: live ones only, of this account, whatever else is asked
        let asked = ["k3", "k1", "nope", "k2", "with\0nul"].map(String::from);
        let got: Vec<(String, String)> =
            m.state_get_many("tok", "", &asked, 300).await.unwrap().into_iter().map(|r| (r.key, r.value)).collect();
        assert_eq!(got, [("k2", "b"), ("k3", "b")].map(|(k, v)| (k.to_string(), v.to_string())));
        assert!(m.state_get_many("tok", "x", &asked, 300).await.unwrap().is_empty());
        assert!(m.state_get_many("tok", "", &[], 300).await.unwrap().is_empty());
        // bounded: past `keep`, the rows that expire first go; a row without expiry stays
        for i in 0..5 {
            m.state_put(&state("tok", "", &format!("n{i}"), "v", Some(1000 + i)), 3, 300).await.unwrap();
        }
        let left: Vec<String> = m.state_list("tok", "", 300).await.unwrap().into_iter().map(|r| r.key).collect();
        assert_eq!(left, vec!["k2", "n3", "n4"]);
        assert!(m.state_delete("tok", "", "n3").await.unwrap());
        assert!(!m.state_delete("tok", "", "n3").await.unwrap());
        // keys order byte-wise on both backends (PostgreSQL's columns are COLLATE "C")
        for k in ["b", "B", "_", "a"] {
            m.state_put(&state("ord", "", k, "same", None), 10, 300).await.unwrap();
        }
        assert_eq!(m.state_keys("ord", "", "same", 300).await.unwrap(), ["B", "_", "a", "b"]);
        // a key holding NUL (a client's ClientToken, say): PostgreSQL refuses to store it as a
        // bad value naming it and finds nothing under it; never a database failure
        let nul = state("tok", "", "with\0nul", "v", None);
        match m.kind {
            Kind::Sqlite => m.state_put(&nul, 10, 300).await.unwrap(),
            Kind::Pg => {
                let r = m.state_put(&nul, 10, 300).await;
                assert!(matches!(&r, Err(MetaError::Unstorable { field }) if field == "state.key"), "{r:?}");
                assert_eq!(m.state_get("tok", "", "with\0nul", 300).await.unwrap(), None);
                assert!(m.state_keys("tok", "\0", "v", 300).await.unwrap().is_empty());
                assert!(!m.state_delete("tok", "", "with\0nul").await.unwrap());
            }
        }
        m.state_delete("tok", "", "with\0nul").await.unwrap();
        // every kind and account: n4 (at 1004) and account x's k1 (at 200)
        assert_eq!(m.state_list("tok", "x", 0).await.unwrap().len(), 1);
        assert_eq!(m.state_purge(1004).await.unwrap(), 2);
        assert_eq!(m.state_list("tok", "x", 0).await.unwrap().len(), 0);
        // maintenance purges what expired by the real clock
        m.state_put(&state("old", "", "k", "v", Some(1)), 10, 0).await.unwrap();
        m.maintain().await.unwrap();
        assert_eq!(m.state_get("old", "", "k", 0).await.unwrap(), None);
    }
}

/// Many writers of one kind and account at once, replacing shared keys that are the first to be
/// trimmed: every write lands and the bound holds. (On PostgreSQL without the per-account lock
/// of `postgres::state::put` two trims deadlock here, one failing with 40P01.)
#[tokio::test]
async fn request_state_writes_of_one_account_at_once_keep_the_bound() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let store = m.arc();
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    for j in 0..5 {
                        let key = format!("k{i:02}-{j}");
                        store.state_put(&state("ct", "acc", &key, "v", Some(10_000 + i * 10 + j)), 20, 0).await?;
                        // and keys every writer replaces, among the first to be trimmed
                        let shared = format!("shared-{}", (i + j) % 6);
                        store.state_put(&state("ct", "acc", &shared, "v", Some(1 + i * 10 + j)), 20, 0).await?;
                    }
                    Ok::<_, MetaError>(())
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap().unwrap();
        }
        let left = m.state_list("ct", "acc", 0).await.unwrap();
        assert_eq!(left.len(), 20, "{left:?}");
    }
}

fn vol(id: &str, source: Option<&str>, t: i64) -> VolumeRow {
    VolumeRow {
        id: id.into(),
        account: "a".into(),
        zone: "z".into(),
        name: format!("n-{id}"),
        description: String::new(),
        size: 1,
        kind: "data".into(),
        status: "available".into(),
        transition: String::new(),
        instance_id: None,
        path: format!("/v/{id}"),
        head_root: None,
        create_time: t,
        status_time: t,
        source_snapshot: source.map(Into::into),
        home_node: None,
        version: 0,
    }
}

#[tokio::test]
async fn volumes_filter_by_source_snapshot() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let b = Batch {
            put_volumes: vec![
                vol("v1", Some("s1"), 1),
                vol("v2", Some("s2"), 2),
                vol("v3", None, 3),
                vol("v4", Some("s1"), 4),
            ],
            ..Default::default()
        };
        m.commit(b).await.unwrap();
        let of = |sources: &[&str]| VolumeFilter {
            account: "a".into(),
            source_snapshots: sources.iter().map(|s| s.to_string()).collect(),
            limit: 10,
            ..Default::default()
        };
        let ids = |p: Page<VolumeRow>| (p.total, p.items.into_iter().map(|r| r.id).collect::<Vec<_>>());
        assert_eq!(ids(m.volumes(&of(&["s1"])).await.unwrap()), (2, vec!["v4".into(), "v1".into()]));
        assert_eq!(ids(m.volumes(&of(&["s1", "s2"])).await.unwrap()).0, 3);
        assert_eq!(ids(m.volumes(&of(&[])).await.unwrap()).0, 4, "empty: any");
        assert_eq!(ids(m.volumes(&of(&["nope", "s\0"])).await.unwrap()).0, 0);
    }
}

#[tokio::test]
async fn console_sessions_are_kept_touched_forward_and_expired() {
    for first in backends().await {
        eprintln!("backend: {:?}", first.kind);
        let row = |h: &str, seen: i64| ConsoleSessionRow {
            token_hash: h.into(),
            account: "acc".into(),
            created_at: 1,
            last_seen: seen,
        };
        first.console_session_put(&row("h1", 10)).await.unwrap();
        first.console_session_put(&row("h2", 20)).await.unwrap();
        // one hash, one session: a second put of it fails (the console makes a new cookie)
        assert!(first.console_session_put(&row("h1", 30)).await.is_err());
        let m = &first.reopen().await;
        assert_eq!(m.console_session("h1").await.unwrap(), Some(row("h1", 10)));
        m.console_session_touch("h1", 50).await.unwrap();
        // never back
        m.console_session_touch("h1", 40).await.unwrap();
        assert_eq!(m.console_session("h1").await.unwrap().unwrap().last_seen, 50);
        assert_eq!(m.console_session("missing").await.unwrap(), None);
        assert_eq!(m.console_session("h\0").await.unwrap(), None);
        // last seen before 30: h2 only
        assert_eq!(m.console_sessions_expire(30).await.unwrap(), 1);
        assert_eq!(m.console_session("h2").await.unwrap(), None);
        m.console_session_delete("h1").await.unwrap();
        assert_eq!(m.console_session("h1").await.unwrap(), None);
        m.console_session_delete("h1").await.unwrap();
    }
}

fn policy(id: &str, account: &str, name: &str, t: i64) -> PolicyRow {
    PolicyRow {
        id: id.into(),
        account: account.into(),
        name: name.into(),
        time_points: "[1,13]".into(),
        weekdays: "[1,2,3]".into(),
        every_days: None,
        retention_days: Some(7),
        retention_count: None,
        enabled: true,
        create_time: t,
        schedule_from: t,
    }
}

#[tokio::test]
async fn policies_names_bindings_slots_and_points() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        m.policy_put(&policy("p1", "a", "nightly", 1)).await.unwrap();
        m.policy_put(&policy("p2", "a", "weekly", 2)).await.unwrap();
        m.policy_put(&policy("p3", "b", "nightly", 3)).await.unwrap(); // another account's name
                                                                       // a name the account uses already, by a new policy or by renaming one
        for (id, t) in [("p4", 4), ("p2", 2)] {
            let r = m.policy_put(&policy(id, "a", "nightly", t)).await;
            assert!(matches!(&r, Err(MetaError::Conflict { what: "policy name", id, .. }) if id == "nightly"), "{r:?}");
        }
        // an update keeps account and create_time, changes the rest
        let mut p1 = policy("p1", "a", "renamed", 1);
        (p1.enabled, p1.every_days, p1.weekdays, p1.retention_days, p1.retention_count) =
            (false, Some(3), "[]".into(), None, Some(5));
        m.policy_put(&PolicyRow { account: "ignored".into(), create_time: 99, ..p1.clone() }).await.unwrap();
        assert_eq!(m.policy("a", "p1").await.unwrap(), Some(p1.clone()));
        assert_eq!(m.policy("b", "p1").await.unwrap(), None, "another account's");
        let ids = |v: Vec<PolicyRow>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids(m.policies(Some("a")).await.unwrap()), ["p1", "p2"]);
        assert_eq!(ids(m.policies(None).await.unwrap()), ["p1", "p2", "p3"]);
        assert!(m.policies(Some("a\0")).await.unwrap().is_empty());

        // bindings: a volume follows one policy; binding elsewhere moves it
        let v = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        m.policy_bind("p1", &v(&["v2", "v1", "v1"])).await.unwrap();
        m.policy_bind("p2", &v(&["v3", "v2"])).await.unwrap();
        assert_eq!(m.policy_volumes("p1").await.unwrap(), ["v1"]);
        assert_eq!(m.policy_volumes("p2").await.unwrap(), ["v2", "v3"]);
        assert_eq!(m.policy_of_volume("v2").await.unwrap().as_deref(), Some("p2"));
        // unbinding from a policy it does not follow changes nothing
        m.policy_unbind("p1", &v(&["v2"])).await.unwrap();
        m.policy_unbind("p2", &v(&["v3"])).await.unwrap();
        assert_eq!(m.policy_of_volume("v2").await.unwrap().as_deref(), Some("p2"));
        assert_eq!(m.policy_of_volume("v3").await.unwrap(), None);

        // a slot is claimed once, whoever asks and however many ask at once
        let store = m.arc();
        let claims: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.policy_slot_claim("p2", 3_600_000, &format!("r{i}"), 5).await })
            })
            .collect();
        let mut won = 0;
        for c in claims {
            won += c.await.unwrap().unwrap() as usize;
        }
        assert_eq!(won, 1);
        assert!(!m.policy_slot_claim("p2", 3_600_000, "late", 6).await.unwrap());
        assert!(m.policy_slot_claim("p2", 7_200_000, "r0", 6).await.unwrap());
        let made = |id: &str, vol: &str, slot: i64| PolicySnapshotRow {
            snapshot_id: id.into(),
            policy_id: "p2".into(),
            volume_id: vol.into(),
            slot,
        };
        m.policy_slot_started("p2", 3_600_000, "j1", &[made("s2", "v2", 3_600_000), made("s1", "v2", 3_600_000)])
            .await
            .unwrap();
        m.policy_slot_started("p2", 7_200_000, "j2", &[made("s3", "v2", 7_200_000)]).await.unwrap();
        assert_eq!(
            m.policy_slots("p2").await.unwrap(),
            [(3_600_000, Some("j1".to_string())), (7_200_000, Some("j2".to_string()))]
        );
        let points = |v: Vec<PolicySnapshotRow>| v.into_iter().map(|r| r.snapshot_id).collect::<Vec<_>>();
        assert_eq!(points(m.policy_snapshots("p2").await.unwrap()), ["s1", "s2", "s3"]);
        m.policy_forget_snapshots(&v(&["s1", "s3", "nope"])).await.unwrap();
        assert_eq!(points(m.policy_snapshots("p2").await.unwrap()), ["s2"]);

        // deleting a policy takes its bindings, slots and records of points (another account
        // cannot delete it)
        assert!(!m.policy_delete("b", "p2").await.unwrap());
        assert!(m.policy_delete("a", "p2").await.unwrap());
        assert!(!m.policy_delete("a", "p2").await.unwrap());
        assert_eq!(m.policy_of_volume("v2").await.unwrap(), None);
        assert!(m.policy_slots("p2").await.unwrap().is_empty());
        assert!(m.policy_snapshots("p2").await.unwrap().is_empty());
        // and its name is free again
        m.policy_put(&policy("p5", "a", "weekly", 5)).await.unwrap();
        // a name holding NUL: a bad value on PostgreSQL, naming it
        if m.kind == Kind::Pg {
            let r = m.policy_put(&policy("p6", "a", "bad\0name", 6)).await;
            assert!(matches!(&r, Err(MetaError::Unstorable { field }) if field == "policy.name"), "{r:?}");
        }
    }
}

/// Snapshot groups (migrations 0013 / pg 0005): written in a batch with their points, guarded
/// by their version, listed per account oldest first, deleted with the batch that deletes them.
#[tokio::test]
async fn snapshot_groups_commit_with_their_points_and_are_guarded() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        let group = |id: &str, account: &str, t: i64| SnapshotGroupRow {
            id: id.into(),
            account: account.into(),
            zone: "z".into(),
            name: format!("g-{id}"),
            description: String::new(),
            instance_id: None,
            members: r#"[{"snapshot":"s1","volume":"v1"},{"snapshot":"s2","volume":"v2"}]"#.into(),
            transition: String::new(),
            create_time: t,
            status_time: t,
            version: 0,
        };
        let batch = Batch {
            put_snapshots: vec![snap("s1", "a", "v1", 1, "creating"), snap("s2", "a", "v2", 1, "creating")],
            put_snapshot_groups: vec![group("g2", "a", 2), group("g1", "a", 1), group("g3", "b", 1)],
            ..Default::default()
        };
        m.commit(batch).await.unwrap();
        let ids: Vec<String> = m.snapshot_groups("a").await.unwrap().into_iter().map(|g| g.id).collect();
        assert_eq!(ids, ["g1", "g2"]);
        assert!(m.snapshot_group("b", "g1").await.unwrap().is_none(), "another account's group is not found");
        let read = m.snapshot_group("a", "g1").await.unwrap().unwrap();
        assert_eq!((read.version, read.members.contains("\"v2\"")), (1, true));
        let mut renamed = read.clone();
        renamed.name = "renamed".into();
        m.commit(Batch { put_snapshot_groups: vec![renamed], ..Default::default() }).await.unwrap();
        // a write from the first read is stale, and its batch (a point too) writes nothing
        let mut stale = read;
        stale.transition = "deleting".into();
        let r = m
            .commit(Batch {
                delete_snapshots: vec!["s1".into()],
                put_snapshot_groups: vec![stale],
                ..Default::default()
            })
            .await;
        assert!(matches!(r, Err(MetaError::Stale { what: "snapshot group", .. })), "{r:?}");
        assert!(m.snapshot("a", "s1").await.unwrap().is_some());
        let now = m.snapshot_group("a", "g1").await.unwrap().unwrap();
        assert_eq!((now.name.as_str(), now.transition.as_str(), now.version), ("renamed", "", 2));
        // a group and its points go in one batch
        let gone = Batch {
            delete_snapshots: vec!["s1".into(), "s2".into()],
            delete_snapshot_groups: vec!["g1".into()],
            ..Default::default()
        };
        assert!(!gone.is_empty());
        m.commit(gone).await.unwrap();
        assert!(m.snapshot_group("a", "g1").await.unwrap().is_none());
        assert!(m.snapshot("a", "s2").await.unwrap().is_none());
        // PostgreSQL text holds no NUL: a bad name is the caller's error, not the database's
        if m.kind == Kind::Pg {
            let mut bad = group("g9", "a", 9);
            bad.name = "a\0b".into();
            let r = m.commit(Batch { put_snapshot_groups: vec![bad], ..Default::default() }).await;
            assert!(matches!(r, Err(MetaError::Unstorable { .. })), "{r:?}");
        }
    }
}

/// Issue 11: Cinder's `name~`, `description~`, `metadata` and volume `size` filters are SQL
/// conditions (they were an in-memory scan of every row in the OpenStack dialect): the same
/// answers on both backends, case-sensitive substrings as Rust's `contains`, NUL matching
/// nothing, and a metadata change seen by the next count (no cached total survives it).
#[tokio::test]
async fn substring_metadata_and_size_filters() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let mut rows: Vec<SnapshotRow> = (1..=4).map(|t| snap(&format!("s{t}"), "a", "v", t, "available")).collect();
        rows[1].name = "Web-prod".into();
        rows[2].name = "web-dev".into();
        rows[3].description = "before UPGRADE".into();
        let mut b = Batch { put_snapshots: rows, ..Default::default() };
        b.snapshot_metadata = vec![
            ("s1".into(), "env".into(), Some("prod".into())),
            ("s1".into(), "team".into(), Some("db".into())),
            ("s2".into(), "env".into(), Some("prod".into())),
        ];
        m.commit(b).await.unwrap();
        let ids = |p: Page<SnapshotRow>| {
            let mut v: Vec<String> = p.items.into_iter().map(|r| r.id).collect();
            v.sort();
            v
        };
        let f = |g: SnapshotFilter| SnapshotFilter { account: "a".into(), limit: 10, ..g };
        let list = |g: SnapshotFilter| {
            let m = &m;
            async move {
                let p = m.snapshots(&f(g)).await.unwrap();
                assert_eq!(p.total as usize, p.items.len());
                ids(p)
            }
        };
        assert_eq!(list(SnapshotFilter { name_contains: Some("web".into()), ..Default::default() }).await, ["s3"]);
        assert_eq!(
            list(SnapshotFilter { name_contains: Some("eb-".into()), ..Default::default() }).await,
            ["s2", "s3"]
        );
        assert_eq!(list(SnapshotFilter { name_contains: Some(String::new()), ..Default::default() }).await.len(), 4);
        assert!(list(SnapshotFilter { name_contains: Some("w\0".into()), ..Default::default() }).await.is_empty());
        let d = |t: &str| SnapshotFilter { description_contains: Some(t.into()), ..Default::default() };
        assert_eq!(list(d("UPGRADE")).await, ["s4"]);
        assert!(list(d("upgrade")).await.is_empty());
        assert_eq!(list(d("100%")).await, ["s1", "s2", "s3"], "no LIKE wildcard");
        let md = |pairs: &[(&str, &str)]| SnapshotFilter {
            metadata: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        assert_eq!(list(md(&[("env", "prod")])).await, ["s1", "s2"]);
        assert_eq!(list(md(&[("env", "prod"), ("team", "db")])).await, ["s1"]);
        assert!(list(md(&[("env", "Prod")])).await.is_empty());
        assert!(list(md(&[("env\0", "prod")])).await.is_empty());
        // A metadata change moves no list generation: the next count must still see it.
        let b = Batch { snapshot_metadata: vec![("s2".into(), "env".into(), None)], ..Default::default() };
        m.commit(b).await.unwrap();
        assert_eq!(list(md(&[("env", "prod")])).await, ["s1"]);

        let mut vols = vec![vol("v1", None, 1), vol("v2", None, 2), vol("v3", None, 3), vol("v4", None, 4)];
        vols[0].size = 1 << 30;
        vols[1].size = (1 << 30) + 1;
        vols[2].size = 2 << 30;
        vols[3].size = 0;
        vols[1].name = "Data-1".into();
        vols[2].description = "scratch".into();
        m.commit(Batch { put_volumes: vols, ..Default::default() }).await.unwrap();
        let vl = |g: VolumeFilter| {
            let m = &m;
            async move {
                let p = m.volumes(&VolumeFilter { account: "a".into(), limit: 10, ..g }).await.unwrap();
                assert_eq!(p.total as usize, p.items.len());
                let mut v: Vec<String> = p.items.into_iter().map(|r| r.id).collect();
                v.sort();
                v
            }
        };
        let size = |g: u64| VolumeFilter { size_gib: Some(g), ..Default::default() };
        assert_eq!(vl(size(1)).await, ["v1"]);
        assert_eq!(vl(size(2)).await, ["v2", "v3"]);
        assert_eq!(vl(size(0)).await, ["v4"]);
        assert!(vl(size(u64::MAX)).await.is_empty());
        assert_eq!(vl(VolumeFilter { name_contains: Some("Data".into()), ..Default::default() }).await, ["v2"]);
        assert_eq!(vl(VolumeFilter { description_contains: Some("cratc".into()), ..Default::default() }).await, ["v3"]);
    }
}

/// Issue 16: the page generation moves, in the writing transaction, with every write to what a
/// list page shows (a point's progress, which the list generation ignores; a volume's name; a
/// tag binding; a status override) and with nothing else (a token), on both backends.
#[tokio::test]
async fn the_page_generation_moves_with_every_shown_write() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        let gen = || async { m.page_generation().await.unwrap().expect("both backends keep one") };
        let g0 = gen().await;
        m.commit(Batch { put_snapshots: vec![snap("s1", "a", "v1", 1, "creating")], ..Default::default() })
            .await
            .unwrap();
        let g1 = gen().await;
        assert!(g1 > g0, "a new point");
        let mut s = m.snapshot("a", "s1").await.unwrap().unwrap();
        s.progress = 40;
        m.commit(Batch { put_snapshots: vec![s], ..Default::default() }).await.unwrap();
        let g2 = gen().await;
        assert!(g2 > g1, "progress is shown: it moves the page generation");
        m.commit(Batch { put_volumes: vec![vol("v1", None, 1)], ..Default::default() }).await.unwrap();
        let g3 = gen().await;
        assert!(g3 > g2, "a volume's row");
        let token = StateRow {
            kind: "oauth2-token".into(),
            account: String::new(),
            key: "t1".into(),
            value: "a".into(),
            expires_at: None,
        };
        m.state_put(&token, 10, 1).await.unwrap();
        assert_eq!(gen().await, g3, "a token is in no list");
        let ov = StateRow { kind: "status-override".into(), account: "a".into(), key: "s1".into(), ..token };
        m.state_put(&ov, 10, 1).await.unwrap();
        let g4 = gen().await;
        assert!(g4 > g3, "a status override is shown");
        assert!(m.state_delete("status-override", "a", "s1").await.unwrap());
        assert!(gen().await > g4, "and so is its removal");
    }
}

/// Issue 16: a resource group (Aliyun shows it in its snapshot list) moves the page generation;
/// every write to a Keystone token moves the token generation (and only such a write), on both
/// backends.
#[tokio::test]
async fn groups_move_the_page_generation_and_tokens_the_token_generation() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        let page = || async { m.page_generation().await.unwrap().expect("both backends keep one") };
        let tokens = || async { m.token_generation().await.unwrap().expect("both backends keep one") };
        let (p0, t0) = (page().await, tokens().await);
        m.state_put(&state("resource-group", "a", "snapshot/s1", "rg-1", None), 10, 1).await.unwrap();
        let p1 = page().await;
        assert!(p1 > p0, "a group set");
        assert_eq!(tokens().await, t0, "a group is no token");
        m.state_put(&state("resource-group", "a", "snapshot/s1", "rg-2", None), 10, 1).await.unwrap();
        let p2 = page().await;
        assert!(p2 > p1, "a group moved");
        assert!(m.state_delete("resource-group", "a", "snapshot/s1").await.unwrap());
        assert!(page().await > p2, "a group left");
        let p3 = page().await;

        m.state_put(&state("keystone-token", "", "t1", "a", Some(i64::MAX)), 10, 1).await.unwrap();
        let t1 = tokens().await;
        assert!(t1 > t0, "a token issued");
        assert_eq!(page().await, p3, "a token is in no list");
        m.state_put(&state("keystone-token", "", "t1", "b", Some(i64::MAX)), 10, 1).await.unwrap();
        let t2 = tokens().await;
        assert!(t2 > t1, "a token rewritten");
        m.state_put(&state("oauth2-token", "", "t9", "x", None), 10, 1).await.unwrap();
        assert_eq!(tokens().await, t2, "another kind's token is not Keystone's");
        assert!(m.state_delete("keystone-token", "", "t1").await.unwrap());
        assert!(tokens().await > t2, "a token revoked");
    }
}

/// Issue 16: a count filtered on transitions is the groups' count less (or just) the busy
/// points (migrations/0023), and equals a count of the rows themselves, before and after points
/// change transition, on both backends.
#[tokio::test]
async fn counts_on_transitions_count_the_busy_points_apart() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        let mut rows = Vec::new();
        for i in 0..24i64 {
            let status = ["available", "creating", "deleted"][i as usize % 3];
            let mut r = snap(&format!("b{i:02}"), "a", &format!("v{}", i % 4), 2 + i, status);
            r.transition = ["", "", "deleting", "rolling-back"][i as usize % 4].into();
            r.is_full = i % 5 == 0;
            rows.push(r);
        }
        // another account's busy points are not counted
        let mut theirs = snap("x1", "b", "v0", 2, "available");
        theirs.transition = "deleting".into();
        rows.push(theirs);
        m.commit(Batch { put_snapshots: rows.clone(), ..Default::default() }).await.unwrap();
        let ts = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<String>>();
        let filters = [
            SnapshotFilter {
                statuses: ts(&["creating", "available"]),
                not_transitions: ts(&["deleting"]),
                ..Default::default()
            },
            SnapshotFilter {
                statuses: ts(&["available"]),
                not_transitions: ts(&["deleting", "rolling-back"]),
                ..Default::default()
            },
            SnapshotFilter { not_transitions: ts(&["deleting"]), is_full: Some(false), ..Default::default() },
            SnapshotFilter { statuses: ts(&["available"]), transitions: ts(&["deleting"]), ..Default::default() },
            SnapshotFilter { transitions: ts(&["rolling-back", "deleting"]), ..Default::default() },
            // '' among them: counted row by row
            SnapshotFilter { not_transitions: ts(&[""]), ..Default::default() },
            SnapshotFilter { transitions: ts(&["", "deleting"]), ..Default::default() },
        ];
        for round in 0..2 {
            for f in &filters {
                let f = SnapshotFilter { account: "a".into(), limit: 1, ..f.clone() };
                let want = rows
                    .iter()
                    .filter(|r| r.account == "a")
                    .filter(
                        |r| if f.statuses.is_empty() { r.status != "ceased" } else { f.statuses.contains(&r.status) },
                    )
                    .filter(|r| f.transitions.is_empty() || f.transitions.contains(&r.transition))
                    .filter(|r| !f.not_transitions.contains(&r.transition))
                    .filter(|r| f.is_full.is_none_or(|full| r.is_full == full))
                    .count() as u64;
                assert_eq!(m.snapshots(&f).await.unwrap().total, want, "round {round}: {f:?}");
            }
            // points change transition: the next counts follow
            for r in rows.iter_mut().filter(|r| r.account == "a").step_by(3) {
                r.transition = if r.transition.is_empty() { "deleting".into() } else { String::new() };
                r.version = m.snapshot("a", &r.id).await.unwrap().unwrap().version;
            }
            let changed: Vec<SnapshotRow> = rows.iter().filter(|r| r.account == "a").step_by(3).cloned().collect();
            m.commit(Batch { put_snapshots: changed, ..Default::default() }).await.unwrap();
        }
    }
}

/// Issue 16: the open jobs (asked in either order) are read through the partial index
/// `jobs_open`, which a planner uses only when the query states its condition word for word;
/// the answer is every open job of the account asked, and only those, on both backends.
#[tokio::test]
async fn open_jobs_are_exactly_the_pending_and_working_ones() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let m = &m;
        let statuses = ["successful", "pending", "failed", "working", "successful"];
        let jobs: Vec<JobRow> = (0..40)
            .map(|i| job(&format!("j{i:03}"), ["a", "b"][i as usize % 2], statuses[i as usize % statuses.len()], i))
            .collect();
        m.commit(Batch { put_jobs: jobs.clone(), ..Default::default() }).await.unwrap();
        let open = |a: Option<&str>| {
            let mut ids: Vec<String> = jobs
                .iter()
                .filter(|j| a.is_none_or(|a| j.account == a) && ["pending", "working"].contains(&j.status.as_str()))
                .map(|j| j.id.clone())
                .collect();
            ids.sort();
            ids.reverse(); // newest first
            ids
        };
        for order in [["pending", "working"], ["working", "pending"]] {
            for account in [Some("a"), None] {
                let f = JobFilter {
                    account: account.map(String::from),
                    statuses: order.iter().map(|s| s.to_string()).collect(),
                    limit: 1000,
                    ..Default::default()
                };
                let page = m.jobs(&f).await.unwrap();
                let got: Vec<String> = page.items.into_iter().map(|j| j.id).collect();
                assert_eq!(got, open(account), "{order:?} {account:?}");
                assert_eq!(page.total as usize, got.len());
            }
        }
        // one open status alone is bound as any other list of statuses
        let f = JobFilter { statuses: vec!["working".into()], limit: 1000, ..Default::default() };
        assert!(m.jobs(&f).await.unwrap().items.iter().all(|j| j.status == "working"));
    }
}

/// Job retention: finished jobs created before the cutoff go, in batches, and nothing else:
/// open jobs of any age stay, and so do finished jobs made near the oldest open one (an open
/// delete across nodes waits for the parts made with it), on both backends.
#[tokio::test]
async fn purge_jobs_takes_only_old_finished_jobs_away_from_open_ones() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        // the account's own jobs
        let mine = |id: &str, status: &str, t: i64| job(id, "a", status, t);
        let day = 86_400_000;
        // 2 500 old finished jobs (more than two purge batches), then recent ones
        let mut jobs: Vec<JobRow> = (0..2500)
            .map(|i| mine(&format!("old{i:04}"), ["successful", "failed"][i % 2], 10 * day + i as i64))
            .collect();
        jobs.push(mine("old-pending", "pending", 10 * day + 5000));
        jobs.push(mine("new-done", "successful", 40 * day));
        m.commit(Batch { put_jobs: jobs, ..Default::default() }).await.unwrap();
        // an open job as old as the rest holds back what was made within the hour before it
        let cutoff = 30 * day;
        assert_eq!(m.purge_jobs(cutoff).await.unwrap(), 0, "all 2 500 are within the hour before the open job");
        assert_eq!(job_ids(&*m).await.len(), 2502);
        // once it ends, the old finished ones go, the newer one stays
        let mut ended = mine("old-pending", "failed", 10 * day + 5000);
        ended.status_time = 41 * day;
        m.commit(Batch { put_jobs: vec![ended], ..Default::default() }).await.unwrap();
        assert_eq!(m.purge_jobs(cutoff).await.unwrap(), 2501);
        assert_eq!(job_ids(&*m).await, vec!["new-done".to_string()]);
        // an open job far older than the cutoff keeps back only its own hour
        let open_old = mine("open-old", "working", 5 * day);
        let older = mine("older", "successful", 5 * day - 2 * crate::PURGE_KEEP_NEAR_OPEN);
        let sibling = mine("sibling", "successful", 5 * day - 1000);
        m.commit(Batch { put_jobs: vec![open_old, older, sibling], ..Default::default() }).await.unwrap();
        assert_eq!(m.purge_jobs(cutoff).await.unwrap(), 1);
        assert_eq!(job_ids(&*m).await, vec!["new-done".to_string(), "open-old".into(), "sibling".into()]);
    }
}

async fn job_ids(m: &dyn crate::MetaStore) -> Vec<String> {
    let f = JobFilter { limit: 10_000, ..Default::default() };
    let mut ids: Vec<String> = m.jobs(&f).await.unwrap().items.into_iter().map(|j| j.id).collect();
    ids.sort();
    ids
}

/// Many writers of one process at once (requests and jobs): each commit waits its turn and
/// lands, none is lost or refused, and reads go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_of_one_process_all_land() {
    for m in backends().await {
        let m = std::sync::Arc::new(m);
        let mut tasks = Vec::new();
        for i in 0..48 {
            let m = m.clone();
            tasks.push(tokio::spawn(async move {
                let row = snap(&format!("c{i:02}"), "a", "v", 2 + i, "available");
                m.commit(Batch { put_snapshots: vec![row], ..Default::default() }).await.unwrap();
                m.snapshot("a", &format!("c{i:02}")).await.unwrap().is_some()
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
        let f = SnapshotFilter { account: "a".into(), limit: 100, ..Default::default() };
        assert_eq!(m.snapshots(&f).await.unwrap().total, 48, "{:?}", m.kind);
    }
}
