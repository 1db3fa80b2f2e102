//! The binary with its metadata on PostgreSQL (`database_url`; scripts/test.sh starts a
//! throwaway server with scripts/pg.sh): volumes, snapshots, lists, roll back and
//! volume-from-snapshot work as on SQLite, every row is in the database and no SQLite file is
//! made. Without DISKSNAP_TEST_PG_URL it prints a skip line and passes.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

const BIN: &str = env!("CARGO_BIN_EXE_disksnap");

struct Env {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    db: PgConnectOptions,
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

impl Env {
    fn new(test: &str) -> Option<Env> {
        let url = std::env::var("DISKSNAP_TEST_PG_URL").ok().filter(|v| !v.is_empty());
        let Some(url) = url.filter(|_| std::env::var("DISKSNAP_TEST_PG").as_deref() != Ok("skip")) else {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIP {test}: DISKSNAP_TEST_PG_URL is not set");
            return None;
        };
        // a database of its own on the test server
        let admin: PgConnectOptions = url.parse().unwrap();
        let name = format!("e2e_{}_{:x}", std::process::id(), rand_u64() & 0xffff_ffff);
        block(async {
            let mut c = PgConnection::connect_with(&admin).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.unwrap();
        });
        let db = admin.database(&name);
        let tmp = tempfile::tempdir().unwrap();
        let gen = tmp.path().join("gen");
        let out =
            Command::new(BIN).arg("--data-dir").arg(&gen).arg("init").env_remove("DISKSNAP_CONFIG").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // a top-level key: before the first [table] of the generated file
        let cfg = std::fs::read_to_string(gen.join("disksnap.toml")).unwrap();
        let cfg = format!("database_url = \"{}\"\n{cfg}", db.to_url_lossy());
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("disksnap.toml"), cfg).unwrap();
        Some(Env { _tmp: tmp, data, db })
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(&self.data).args(args).env_remove("DISKSNAP_CONFIG").env_remove("DISKSNAP_DATA_DIR");
        c.output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert!(out.status.success(), "disksnap {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        block(async {
            let mut c = PgConnection::connect_with(&self.db).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        })
    }
}

fn rand_u64() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    std::fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(bytes, offset).unwrap();
}

fn sha(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn the_binary_keeps_its_metadata_on_postgresql() {
    let Some(env) = Env::new("the_binary_keeps_its_metadata_on_postgresql") else { return };
    let v = env.json(&["volume", "create", "--size-gib", "1", "--type", "data"]);
    let (vol, path) = (v["id"].as_str().unwrap().to_string(), PathBuf::from(v["path"].as_str().unwrap()));
    for i in 0..4u64 {
        write_at(&path, i * (100 << 20), &noise(i + 1, 2 << 20));
    }
    let want1 = sha(&path);
    let s1 = env.json(&["snapshot", "create", &vol])["snapshots"][0]["id"].as_str().unwrap().to_string();
    write_at(&path, 7 << 20, &noise(42, 1 << 20));
    let want2 = sha(&path);
    let s2 = env.json(&["snapshot", "create", &vol])["snapshots"][0]["id"].as_str().unwrap().to_string();
    let list = env.json(&["snapshot", "list"]);
    assert_eq!(list["total_count"], 2, "{list}");
    let ids: Vec<&str> = list["snapshots"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [s2.as_str(), s1.as_str()], "newest first: {list}");
    // the rows are in PostgreSQL (and its trigger-kept counts agree), none in a SQLite file
    assert!(!env.data.join("meta.db").exists(), "a SQLite database was made beside PostgreSQL");
    assert_eq!(env.count("SELECT COUNT(*) FROM snapshots"), 2);
    assert_eq!(env.count("SELECT COALESCE(SUM(n), 0)::bigint FROM snapshot_counts WHERE status = 'available'"), 2);
    assert!(env.count("SELECT COUNT(*) FROM chunk_index") > 0, "the chunk index is in PostgreSQL too");
    // roll back, and a new volume from the later point, byte for byte
    env.json(&["snapshot", "rollback", &s1]);
    assert_eq!(sha(&path), want1, "roll back");
    let nv = env.json(&["snapshot", "to-volume", &s2]);
    assert_eq!(sha(Path::new(nv["path"].as_str().unwrap())), want2, "volume from a snapshot");
    assert_eq!(env.json(&["volume", "list"])["total_count"], 2);
    assert!(env.json(&["verify"])["ok"].as_bool().unwrap());
}

#[test]
fn a_bad_database_url_stops_the_binary_with_what_to_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let gen = tmp.path().join("gen");
    let out = Command::new(BIN).arg("--data-dir").arg(&gen).arg("init").env_remove("DISKSNAP_CONFIG").output().unwrap();
    assert!(out.status.success());
    let cfg = std::fs::read_to_string(gen.join("disksnap.toml")).unwrap();
    std::fs::write(gen.join("disksnap.toml"), format!("database_url = \"mysql://u:hunter2@h/db\"\n{cfg}")).unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&gen)
        .args(["volume", "list"])
        .env_remove("DISKSNAP_CONFIG")
        .env_remove("DISKSNAP_DATA_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("database_url must be a PostgreSQL URL"), "{err}");
    assert!(!err.contains("hunter2"), "the password was echoed: {err}");
}
