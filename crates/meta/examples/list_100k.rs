//! How fast is a filtered snapshot listing at 100 000 snapshots? (performance.md's
//! DescribeSnapshots line, measured at the metadata layer: the query plus the count.)
//!
//!     cargo run --release -p disksnap-meta --example list_100k [-- COUNT]
//!
//! Fills a fresh SQLite database with COUNT snapshots (default 100 000) over 1 000 volumes and
//! two accounts, then times pages of 100 under the filters the dialects use most.

use std::time::Instant;

use disksnap_meta::{Batch, MetaStore, SnapshotFilter, SnapshotRow, SqliteMeta};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let meta = SqliteMeta::open(&dir.path().join("meta.db")).await?;
    let t0 = Instant::now();
    let base = 1_700_000_000_000i64;
    for chunk in (0..count).collect::<Vec<_>>().chunks(5000) {
        let mut b = Batch::default();
        for &i in chunk {
            let vol = i % 1000;
            let full = i % 10 < 1 || i < 1000;
            b.put_snapshots.push(SnapshotRow {
                id: format!("{i:08}"),
                account: if i % 2 == 0 { "a".into() } else { "b".into() },
                zone: "pek3a".into(),
                name: format!("nightly-{}", i % 97),
                description: String::new(),
                volume_id: format!("v{vol:07}"),
                volume_size: 1 << 30,
                volume_kind: if vol % 5 == 0 { "system" } else { "data" }.into(),
                instance_id: Some(format!("i{:07}", vol / 4)),
                is_full: full,
                root_id: format!("{:08}", i - i % 10),
                parent_id: (!full).then(|| format!("{:08}", i - 1)),
                is_head: i % 10 == 9,
                status: if i % 50 == 0 { "deleted" } else { "available" }.into(),
                transition: String::new(),
                is_taken: true,
                progress: 100,
                snapshot_time: base + i as i64 * 1000,
                create_time: base + i as i64 * 1000,
                status_time: base + i as i64 * 1000,
                deleted_time: None,
                expire_time: None,
                size: 1 << 20,
                origin: "user".into(),
                retention_days: None,
                encrypted: false,
                used_by_images: 0,
                used_by_volumes: 0,
            });
        }
        meta.commit(b).await?;
    }
    println!("inserted {count} snapshots in {:.1} s", t0.elapsed().as_secs_f64());
    meta.maintain().await?; // what the server's periodic tick does
    let page = |f: SnapshotFilter| SnapshotFilter { account: "a".into(), limit: 100, ..f };
    let cases: Vec<(&str, SnapshotFilter)> = vec![
        ("no filter, first page", page(Default::default())),
        ("no filter, offset 40000", page(SnapshotFilter { offset: 40_000, ..Default::default() })),
        ("one volume", page(SnapshotFilter { volume_ids: vec!["v0000042".into()], ..Default::default() })),
        ("status=deleted", page(SnapshotFilter { statuses: vec!["deleted".into()], ..Default::default() })),
        ("full points only", page(SnapshotFilter { is_full: Some(true), ..Default::default() })),
        ("one chain", page(SnapshotFilter { root_id: Some("00004200".into()), ..Default::default() })),
        ("name", page(SnapshotFilter { name: Some("nightly-7".into()), ..Default::default() })),
        (
            "ids (10)",
            page(SnapshotFilter { ids: (0..10).map(|i| format!("{:08}", i * 2)).collect(), ..Default::default() }),
        ),
        ("search word", page(SnapshotFilter { search: Some("nightly-9".into()), ..Default::default() })),
    ];
    println!("{:<28} {:>9} {:>9} {:>9}", "filter (page of 100)", "p50 ms", "p99 ms", "total");
    for (label, f) in cases {
        let mut times = Vec::new();
        let mut total = 0;
        for _ in 0..200 {
            let t = Instant::now();
            let p = meta.snapshots(&f).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            total = p.total;
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{label:<28} {:>9.2} {:>9.2} {:>9}", times[100], times[198], total);
    }
    Ok(())
}
