//! Several `disksnap serve` nodes on one PostgreSQL database (README "Cluster"; issue 13):
//! a signed request replayed to another node is refused with the dialect's replay error, the
//! nodes see each other in `disksnap cluster status` and /metrics, a node killed with -9 is
//! reported down, and /healthz is not ready once the database is gone; volumes live on home
//! nodes, and nodes killed in the middle of a snapshot and of a restore leave nothing
//! half-done (see the last test). Without
//! DISKSNAP_TEST_PG_URL (or with DISKSNAP_TEST_PG=skip) it prints a SKIP line and passes.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use disksnap_api_common::encode::rfc3986;
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

const BIN: &str = env!("CARGO_BIN_EXE_disksnap");
const QC: (&str, &str) = ("QYALICEACCESSKEY0001", "alice-qingcloud-secret-key-0000000000001");
const ADMIN: &str = "cluster-test-admin-token";
const ALIYUN: (&str, &str) = ("LTAIalice00000000001", "alice-aliyun-secret-000000000001");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn query(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v))).collect::<Vec<_>>().join("&")
}

fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

struct Node {
    name: String,
    host: String,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    tmp: tempfile::TempDir,
    config: PathBuf,
    admin: PgConnectOptions,
    db_name: String,
    http: reqwest::Client,
    /// The nodes share an S3 store (the test RGW).
    shared_store: bool,
}

fn s3(n: &str) -> Option<String> {
    std::env::var(format!("DISKSNAP_TEST_S3_{n}")).ok().filter(|v| !v.is_empty())
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

/// SHA-256 of a file, streamed (the volumes are 1 GiB).
fn sha(path: &Path) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut h).unwrap();
    hex::encode(h.finalize())
}

impl Cluster {
    async fn new(test: &str) -> Option<Cluster> {
        let url = std::env::var("DISKSNAP_TEST_PG_URL").ok().filter(|v| !v.is_empty());
        let Some(url) = url.filter(|_| std::env::var("DISKSNAP_TEST_PG").as_deref() != Ok("skip")) else {
            eprintln!(
                "SKIP {test}: DISKSNAP_TEST_PG_URL is not set (scripts/pg.sh start; eval \"$(scripts/pg.sh env)\")"
            );
            return None;
        };
        let admin: PgConnectOptions = url.parse().unwrap();
        let db_name = format!("cluster_{}_{:x}", std::process::id(), rand::random::<u32>());
        let mut c = PgConnection::connect_with(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {db_name}")).execute(&mut c).await.unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("disksnap.toml");
        let db = admin.clone().database(&db_name);
        // The snapshot store every node shares: the test RGW when scripts/test.sh started one
        // (else each node's local directory, which serves the tests that need no shared bytes).
        let store = match (s3("ENDPOINT"), s3("BUCKET"), s3("ACCESS_KEY"), s3("SECRET_KEY")) {
            (Some(endpoint), Some(bucket), Some(key), Some(secret)) => format!(
                "\n[store]\nbackend = \"s3\"\nbucket = \"{bucket}\"\nprefix = \"{db_name}\"\nendpoint = \"{endpoint}\"\n\
                 path_style = true\nallow_http = true\naccess_key_id = \"{key}\"\nsecret_access_key = \"{secret}\"\n"
            ),
            _ => String::new(),
        };
        std::fs::write(
            &config,
            format!(
                r#"database_url = "{}"
test_rollback_delay = "6s"

[[zones]]
name = "pek3a"
aliases = ["cn-hangzhou"]

[[zones]]
name = "sh1a"

[admin]
enabled = true
token = "{}"

[[accounts]]
name = "alice"
qingcloud = {{ access_key_id = "{}", secret_access_key = "{}" }}
aliyun = {{ access_key_id = "{}", access_key_secret = "{}" }}
{store}"#,
                db.to_url_lossy(),
                ADMIN,
                QC.0,
                QC.1,
                ALIYUN.0,
                ALIYUN.1
            ),
        )
        .unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Some(Cluster { tmp, config, admin, db_name, http, shared_store: !store.is_empty() })
    }

    fn data(&self, node: &str) -> PathBuf {
        self.tmp.path().join(node)
    }

    /// Start node `name` (its own data dir), wait until its /healthz answers.
    async fn start(&self, name: &str) -> Node {
        let host = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(self.tmp.path().join(format!("{name}.log"))).unwrap();
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(self.data(name))
            .arg("--config")
            .arg(&self.config)
            .args(["serve", "--listen", &host, "--node", name])
            .env_remove("DISKSNAP_CONFIG")
            .env_remove("DISKSNAP_DATA_DIR")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut node = Node { name: name.into(), host, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.http.get(format!("http://{}/healthz", node.host)).send().await;
            if r.is_ok_and(|r| r.status().is_success()) {
                return node;
            }
            let log = std::fs::read_to_string(self.tmp.path().join(format!("{name}.log"))).unwrap_or_default();
            assert!(Instant::now() < deadline && node.child.try_wait().unwrap().is_none(), "node {name}: {log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn cli(&self, data: &Path, args: &[&str]) -> Value {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(&self.config)
            .arg("--json")
            .args(args)
            .env_remove("DISKSNAP_CONFIG")
            .env_remove("DISKSNAP_DATA_DIR")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "disksnap {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    async fn get(&self, url: &str) -> (u16, Value) {
        let r = self.http.get(url).send().await.unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())),
        )
    }

    /// The runners of the open jobs, read from the database.
    async fn open_job_runners(&self) -> Vec<String> {
        let mut c = PgConnection::connect_with(&self.admin.clone().database(&self.db_name)).await.unwrap();
        sqlx::query_scalar("SELECT COALESCE(runner, '') FROM jobs WHERE status IN ('pending', 'working')")
            .fetch_all(&mut c)
            .await
            .unwrap()
    }

    async fn drop_database(&self) {
        let mut c = PgConnection::connect_with(&self.admin).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.db_name)).execute(&mut c).await.unwrap();
    }
}

impl Cluster {
    /// A signed QingCloud call to `node`; its JSON answer (ret_code checked to be 0).
    async fn qingcloud(&self, node: &Node, action: &str, params: &[(&str, &str)]) -> Value {
        use disksnap_dialect_qingcloud::iaas::signature::{compute, string_to_sign};
        let mut p: Vec<(String, String)> = [
            ("action", action),
            ("zone", "pek3a"),
            ("access_key_id", QC.0),
            ("signature_method", "HmacSHA256"),
            ("signature_version", "1"),
            ("version", "1"),
        ]
        .iter()
        .chain(params)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        p.push(("time_stamp".into(), now_iso()));
        let sig = compute("HmacSHA256", QC.1, &string_to_sign("GET", "/iaas/", &p)).unwrap();
        p.push(("signature".into(), sig));
        let (status, v) = self.get(&format!("http://{}/iaas/?{}", node.host, query(&p))).await;
        assert_eq!((status, v["ret_code"].as_i64()), (200, Some(0)), "{action} on {}: {v}", node.name);
        v
    }

    /// A call to `node`'s admin API (test control).
    async fn admin(&self, node: &Node, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("http://{}/admin/v1/{path}", node.host))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "admin {path} on {}: {}", node.name, r.text().await.unwrap());
    }

    /// `disksnap <kind> show <id>` through the database (a command that is not a node).
    fn show(&self, kind: &str, id: &str) -> Value {
        self.cli(&self.data("cli"), &[kind, "show", id])
    }

    /// Wait (up to `secs`) until `done` holds for `<kind> show <id>`; the last answer.
    async fn wait_for(&self, kind: &str, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.show(kind, id);
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{kind} {id} after {secs} s: {v}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The job's row as the CLI shows it once it is `working` (held on its node).
    async fn wait_working(&self, job: &str) -> Value {
        self.wait_for("job", job, 30, |j| j["status"] == "working").await
    }
}

/// The query of a signed Aliyun RPC v1 DescribeDisks with this nonce (the Host is not signed).
fn aliyun_query(nonce: &str) -> String {
    use disksnap_dialect_aliyun::signature::{rpc_signature, rpc_string_to_sign};
    let mut p: Vec<(String, String)> = [
        ("Action", "DescribeDisks"),
        ("Version", "2014-05-26"),
        ("AccessKeyId", ALIYUN.0),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", nonce),
        ("Format", "JSON"),
        ("RegionId", "cn-hangzhou"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    p.push(("Timestamp".into(), now_iso()));
    p.push(("Signature".into(), rpc_signature(ALIYUN.1, &rpc_string_to_sign("GET", &p))));
    query(&p)
}

/// The query of a signed QingCloud DescribeVolumes with this req_id (its replay nonce).
fn qingcloud_query(req_id: &str) -> String {
    use disksnap_dialect_qingcloud::iaas::signature::{compute, string_to_sign};
    let mut p: Vec<(String, String)> = [
        ("action", "DescribeVolumes"),
        ("zone", "pek3a"),
        ("access_key_id", QC.0),
        ("signature_method", "HmacSHA256"),
        ("signature_version", "1"),
        ("version", "1"),
        ("req_id", req_id),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    p.push(("time_stamp".into(), now_iso()));
    let sig = compute("HmacSHA256", QC.1, &string_to_sign("GET", "/iaas/", &p)).unwrap();
    p.push(("signature".into(), sig));
    query(&p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_replay_nonces_heartbeats_and_readiness() {
    let Some(cl) = Cluster::new("nodes_share_replay_nonces_heartbeats_and_readiness").await else { return };
    let a = cl.start("node-a").await;
    let b = cl.start("node-b").await;

    // Aliyun: accepted by one node, the same bytes to another node are a replay.
    let q = aliyun_query(&format!("cluster-{}", rand::random::<u64>()));
    let (status, v) = cl.get(&format!("http://{}/?{q}", a.host)).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = cl.get(&format!("http://{}/?{q}", b.host)).await;
    assert_eq!((status, v["Code"].as_str()), (400, Some("SignatureNonceUsed")), "{v}");
    // and to the first node again
    let (status, v) = cl.get(&format!("http://{}/?{q}", a.host)).await;
    assert_eq!((status, v["Code"].as_str()), (400, Some("SignatureNonceUsed")), "{v}");

    // QingCloud: the req_id is the nonce; another node refuses it as the first would.
    let q = qingcloud_query(&format!("r{}", rand::random::<u64>()));
    let (status, first) = cl.get(&format!("http://{}/iaas/?{q}", b.host)).await;
    assert_eq!((status, first["ret_code"].as_i64()), (200, Some(0)), "{first}");
    let (_, replay) = cl.get(&format!("http://{}/iaas/?{q}", a.host)).await;
    assert_ne!(replay["ret_code"].as_i64(), Some(0), "a QingCloud replay to another node was served: {replay}");
    assert!(replay["message"].as_str().unwrap_or("").contains("was already used"), "{replay}");

    // The nodes' heartbeats: both up, in the default zone, in `cluster status` and /metrics.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = cl.cli(&cl.data("cli"), &["cluster", "status"]);
        let up = s["nodes"].as_array().unwrap().iter().filter(|n| n["up"] == true).count();
        if up == 2 {
            break s;
        }
        assert!(Instant::now() < deadline, "two nodes up: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let names: Vec<&str> = status["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, [a.name.as_str(), b.name.as_str()], "{status}");
    assert_eq!(status["nodes"][0]["zone"], "pek3a", "{status}");
    assert_eq!(status["zones"][0], serde_json::json!(["pek3a", 2]), "{status}");
    assert_eq!(status["zones"][1], serde_json::json!(["sh1a", 0]), "{status}");
    let metrics = cl.http.get(format!("http://{}/metrics", a.host)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"disksnap_cluster_node_up{node="node-b",zone="pek3a"} 1"#),
        "node-b up on node-a's /metrics: {metrics}"
    );

    // A node killed with -9 is reported down once its heartbeats stop.
    let mut b = b;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = cl.cli(&cl.data("cli"), &["cluster", "status"]);
        let nb = s["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "node-b").unwrap().clone();
        if nb["up"] == false {
            assert_eq!(s["zones"][0], serde_json::json!(["pek3a", 1]), "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "node-b still up 30 s after kill -9: {s}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Ready only while the database answers.
    let (status, h) = cl.get(&format!("http://{}/healthz", a.host)).await;
    assert_eq!((status, h["status"].as_str(), h["node"].as_str()), (200, Some("ok"), Some("node-a")), "{h}");
    cl.drop_database().await;
    let (status, h) = cl.get(&format!("http://{}/healthz", a.host)).await;
    assert_eq!((status, h["database"].as_str(), h["store"].as_str()), (503, Some("unavailable"), Some("ok")), "{h}");
}

/// A process running a job on a data dir no server shares (another machine, as far as the
/// servers can tell: no lock file of it is theirs to probe) is killed with -9 in the middle of a
/// roll back: a live process (a node, or a command) takes the job over once the lease of the
/// killed one runs out, and the roll back ends with the point's bytes. A snapshot taken through one node's data dir restores byte for
/// byte through another's (with the shared RGW store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runners_job_is_taken_over_by_a_node_within_its_lease() {
    let Some(cl) = Cluster::new("a_killed_runners_job_is_taken_over_by_a_node_within_its_lease").await else {
        return;
    };
    if !cl.shared_store {
        // a node taking over another's job reads the points from the store they share
        eprintln!("SKIP a_killed_runners_job_is_taken_over_by_a_node_within_its_lease: DISKSNAP_TEST_S3_ENDPOINT is not set (a cluster needs a shared store)");
        return;
    }
    let _a = cl.start("node-a").await;
    let _b = cl.start("node-b").await;
    let worker = cl.data("worker");
    let v = cl.cli(&worker, &["volume", "create", "--size-gib", "1"]);
    let (vol, path) = (v["id"].as_str().unwrap().to_string(), PathBuf::from(v["path"].as_str().unwrap()));
    write_at(&path, 0, &noise(1, 4 << 20));
    write_at(&path, 300 << 20, &noise(2, 1 << 20));
    let want = sha(&path);
    let snap = cl.cli(&worker, &["snapshot", "create", &vol])["snapshots"][0]["id"].as_str().unwrap().to_string();
    write_at(&path, 0, &noise(3, 4 << 20));
    assert_ne!(sha(&path), want);

    // the roll back waits 3 s (test_rollback_delay) before it moves a byte: kill it then
    let mut rollback = Command::new(BIN)
        .arg("--data-dir")
        .arg(&worker)
        .arg("--config")
        .arg(&cl.config)
        .args(["snapshot", "rollback", &snap])
        .env_remove("DISKSNAP_CONFIG")
        .env_remove("DISKSNAP_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Its job appears, stamped with the command's runner (`<pid>-<id>`); the nodes' recovery
    // rounds (every 2 s) must leave it to the live command, whose lock file they cannot see
    // (before runner leases they took it over at once, and two processes ran one job).
    let own = format!("{}-", rollback.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    while cl.open_job_runners().await.is_empty() {
        assert!(Instant::now() < deadline, "the roll back's job did not appear");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let runners = cl.open_job_runners().await;
    assert!(runners.len() == 1 && runners[0].starts_with(&own), "the live command's job was taken: {runners:?}");
    rollback.kill().unwrap();
    rollback.wait().unwrap();
    let killed = Instant::now();

    // a node resumes it once the lease (10 s) is out; it waits its 6 s, then rolls back
    let deadline = killed + Duration::from_secs(40);
    loop {
        let v = cl.cli(&cl.data("cli"), &["volume", "show", &vol]);
        if v["transition"].as_str().unwrap_or("").is_empty() && v["status"] != "rolling-back" && sha(&path) == want {
            break;
        }
        if Instant::now() > deadline {
            let jobs = cl.cli(&cl.data("cli"), &["job", "list"]);
            panic!("the roll back was not taken over within 40 s of the kill: {v}\njobs: {jobs}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = killed.elapsed();
    assert!(took >= Duration::from_secs(5), "taken over after {took:?}: before the runner's lease ran out");
    let jobs = cl.cli(&cl.data("cli"), &["job", "list"]);
    let open: Vec<&Value> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["status"] == "pending" || j["status"] == "working")
        .collect();
    assert!(open.is_empty(), "jobs left open: {jobs}");

    // the point's bytes are in the shared store: a volume from it on another node's data dir
    let nv = cl.cli(&cl.data("node-b"), &["snapshot", "to-volume", &snap]);
    assert_eq!(sha(Path::new(nv["path"].as_str().unwrap())), want, "volume from a snapshot on another node");
}

/// Three nodes of one zone on PostgreSQL and the shared RGW (issue 13): each volume lives on
/// one node (its home) and only that node moves its bytes, whichever node was asked; a node
/// killed with -9 in the middle of a snapshot has it failed and undone by a survivor, one
/// killed in the middle of a restore has it moved to a survivor and finished there, both
/// within the lease and heartbeat times; a roll back of a dead node's volume waits for that
/// node (and the volume says so) and runs when it is back; every point restores byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_live_on_home_nodes_and_survive_nodes_killed_mid_job() {
    let test = "volumes_live_on_home_nodes_and_survive_nodes_killed_mid_job";
    let Some(cl) = Cluster::new(test).await else { return };
    if !cl.shared_store {
        eprintln!("SKIP {test}: DISKSNAP_TEST_S3_ENDPOINT is not set (a cluster needs a shared store)");
        return;
    }
    let mut nodes = vec![cl.start("node-a").await, cl.start("node-b").await, cl.start("node-c").await];
    let deadline = Instant::now() + Duration::from_secs(20);
    while cl.cli(&cl.data("cli"), &["cluster", "status"])["zones"][0] != serde_json::json!(["pek3a", 3]) {
        assert!(Instant::now() < deadline, "three nodes up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let idx = |nodes: &[Node], name: &str| nodes.iter().position(|n| n.name == name).unwrap();

    // A volume asked of node-a: its home is one of the three; its file is in that node's dir.
    let v = cl.qingcloud(&nodes[0], "CreateVolumes", &[("size", "1")]).await;
    let vol = v["volumes"][0].as_str().unwrap().to_string();
    let shown = cl.wait_for("volume", &vol, 30, |v| v["status"] == "available").await;
    let home = shown["home"]["node"].as_str().unwrap().to_string();
    let path = PathBuf::from(shown["path"].as_str().unwrap());
    assert!(path.starts_with(cl.data(&home)), "{vol} of {home} is at {}", path.display());
    write_at(&path, 0, &noise(11, 3 << 20));
    write_at(&path, 700 << 20, &noise(12, 1 << 20));
    let want = sha(&path);

    // A point asked of another node runs on the home node.
    let other = &nodes[(idx(&nodes, &home) + 1) % 3];
    let s = cl.qingcloud(other, "CreateSnapshots", &[("resources.1", &vol)]).await;
    let snap = s["snapshots"][0].as_str().unwrap().to_string();
    let job = cl.wait_for("job", s["job_id"].as_str().unwrap(), 60, |j| j["status"] == "successful").await;
    assert_eq!(job["node"], home.as_str(), "{job}");
    write_at(&path, 0, &noise(13, 1 << 20)); // the volume moves on from the point

    // Killed mid-snapshot: the home holds the capture in `working`; kill -9 it.
    let h = idx(&nodes, &home);
    cl.admin(&nodes[h], "jobs/hold", serde_json::json!({"kind": "create-snapshots"})).await;
    let survivor = &nodes[(h + 1) % 3];
    let s = cl.qingcloud(survivor, "CreateSnapshots", &[("resources.1", &vol)]).await;
    let (lost, capture) = (s["snapshots"][0].as_str().unwrap().to_string(), s["job_id"].as_str().unwrap().to_string());
    cl.wait_working(&capture).await;
    let mut dead = nodes.remove(h);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let killed = Instant::now();
    let failed = cl.wait_for("job", &capture, 45, |j| j["status"] == "failed").await;
    assert!(failed["error"].as_str().unwrap_or("").contains(&format!("node {home}")), "{failed}");
    eprintln!("{test}: the capture of a killed node failed cleanly after {:?}", killed.elapsed());
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(cl.data("cli"))
        .arg("--config")
        .arg(&cl.config)
        .args(["--json", "snapshot", "show", &lost])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the failed capture's point is still there: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = cl.show("volume", &vol);
    assert_eq!((v["status"].as_str(), v["transition"].as_str()), (Some("available"), Some("")), "{v}");
    assert_eq!(v["home"]["up"], false, "{v}");

    // Killed mid-restore: hold restores on both survivors, release on the one that is not the
    // new volume's home, kill the home once its restore is working.
    for n in &nodes {
        cl.admin(n, "jobs/hold", serde_json::json!({"kind": "restore-volume"})).await;
    }
    let r = cl.qingcloud(&nodes[1], "CreateVolumeFromSnapshot", &[("snapshot", &snap)]).await;
    let (copy, restore) = (r["volume_id"].as_str().unwrap().to_string(), r["job_id"].as_str().unwrap().to_string());
    let copy_home = cl.show("volume", &copy)["home"]["node"].as_str().unwrap().to_string();
    let k = idx(&nodes, &copy_home);
    cl.admin(&nodes[1 - k], "jobs/release", serde_json::json!({"kind": "restore-volume"})).await;
    let working = cl.wait_working(&restore).await;
    assert_eq!(working["node"], copy_home.as_str(), "{working}");
    let mut dead2 = nodes.remove(k);
    dead2.child.kill().unwrap();
    dead2.child.wait().unwrap();
    let killed = Instant::now();
    let last = nodes[0].name.clone();
    let done = cl.wait_for("job", &restore, 60, |j| j["status"] == "successful" || j["status"] == "failed").await;
    assert_eq!(done["status"], "successful", "{done}");
    eprintln!("{test}: the restore of a killed node finished on {last} after {:?}", killed.elapsed());
    let c = cl.show("volume", &copy);
    assert_eq!(c["home"]["node"], last.as_str(), "{c}");
    assert_eq!(sha(Path::new(c["path"].as_str().unwrap())), want, "the moved restore's bytes");

    // A roll back of the dead node's volume waits for it, and the volume says so.
    let r = cl.qingcloud(&nodes[0], "ApplySnapshots", &[("snapshots.1", &snap)]).await;
    let rollback = r["job_id"].as_str().unwrap().to_string();
    let v = cl.wait_for("volume", &vol, 10, |v| !v["home"]["waiting_jobs"].as_array().unwrap().is_empty()).await;
    let bare = |id: &str| id.rsplit('-').next().unwrap().to_string();
    let waiting: Vec<String> =
        v["home"]["waiting_jobs"].as_array().unwrap().iter().map(|j| bare(j.as_str().unwrap())).collect();
    assert_eq!(waiting, [bare(&rollback)], "{v}");
    assert!(v["home"]["note"].as_str().unwrap_or("").contains("down"), "{v}");

    // The first node comes back (same name, same data dir): it runs the roll back that waited.
    let back = cl.start(&dead.name).await;
    drop(dead);
    cl.wait_for("job", &rollback, 60, |j| j["status"] == "successful").await;
    assert_eq!(sha(&path), want, "the roll back run by the returned home node");

    // The restore's first home comes back too: what its killed restore would have left of the
    // volume that moved (a partial file) is removed before it serves.
    let copy_id = c["id"].as_str().unwrap().rsplit('-').next().unwrap().to_string();
    let left = cl.data(&dead2.name).join("volumes").join(format!("{copy_id}.img"));
    std::fs::create_dir_all(left.parent().unwrap()).unwrap();
    std::fs::write(&left, b"part of a restore").unwrap();
    let back2 = cl.start(&dead2.name).await;
    drop(dead2);
    assert!(!left.exists(), "the moved volume's partial file is still on its first home");
    assert!(Path::new(c["path"].as_str().unwrap()).exists(), "the moved volume's own file");
    drop((back, back2));
}
