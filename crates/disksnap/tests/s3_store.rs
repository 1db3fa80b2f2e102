//! The whole product on a real S3 store (Ceph RGW, started by scripts/test.sh): snapshots,
//! roll back and volume-from-snapshot come back byte for byte from the bucket, a process killed
//! mid-upload recovers, GC cleans the bucket, and verify finds a corrupted pack byte. Without
//! DISKSNAP_TEST_S3_ENDPOINT it prints a skip line and passes.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_disksnap");

fn env_var(n: &str) -> Option<String> {
    std::env::var(format!("DISKSNAP_TEST_S3_{n}")).ok().filter(|v| !v.is_empty())
}

struct Env {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    s3: disksnap_engine::backend::s3::S3Config,
}

impl Env {
    fn new(test: &str) -> Option<Env> {
        let Some(endpoint) = env_var("ENDPOINT") else {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIP {test}: DISKSNAP_TEST_S3_ENDPOINT is not set");
            return None;
        };
        let tmp = tempfile::tempdir().unwrap();
        // a generated config (accounts, keys), then the same with the store in the bucket
        let gen = tmp.path().join("gen");
        let out =
            Command::new(BIN).arg("--data-dir").arg(&gen).arg("init").env_remove("DISKSNAP_CONFIG").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let prefix = format!("e2e-{:016x}", rand_u64());
        let (bucket, key, secret) =
            (env_var("BUCKET").unwrap(), env_var("ACCESS_KEY").unwrap(), env_var("SECRET_KEY").unwrap());
        let mut cfg = std::fs::read_to_string(gen.join("disksnap.toml")).unwrap();
        cfg.push_str(&format!(
            "\n[store]\nbackend = \"s3\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\nendpoint = \"{endpoint}\"\n\
             path_style = true\nallow_http = true\naccess_key_id = \"{key}\"\nsecret_access_key = \"{secret}\"\n"
        ));
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("disksnap.toml"), cfg).unwrap();
        let mut s3 = disksnap_engine::backend::s3::S3Config::new(&bucket, &key, &secret);
        s3.prefix = prefix;
        s3.endpoint = Some(endpoint);
        s3.path_style = true;
        s3.allow_http = true;
        Some(Env { _tmp: tmp, data, s3 })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(&self.data).args(args).env_remove("DISKSNAP_CONFIG").env_remove("DISKSNAP_DATA_DIR");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert!(out.status.success(), "disksnap {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn bucket(&self) -> disksnap_engine::backend::s3::S3Backend {
        disksnap_engine::backend::s3::S3Backend::open(&self.s3).unwrap()
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
fn snapshots_live_in_the_bucket_and_come_back_byte_for_byte() {
    let Some(env) = Env::new("snapshots_live_in_the_bucket_and_come_back_byte_for_byte") else { return };
    let v = env.json(&["volume", "create", "--size-gib", "1", "--type", "data"]);
    let (vol, path) = (v["id"].as_str().unwrap().to_string(), PathBuf::from(v["path"].as_str().unwrap()));
    for i in 0..6u64 {
        write_at(&path, i * (40 << 20), &noise(i + 1, 3 << 20));
    }
    write_at(&path, 900 << 20, &b"text compresses ".repeat(65536));
    let want1 = sha(&path);
    let s1 = env.json(&["snapshot", "create", &vol])["snapshots"][0]["id"].as_str().unwrap().to_string();
    write_at(&path, 5 << 20, &noise(99, 1 << 20));
    let want2 = sha(&path);
    let s2 = env.json(&["snapshot", "create", &vol])["snapshots"][0]["id"].as_str().unwrap().to_string();
    // every pack and index is in the bucket; the data dir holds none
    assert!(!env.data.join("store/packs").exists(), "packs were written locally");
    use disksnap_engine::backend::Backend;
    let b = env.bucket();
    assert!(!b.list("packs/").unwrap().is_empty());
    assert_eq!(b.list("indexes/").unwrap().len(), 2);
    // roll back, and a new volume from the later point
    env.json(&["snapshot", "rollback", &s1]);
    assert_eq!(sha(&path), want1, "roll back from S3");
    let nv = env.json(&["snapshot", "to-volume", &s2]);
    assert_eq!(sha(Path::new(nv["path"].as_str().unwrap())), want2, "volume from an S3 snapshot");
    // a corrupted byte in the newest pack: verify names the point that holds it
    let mut packs = b.list("packs/").unwrap();
    packs.sort_by_key(|o| o.modified);
    let newest = packs.last().unwrap().key.clone();
    let mut bytes = b.get(&newest).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x20;
    b.put(&newest, bytes).unwrap();
    let out = env.run(&["--json", "verify"]);
    assert_eq!(out.status.code(), Some(1), "verify exits 1 on damage: {}", String::from_utf8_lossy(&out.stdout));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["bad_chunks"].as_array().unwrap().len(), 1, "{r}");
    let broken: Vec<&str> =
        r["broken_snapshots"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(broken, vec![s2.as_str()], "{r}");
}

#[test]
fn a_process_killed_mid_upload_recovers_and_gc_empties_the_bucket() {
    let Some(env) = Env::new("a_process_killed_mid_upload_recovers_and_gc_empties_the_bucket") else { return };
    let v = env.json(&["volume", "create", "--size-gib", "1", "--type", "data"]);
    let (vol, path) = (v["id"].as_str().unwrap().to_string(), PathBuf::from(v["path"].as_str().unwrap()));
    for i in 0..12u64 {
        write_at(&path, i * (64 << 20), &noise(i + 7, 64 << 20)); // 768 MiB, incompressible
    }
    use disksnap_engine::backend::Backend;
    let b = env.bucket();
    let mut child = env.cmd(&["snapshot", "create", &vol]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    // under way once its first pack is in the bucket
    while b.list("packs/").unwrap().is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "the capture ended before it could be killed");
        assert!(Instant::now() < deadline, "no pack was uploaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.try_wait().unwrap().is_none(), "the capture ended before it could be killed");
    child.kill().unwrap(); // SIGKILL mid-upload
    child.wait().unwrap();

    let job = &env.json(&["job", "list"])["jobs"][0];
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(env.json(&["snapshot", "list", "--status", "creating,available,deleted,ceased"])["total_count"], 0);
    let gc = env.json(&["gc", "--grace", "0s"]);
    assert_eq!(gc["kept_chunks"], 0, "{gc}");
    assert!(b.list("packs/").unwrap().is_empty(), "the dead capture's packs stayed in the bucket: {gc}");
    // and the volume snapshots and restores normally afterwards
    let want = sha(&path);
    let s = env.json(&["snapshot", "create", &vol])["snapshots"][0]["id"].as_str().unwrap().to_string();
    let nv = env.json(&["snapshot", "to-volume", &s]);
    assert_eq!(sha(Path::new(nv["path"].as_str().unwrap())), want);
    assert!(env.json(&["verify"])["ok"].as_bool().unwrap());
}
