//! `seed`: a real data dir whose account `alice` holds N snapshots over V volumes, written
//! through `MetaStore::commit` (as `disksnap-meta`'s list_100k example does) so every row is
//! one the service could have written: volumes and instances exist, chains are consistent
//! (one full point then incrementals, parent = the previous point, one head per chain, the
//! volume's `head_root` = its newest chain), deleted chains look like QingCloud's delete left
//! them (full point `deleted`, its incrementals `ceased`). A second account `bob` holds a tenth
//! as many, so every query must keep to its own account.
//!
//! Alongside the data dir it writes `queries.json`: the request mix the load generator sends,
//! each query with the exact `total_count` the answer must carry, computed here from the rows.

use std::path::Path;
use std::time::Instant;

use disksnap_meta::{Batch, InstanceRow, MetaStore, PgMeta, SnapshotRow, SqliteMeta, TagRow, VolumeRow};
use serde_json::{json, Value};

pub const ZONE: &str = "pek3a";
pub const ACCESS_KEY: &str = "QYBENCHALICE00000001";
pub const SECRET_KEY: &str = "benchsecretalice0000000000000000000000000";
/// alice's keys in the other dialects (public: a benchmark data dir is not for real use).
const ALIYUN: (&str, &str) = ("LTAIbenchalice000001", "benchaliyunsecretalice000000001");
const TENCENT: (&str, &str) = ("AKIDbenchalice0000000000000000000001", "benchtencentsecretalice000000001");
const HUAWEI: (&str, &str) = ("HWBENCHALICE00000001", "benchhuaweisecretalice0000000000000000001");
const PROJECT: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const OS_PASSWORD: &str = "bench-alice-password";
/// The region each dialect names the zone by (the zone's aliases in the config).
const REGIONS: [&str; 3] = ["cn-hangzhou", "ap-guangzhou", "RegionOne"];

const ROLES: [&str; 4] = ["web", "db", "cache", "log"];
/// What a point's name says it was taken for; one in eight is a manual point.
const PURPOSES: [&str; 8] = ["nightly", "nightly", "nightly", "nightly", "weekly", "nightly", "hourly", "pre-upgrade"];
const CHAIN: usize = 10;
/// Volumes of alice's that no query of the mix filters on, for the write stream (load.rs,
/// writes.rs): unattached, named apart from every search word, each an 8 MiB sparse file with
/// one 64 KiB extent of data, so a capture (a read pass: ext4 has no reflink) reads 64 KiB.
/// Small, not 1 GiB: a capture also asks the kernel which pages of the whole file are cached
/// (engine residency.rs, mincore), ~8 % of the server's CPU with 1 GiB files at 20 writes/s.
pub const STREAM_VOLUMES: usize = 8;
const STREAM_DATA: usize = 64 << 10;
const STREAM_BYTES: u64 = 8 << 20;
const BASE_MS: i64 = 1_760_000_000_000;

fn b36(mut n: usize, width: usize) -> String {
    const A: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = A[n % 36];
        n /= 36;
    }
    String::from_utf8(out).expect("ascii")
}

/// Ids are 8 base-36 characters (what `ids::parse` accepts); the first says what and whose.
fn id(kind: char, n: usize) -> String {
    format!("{kind}{}", b36(n, 7))
}

struct Account {
    name: &'static str,
    /// id kind letters: volume, instance, snapshot
    letters: (char, char, char),
    snapshots: usize,
    volumes: usize,
}

struct Seeded {
    volumes: Vec<VolumeRow>,
    instances: Vec<InstanceRow>,
    snapshots: Vec<SnapshotRow>,
    tags: Vec<TagRow>,
    bindings: Vec<(String, String)>,
}

fn generate(a: &Account, data: &Path, tag_letter: char) -> Seeded {
    let (vl, il, sl) = a.letters;
    let instances: Vec<InstanceRow> = (0..a.volumes / 4)
        .map(|j| InstanceRow {
            id: id(il, j),
            account: a.name.into(),
            zone: ZONE.into(),
            name: format!("host-{j:04}"),
            create_time: BASE_MS - 86_400_000,
        })
        .collect();
    let attached = |v: usize| (v % 4 < 2 && v / 4 < instances.len()).then(|| id(il, v / 4));
    let snap_n = |v: usize, k: usize| k * a.volumes + v;
    let mut snapshots = Vec::with_capacity(a.snapshots);
    for n in 0..a.snapshots {
        let (v, k) = (n % a.volumes, n / a.volumes);
        let (chain, pos) = (k / CHAIN, k % CHAIN);
        let last_k = (a.snapshots - 1 - v) / a.volumes; // newest point of this volume
        let deleted_chain = (v + chain) % 50 == 7;
        let t = BASE_MS + n as i64 * 60_000;
        let purpose = PURPOSES[(v + k) % PURPOSES.len()];
        let status = match (deleted_chain, pos) {
            (false, _) => "available",
            (true, 0) => "deleted",
            (true, _) => "ceased",
        };
        snapshots.push(SnapshotRow {
            id: id(sl, n),
            account: a.name.into(),
            zone: ZONE.into(),
            name: format!("{}-{v:04}-{purpose}", ROLES[v % 4]),
            description: if purpose == "pre-upgrade" { format!("before upgrade #{k}") } else { String::new() },
            volume_id: id(vl, v),
            volume_size: 20 << 30,
            volume_kind: if v % 4 == 0 { "system" } else { "data" }.into(),
            instance_id: attached(v),
            is_full: pos == 0,
            root_id: id(sl, snap_n(v, chain * CHAIN)),
            parent_id: (pos > 0).then(|| id(sl, snap_n(v, k - 1))),
            is_head: pos == CHAIN - 1 || k == last_k,
            status: status.into(),
            transition: String::new(),
            is_taken: true,
            progress: 100,
            snapshot_time: t,
            create_time: t,
            status_time: if deleted_chain { t + 3_600_000 } else { t },
            deleted_time: deleted_chain.then_some(t + 3_600_000),
            expire_time: None,
            size: if pos == 0 { 6 << 30 } else { (40 + (n % 200) as i64) << 20 },
            origin: if purpose == "pre-upgrade" { "user" } else { "auto" }.into(),
            retention_days: None,
            encrypted: false,
            used_by_images: 0,
            used_by_volumes: 0,
            logical_size: None,
            consistency: String::new(),
            version: 0,
        });
    }
    let volumes: Vec<VolumeRow> = (0..a.volumes)
        .map(|v| {
            let last_k = (a.snapshots - 1 - v) / a.volumes;
            let inst = attached(v);
            VolumeRow {
                id: id(vl, v),
                account: a.name.into(),
                zone: ZONE.into(),
                name: format!("{}-{v:04}", ROLES[v % 4]),
                description: String::new(),
                size: 20 << 30,
                kind: if v % 4 == 0 { "system" } else { "data" }.into(),
                status: if inst.is_some() { "in-use" } else { "available" }.into(),
                transition: String::new(),
                instance_id: inst,
                path: data.join("volumes").join(format!("{}.img", id(vl, v))).display().to_string(),
                head_root: (a.snapshots > v).then(|| id(sl, snap_n(v, last_k - last_k % CHAIN))),
                source_snapshot: None,
                home_node: None,
                create_time: BASE_MS - 86_400_000,
                status_time: BASE_MS - 86_400_000,
                version: 0,
            }
        })
        .collect();
    let mut volumes: Vec<VolumeRow> = volumes;
    if a.name == "alice" {
        volumes.extend((0..STREAM_VOLUMES).map(|j| VolumeRow {
            id: id(vl, a.volumes + j),
            account: a.name.into(),
            zone: ZONE.into(),
            name: format!("stream-{j:02}"),
            description: String::new(),
            size: STREAM_BYTES as i64,
            kind: "data".into(),
            status: "available".into(),
            transition: String::new(),
            instance_id: None,
            path: data.join("volumes").join(format!("{}.img", id(vl, a.volumes + j))).display().to_string(),
            head_root: None,
            source_snapshot: None,
            home_node: None,
            create_time: BASE_MS - 86_400_000,
            status_time: BASE_MS - 86_400_000,
            version: 0,
        }));
    }
    let tags: Vec<TagRow> = ["prod", "staging", "keep", "audit"]
        .iter()
        .enumerate()
        .map(|(i, k)| TagRow {
            id: id(tag_letter, i),
            account: a.name.into(),
            key: k.to_string(),
            value: String::new(),
            create_time: BASE_MS,
        })
        .collect();
    // One point in ten carries a tag, so the page's tag lookup has something to find.
    let bindings =
        (0..a.snapshots).filter(|n| n % 10 == 3).map(|n| (tags[(n / 10) % tags.len()].id.clone(), id(sl, n))).collect();
    Seeded { volumes, instances, snapshots, tags, bindings }
}

/// `like '%w%'` as SQLite does it: ASCII case-insensitive substring.
fn contains_ci(hay: &str, w: &str) -> bool {
    hay.to_ascii_lowercase().contains(&w.to_ascii_lowercase())
}

/// Which of the write stream's points (on the [`STREAM_VOLUMES`]) a query of this kind counts
/// besides the seeded total: every point the dialect shows (`all`), the available ones, or the
/// full ones; None for a filter that keeps to the seeded volumes, instances, chains and words
/// (the stream's volumes are unattached and named `stream-NN`, its points `stream…`).
pub fn moves(kind: &str) -> Option<&'static str> {
    match kind {
        "no filter" => Some("all"),
        "status=available" => Some("available"),
        "snapshot_type=1" => Some("full"),
        _ => None,
    }
}

/// The request mix: seven kinds of filter in equal shares, each with many concrete values so the
/// server cannot answer from one hot page. Each query knows its exact total_count.
fn queries(s: &Seeded, a: &Account) -> Vec<Value> {
    let live: Vec<&SnapshotRow> = s.snapshots.iter().filter(|r| r.status != "ceased").collect();
    let count = |f: &dyn Fn(&SnapshotRow) -> bool| live.iter().filter(|r| f(r)).count();
    let mut out = Vec::new();
    let mut q = |kind: &str, params: Vec<(&str, String)>, total: usize| {
        let params: Vec<Value> = params.into_iter().map(|(k, v)| json!([k, v])).collect();
        let mut query = json!({"kind": kind, "params": params, "total": total});
        if let Some(m) = moves(kind) {
            query["moves"] = m.into();
        }
        out.push(query);
    };
    q("no filter", vec![], live.len());
    q("status=available", vec![("status", "available".into())], count(&|r| r.status == "available"));
    q("snapshot_type=1", vec![("snapshot_type", "1".into())], count(&|r| r.is_full));
    // Spread over the id space with a stride coprime to the counts.
    for i in 0..50 {
        let v = (i * 37 + 11) % a.volumes;
        let vid = id(a.letters.0, v);
        q("resource_id (volume)", vec![("resource_id", format!("vol-{vid}"))], count(&|r| r.volume_id == vid));
        let inst = &s.instances[(i * 13 + 5) % s.instances.len()].id;
        q(
            "resource_id (instance)",
            vec![("resource_id", format!("i-{inst}"))],
            count(&|r| r.instance_id.as_deref() == Some(inst.as_str())),
        );
        let root = &s.snapshots[(i * 7919 + 3) % s.snapshots.len()].root_id;
        q("root_id", vec![("root_id", format!("ss-{root}"))], count(&|r| &r.root_id == root));
        // A volume's name (its ~100 points), or a purpose word shared by many.
        let word = if i % 5 == 4 { "pre-upgrade".to_string() } else { s.volumes[v].name.clone() };
        let n =
            count(&|r| contains_ci(&r.id, &word) || contains_ci(&r.name, &word) || contains_ci(&r.description, &word));
        q("search_word", vec![("search_word", word.clone())], n);
    }
    out
}

/// A stream volume's file: 8 MiB, sparse but for its first 64 KiB (bytes that differ per volume).
fn stream_volume_file(path: &Path, j: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    let data: Vec<u8> = (0..STREAM_DATA).map(|i| (i.wrapping_mul(31) ^ (j * 97)) as u8).collect();
    f.write_all(&data)?;
    f.set_len(STREAM_BYTES)?;
    f.sync_all()?;
    Ok(())
}

/// A volume's id as Cinder and EVS show it (`d15c0001-0000-4000-8000-` and the base-36 suffix
/// as a 12-digit hex number; service/src/ids.rs, written here on its own as the signers are).
fn volume_uuid(bare: &str) -> String {
    let n = bare.bytes().fold(0u64, |acc, b| acc * 36 + (b as char).to_digit(36).unwrap_or(0) as u64);
    format!("d15c0001-0000-4000-8000-{n:012x}")
}

/// The mix of every other dialect: each shows only live points (`creating`, `available`), so its
/// totals are counted here apart. An unfiltered page, a volume's points, and the filter each
/// dialect is most asked for.
fn dialect_queries(s: &Seeded, a: &Account) -> Value {
    let shown: Vec<&SnapshotRow> = s.snapshots.iter().filter(|r| r.status == "available").collect();
    let count = |f: &dyn Fn(&SnapshotRow) -> bool| shown.iter().filter(|r| f(r)).count();
    let mut out = serde_json::Map::new();
    let mut add = |dialect: &str, kind: &str, params: Vec<(&str, String)>, total: usize| {
        let params: Vec<Value> = params.into_iter().map(|(k, v)| json!([k, v])).collect();
        let list = out.entry(dialect.to_string()).or_insert_with(|| json!([]));
        let mut query = json!({"kind": kind, "params": params, "total": total});
        if let Some(m) = moves(kind) {
            query["moves"] = m.into();
        }
        list.as_array_mut().expect("a list").push(query);
    };
    for d in ["aliyun", "tencent", "tencent3", "cinder", "evs"] {
        add(d, "no filter", vec![], shown.len());
    }
    add("cinder", "status=available", vec![("status", "available".into())], shown.len());
    add("evs", "status=available", vec![("status", "available".into())], shown.len());
    for i in 0..50 {
        let v = (i * 37 + 11) % a.volumes;
        let vid = id(a.letters.0, v);
        let n = count(&|r| r.volume_id == vid);
        add("aliyun", "DiskId", vec![("DiskId", format!("d-{vid}"))], n);
        add("tencent", "storageIds", vec![("storageIds.0", format!("disk-{vid}"))], n);
        add("tencent3", "Filters disk-id", vec![("Filters.disk-id", format!("disk-{vid}"))], n);
        add("cinder", "volume_id", vec![("volume_id", volume_uuid(&vid))], n);
        add("evs", "volume_id", vec![("volume_id", volume_uuid(&vid))], n);
        let inst = &s.instances[(i * 13 + 5) % s.instances.len()].id;
        let n = count(&|r| r.instance_id.as_deref() == Some(inst.as_str()));
        add("aliyun", "InstanceId", vec![("InstanceId", format!("i-{inst}"))], n);
        let root = &s.snapshots[(i * 7919 + 3) % s.snapshots.len()].root_id;
        add("aliyun", "SnapshotLinkId", vec![("SnapshotLinkId", format!("sl-{root}"))], count(&|r| &r.root_id == root));
    }
    Value::Object(out)
}

/// Seed `data` (its metadata in `data/meta.db`, or in the empty PostgreSQL database
/// `database_url` names, which the written config then points the server at).
pub async fn run(data: &Path, snapshots: usize, volumes: usize, database_url: Option<&str>) -> anyhow::Result<()> {
    anyhow::ensure!(!data.join("meta.db").exists(), "{} already holds a meta.db; seed a new dir", data.display());
    anyhow::ensure!(volumes >= 4 && snapshots >= volumes, "need at least 4 volumes and a snapshot per volume");
    std::fs::create_dir_all(data.join("volumes"))?;
    let t0 = Instant::now();
    let alice = Account { name: "alice", letters: ('v', 'i', 's'), snapshots, volumes };
    let bob = Account { name: "bob", letters: ('w', 'j', 't'), snapshots: snapshots / 10, volumes: volumes / 10 };
    let meta: Box<dyn MetaStore> = match database_url {
        Some(url) => Box::new(PgMeta::connect(url).await?),
        None => Box::new(SqliteMeta::open(&data.join("meta.db")).await?),
    };
    let mut mix = Vec::new();
    let mut others = Value::Null;
    for (a, tag_letter) in [(&alice, 'g'), (&bob, 'h')] {
        let s = generate(a, data, tag_letter);
        if a.name == "alice" {
            mix = queries(&s, a);
            others = dialect_queries(&s, a);
        }
        meta.commit(Batch {
            put_instances: s.instances.clone(),
            put_volumes: s.volumes.clone(),
            put_tags: s.tags.clone(),
            ..Default::default()
        })
        .await?;
        for rows in s.snapshots.chunks(5000) {
            meta.commit(Batch { put_snapshots: rows.to_vec(), ..Default::default() }).await?;
        }
        for b in s.bindings.chunks(5000) {
            meta.commit(Batch { bind_tags: b.to_vec(), ..Default::default() }).await?;
        }
    }
    meta.maintain().await?;
    drop(meta);
    for j in 0..STREAM_VOLUMES {
        stream_volume_file(&data.join("volumes").join(format!("{}.img", id(alice.letters.0, volumes + j))), j)?;
    }
    let config = format!(
        "# disksnap API benchmark data dir (crates/apibench seed). Not for real use: the keys are public.\n\
         listen = \"127.0.0.1:7480\"\n{}\
         # the seeded deleted points are older than the default 2 h window: keep them deleted, not\n\
         # ceased by the server's tick while the benchmark counts them\n\
         deleted_retention = \"100000h\"\n\n[[zones]]\nname = \"{ZONE}\"\naliases = {REGIONS:?}\n\n\
         [[accounts]]\nname = \"alice\"\nqingcloud = {{ access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"{SECRET_KEY}\" }}\n\
         aliyun = {{ access_key_id = \"{}\", access_key_secret = \"{}\" }}\n\
         tencent = {{ secret_id = \"{}\", secret_key = \"{}\" }}\n\
         openstack = {{ project_id = \"{PROJECT}\", project_name = \"alice\", user = \"alice\", password = \"{OS_PASSWORD}\" }}\n\
         huawei = {{ access_key_id = \"{}\", secret_access_key = \"{}\" }}\n\n\
         [[accounts]]\nname = \"bob\"\nqingcloud = {{ access_key_id = \"QYBENCHBOB0000000001\", secret_access_key = \"benchsecretbob\" }}\n",
        database_url.map(|u| format!("database_url = {u:?}\n")).unwrap_or_default(),
        ALIYUN.0, ALIYUN.1, TENCENT.0, TENCENT.1, HUAWEI.0, HUAWEI.1
    );
    std::fs::write(data.join("disksnap.toml"), config)?;
    let doc = json!({
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "zone": ZONE,
        "snapshots": snapshots,
        "volumes": volumes,
        "queries": mix,
        "regions": {"aliyun": REGIONS[0], "tencent": REGIONS[1], "openstack": REGIONS[2]},
        "keys": {
            "aliyun": [ALIYUN.0, ALIYUN.1],
            "tencent": [TENCENT.0, TENCENT.1],
            "huawei": [HUAWEI.0, HUAWEI.1],
            "openstack": {"project_id": PROJECT, "user": "alice", "password": OS_PASSWORD},
        },
        "dialects": others,
        "writes": {
            "volume_bytes": STREAM_BYTES,
            "volumes": (0..STREAM_VOLUMES).map(|j| format!("vol-{}", id(alice.letters.0, volumes + j))).collect::<Vec<_>>(),
        },
    });
    std::fs::write(data.join("queries.json"), serde_json::to_string_pretty(&doc)?)?;
    eprintln!(
        "seeded {} with {snapshots} snapshots over {volumes} volumes for alice (+{} for bob) in {:.1} s",
        data.display(),
        bob.snapshots,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
