//! End to end through the OpenStack dialect: `GET /v3/{project}/snapshots/detail?limit=100`
//! on an account holding COUNT live snapshots (default 100 000), over real HTTP.
//!
//!     cargo run -p disksnap --example openstack_list_100k [-- COUNT]
//!
//! Rows are written straight into a fresh `meta.db` (no snapshot data: listing reads metadata
//! only), then the server runs on a local port. "scan" adds `name~=` (an empty substring that
//! matches everything), which forces the in-memory fallback: what every list did before the
//! indexed path.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use disksnap_api_common::{ApiContext, KeyRing, ProjectUser};
use disksnap_meta::{Batch, MetaStore, SnapshotRow, SqliteMeta};
use disksnap_service::{Service, ServiceConfig, ZoneConfig};

const PID: &str = "0123456789abcdef0123456789abcdef";

fn b36(mut n: u64) -> String {
    let a = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; 8];
    for slot in out.iter_mut().rev() {
        *slot = a[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

/// One HTTP/1.1 request on a fresh connection: (status, headers + body).
async fn http(port: u16, method: &str, path: &str, headers: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let status = out.split(' ').nth(1).unwrap_or("0").parse()?;
    Ok((status, out))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: u64 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    {
        let meta = SqliteMeta::open(&dir.path().join("meta.db")).await?;
        let base = 1_700_000_000_000i64;
        let all: Vec<u64> = (0..count).collect();
        for chunk in all.chunks(5000) {
            let mut b = Batch::default();
            for &i in chunk {
                let id = b36(1_000_000 + i);
                b.put_snapshots.push(SnapshotRow {
                    id: id.clone(),
                    account: "dev".into(),
                    zone: "pek3a".into(),
                    name: format!("nightly-{}", i % 97),
                    description: String::new(),
                    volume_id: b36(i % 1000),
                    volume_size: 1 << 30,
                    volume_kind: "data".into(),
                    instance_id: None,
                    is_full: i % 10 == 0,
                    root_id: b36(1_000_000 + i - i % 10),
                    parent_id: (i % 10 != 0).then(|| b36(1_000_000 + i - 1)),
                    is_head: i % 10 == 9,
                    status: "available".into(),
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
                    logical_size: None,
                    consistency: String::new(),
                    version: 0,
                });
                if i % 3 == 0 {
                    b.snapshot_metadata.push((id, "k".into(), Some(format!("v{i}"))));
                }
            }
            meta.commit(b).await?;
        }
        meta.maintain().await?;
    }
    let mut cfg = ServiceConfig::new(dir.path());
    cfg.zones = vec![ZoneConfig { name: "pek3a".into(), aliases: vec![] }];
    cfg.accounts = vec!["dev".into()];
    let svc = Service::open(cfg).await?;
    let mut keys = KeyRing::default();
    keys.add_user(
        disksnap_dialect_openstack::USERS,
        ProjectUser {
            account: "dev".into(),
            project_id: PID.into(),
            project_name: "demo".into(),
            user: "demo".into(),
            password: "secret".into(),
        },
    )
    .map_err(anyhow::Error::msg)?;
    let mut ctx = ApiContext::new(svc, keys);
    ctx.token_lifetime = Duration::from_secs(3600);
    let app = disksnap_dialect_openstack::routes(ctx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let auth = r#"{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "password": "secret", "domain": {"name": "Default"}}}}, "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}}"#;
    let (st, resp) = http(port, "POST", "/identity/v3/auth/tokens", "Content-Type: application/json\r\n", auth).await?;
    anyhow::ensure!(st == 201, "auth: {st}");
    let token = resp
        .lines()
        .find_map(|l| l.strip_prefix("x-subject-token: ").or_else(|| l.strip_prefix("X-Subject-Token: ")))
        .ok_or_else(|| anyhow::anyhow!("no token"))?
        .trim()
        .to_string();
    let hdr = format!("X-Auth-Token: {token}\r\nOpenStack-API-Version: volume 3.71\r\n");
    let mid = format!("d15c0002-0000-4000-8000-{:012x}", 1_000_000 + count / 2);
    let cases = [
        ("first page", "limit=100".to_string(), 21),
        ("marker mid-list", format!("limit=100&marker={mid}"), 21),
        ("marker mid-list, created_at:asc", format!("limit=100&sort=created_at:asc&marker={mid}"), 21),
        (
            "status=available + volume_id",
            "limit=100&status=available&volume_id=d15c0001-0000-4000-8000-00000000002a".into(),
            21,
        ),
        ("first page, with_count", "limit=100&with_count=true".into(), 21),
        ("scan (old path): first page", "limit=100&name~=".into(), 3),
    ];
    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!("GET /v3/{{project}}/snapshots/detail at {count} snapshots ({build} build, shared machine)");
    println!("{:<36} {:>9} {:>9}", "", "p50 ms", "max ms");
    for (label, q, n) in cases {
        let mut times = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let (st, body) = http(port, "GET", &format!("/v3/{PID}/snapshots/detail?{q}"), &hdr, "").await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(st == 200, "{label}: {st} {body}");
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{label:<36} {:>9.1} {:>9.1}", times[n / 2], times[n - 1]);
    }
    Ok(())
}
