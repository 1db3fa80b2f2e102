//! One id, every rendering, every parameter (dialects.md, the ID rule; issue 14.3): against the
//! real `disksnap serve` over HTTP, every rendering any dialect shows of an id (the bare
//! suffix, upper case, QingCloud's, Aliyun's, Tencent's prefixes, the UUID) is fed to every
//! parameter of every dialect that takes an id of that kind, and the resource must be found.
//! And each dialect's own prefix of another kind is its malformed-id error (issue 11's
//! regression: Tencent 9003, QingCloud 1100), not "not found".

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use disksnap_api_common::encode::rfc3986;
use disksnap_api_common::Dialect;
use disksnap_service::Kind;
use serde_json::{json, Value};

/// The binary under test; `DISKSNAP_BIN` runs these checks against another build (an older
/// one, to see them fail).
fn bin() -> String {
    std::env::var("DISKSNAP_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_disksnap").to_string())
}
const QC: (&str, &str) = ("QYALICEACCESSKEY0001", "alice-qingcloud-secret-key-0000000000001");
const ALIYUN: (&str, &str) = ("LTAIalice00000000001", "alice-aliyun-secret-000000000001");
const TENCENT: (&str, &str) = ("AKIDalice0000000000000000000000001", "alice-tencent-secret-00000000001");
const PROJECT: &str = "a11ce000000000000000000000000001";

struct Server {
    _tmp: tempfile::TempDir,
    child: Child,
    data: PathBuf,
    config: PathBuf,
    host: String,
    http: reqwest::Client,
    /// 51idc's bearer token and Keystone's, once asked for.
    bearer: String,
    keystone: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn config(listen: &str) -> String {
    format!(
        r#"listen = "{listen}"
gc_grace = "10m"

[[zones]]
name = "pek3a"
aliases = ["cn-hangzhou", "cn-hangzhou-a", "gz", "ap-guangzhou", "RegionOne"]

[[accounts]]
name = "alice"
qingcloud = {{ access_key_id = "{}", secret_access_key = "{}" }}
aliyun = {{ access_key_id = "{}", access_key_secret = "{}" }}
tencent = {{ secret_id = "{}", secret_key = "{}" }}
openstack = {{ project_id = "{PROJECT}", project_name = "alice", user = "alice", password = "alice-password" }}
"#,
        QC.0, QC.1, ALIYUN.0, ALIYUN.1, TENCENT.0, TENCENT.1
    )
}

fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn nonce() -> String {
    rand::random::<u64>().to_string()
}

fn query(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v))).collect::<Vec<_>>().join("&")
}

fn owned(given: &[(&str, &str)]) -> Vec<(String, String)> {
    given.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Server {
    async fn start() -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let config_path = tmp.path().join("disksnap.toml");
        let host = format!("127.0.0.1:{}", free_port());
        std::fs::write(&config_path, config(&host)).unwrap();
        let log = std::fs::File::create(tmp.path().join("server.log")).unwrap();
        let child = Command::new(bin())
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .env_remove("DISKSNAP_CONFIG")
            .env_remove("DISKSNAP_DATA_DIR")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // reqwest is built without a default TLS provider (plain HTTP here, but it asks).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let mut s = Server {
            _tmp: tmp,
            child,
            data,
            config: config_path,
            host,
            http,
            bearer: String::new(),
            keystone: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if s.http.get(format!("http://{}/healthz", s.host)).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline && s.child.try_wait().unwrap().is_none(), "disksnap serve did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s.bearer = s.token_51idc().await;
        s.keystone = s.token_keystone().await;
        s
    }

    fn cli(&self, args: &[&str]) -> Value {
        let out = Command::new(bin())
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--config")
            .arg(&self.config)
            .args(["--account", "alice", "--json"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "disksnap {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    async fn body(resp: reqwest::Response) -> (u16, Value) {
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes))))
    }

    /// A signed QingCloud IaaS GET.
    async fn qingcloud(&self, action: &str, given: &[(&str, &str)]) -> Value {
        use disksnap_dialect_qingcloud::iaas::signature::{compute, string_to_sign};
        let mut p = owned(given);
        for (k, v) in [
            ("action", action.to_string()),
            ("zone", "pek3a".into()),
            ("access_key_id", QC.0.into()),
            ("signature_method", "HmacSHA256".into()),
            ("signature_version", "1".into()),
            ("time_stamp", now_iso()),
            ("version", "1".into()),
        ] {
            p.push((k.into(), v));
        }
        let sig = compute("HmacSHA256", QC.1, &string_to_sign("GET", "/iaas/", &p)).unwrap();
        p.push(("signature".into(), sig));
        let url = format!("http://{}/iaas/?{}", self.host, query(&p));
        Self::body(self.http.get(url).send().await.unwrap()).await.1
    }

    /// A signed Tencent CBS v2 GET.
    async fn tencent(&self, action: &str, given: &[(&str, &str)]) -> Value {
        use disksnap_dialect_tencent::signature::{signature, string_to_sign, Params, SignatureMethod};
        let mut p = owned(given);
        for (k, v) in [
            ("Action", action.to_string()),
            ("SecretId", TENCENT.0.into()),
            ("Nonce", nonce()),
            ("Timestamp", chrono::Utc::now().timestamp().to_string()),
            ("SignatureMethod", "HmacSHA256".into()),
        ] {
            p.push((k.into(), v));
        }
        let params = Params::from_pairs(p.clone()).unwrap();
        let sts = string_to_sign("GET", &self.host, disksnap_dialect_tencent::router::PATH, &params);
        p.push(("Signature".into(), signature(TENCENT.1, SignatureMethod::HmacSha256, &sts)));
        let url = format!("http://{}{}?{}", self.host, disksnap_dialect_tencent::router::PATH, query(&p));
        Self::body(self.http.get(url).send().await.unwrap()).await.1
    }

    /// A signed Aliyun RPC GET.
    async fn aliyun(&self, action: &str, given: &[(&str, &str)]) -> Value {
        use disksnap_dialect_aliyun::signature::{rpc_signature, rpc_string_to_sign};
        let mut p = owned(given);
        for (k, v) in [
            ("Action", action.to_string()),
            ("Version", "2014-05-26".into()),
            ("AccessKeyId", ALIYUN.0.into()),
            ("SignatureMethod", "HMAC-SHA1".into()),
            ("SignatureVersion", "1.0".into()),
            ("SignatureNonce", nonce()),
            ("Timestamp", now_iso()),
            ("Format", "JSON".into()),
            ("RegionId", "cn-hangzhou".into()),
        ] {
            p.push((k.into(), v));
        }
        p.push(("Signature".into(), rpc_signature(ALIYUN.1, &rpc_string_to_sign("GET", &p))));
        let url = format!("http://{}/?{}", self.host, query(&p));
        Self::body(self.http.get(url).send().await.unwrap()).await.1
    }

    async fn token_51idc(&self) -> String {
        let r = self
            .http
            .post(format!("http://{}/v2/oauth2/token", self.host))
            .basic_auth(QC.0, Some(QC.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        let (status, v) = Self::body(r).await;
        assert_eq!(status, 200, "{v}");
        v["access_token"].as_str().unwrap().to_string()
    }

    /// A 51idc GET under the zone; (HTTP status, body).
    async fn idc51(&self, path_and_query: &str) -> (u16, Value) {
        let url = format!("http://{}/v2/zone/pek3a{path_and_query}", self.host);
        Self::body(self.http.get(url).bearer_auth(&self.bearer).send().await.unwrap()).await
    }

    async fn token_keystone(&self) -> String {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "alice", "domain": {"id": "default"}, "password": "alice-password"}}},
            "scope": {"project": {"id": PROJECT}}}});
        let r = self
            .http
            .post(format!("http://{}/identity/v3/auth/tokens", self.host))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        r.headers()["x-subject-token"].to_str().unwrap().to_string()
    }

    /// A Cinder v3 request under the project; (HTTP status, body).
    async fn cinder(&self, method: &str, path_and_query: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://{}/v3/{PROJECT}{path_and_query}", self.host);
        let mut r = self.http.request(method.parse().unwrap(), url).header("x-auth-token", &self.keystone);
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b.to_string());
        }
        Self::body(r.send().await.unwrap()).await
    }

    /// A QingCloud job's end; panics if it failed.
    async fn wait_job(&self, job: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = self.qingcloud("DescribeJobs", &[("jobs.1", job)]).await;
            match v["job_set"][0]["status"].as_str() {
                Some("successful") => return,
                Some("failed") => panic!("job {job} failed: {v}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "job {job} did not finish: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Server {
    /// Wait until the snapshot (any rendering) is available: its volume is busy until then.
    async fn wait_snapshot(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = self.qingcloud("DescribeSnapshots", &[("snapshots.1", id)]).await;
            if v["snapshot_set"][0]["status"] == "available" {
                return;
            }
            assert!(Instant::now() < deadline, "snapshot {id} did not become available: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every rendering any dialect shows of a bare id of `kind`, and the bare id in both cases.
fn renderings(kind: Kind, bare: &str) -> Vec<String> {
    let mut out = vec![
        bare.to_string(),
        bare.to_uppercase(),
        <disksnap_dialect_qingcloud::iaas::Iaas as Dialect>::show_id(kind, bare),
        <disksnap_dialect_qingcloud::rest51::Rest51 as Dialect>::show_id(kind, bare),
        <disksnap_dialect_aliyun::Aliyun as Dialect>::show_id(kind, bare),
        <disksnap_dialect_tencent::Tencent as Dialect>::show_id(kind, bare),
        <disksnap_dialect_openstack::OpenStack as Dialect>::show_id(kind, bare),
        <disksnap_dialect_openstack::OpenStack as Dialect>::show_id(kind, bare).to_uppercase(),
    ];
    out.dedup();
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| seen.insert(r.clone()));
    out
}

fn bare_of(shown: &str) -> String {
    shown.rsplit('-').next().unwrap().to_string()
}

/// The resources every check looks for: an instance with a system volume, a snapshot of it
/// (tagged), the capture job's image, and the jobs.
struct Fixture {
    volume: String,
    instance: String,
    snapshot: String,
    tag: String,
    job: String,
    image: String,
}

async fn fixture(s: &Server) -> Fixture {
    let inst = s.cli(&["instance", "create", "--name", "one"]);
    let instance = bare_of(inst["id"].as_str().unwrap());
    let inst_shown = inst["id"].as_str().unwrap().to_string();
    let vol = s.cli(&["volume", "create", "--size-gib", "1", "--type", "system", "--instance", &inst_shown]);
    let volume = bare_of(vol["id"].as_str().unwrap());
    let r = s.qingcloud("CreateSnapshots", &[("resources.1", &format!("vol-{volume}")), ("snapshot_name", "s")]).await;
    assert_eq!(r["ret_code"], 0, "{r}");
    let job = r["job_id"].as_str().unwrap().to_string();
    s.wait_job(&job).await;
    let snapshot = bare_of(r["snapshots"][0].as_str().unwrap());
    let r = s.qingcloud("CreateTag", &[("tag_name", "t")]).await;
    let tag = bare_of(r["tag_id"].as_str().unwrap());
    for (kind, id) in [("snapshot", format!("ss-{snapshot}")), ("volume", format!("vol-{volume}"))] {
        let r = s
            .qingcloud(
                "AttachTags",
                &[
                    ("resource_tag_pairs.1.tag_id", &format!("tag-{tag}")),
                    ("resource_tag_pairs.1.resource_type", kind),
                    ("resource_tag_pairs.1.resource_id", &id),
                ],
            )
            .await;
        assert_eq!(r["ret_code"], 0, "{r}");
    }
    let r = s.qingcloud("CaptureInstanceFromSnapshot", &[("snapshot", &format!("ss-{snapshot}"))]).await;
    assert_eq!(r["ret_code"], 0, "{r}");
    s.wait_job(r["job_id"].as_str().unwrap()).await;
    let image = bare_of(r["image_id"].as_str().unwrap());
    Fixture { volume, instance, snapshot, tag, job: bare_of(&job), image }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rendering_of_an_id_works_in_every_parameter_of_every_dialect() {
    let s = Server::start().await;
    let f = fixture(&s).await;
    let mut failures: Vec<String> = Vec::new();
    let mut checked = 0;
    let mut expect = |ok: bool, what: String, answer: &Value| {
        checked += 1;
        if !ok {
            failures.push(format!("{what}: {}", answer.to_string().chars().take(300).collect::<String>()));
        }
    };

    for r in renderings(Kind::Snapshot, &f.snapshot) {
        let v = s.qingcloud("DescribeSnapshots", &[("snapshots.1", &r)]).await;
        expect(v["total_count"] == 1, format!("qingcloud DescribeSnapshots snapshots.1={r}"), &v);
        let v = s.qingcloud("ModifySnapshotAttributes", &[("snapshot", &r), ("description", "d")]).await;
        expect(v["ret_code"] == 0, format!("qingcloud ModifySnapshotAttributes snapshot={r}"), &v);
        let (st, v) = s.idc51(&format!("/volume_snapshots?snapshots={}", rfc3986(&r))).await;
        expect(st == 200 && v["total_count"] == 1, format!("51idc GET volume_snapshots?snapshots={r}"), &v);
        let v = s.aliyun("DescribeSnapshots", &[("SnapshotIds", &json!([r]).to_string())]).await;
        expect(v["TotalCount"] == 1, format!("aliyun DescribeSnapshots SnapshotIds=[{r}]"), &v);
        let v = s.aliyun("ModifySnapshotAttribute", &[("SnapshotId", &r), ("Description", "d")]).await;
        expect(
            v["RequestId"].is_string() && v["Code"].is_null(),
            format!("aliyun ModifySnapshotAttribute SnapshotId={r}"),
            &v,
        );
        let v = s.tencent("DescribeSnapshots", &[("snapshotIds.0", &r)]).await;
        expect(v["code"] == 0 && v["totalCount"] == 1, format!("tencent DescribeSnapshots snapshotIds.0={r}"), &v);
        let v = s.tencent("ModifySnapshot", &[("snapshotId", &r), ("snapshotName", "s")]).await;
        expect(v["code"] == 0, format!("tencent ModifySnapshot snapshotId={r}"), &v);
        let (st, v) = s.cinder("GET", &format!("/snapshots/{}", rfc3986(&r)), None).await;
        expect(st == 200, format!("cinder GET snapshots/{r}"), &v);
        let (st, v) = s.cinder("GET", &format!("/snapshots?marker={}", rfc3986(&r)), None).await;
        expect(st == 200, format!("cinder GET snapshots?marker={r}"), &v);
    }
    // A chain is named by its root point: the chain's renderings and the root's.
    let mut chain = renderings(Kind::Chain, &f.snapshot);
    chain.extend(renderings(Kind::Snapshot, &f.snapshot));
    for r in chain {
        let v = s.qingcloud("DescribeSnapshots", &[("root_id", &r)]).await;
        expect(v["total_count"] == 1, format!("qingcloud DescribeSnapshots root_id={r}"), &v);
        let (st, v) = s.idc51(&format!("/volume_snapshots?root_id={}", rfc3986(&r))).await;
        expect(st == 200 && v["total_count"] == 1, format!("51idc GET volume_snapshots?root_id={r}"), &v);
        let v = s.aliyun("DescribeSnapshots", &[("SnapshotLinkId", &r)]).await;
        expect(v["TotalCount"] == 1, format!("aliyun DescribeSnapshots SnapshotLinkId={r}"), &v);
        let v = s.aliyun("DescribeSnapshotLinks", &[("SnapshotLinkIds", &json!([r]).to_string())]).await;
        expect(v["TotalCount"] == 1, format!("aliyun DescribeSnapshotLinks SnapshotLinkIds=[{r}]"), &v);
    }
    for r in renderings(Kind::Volume, &f.volume) {
        let v = s.qingcloud("DescribeSnapshots", &[("resource_id", &r)]).await;
        expect(v["total_count"] == 1, format!("qingcloud DescribeSnapshots resource_id={r}"), &v);
        let v = s.qingcloud("DescribeVolumes", &[("volumes.1", &r)]).await;
        expect(v["total_count"] == 1, format!("qingcloud DescribeVolumes volumes.1={r}"), &v);
        let v = s.qingcloud("ModifyVolumeAttributes", &[("volume", &r), ("description", "d")]).await;
        expect(v["ret_code"] == 0, format!("qingcloud ModifyVolumeAttributes volume={r}"), &v);
        let (st, v) = s.idc51(&format!("/volume_snapshots?resource_id={}", rfc3986(&r))).await;
        expect(st == 200 && v["total_count"] == 1, format!("51idc GET volume_snapshots?resource_id={r}"), &v);
        let (st, v) = s.idc51(&format!("/volumes?volumes={}", rfc3986(&r))).await;
        expect(st == 200 && v["total_count"] == 1, format!("51idc GET volumes?volumes={r}"), &v);
        let v = s.aliyun("DescribeSnapshots", &[("DiskId", &r)]).await;
        expect(v["TotalCount"] == 1, format!("aliyun DescribeSnapshots DiskId={r}"), &v);
        let v = s.aliyun("DescribeDisks", &[("DiskIds", &json!([r]).to_string())]).await;
        expect(v["TotalCount"] == 1, format!("aliyun DescribeDisks DiskIds=[{r}]"), &v);
        let v = s.aliyun("DescribeSnapshotLinks", &[("DiskIds", &json!([r]).to_string())]).await;
        expect(v["TotalCount"] == 1, format!("aliyun DescribeSnapshotLinks DiskIds=[{r}]"), &v);
        let v = s.tencent("DescribeSnapshots", &[("storageIds.0", &r)]).await;
        expect(v["code"] == 0 && v["totalCount"] == 1, format!("tencent DescribeSnapshots storageIds.0={r}"), &v);
        let v = s.tencent("DescribeCbsStorages", &[("storageIds.0", &r)]).await;
        expect(v["code"] == 0 && v["totalCount"] == 1, format!("tencent DescribeCbsStorages storageIds.0={r}"), &v);
        let (st, v) = s.cinder("GET", &format!("/snapshots?volume_id={}", rfc3986(&r)), None).await;
        let n = v["snapshots"].as_array().map_or(0, Vec::len);
        expect(st == 200 && n == 1, format!("cinder GET snapshots?volume_id={r}"), &v);
        let (st, v) = s.cinder("GET", &format!("/volumes/{}", rfc3986(&r)), None).await;
        expect(st == 200, format!("cinder GET volumes/{r}"), &v);
        let (st, v) = s.cinder("GET", &format!("/volumes?marker={}", rfc3986(&r)), None).await;
        expect(st == 200, format!("cinder GET volumes?marker={r}"), &v);
    }
    for r in renderings(Kind::Instance, &f.instance) {
        // `resource_id` takes a volume or an instance: only the rendering tells which, and a
        // bare suffix is a volume there (QingCloud's rule: what is not an instance id is a
        // volume), so the bare instance id is not fed to it.
        if r.len() > 8 {
            let v = s.qingcloud("DescribeSnapshots", &[("resource_id", &r)]).await;
            expect(v["total_count"] == 1, format!("qingcloud DescribeSnapshots resource_id={r}"), &v);
        }
        let v = s.qingcloud("DescribeVolumes", &[("instance_id", &r)]).await;
        expect(v["total_count"] == 1, format!("qingcloud DescribeVolumes instance_id={r}"), &v);
        let (st, v) = s.idc51(&format!("/volumes?instance_id={}", rfc3986(&r))).await;
        expect(st == 200 && v["total_count"] == 1, format!("51idc GET volumes?instance_id={r}"), &v);
        let v = s.aliyun("DescribeSnapshots", &[("InstanceId", &r)]).await;
        expect(v["TotalCount"] == 1, format!("aliyun DescribeSnapshots InstanceId={r}"), &v);
        let v = s.aliyun("DescribeDisks", &[("InstanceId", &r)]).await;
        expect(v["TotalCount"] == 1, format!("aliyun DescribeDisks InstanceId={r}"), &v);
        let v = s.tencent("DescribeCbsStorages", &[("uInstanceIds.0", &r)]).await;
        expect(v["code"] == 0 && v["totalCount"] == 1, format!("tencent DescribeCbsStorages uInstanceIds.0={r}"), &v);
    }
    for r in renderings(Kind::Tag, &f.tag) {
        let v = s.qingcloud("DescribeSnapshots", &[("tags.1", &r)]).await;
        expect(v["total_count"] == 1, format!("qingcloud DescribeSnapshots tags.1={r}"), &v);
        let v = s.qingcloud("DescribeVolumes", &[("tags.1", &r)]).await;
        expect(v["total_count"] == 1, format!("qingcloud DescribeVolumes tags.1={r}"), &v);
        let v = s.qingcloud("DescribeTags", &[("tags.1", &r)]).await;
        expect(v["total_count"] == 1, format!("qingcloud DescribeTags tags.1={r}"), &v);
        let (st, v) = s.idc51(&format!("/volume_snapshots?tags={}", rfc3986(&r))).await;
        expect(st == 200 && v["total_count"] == 1, format!("51idc GET volume_snapshots?tags={r}"), &v);
    }
    for r in renderings(Kind::Job, &f.job) {
        let v = s.qingcloud("DescribeJobs", &[("jobs.1", &r)]).await;
        expect(v["total_count"] == 1, format!("qingcloud DescribeJobs jobs.1={r}"), &v);
        let (st, v) = s.idc51(&format!("/job/{}", rfc3986(&r))).await;
        expect(st == 200 && v["status"] == "successful", format!("51idc GET job/{r}"), &v);
    }
    for r in renderings(Kind::Image, &f.image) {
        let v = s.qingcloud("DescribeImages", &[("images.1", &r)]).await;
        expect(v["total_count"] == 1, format!("qingcloud DescribeImages images.1={r}"), &v);
    }
    // Last, the parameters that make something (each check adds a snapshot or a volume, so
    // they come after the counts above).
    for r in renderings(Kind::Volume, &f.volume) {
        let v = s.qingcloud("CreateSnapshots", &[("resources.1", &r)]).await;
        expect(v["ret_code"] == 0, format!("qingcloud CreateSnapshots resources.1={r}"), &v);
        if let Some(id) = v["snapshots"][0].as_str() {
            s.wait_snapshot(id).await;
        }
        let v = s.aliyun("CreateSnapshot", &[("DiskId", &r)]).await;
        expect(v["SnapshotId"].is_string(), format!("aliyun CreateSnapshot DiskId={r}"), &v);
        if let Some(id) = v["SnapshotId"].as_str() {
            s.wait_snapshot(id).await;
        }
        let v = s.tencent("CreateSnapshot", &[("storageId", &r)]).await;
        expect(v["code"] == 0, format!("tencent CreateSnapshot storageId={r}"), &v);
        if let Some(id) = v["data"]["snapshotId"].as_str().or(v["snapshotId"].as_str()) {
            s.wait_snapshot(id).await;
        }
        let body = json!({"snapshot": {"volume_id": r, "force": true}});
        let (st, v) = s.cinder("POST", "/snapshots", Some(body)).await;
        expect(st == 202, format!("cinder POST snapshots volume_id={r}"), &v);
        if let Some(id) = v["snapshot"]["id"].as_str() {
            s.wait_snapshot(id).await;
        }
    }
    for r in renderings(Kind::Snapshot, &f.snapshot) {
        let (st, v) = s.cinder("POST", "/volumes", Some(json!({"volume": {"snapshot_id": r, "size": 1}}))).await;
        expect(st == 202, format!("cinder POST volumes snapshot_id={r}"), &v);
        let v = s.qingcloud("CreateVolumeFromSnapshot", &[("snapshot", &r)]).await;
        expect(v["ret_code"] == 0, format!("qingcloud CreateVolumeFromSnapshot snapshot={r}"), &v);
    }
    assert!(failures.is_empty(), "{} of {checked} checks failed:\n{}", failures.len(), failures.join("\n"));
}

/// Issue 11 regression: a dialect's own prefix of another kind names nothing of the kind asked
/// for, as before the pipeline work made every `<letters>-` prefix read as any kind (so that
/// `disk-<a snapshot's suffix>` found the snapshot): Tencent's malformed-id error 9003; in
/// QingCloud and 51idc, what any id that names nothing gets (an empty list, 2100).
#[tokio::test(flavor = "multi_thread")]
async fn a_dialects_own_prefix_of_another_kind_names_nothing() {
    let s = Server::start().await;
    let f = fixture(&s).await;
    let (vol, snap) = (&f.volume, &f.snapshot);
    let tencent_disk = format!("disk-{snap}");
    for (action, params) in [
        ("DescribeSnapshots", vec![("snapshotIds.0", tencent_disk.clone())]),
        ("DescribeSnapshots", vec![("storageIds.0", format!("snap-{vol}"))]),
        ("DescribeCbsStorages", vec![("uInstanceIds.0", format!("disk-{}", f.instance))]),
        ("ModifySnapshot", vec![("snapshotId", tencent_disk.clone()), ("snapshotName", "x".into())]),
        ("ApplySnapshot", vec![("storageId", format!("snap-{vol}")), ("snapshotId", format!("snap-{snap}"))]),
        ("CreateSnapshot", vec![("storageId", format!("snap-{vol}"))]),
        (
            "ModifySnapshot",
            vec![("snapshotId", disksnap_service::ids::uuid(Kind::Volume, snap)), ("snapshotName", "x".into())],
        ),
    ] {
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let v = s.tencent(action, &p).await;
        assert_eq!(
            (v["code"].clone(), v["codeDesc"].clone()),
            (json!(9003), json!("InvalidParameter")),
            "{action} {params:?}: {v}"
        );
        assert!(v["message"].as_str().unwrap().contains(p[0].0.split('.').next().unwrap()), "{v}");
    }
    // DeleteSnapshot answers per id: a disk id is "snap not exist" there, as before.
    let v = s.tencent("DeleteSnapshot", &[("snapshotIds.0", &tencent_disk)]).await;
    assert_eq!(v["detail"][&tencent_disk]["code"], 16003, "{v}");

    // QingCloud and 51idc: an id that names another kind names nothing, as any id that names
    // nothing there: a filter of it matches nothing, an action on it is 2100 ResourceNotFound
    // (the suffix is the right resource's: read as any kind, it was found).
    let uuid_of_volume = disksnap_service::ids::uuid(Kind::Volume, snap);
    for (action, key, id) in [
        ("DescribeSnapshots", "snapshots.1", format!("vol-{snap}")),
        ("DescribeSnapshots", "snapshots.1", uuid_of_volume.clone()),
        ("DescribeSnapshots", "root_id", format!("vol-{snap}")),
        ("DescribeSnapshots", "resource_id", format!("ss-{vol}")),
        ("DescribeSnapshots", "tags.1", format!("ss-{}", f.tag)),
        ("DescribeVolumes", "volumes.1", format!("ss-{vol}")),
        ("DescribeVolumes", "instance_id", format!("vol-{}", f.instance)),
        ("DescribeJobs", "jobs.1", format!("ss-{}", f.job)),
        ("DescribeTags", "tags.1", format!("ss-{}", f.tag)),
        ("DescribeImages", "images.1", format!("ss-{}", f.image)),
    ] {
        let v = s.qingcloud(action, &[(key, &id)]).await;
        assert_eq!((v["ret_code"].clone(), v["total_count"].clone()), (json!(0), json!(0)), "{action} {key}={id}: {v}");
    }
    for (action, key, id) in [
        ("DeleteSnapshots", "snapshots.1", format!("vol-{snap}")),
        ("ModifySnapshotAttributes", "snapshot", format!("vol-{snap}")),
        ("ModifySnapshotAttributes", "snapshot", uuid_of_volume.clone()),
        ("CreateVolumeFromSnapshot", "snapshot", format!("i-{snap}")),
        ("ModifyVolumeAttributes", "volume", format!("ss-{vol}")),
        ("CreateSnapshots", "resources.1", format!("ss-{vol}")),
        ("DeleteTags", "tags.1", format!("ss-{}", f.tag)),
    ] {
        let v = s.qingcloud(action, &[(key, &id)]).await;
        assert_eq!(v["ret_code"], 2100, "{action} {key}={id}: {v}");
        assert!(v["message"].as_str().unwrap().contains(&id), "{v}");
    }
    let (st, v) = s.idc51(&format!("/volume_snapshots?snapshots=vol-{snap}")).await;
    assert_eq!((st, v["total_count"].clone()), (200, json!(0)), "{v}");
    let (st, v) = s.idc51(&format!("/job/ss-{}", f.job)).await;
    assert_eq!((st, v["error"]["code"].clone()), (404, json!("2100")), "{v}");
    // Aliyun: its own prefix of another kind names nothing, as ECS answers any id it does not
    // hold: an action is InvalidXxxId.NotFound (and changes nothing), a Describe filter matches
    // nothing. Read as any prefix, `s-<a disk's suffix>` as a DiskId found that disk.
    let before = s.aliyun("DescribeSnapshots", &[]).await["TotalCount"].clone();
    for (action, params, code) in [
        ("CreateSnapshot", vec![("DiskId", format!("s-{vol}"))], "InvalidDiskId.NotFound"),
        (
            "ModifySnapshotAttribute",
            vec![("SnapshotId", format!("d-{snap}")), ("Description", "x".into())],
            "InvalidSnapshotId.NotFound",
        ),
        ("DeleteSnapshot", vec![("SnapshotId", format!("d-{snap}"))], "InvalidSnapshotId.NotFound"),
        (
            "ResetDisk",
            vec![("DiskId", format!("s-{vol}")), ("SnapshotId", format!("s-{snap}"))],
            "InvalidDiskId.NotFound",
        ),
        (
            "ModifyDiskAttribute",
            vec![("DiskIds.1", format!("s-{vol}")), ("Description", "x".into())],
            "InvalidDiskId.NotFound",
        ),
        (
            "CreateDisk",
            vec![("SnapshotId", format!("d-{snap}")), ("ZoneId", "cn-hangzhou-a".into())],
            "InvalidSnapshotId.NotFound",
        ),
        ("DeleteImage", vec![("ImageId", format!("s-{}", f.image))], "InvalidImageId.NotFound"),
    ] {
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let v = s.aliyun(action, &p).await;
        assert_eq!(v["Code"], code, "{action} {params:?}: {v}");
        assert!(v["Message"].as_str().unwrap().contains(&params[0].1), "{v}");
    }
    assert_eq!(s.aliyun("DescribeSnapshots", &[]).await["TotalCount"], before, "nothing was created");
    for (action, key, id) in [
        ("DescribeSnapshots", "SnapshotIds", json!([format!("d-{snap}")]).to_string()),
        ("DescribeSnapshots", "DiskId", format!("s-{vol}")),
        ("DescribeSnapshots", "InstanceId", format!("d-{}", f.instance)),
        ("DescribeSnapshots", "SnapshotLinkId", format!("d-{snap}")),
        ("DescribeDisks", "DiskIds", json!([format!("s-{vol}")]).to_string()),
        ("DescribeDisks", "InstanceId", format!("d-{}", f.instance)),
        ("DescribeSnapshotLinks", "DiskIds", json!([format!("s-{vol}")]).to_string()),
        ("DescribeSnapshotLinks", "SnapshotLinkIds", json!([format!("d-{snap}")]).to_string()),
        ("DescribeImages", "ImageId", format!("s-{}", f.image)),
    ] {
        let v = s.aliyun(action, &[(key, &id)]).await;
        assert_eq!(v["TotalCount"], 0, "{action} {key}={id}: {v}");
    }
    let mixed = json!([format!("d-{snap}"), format!("s-{snap}")]).to_string();
    let v = s.aliyun("DescribeSnapshots", &[("SnapshotIds", &mixed)]).await;
    assert_eq!(v["TotalCount"], 1, "the right id of a mixed list still matches: {v}");

    // The right kind in another vendor's rendering is no error (dialects.md, the ID rule).
    let v = s.tencent("DescribeSnapshots", &[("snapshotIds.0", &format!("ss-{snap}"))]).await;
    assert_eq!((v["code"].clone(), v["totalCount"].clone()), (json!(0), json!(1)), "{v}");
    let v = s.qingcloud("DescribeSnapshots", &[("snapshots.1", &format!("snap-{snap}"))]).await;
    assert_eq!(v["total_count"], 1, "{v}");
}
