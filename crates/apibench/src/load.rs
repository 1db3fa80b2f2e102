//! `load`: N keep-alive connections, each sending signed DescribeSnapshots requests (or the
//! dialect's own list call) back to back (closed loop) from the mix in `queries.json`, for a
//! concurrency sweep, through one dialect (`--dialect`): QingCloud, Aliyun, Tencent v2 and
//! 3.0, Cinder `snapshots/detail`, EVS `cloudsnapshots/detail`.
//!
//! Every request is signed afresh (a new timestamp and nonce), as each SDK does, and every
//! answer is checked: HTTP 200 (and QingCloud's `ret_code` 0) and the exact total count the
//! seed computed (a fast wrong answer is a failure, not a result). The client is one thread (a tokio
//! current-thread runtime) and a minimal HTTP/1.1 reader, so it takes as little of the shared
//! CPU as it can; its CPU and the server's are both reported.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::sign;

/// The API a run goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    QingCloud,
    Aliyun,
    Tencent,
    Tencent3,
    Cinder,
    Evs,
}

impl Dialect {
    pub const ALL: [Dialect; 6] =
        [Dialect::QingCloud, Dialect::Aliyun, Dialect::Tencent, Dialect::Tencent3, Dialect::Cinder, Dialect::Evs];

    pub fn name(self) -> &'static str {
        match self {
            Dialect::QingCloud => "qingcloud",
            Dialect::Aliyun => "aliyun",
            Dialect::Tencent => "tencent",
            Dialect::Tencent3 => "tencent3",
            Dialect::Cinder => "cinder",
            Dialect::Evs => "evs",
        }
    }

    pub fn parse(s: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.name() == s)
    }

    /// The JSON key of the answer's total (its last occurrence: items may carry their own).
    fn total_key(self) -> &'static [u8] {
        match self {
            Dialect::QingCloud => b"\"total_count\":",
            Dialect::Aliyun | Dialect::Tencent3 => b"\"TotalCount\":",
            Dialect::Tencent => b"\"totalCount\":",
            Dialect::Cinder | Dialect::Evs => b"\"count\":",
        }
    }
}

pub struct Opts {
    pub dialect: Dialect,
    pub addr: String,
    pub data: std::path::PathBuf,
    pub concurrency: Vec<usize>,
    pub secs: f64,
    pub warmup: f64,
    pub runs: usize,
    pub server_pid: Option<u32>,
    pub out: Option<std::path::PathBuf>,
    pub p99_ms: f64,
    pub rps: f64,
}

struct Query {
    kind: usize,
    params: Vec<(String, String)>,
    total: u64,
}

struct Mix {
    dialect: Dialect,
    addr: String,
    key: String,
    secret: String,
    /// The zone (QingCloud) or region (the others) the requests name.
    zone: String,
    /// Cinder and EVS: a Keystone token, taken once (as a client keeps it for hours).
    token: String,
    project: String,
    kinds: Vec<String>,
    /// Cinder's user and password.
    keystone: (String, String),
    /// Queries of each kind (each kind gets an equal share of the requests).
    by_kind: Vec<Vec<Query>>,
}

fn load_mix(data: &Path, dialect: Dialect, addr: &str) -> anyhow::Result<Mix> {
    let path = data.join("queries.json");
    let doc: Value =
        serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("read {}", path.display()))?)?;
    let s = |k: &str| doc[k].as_str().map(str::to_string).ok_or_else(|| anyhow!("{}: no {k}", path.display()));
    let reseed = || anyhow!("{}: no {} queries; seed again (bench/api.sh --reseed)", path.display(), dialect.name());
    let pair = |k: &str| -> anyhow::Result<(String, String)> {
        let p = &doc["keys"][k];
        Ok((p[0].as_str().ok_or_else(reseed)?.to_string(), p[1].as_str().ok_or_else(reseed)?.to_string()))
    };
    let region = |k: &str| doc["regions"][k].as_str().map(str::to_string).ok_or_else(reseed);
    let os = &doc["keys"]["openstack"];
    let project = os["project_id"].as_str().unwrap_or_default().to_string();
    let ((key, secret), zone, queries) = match dialect {
        Dialect::QingCloud => ((s("access_key_id")?, s("secret_access_key")?), s("zone")?, &doc["queries"]),
        Dialect::Aliyun => (pair("aliyun")?, region("aliyun")?, &doc["dialects"]["aliyun"]),
        Dialect::Tencent | Dialect::Tencent3 => {
            (pair("tencent")?, region("tencent")?, &doc["dialects"][dialect.name()])
        }
        Dialect::Cinder => ((String::new(), String::new()), region("openstack")?, &doc["dialects"]["cinder"]),
        Dialect::Evs => (pair("huawei")?, region("openstack")?, &doc["dialects"]["evs"]),
    };
    let mut kinds: Vec<String> = Vec::new();
    let mut by_kind: Vec<Vec<Query>> = Vec::new();
    for q in queries.as_array().ok_or_else(reseed)? {
        let kind = q["kind"].as_str().unwrap_or("?").to_string();
        let k = match kinds.iter().position(|x| x == &kind) {
            Some(k) => k,
            None => {
                kinds.push(kind);
                by_kind.push(Vec::new());
                kinds.len() - 1
            }
        };
        let params = q["params"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (p[0].as_str().unwrap_or("").to_string(), p[1].as_str().unwrap_or("").to_string()))
            .collect();
        by_kind[k].push(Query { kind: k, params, total: q["total"].as_u64().unwrap_or(0) });
    }
    let user = os["user"].as_str().unwrap_or_default();
    let password = os["password"].as_str().unwrap_or_default();
    Ok(Mix {
        dialect,
        addr: addr.to_string(),
        key,
        secret,
        zone,
        token: String::new(),
        project,
        kinds,
        by_kind,
        keystone: (user.to_string(), password.to_string()),
    })
}

/// A Keystone password token for the seeded OpenStack user, scoped to its project.
async fn keystone_token(mix: &Mix) -> anyhow::Result<String> {
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": mix.keystone.0, "domain": {"id": "default"}, "password": mix.keystone.1}}},
        "scope": {"project": {"id": mix.project}}}})
    .to_string();
    let req = format!(
        "POST /identity/v3/auth/tokens HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        mix.addr,
        body.len()
    );
    let mut conn = Conn::open(&mix.addr).await?;
    let (status, _) = conn.send(req.as_bytes()).await?;
    if status != 201 {
        bail!("keystone: HTTP {status} for the seeded user; seed again (bench/api.sh --reseed)");
    }
    conn.header("x-subject-token").ok_or_else(|| anyhow!("keystone: no X-Subject-Token"))
}

/// The whole HTTP/1.1 request for `q`, signed now.
fn request(mix: &Mix, q: &Query) -> String {
    let now = chrono::Utc::now();
    let nonce = || format!("{:032x}", rand::random::<u128>());
    let owned = |pairs: &[(&str, String)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).chain(q.params.iter().cloned()).collect()
    };
    let host = &mix.addr;
    match mix.dialect {
        Dialect::QingCloud => format!("GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n", signed_target(mix, q)),
        Dialect::Aliyun => {
            let mut p = owned(&[
                ("Action", "DescribeSnapshots".into()),
                ("Version", "2014-05-26".into()),
                ("AccessKeyId", mix.key.clone()),
                ("SignatureMethod", "HMAC-SHA1".into()),
                ("SignatureVersion", "1.0".into()),
                ("SignatureNonce", nonce()),
                ("Timestamp", now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                ("Format", "JSON".into()),
                ("RegionId", mix.zone.clone()),
                ("PageSize", "100".into()),
                ("PageNumber", "1".into()),
            ]);
            let qs = sign::canonical_query(&mut p);
            let mut target = format!("/?{qs}&Signature=");
            sign::encode(&sign::aliyun(&mix.secret, &qs), &mut target);
            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n")
        }
        Dialect::Tencent => {
            let mut p = owned(&[
                ("Action", "DescribeSnapshots".into()),
                ("SecretId", mix.key.clone()),
                ("Nonce", (rand::random::<u32>() % 1_000_000_000).to_string()),
                ("Timestamp", now.timestamp().to_string()),
                ("SignatureMethod", "HmacSHA256".into()),
                ("Region", mix.zone.clone()),
                ("limit", "100".into()),
                ("offset", "0".into()),
            ]);
            p.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let sig = sign::tencent_v2(&mix.secret, host, "/v2/index.php", &p);
            p.push(("Signature".into(), sig));
            let mut target = String::from("/v2/index.php?");
            for (i, (k, v)) in p.iter().enumerate() {
                if i > 0 {
                    target.push('&');
                }
                sign::encode(k, &mut target);
                target.push('=');
                sign::encode(v, &mut target);
            }
            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n")
        }
        Dialect::Tencent3 => {
            let mut body = serde_json::Map::new();
            body.insert("Limit".into(), 100.into());
            body.insert("Offset".into(), 0.into());
            let filters: Vec<Value> = q
                .params
                .iter()
                .filter_map(|(k, v)| k.strip_prefix("Filters.").map(|name| json!({"Name": name, "Values": [v]})))
                .collect();
            if !filters.is_empty() {
                body.insert("Filters".into(), filters.into());
            }
            let body = Value::Object(body).to_string();
            let ts = now.timestamp();
            let auth = sign::tc3(&mix.key, &mix.secret, host, ts, body.as_bytes());
            format!(
                "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nX-TC-Action: DescribeSnapshots\r\n\
                 X-TC-Version: 2017-03-12\r\nX-TC-Region: {}\r\nX-TC-Timestamp: {ts}\r\nAuthorization: {auth}\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                mix.zone,
                body.len()
            )
        }
        Dialect::Cinder => {
            let mut p = owned(&[("limit", "100".into()), ("with_count", "true".into())]);
            let qs = sign::canonical_query(&mut p);
            format!(
                "GET /v3/{}/snapshots/detail?{qs} HTTP/1.1\r\nHost: {host}\r\nX-Auth-Token: {}\r\n\
                 OpenStack-API-Version: volume 3.45\r\n\r\n",
                mix.project, mix.token
            )
        }
        Dialect::Evs => {
            let mut p = owned(&[("limit", "100".into()), ("offset", "0".into())]);
            let qs = sign::canonical_query(&mut p);
            let path = format!("/v2/{}/cloudsnapshots/detail", mix.project);
            let date = now.format("%Y%m%dT%H%M%SZ").to_string();
            let auth = sign::huawei(&mix.key, &mix.secret, host, &date, &path, &qs);
            format!("GET {path}?{qs} HTTP/1.1\r\nHost: {host}\r\nX-Sdk-Date: {date}\r\nAuthorization: {auth}\r\n\r\n")
        }
    }
}

/// The request target, signed now: `/iaas/?…&signature=…`.
fn signed_target(mix: &Mix, q: &Query) -> String {
    let mut p: Vec<(String, String)> = vec![
        ("access_key_id".into(), mix.key.clone()),
        ("action".into(), "DescribeSnapshots".into()),
        ("limit".into(), "100".into()),
        ("offset".into(), "0".into()),
        ("req_id".into(), format!("{:032x}", rand::random::<u128>())),
        ("signature_method".into(), "HmacSHA256".into()),
        ("signature_version".into(), "1".into()),
        ("time_stamp".into(), chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ("verbose".into(), "0".into()),
        ("version".into(), "1".into()),
        ("zone".into(), mix.zone.clone()),
    ];
    p.extend(q.params.iter().cloned());
    let qs = sign::canonical_query(&mut p);
    let sig = sign::signature(&mix.secret, "GET", "/iaas/", &qs);
    let mut target = format!("/iaas/?{qs}&signature=");
    sign::encode(&sig, &mut target);
    target
}

/// One keep-alive HTTP/1.1 connection; requests go one at a time.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Where the last answer's head ends in `buf`.
    head_end: usize,
}

impl Conn {
    async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: Vec::with_capacity(64 << 10), head_end: 0 })
    }

    /// A header of the last answer.
    fn header(&self, name: &str) -> Option<String> {
        let head = std::str::from_utf8(&self.buf[..self.head_end]).ok()?;
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// Send a whole request; returns (status, body).
    async fn send(&mut self, req: &[u8]) -> anyhow::Result<(u16, &[u8])> {
        self.stream.write_all(req).await?;
        self.buf.clear();
        let mut filled = 0;
        let (head_end, status, length) = loop {
            if self.buf.len() < filled + 16384 {
                self.buf.resize(filled + 16384, 0);
            }
            let n = self.stream.read(&mut self.buf[filled..]).await?;
            if n == 0 {
                bail!("server closed the connection");
            }
            filled += n;
            if let Some(end) = self.buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end])?;
                let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("bad status"))?;
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
                    })
                    .ok_or_else(|| anyhow!("answer without content-length"))?;
                break (end + 4, status, length);
            }
        };
        let total = head_end + length;
        if self.buf.len() < total {
            self.buf.resize(total, 0);
        }
        while filled < total {
            let n = self.stream.read(&mut self.buf[filled..total]).await?;
            if n == 0 {
                bail!("server closed the connection mid-body");
            }
            filled += n;
        }
        self.head_end = head_end;
        Ok((status, &self.buf[head_end..total]))
    }
}

/// The answer's `"total_count":N`, without parsing the 100 items (the client shares the CPU).
/// Full points carry a chain `total_count` of their own; the answer's is the last one
/// (serde_json writes the top-level keys in order, after `snapshot_set`).
fn total_count(body: &[u8], key: &[u8]) -> Option<u64> {
    let at = body.windows(key.len()).rposition(|w| w == key)? + key.len();
    let digits: Vec<u8> = body[at..].iter().copied().take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn check(mix: &Mix, q: &Query, status: u16, body: &[u8]) -> anyhow::Result<()> {
    let kinds = &mix.kinds;
    let ok = status == 200 && (mix.dialect != Dialect::QingCloud || body.windows(12).any(|w| w == b"\"ret_code\":0"));
    if !ok {
        bail!("{}: HTTP {status}: {}", kinds[q.kind], String::from_utf8_lossy(&body[..body.len().min(300)]));
    }
    match total_count(body, mix.dialect.total_key()) {
        Some(t) if t == q.total => Ok(()),
        t => bail!("{} {:?}: total_count {t:?}, expected {}", kinds[q.kind], q.params, q.total),
    }
}

fn cpu_of_pid(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    Some(ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

fn own_cpu() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

#[derive(Clone, Debug, Default)]
struct Step {
    concurrency: usize,
    requests: usize,
    rps: f64,
    p50: f64,
    p99: f64,
    max: f64,
    server_cpu: f64,
    client_cpu: f64,
    /// kind -> (p50, p99) ms
    kinds: BTreeMap<usize, (f64, f64)>,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

async fn step(mix: &std::rc::Rc<Mix>, o: &Opts, c: usize) -> anyhow::Result<Step> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(o.warmup);
    let end = measure_from + Duration::from_secs_f64(o.secs);
    let mut tasks = Vec::new();
    let cpu0 = std::cell::Cell::new((0.0, 0.0));
    for w in 0..c {
        let mix = mix.clone();
        let addr = o.addr.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let mut conn = Conn::open(&addr).await?;
            let mut lat: Vec<(usize, u32)> = Vec::with_capacity(1 << 16);
            let mut i = w * 7;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let kind = &mix.by_kind[i % mix.by_kind.len()];
                let q = &kind[(i / mix.by_kind.len() * 31 + w) % kind.len()];
                i += 1;
                let req = request(&mix, q);
                let t = Instant::now();
                let (status, body) = conn.send(req.as_bytes()).await?;
                let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                check(&mix, q, status, body)?;
                if t >= measure_from {
                    lat.push((q.kind, us));
                }
            }
            anyhow::Ok(lat)
        }));
    }
    // CPU is counted over the measured window only.
    tokio::time::sleep_until(measure_from.into()).await;
    cpu0.set((o.server_pid.and_then(cpu_of_pid).unwrap_or(0.0), own_cpu()));
    tokio::time::sleep_until(end.into()).await;
    let cpu1 = (o.server_pid.and_then(cpu_of_pid).unwrap_or(0.0), own_cpu());
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let mut per_kind: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for (k, us) in &all {
        per_kind.entry(*k).or_default().push(*us);
    }
    let mut lat: Vec<u32> = all.iter().map(|(_, us)| *us).collect();
    lat.sort_unstable();
    let kinds = per_kind
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_unstable();
            (k, (pct(&v, 0.5), pct(&v, 0.99)))
        })
        .collect();
    Ok(Step {
        concurrency: c,
        requests: lat.len(),
        rps: lat.len() as f64 / o.secs,
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        max: lat.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
        server_cpu: (cpu1.0 - cpu0.get().0) / o.secs,
        client_cpu: (cpu1.1 - cpu0.get().1) / o.secs,
        kinds,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn print_steps(title: &str, steps: &[Step]) {
    println!("{title}");
    println!(
        "{:>5} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "conc", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "server CPU", "client CPU"
    );
    for s in steps {
        println!(
            "{:>5} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>8.1} {:>9.0}% {:>9.0}%",
            s.concurrency,
            s.requests,
            s.rps,
            s.p50,
            s.p99,
            s.max,
            s.server_cpu * 100.0,
            s.client_cpu * 100.0
        );
    }
}

pub async fn run(o: Opts) -> anyhow::Result<bool> {
    let mut mix = load_mix(&o.data, o.dialect, &o.addr)?;
    // Wait for the server (it may still be opening the database).
    let t0 = Instant::now();
    while TcpStream::connect(&o.addr).await.is_err() {
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("no server on {} after 60 s", o.addr);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if mix.dialect == Dialect::Cinder {
        mix.token = keystone_token(&mix).await?;
    }
    let mix = std::rc::Rc::new(mix);
    println!("dialect: {}", mix.dialect.name());
    // Every query once, checked and timed: the first answer to a filter is the one no cache
    // of the server has seen (what a filter costs right after a write), reported apart.
    let mut conn = Conn::open(&o.addr).await?;
    let mut cold: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for q in mix.by_kind.iter().flatten() {
        let req = request(&mix, q);
        let t = Instant::now();
        let (status, body) = conn.send(req.as_bytes()).await?;
        cold.entry(q.kind).or_default().push(t.elapsed().as_micros() as u32);
        check(&mix, q, status, body)?;
    }
    drop(conn);
    println!("first request of each query (c=1, nothing cached for it yet), ms:");
    println!("{:<24} {:>8} {:>8} {:>8}", "kind", "queries", "p50", "max");
    for (k, mut v) in cold {
        v.sort_unstable();
        println!("{:<24} {:>8} {:>8.2} {:>8.2}", mix.kinds[k], v.len(), pct(&v, 0.5), pct(&v, 1.0));
    }
    println!();
    let mut runs: Vec<Vec<Step>> = Vec::new();
    for r in 0..o.runs {
        let mut steps = Vec::new();
        for &c in &o.concurrency {
            steps.push(step(&mix, &o, c).await?);
        }
        print_steps(&format!("run {}/{}:", r + 1, o.runs), &steps);
        runs.push(steps);
    }
    // Medians per concurrency (each figure on its own) over the runs.
    let med: Vec<Step> = (0..o.concurrency.len())
        .map(|i| {
            let col = |f: &dyn Fn(&Step) -> f64| median(runs.iter().map(|r| f(&r[i])).collect());
            Step {
                concurrency: o.concurrency[i],
                requests: col(&|s| s.requests as f64) as usize,
                rps: col(&|s| s.rps),
                p50: col(&|s| s.p50),
                p99: col(&|s| s.p99),
                max: col(&|s| s.max),
                server_cpu: col(&|s| s.server_cpu),
                client_cpu: col(&|s| s.client_cpu),
                kinds: runs[0][i]
                    .kinds
                    .keys()
                    .map(|k| {
                        let p50 = median(runs.iter().map(|r| r[i].kinds.get(k).map_or(f64::NAN, |x| x.0)).collect());
                        let p99 = median(runs.iter().map(|r| r[i].kinds.get(k).map_or(f64::NAN, |x| x.1)).collect());
                        (*k, (p50, p99))
                    })
                    .collect(),
            }
        })
        .collect();
    println!();
    print_steps(
        &format!("medians of {} run(s), {:.0} s per step after {:.0} s warm-up:", o.runs, o.secs, o.warmup),
        &med,
    );
    println!("\nper filter kind (medians), p50 / p99 ms:");
    print!("{:<24}", "kind");
    for s in &med {
        print!(" {:>15}", format!("c={}", s.concurrency));
    }
    println!();
    for (k, name) in mix.kinds.iter().enumerate() {
        print!("{name:<24}");
        for s in &med {
            let (a, b) = s.kinds.get(&k).copied().unwrap_or((f64::NAN, f64::NAN));
            print!(" {:>15}", format!("{a:.2} / {b:.2}"));
        }
        println!();
    }
    // Targets: the service must sustain the rate *and* the latency at one operating point.
    let both = med.iter().filter(|s| s.p99 <= o.p99_ms).max_by(|a, b| a.rps.total_cmp(&b.rps));
    let peak = med.iter().max_by(|a, b| a.rps.total_cmp(&b.rps)).cloned().unwrap_or_default();
    let c1 = med.iter().min_by_key(|s| s.concurrency).cloned().unwrap_or_default();
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    let d = mix.dialect.name();
    println!(
        "\ntargets ({d}; issue 16: p99 <= {} ms at one connection, >= {} signed requests/s on 2 cores):",
        o.p99_ms, o.rps
    );
    println!("{:<62} {:>10} {:>12} {:>6}", "figure", "measured", "target", "result");
    let mut verdicts = Vec::new();
    let p99_line = format!("{d}: p99 at c={} (one client)", c1.concurrency);
    verdicts.push(format!(
        "{:<62} {:>7.2} ms {:>9} ms {:>6}",
        p99_line,
        c1.p99,
        format!("<= {}", o.p99_ms),
        verdict(c1.p99 <= o.p99_ms)
    ));
    let peak_line = format!("{d}: peak req/s (c={}, p99 {:.2} ms)", peak.concurrency, peak.p99);
    verdicts.push(format!(
        "{:<62} {:>10.0} {:>12} {:>6}",
        peak_line,
        peak.rps,
        format!(">= {}", o.rps),
        verdict(peak.rps >= o.rps)
    ));
    let (both_rps, both_line) = match both {
        Some(s) => {
            (s.rps, format!("{d}: req/s with p99 <= {} ms (best: c={}, p99 {:.2})", o.p99_ms, s.concurrency, s.p99))
        }
        None => (0.0, format!("{d}: req/s with p99 <= {} ms (no step met the p99)", o.p99_ms)),
    };
    let pass = both_rps >= o.rps && c1.p99 <= o.p99_ms;
    verdicts.push(format!(
        "{:<62} {:>10.0} {:>12} {:>6}",
        both_line,
        both_rps,
        format!(">= {}", o.rps),
        verdict(both_rps >= o.rps)
    ));
    for v in &verdicts {
        println!("{v}");
    }
    if let Some(out) = &o.out {
        let steps = |v: &[Step]| -> Value {
            v.iter()
                .map(|s| {
                    json!({"concurrency": s.concurrency, "requests": s.requests, "rps": s.rps, "p50_ms": s.p50,
                           "p99_ms": s.p99, "max_ms": s.max, "server_cpu": s.server_cpu, "client_cpu": s.client_cpu,
                           "kinds": s.kinds.iter().map(|(k, (a, b))| json!({"kind": mix.kinds[*k], "p50_ms": a, "p99_ms": b})).collect::<Vec<_>>()})
                })
                .collect()
        };
        let doc = json!({
            "runs": runs.iter().map(|r| steps(r)).collect::<Vec<_>>(),
            "dialect": d,
            "medians": steps(&med),
            "pass": pass,
            "verdicts": verdicts,
        });
        std::fs::write(out, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(pass)
}
