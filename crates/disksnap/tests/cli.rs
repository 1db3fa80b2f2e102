//! End-to-end tests of the real `disksnap` binary on real files: every byte is checked with
//! SHA-256, images with `qemu-img compare`, and crashes are real `kill -9`s.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_disksnap");
const KIB64: u64 = 64 * 1024;

struct Env {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    scratch: PathBuf,
    /// The umask each command runs under (None: this process's).
    umask: Option<libc::mode_t>,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let scratch = tmp.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        Env { _tmp: tmp, data, scratch, umask: None }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(&self.data).args(args).env_remove("DISKSNAP_CONFIG").env_remove("DISKSNAP_DATA_DIR");
        if let Some(mask) = self.umask {
            use std::os::unix::process::CommandExt;
            // SAFETY: umask is async-signal-safe; the closure touches nothing else.
            unsafe {
                c.pre_exec(move || {
                    libc::umask(mask);
                    Ok(())
                });
            }
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run with --json; the command must succeed.
    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert!(out.status.success(), "disksnap {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("disksnap {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
        })
    }

    /// Run expecting failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "disksnap {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn volume(&self, size_gib: u32, kind: &str) -> (String, PathBuf) {
        let v = self.json(&["volume", "create", "--size-gib", &size_gib.to_string(), "--type", kind]);
        (v["id"].as_str().unwrap().to_string(), PathBuf::from(v["path"].as_str().unwrap()))
    }

    fn snapshot(&self, vol: &str) -> Value {
        let r = self.json(&["snapshot", "create", vol]);
        assert_eq!(r["job"]["status"], "successful");
        r["snapshots"][0].clone()
    }
}

fn sha(path: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Deterministic pseudo-random bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
    f.sync_all().unwrap();
}

fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn every_point_restores_exactly_by_rollback_new_volume_and_image() {
    let env = Env::new();
    let (vol, path) = env.volume(1, "system");
    let mut points = Vec::new();
    // a known pattern: data, text, holes; then two rounds of changes
    write_at(&path, 0, &noise(1, 3 << 20));
    write_at(&path, 200 << 20, &b"disksnap keeps every byte. ".repeat(100_000));
    for round in 0..3u64 {
        if round > 0 {
            write_at(&path, (round * 7) << 20, &noise(10 + round, 4096)); // into a hole
            write_at(&path, 4096 * (round + 1), &noise(20 + round, 100)); // inside data
            write_at(&path, 200 << 20, &noise(30 + round, 1 << 20)); // over the text
        }
        let s = env.snapshot(&vol);
        assert_eq!(s["full"], round == 0);
        assert_eq!(s["is_taken"], true);
        assert_eq!(s["status"], "available");
        points.push((s["id"].as_str().unwrap().to_string(), sha(&path)));
    }
    // chain fields
    let list = env.json(&["snapshot", "list", "--volume", &vol, "--oldest-first"]);
    assert_eq!(list["total_count"], 3);
    let items = list["snapshots"].as_array().unwrap();
    assert_eq!(items[0]["chain"]["total_count"], 3);
    assert_eq!(items[1]["parent_id"], items[0]["id"]);
    assert_eq!(items[2]["parent_id"], items[1]["id"]);
    assert_eq!(items[2]["root_id"], items[0]["id"]);
    assert_eq!(items.iter().filter(|s| s["is_head"] == true).count(), 1);
    assert_eq!(items[2]["is_head"], true);
    assert!(items[1]["size"].as_u64().unwrap() < items[0]["size"].as_u64().unwrap());

    for (id, want) in points.iter().rev().chain(points.iter()) {
        env.json(&["snapshot", "rollback", id]);
        assert_eq!(&sha(&path), want, "rollback to {id}");
    }
    for (id, want) in &points {
        let v = env.json(&["snapshot", "to-volume", id, "--name", "copy"]);
        let p = PathBuf::from(v["path"].as_str().unwrap());
        assert_eq!(&sha(&p), want, "new volume from {id}");
        assert!(allocated(&p) < 64 << 20, "restored volume is sparse: {} bytes allocated", allocated(&p));
    }
    let (id, want) = &points[1];
    let img = env.json(&["snapshot", "capture", id, "--name", "golden"]);
    let img_path = PathBuf::from(img["path"].as_str().unwrap());
    assert_eq!(&sha(&img_path), want);
    // qemu-img agrees with a volume restored from the same point
    env.json(&["snapshot", "rollback", id]);
    let cmp = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "raw"])
        .arg(&img_path)
        .arg(&path)
        .output()
        .expect("qemu-img is installed (scripts/test.sh installs qemu-utils)");
    assert!(cmp.status.success(), "qemu-img compare: {}", String::from_utf8_lossy(&cmp.stdout));
    assert!(env.json(&["verify"])["ok"].as_bool().unwrap());
    // Several points of one volume share most chunks: the store measures both ratios.
    let st = env.json(&["stats"]);
    let (logical, raw) = (st["logical_bytes"].as_u64().unwrap(), st["unique_raw_bytes"].as_u64().unwrap());
    assert!(logical > raw && raw > 0, "{st}");
    assert!(st["dedup_ratio"].as_f64().unwrap() > 1.0, "{st}");
    assert!(st["compression_ratio"].as_f64().is_some() && st["unique_stored_bytes"].as_u64().unwrap() > 0, "{st}");
}

#[test]
fn deleting_any_point_keeps_the_others_and_gc_frees_exactly_the_unreferenced_chunks() {
    let env = Env::new();
    let (vol, path) = env.volume(1, "data");
    write_at(&path, 0, &noise(1, 8 << 20));
    let mut points = vec![];
    for round in 0..5u64 {
        if round > 0 {
            // three whole slots rewritten each round: each point holds three chunks of its own
            for slot in [3u64, 40, 77] {
                write_at(&path, slot * KIB64, &noise(round * 100 + slot, KIB64 as usize));
            }
        }
        let s = env.snapshot(&vol);
        points.push((s["id"].as_str().unwrap().to_string(), sha(&path)));
    }
    // delete a middle point and the full point, one at a time (Aliyun/Cinder rule)
    env.json(&["snapshot", "delete", &points[2].0]);
    env.json(&["snapshot", "delete", &points[0].0]);
    let deleted = env.json(&["snapshot", "show", &points[0].0]);
    assert_eq!(deleted["status"], "deleted", "a deleted full point is recoverable");
    let ceased = env.json(&["snapshot", "show", &points[2].0]);
    assert_eq!(ceased["status"], "ceased");
    let p3 = env.json(&["snapshot", "show", &points[3].0]);
    assert_eq!(p3["parent_id"].as_str(), Some(points[1].0.as_str()), "the chain closes over the gap");

    let gc = env.json(&["gc", "--grace", "0s"]);
    assert_eq!(gc["removed_chunks"], 3, "exactly the chunks only the ceased point held: {gc}");
    assert_eq!(env.json(&["gc", "--grace", "0s"])["removed_chunks"], 0);
    for (id, want) in [&points[1], &points[3], &points[4]] {
        let v = env.json(&["snapshot", "to-volume", id]);
        assert_eq!(&sha(Path::new(v["path"].as_str().unwrap())), want, "{id} after its neighbours went");
    }
    // the deleted full point comes back, whole
    let back = env.json(&["snapshot", "recover", &points[0].0]);
    assert_eq!(back["status"], "available");
    let v = env.json(&["snapshot", "to-volume", &points[0].0]);
    assert_eq!(sha(Path::new(v["path"].as_str().unwrap())), points[0].1);
    // QingCloud's rule: deleting an incremental takes the later points of its chain too
    let job = env.json(&["snapshot", "delete", "--with-later", &points[3].0]);
    assert_eq!(job["job"]["resources"].as_array().unwrap().len(), 2);
    assert_eq!(env.json(&["snapshot", "show", &points[4].0])["status"], "ceased");
    let head = env.json(&["snapshot", "show", &points[1].0]);
    assert_eq!(head["is_head"], true);
    assert!(env.json(&["verify"])["ok"].as_bool().unwrap());
}

/// `disksnap compact` re-encodes a snapshot's text with a trained dictionary: the store
/// shrinks, the point restores byte for byte, verify passes, a second run has nothing to do,
/// and GC keeps the dictionary.
#[test]
fn compact_shrinks_the_store_and_the_point_still_restores() {
    let env = Env::new();
    let (vol, path) = env.volume(1, "data");
    let words: Vec<String> = (0..400u32).map(|i| format!("{:x}", (i as u64 * 2654435761) % 100_000)).collect();
    let mut text = Vec::new();
    let mut x = 3u64;
    while text.len() < 8 << 20 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        text.extend_from_slice(words[(x >> 33) as usize % words.len()].as_bytes());
        text.push(if x.is_multiple_of(11) { b'\n' } else { b' ' });
    }
    text.truncate(8 << 20);
    write_at(&path, 0, &text);
    write_at(&path, 8 << 20, &noise(9, 4 << 20));
    let want = sha(&path);
    let s = env.snapshot(&vol);
    let id = s["id"].as_str().unwrap().to_string();
    let before = env.json(&["stats"]);

    let c = env.json(&["compact", "--grace", "0s"]);
    assert_eq!(c["trained"], true, "{c}");
    assert!(c["reencoded_chunks"].as_u64().unwrap() > 0, "{c}");
    assert!(c["bytes_after"].as_u64() < c["bytes_before"].as_u64(), "{c}");
    let after = env.json(&["stats"]);
    assert!(after["unique_stored_bytes"].as_u64() < before["unique_stored_bytes"].as_u64(), "{before} -> {after}");
    let v = env.json(&["snapshot", "to-volume", &id]);
    assert_eq!(sha(Path::new(v["path"].as_str().unwrap())), want);
    assert!(env.json(&["verify"])["ok"].as_bool().unwrap());
    let again = env.json(&["compact", "--grace", "0s"]);
    assert_eq!((again["reencoded_chunks"].as_u64(), again["compacted_packs"].as_u64()), (Some(0), Some(0)), "{again}");
    env.json(&["gc", "--grace", "0s"]);
    let v = env.json(&["snapshot", "to-volume", &id]);
    assert_eq!(sha(Path::new(v["path"].as_str().unwrap())), want, "after GC");
}

#[test]
fn verify_catches_a_flipped_bit_and_names_the_snapshot() {
    let env = Env::new();
    let (vol, path) = env.volume(1, "data");
    write_at(&path, 0, &noise(1, 1 << 20));
    let s1 = env.snapshot(&vol);
    write_at(&path, 500 * KIB64, &noise(2, KIB64 as usize));
    let s2 = env.snapshot(&vol);
    // the chunk only s2 has: in the newest pack of the store
    let chunks = env.data.join("store/packs");
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for d in std::fs::read_dir(&chunks).unwrap() {
        let d = d.unwrap().path();
        if !d.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&d).unwrap() {
            let f = f.unwrap();
            let t = f.metadata().unwrap().modified().unwrap();
            if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                newest = Some((t, f.path()));
            }
        }
    }
    let victim = newest.unwrap().1;
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&victim, bytes).unwrap();

    let out = env.run(&["--json", "verify"]);
    assert_eq!(out.status.code(), Some(1), "verify exits 1 on damage");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["bad_chunks"].as_array().unwrap().len(), 1);
    let broken: Vec<&str> =
        r["broken_snapshots"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(broken, vec![s2["id"].as_str().unwrap()]);
    // restoring the broken point fails loudly; the good one still restores
    let err = env.fails(&["snapshot", "to-volume", s2["id"].as_str().unwrap()]);
    assert!(err.contains("failed"), "{err}");
    assert!(env.run(&["snapshot", "to-volume", s1["id"].as_str().unwrap()]).status.success());
}

#[test]
fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let env = Env::new();
    let (vol, _) = env.volume(2, "data");
    let before = env.json(&["volume", "list"]);
    for (args, expect) in [
        (vec!["volume", "import", "/nonexistent/disk.img"], "nonexistent"),
        (vec!["snapshot", "show", "ss-zzzzzzzz"], "not found"),
        (vec!["snapshot", "rollback", "not-an-id"], "not found"),
        (vec!["volume", "resize", vol.as_str(), "--size-gib", "1"], "only grow"),
        (vec!["volume", "create", "--size-gib", "0"], "size"),
        (vec!["snapshot", "list", "--status", "happy"], "happy"),
        (vec!["--account", "mallory", "volume", "list"], "mallory"),
    ] {
        let err = env.fails(&args);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?} printed more than one line: {err}");
    }
    assert_eq!(env.json(&["volume", "list"]), before);
    // a deleted point cannot be rolled back to; a volume being deleted twice is refused cleanly
    let s = env.snapshot(&vol);
    env.json(&["snapshot", "delete", s["id"].as_str().unwrap()]);
    let err = env.fails(&["snapshot", "rollback", s["id"].as_str().unwrap()]);
    assert!(err.contains("deleted"), "{err}");
}

#[test]
fn a_bad_config_fails_start_up_naming_the_line_and_key() {
    let env = Env::new();
    let cfg = env.scratch.join("bad.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\n[[zones]]\nname = \"z1\"\nalias = [\"x\"]\n").unwrap();
    let out = env.cmd(&["--config", cfg.to_str().unwrap(), "volume", "list"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4") && err.contains("alias"), "{err}");
}

#[test]
fn accounts_never_see_each_other() {
    let env = Env::new();
    let cfg = env.scratch.join("two.toml");
    std::fs::write(&cfg, "[[zones]]\nname = \"pek3a\"\n[[accounts]]\nname = \"alice\"\n[[accounts]]\nname = \"bob\"\n")
        .unwrap();
    let as_ = |who: &str, args: &[&str]| {
        let mut full = vec!["--config", cfg.to_str().unwrap(), "--account", who, "--json"];
        full.extend_from_slice(args);
        env.run(&full)
    };
    let v: Value = serde_json::from_slice(&as_("alice", &["volume", "create", "--size-gib", "1"]).stdout).unwrap();
    let vid = v["id"].as_str().unwrap();
    let s: Value = serde_json::from_slice(&as_("alice", &["snapshot", "create", vid]).stdout).unwrap();
    let sid = s["snapshots"][0]["id"].as_str().unwrap();
    let bob: Value = serde_json::from_slice(&as_("bob", &["snapshot", "list"]).stdout).unwrap();
    assert_eq!(bob["total_count"], 0);
    for args in [
        vec!["snapshot", "show", sid],
        vec!["snapshot", "rollback", sid],
        vec!["snapshot", "delete", sid],
        vec!["volume", "path", vid],
    ] {
        let out = as_("bob", &args);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("not found"), "{args:?}");
    }
}

/// Start a command, wait until `ready` says the job is under way, then kill -9 it.
fn kill_midway(env: &Env, args: &[&str], ready: impl Fn() -> bool) {
    let mut child = env.cmd(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(child.try_wait().unwrap().is_none(), "{args:?} ended before it could be killed");
        assert!(Instant::now() < deadline, "{args:?} never got under way");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150));
    assert!(child.try_wait().unwrap().is_none(), "{args:?} ended before it could be killed");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn a_process_killed_mid_job_restarts_to_a_consistent_state() {
    let env = Env::new();
    let (vol, path) = env.volume(3, "data");
    // 1.5 GiB of incompressible data: a capture takes long enough to be killed mid-way
    for i in 0..24u64 {
        write_at(&path, i * (64 << 20), &noise(i + 1, 64 << 20));
    }
    let v1 = sha(&path);
    let packs = env.data.join("store/packs");
    let files_in_packs = |temp_only: bool| {
        std::fs::read_dir(&packs).map(|ds| {
            ds.flatten().any(|d| {
                d.path().is_dir()
                    && std::fs::read_dir(d.path())
                        .unwrap()
                        .flatten()
                        .any(|f| !temp_only || f.file_name().to_string_lossy().starts_with(".tmp-"))
            })
        })
    };
    let has_temp = || files_in_packs(true).unwrap_or(false);
    // under way once its first pack is being written
    kill_midway(&env, &["snapshot", "create", &vol], || files_in_packs(false).unwrap_or(false));

    // The next command recovers: the job failed, no snapshot half-exists, the volume is free.
    let jobs = env.json(&["job", "list"]);
    let job = &jobs["jobs"][0];
    assert_eq!(job["action"], "CreateSnapshots");
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("interrupted"));
    assert_eq!(env.json(&["snapshot", "list", "--status", "creating,available,deleted,ceased"])["total_count"], 0);
    assert_eq!(env.json(&["volume", "show", &vol])["transition"], "");
    // Recovery itself removed the dead capture's temp files (its chunks never committed).
    assert!(!has_temp(), "the temp files of the killed job were left for a manual gc");
    // GC clears what the dead capture wrote; nothing else is in the store
    let gc = env.json(&["gc", "--grace", "0s"]);
    assert_eq!(gc["kept_chunks"], 0, "{gc}");
    assert!(!has_temp());
    assert_eq!(std::fs::read_dir(env.data.join("store/indexes")).unwrap().count(), 0);

    // The volume snapshots normally afterwards (a full point), and restores exactly.
    let s1 = env.snapshot(&vol);
    assert_eq!(s1["full"], true);

    // Kill a roll back half way: the restart resumes it and the bytes come out exact.
    for i in 0..24u64 {
        write_at(&path, i * (64 << 20), &noise(i + 1000, 64 << 20));
    }
    assert_ne!(sha(&path), v1);
    let s1id = s1["id"].as_str().unwrap().to_string();
    let vol_busy = || {
        let out = env.run(&["--json", "volume", "show", &vol]);
        out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout).map(|v| v["transition"] == "rolling-back").unwrap_or(false)
    };
    kill_midway(&env, &["snapshot", "rollback", &s1id], vol_busy);
    let jobs = env.json(&["job", "list"]); // recovers: resumes the roll back and waits for it
    let job = &jobs["jobs"][0];
    assert_eq!(job["action"], "ApplySnapshots");
    assert_eq!(job["status"], "successful", "{job}");
    assert_eq!(sha(&path), v1, "the resumed roll back finished the job exactly");
    assert!(env.json(&["verify"])["ok"].as_bool().unwrap());
}

/// GET a path over plain HTTP/1.1; returns (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// GET a path over HTTPS/1.1, trusting only the CA in `ca` (PEM); returns (status, body).
fn https_get(addr: &str, ca: &Path, path: &str) -> (u16, String) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::io::{Read, Write};
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = addr.rsplit_once(':').unwrap().0.to_string();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from(host).unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(addr).unwrap());
    write!(tls, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    // The server may close without close_notify after the response: what was read counts.
    let _ = tls.read_to_end(&mut raw);
    let resp = String::from_utf8_lossy(&raw).into_owned();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_server_answers_health_and_metrics_and_stops_cleanly_on_sigterm() {
    let env = Env::new();
    env.json(&["init"]); // creates the data dir and config before the server starts
    let addr = format!("127.0.0.1:{}", free_port());
    let tls_addr = format!("127.0.0.1:{}", free_port());
    let server = env
        .cmd(&["serve", "--listen", &addr, "--tls-listen", &tls_addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() || std::net::TcpStream::connect(&tls_addr).is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = http_get(&addr, "/healthz");
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    // Anyone may ask: the answer shows nothing of the host's file system.
    assert!(health.get("data_dir").is_none(), "{body}");
    let tmp_dir = env.data.parent().unwrap().to_string_lossy().to_string();
    assert!(!body.contains(&tmp_dir), "{body}");
    // The same routes over TLS, with the development CA generated into the data dir.
    let ca = env.data.join("tls/ca.pem");
    let (status, body) = https_get(&tls_addr, &ca, "/healthz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    let (status, _) = https_get(&tls_addr, &ca, "/no/such/api");
    assert_eq!(status, 404);
    let (status, body) = http_get(&addr, "/no/such/api");
    assert_eq!(status, 404);
    assert!(body.contains("no API is served"), "{body}");
    let (status, body) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("disksnap_http_requests_total"), "{body}");
    assert!(body.contains("status=\"404\""), "{body}");
    // SIGTERM: graceful shutdown, exit 0, one structured log line per request on stderr
    // SAFETY: signalling a child we spawned.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let out = server.wait_with_output().unwrap();
    assert!(out.status.success(), "server exit: {:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("/healthz") && log.contains("request_id"), "{log}");
    assert!(log.contains(&format!("SSL_CERT_FILE={}", ca.display())), "the CA path is printed: {log}");
}

/// Issue 10, item 4: a job another account's process left behind is finished by whichever
/// process comes next, without failing that process's own command, and a running server takes
/// over the jobs of a killed CLI process within seconds (before, the CLI said "job … not found"
/// and gave up, and the server left the roll back `working` until its own restart).
#[test]
fn interrupted_jobs_are_finished_across_accounts_and_by_a_running_server() {
    let env = Env::new();
    let cfg = env.scratch.join("two.toml");
    std::fs::write(
        &cfg,
        "test_rollback_delay = \"2s\"\n[[zones]]\nname = \"pek3a\"\n[[accounts]]\nname = \"alice\"\n\
         [[accounts]]\nname = \"bob\"\n",
    )
    .unwrap();
    let args = |who: &'static str, rest: &[&str]| -> Vec<String> {
        let mut full: Vec<String> = vec!["--config".into(), cfg.display().to_string(), "--account".into(), who.into()];
        full.extend(rest.iter().map(|s| s.to_string()));
        full
    };
    let json = |who: &'static str, rest: &[&str]| -> Value {
        let a = args(who, &["--json"]).into_iter().chain(rest.iter().map(|s| s.to_string())).collect::<Vec<_>>();
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = env.run(&a);
        assert!(out.status.success(), "{rest:?} as {who}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let point = |who: &'static str| -> (String, PathBuf, String, String) {
        let v = json(who, &["volume", "create", "--size-gib", "1"]);
        let (vid, path) = (v["id"].as_str().unwrap().to_string(), PathBuf::from(v["path"].as_str().unwrap()));
        write_at(&path, 0, &noise(7, 4 << 20));
        let s = json(who, &["snapshot", "create", &vid]);
        let sid = s["snapshots"][0]["id"].as_str().unwrap().to_string();
        let at = sha(&path);
        write_at(&path, 0, &noise(8, 4 << 20));
        (vid, path, sid, at)
    };
    let rolling_back = |who: &'static str, vid: &str| {
        let a = args(who, &["--json", "volume", "show", vid]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = env.run(&a);
        out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout).map(|v| v["transition"] == "rolling-back").unwrap_or(false)
    };

    // Bob's roll back dies with its process; Alice's next command finishes it and succeeds.
    let (bvol, bpath, bsnap, bsha) = point("bob");
    let a = args("bob", &["snapshot", "rollback", &bsnap]);
    kill_midway(&env, &a.iter().map(String::as_str).collect::<Vec<_>>(), || rolling_back("bob", &bvol));
    let listed = json("alice", &["snapshot", "list"]);
    assert_eq!(listed["total_count"], 0, "alice sees none of bob's points");
    assert_eq!(sha(&bpath), bsha, "bob's roll back was resumed and finished");
    let jobs = json("bob", &["job", "list"]);
    assert_eq!(
        (&jobs["jobs"][0]["action"], &jobs["jobs"][0]["status"]),
        (&"ApplySnapshots".into(), &"successful".into())
    );

    // A server is running; a CLI roll back is killed: the server finishes it on its own.
    let (avol, apath, asnap, asha) = point("alice");
    let addr = format!("127.0.0.1:{}", free_port());
    let serve = args("alice", &["serve", "--listen", &addr]);
    let mut server = env
        .cmd(&serve.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let a = args("alice", &["snapshot", "rollback", &asnap]);
    kill_midway(&env, &a.iter().map(String::as_str).collect::<Vec<_>>(), || rolling_back("alice", &avol));
    // No command runs now: only the server can finish the job (2 s delay + its 2 s sweep).
    let deadline = Instant::now() + Duration::from_secs(20);
    while sha(&apath) != asha {
        assert!(Instant::now() < deadline, "the running server never took over the killed roll back");
        std::thread::sleep(Duration::from_millis(200));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let jobs = json("alice", &["job", "list"]);
    assert_eq!(jobs["jobs"][0]["status"], "successful", "{jobs}");
    assert_eq!(json("alice", &["volume", "show", &avol])["transition"], "");
}

/// Every file and directory under `dir` that a user other than the owner could read, enter
/// or write (group or other bits set).
fn shared_with_others(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let mode = std::fs::symlink_metadata(&d).unwrap().permissions().mode();
        if mode & 0o077 != 0 {
            out.push(format!("{:o} {}", mode & 0o777, d.display()));
        }
        if std::fs::symlink_metadata(&d).unwrap().is_dir() {
            todo.extend(std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

/// Under the usual umask 022 a customer's disk bytes must still be readable by the owner only:
/// the data dir and every directory in it 0700, every file (meta.db and its WAL, volumes,
/// chunks, indexes, images, the TLS keys) 0600. An existing data dir others can read is
/// closed, with a log line.
#[test]
fn under_umask_022_nothing_in_the_data_dir_is_readable_by_others() {
    let mut env = Env::new();
    env.umask = Some(0o022);
    env.json(&["init"]);
    let (vol, path) = env.volume(1, "system");
    write_at(&path, 0, &noise(7, 1 << 20));
    let s = env.snapshot(&vol);
    let id = s["id"].as_str().unwrap();
    env.json(&["snapshot", "to-volume", id, "--name", "copy"]);
    env.json(&["snapshot", "capture", id, "--name", "golden"]);
    // The server too: its TLS files, and meta.db's -wal/-shm while it holds the database open.
    let addr = format!("127.0.0.1:{}", free_port());
    let tls_addr = format!("127.0.0.1:{}", free_port());
    let mut server = env
        .cmd(&["serve", "--listen", &addr, "--tls-listen", &tls_addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&tls_addr).is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(env.data.join("meta.db-wal").exists() && env.data.join("tls/server-key.pem").exists());
    let open = shared_with_others(&env.data);
    // SAFETY: signalling a child we spawned.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    server.wait().unwrap();
    assert!(open.is_empty(), "readable by others under umask 022:\n{}", open.join("\n"));
    let files = |sub: &str| std::fs::read_dir(env.data.join(sub)).unwrap().count();
    assert!(files("volumes") >= 2 && files("images") >= 1 && files("store/indexes") >= 1);

    // A data dir made open by hand (or by an older version) is closed on the next start.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&env.data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env.run(&["snapshot", "list"]);
    assert!(out.status.success());
    let mode = std::fs::metadata(&env.data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("0755") && log.contains("0700"), "a log line says what changed: {log}");
}

/// `init`, then put `keys` (top-level `key = value` lines) at the head of the config and start
/// `serve` with the open-file limit at `nofile` (soft, hard); returns the server and its address.
fn serve_with(env: &Env, keys: &str, nofile: (u64, u64)) -> (std::process::Child, String) {
    env.json(&["init"]);
    let path = env.data.join("disksnap.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{keys}\n{text}")).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let tls_addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = env.cmd(&["serve", "--listen", &addr, "--tls-listen", &tls_addr]);
    cmd.env_remove("DISKSNAP_LOG").stdout(Stdio::null()).stderr(Stdio::null());
    {
        use std::os::unix::process::CommandExt;
        let (soft, hard) = nofile;
        // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::rlimit { rlim_cur: soft, rlim_max: hard };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let server = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, addr)
}

fn stop(server: std::process::Child) {
    // SAFETY: signalling a child we spawned.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let out = server.wait_with_output().unwrap();
    assert!(out.status.success(), "server exit: {:?}", out.status);
}

/// Seconds until the server closes `s` (reads return 0 or fail), writing `trickle` one byte
/// every 200 ms meanwhile; None if it is still open after `within`. Bytes it answers with are
/// appended to `got`.
fn closed_after(s: &mut std::net::TcpStream, trickle: &[u8], within: Duration, got: &mut Vec<u8>) -> Option<f64> {
    use std::io::{Read, Write};
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut i = 0;
    while start.elapsed() < within {
        if !trickle.is_empty() && s.write_all(&trickle[i % trickle.len()..][..1]).is_err() {
            return Some(start.elapsed().as_secs_f64());
        }
        i += 1;
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed().as_secs_f64()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed().as_secs_f64()),
        }
    }
    None
}

/// Slow clients cannot hold a connection: a header trickle is dropped after
/// `header_read_timeout`, a late body after `body_read_timeout` (with the dialect's error), an
/// idle keep-alive connection after `idle_timeout`.
#[test]
fn slow_and_idle_clients_are_dropped_on_time() {
    use std::io::Write;
    let env = Env::new();
    // The idle timeout is the longest: a trickle is dropped on the header deadline, not on it.
    let keys = "header_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\nidle_timeout = \"4s\"";
    let (server, addr) = serve_with(&env, keys, (1024, 1024));

    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let mut got = Vec::new();
    let t = closed_after(&mut s, b"abcdefgh", Duration::from_secs(8), &mut got);
    assert!(t.is_some_and(|t| t < 3.0), "a 5-bytes-a-second header trickle was still open after {t:?} s");
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "it was never answered");

    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let head = "POST /iaas/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n";
    s.write_all(format!("{head}Content-Length: 100\r\n\r\naction=Desc").as_bytes()).unwrap();
    let mut got = Vec::new();
    let t = closed_after(&mut s, b"", Duration::from_secs(8), &mut got);
    assert!(t.is_some_and(|t| t < 3.0), "a late body was still open after {t:?} s");
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.contains("\"ret_code\":1100") && answer.contains("did not arrive"), "{answer}");

    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let t = closed_after(&mut s, b"", Duration::from_secs(10), &mut got);
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    assert!(t.is_some_and(|t| (3.0..7.0).contains(&t)), "an idle keep-alive connection closed after {t:?} s");
    stop(server);
}

/// With the open-file limit low and more idle connections than it allows, a normal request is
/// still served: the soft limit is raised to the hard one at start, connections are capped
/// below it, and a connection beyond the cap closes the longest-idle one.
#[test]
fn idle_connections_beyond_the_cap_never_starve_a_normal_request() {
    let env = Env::new();
    let (server, addr) = serve_with(&env, "", (64, 160));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.id())).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&fields[3..5], ["160", "160"], "soft limit raised to the hard one: {line}");

    // 200 connections that send nothing, or half a request: more than 160 descriptors.
    let mut idle = Vec::new();
    for i in 0..200 {
        use std::io::Write;
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)) else {
            continue;
        };
        if i % 2 == 0 {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
        }
        idle.push(s);
    }
    let started = Instant::now();
    let (status, body) = http_get(&addr, "/healthz");
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(10), "served after {:?}", started.elapsed());
    let mut closed = 0;
    for s in idle.iter_mut() {
        use std::io::Read;
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        match s.read(&mut [0u8; 64]) {
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            _ => closed += 1,
        }
    }
    assert!(closed >= 100, "the server shed idle connections to stay under its cap: {closed} of {} closed", idle.len());
    drop(idle);
    stop(server);
}

/// `disksnap policy …` on real bytes: a policy's run takes automatic points of its volumes,
/// its count retention prunes the oldest automatic point and never a manual one, and the
/// points kept restore exactly; bad input is one clear line.
#[test]
fn a_policy_takes_automatic_points_and_prunes_only_them() {
    let env = Env::new();
    let (vol, path) = env.volume(1, "data");
    write_at(&path, 0, &noise(41, 2 << 20));
    let p = env.json(&[
        "policy",
        "create",
        "--name",
        "nightly",
        "--hours",
        "2,14",
        "--weekdays",
        "mon,3",
        "--keep-count",
        "1",
    ]);
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!((p["days"].as_str(), p["retention"].as_str()), (Some("Mon,Wed"), Some("last 1")));
    assert_eq!(env.json(&["policy", "bind", &id, &vol])["volumes"][0], vol.as_str());
    let first = env.json(&["policy", "run", &id]);
    let first = first["snapshots"][0].as_str().unwrap().to_string();
    let manual = env.snapshot(&vol)["id"].as_str().unwrap().to_string();
    write_at(&path, 1 << 20, &noise(42, 1 << 20));
    let want = sha(&path);
    let second = env.json(&["policy", "run", &id]);
    assert_eq!(second["pruned"][0], first.as_str(), "{second}");
    let second = second["snapshots"][0].as_str().unwrap().to_string();
    let list = env.json(&["snapshot", "list", "--volume", &vol, "--status", "available"]);
    let mut kept: Vec<(String, String)> = list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s["origin"].as_str().unwrap().to_string()))
        .collect();
    kept.sort();
    let mut expected = vec![(second.clone(), "auto".to_string()), (manual.clone(), "user".to_string())];
    expected.sort();
    assert_eq!(kept, expected);
    let v = env.json(&["snapshot", "to-volume", &second]);
    assert_eq!(sha(&PathBuf::from(v["path"].as_str().unwrap())), want);
    assert!(env.fails(&["policy", "create", "--name", "x", "--hours", "24"]).contains("hours are 0 to 23"));
    assert!(env
        .fails(&["policy", "create", "--name", "nightly", "--hours", "1"])
        .contains("already has a policy named"));
    assert!(env.fails(&["policy", "bind", &id, "vol-zzzzzzzz"]).contains("not found"));
    env.run(&["policy", "delete", &id]);
    assert!(env.fails(&["policy", "show", &id]).contains("not found"));
}
