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
use crate::writes::{self, Truth};

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
    /// Each step without the write stream, with it, or both (off first).
    pub writes: Vec<bool>,
    pub write_rate: f64,
    pub write_p99_ms: f64,
}

struct Query {
    kind: usize,
    params: Vec<(String, String)>,
    total: u64,
    /// Which class of the write stream's points it counts on top of `total` (writes::CLASSES).
    moves: Option<usize>,
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
    /// The write stream's QingCloud client and volumes, and the bounds its writes keep.
    stream: writes::Client,
    stream_volumes: Vec<String>,
    truth: std::sync::Arc<Truth>,
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
        let moves = q["moves"].as_str().and_then(writes::class_of);
        by_kind[k].push(Query { kind: k, params, total: q["total"].as_u64().unwrap_or(0), moves });
    }
    let stream_volumes: Vec<String> = doc["writes"]["volumes"]
        .as_array()
        .ok_or_else(|| anyhow!("{}: no stream volumes; seed again (bench/api.sh --reseed)", path.display()))?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let stream = writes::Client {
        addr: addr.to_string(),
        key: s("access_key_id")?,
        secret: s("secret_access_key")?,
        zone: s("zone")?,
    };
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
        stream,
        stream_volumes,
        truth: std::sync::Arc::new(Truth::new([0; 3])),
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
                ("Nonce", tencent_nonce().to_string()),
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

/// Tencent API v2's `Nonce`: a positive integer below 10^9 that the server remembers for its
/// clock window. Random ones collided (the birthday bound: ~50 000 requests in a window of 10^9
/// values, which the sweep sends in seconds, and the server rightly refused the reuse): a random
/// start, then one more per request, unique for 10^9 requests.
fn tencent_nonce() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| rand::random::<u32>() % 1_000_000_000);
    1 + (start + NEXT.fetch_add(1, Ordering::Relaxed) % 1_000_000_000) % 999_999_999
}

/// The DescribeSnapshots request target of `q`, signed now.
fn signed_target(mix: &Mix, q: &Query) -> String {
    let mut p: Vec<(String, String)> = vec![
        ("limit".into(), "100".into()),
        ("offset".into(), "0".into()),
        ("req_id".into(), format!("{:032x}", rand::random::<u128>())),
        ("verbose".into(), "0".into()),
    ];
    p.extend(q.params.iter().cloned());
    qingcloud_target(&mix.key, &mix.secret, &mix.zone, "DescribeSnapshots", &p)
}

/// A QingCloud request target for `action` with `params`, signed now: `/iaas/?…&signature=…`.
pub(crate) fn qingcloud_target(
    key: &str,
    secret: &str,
    zone: &str,
    action: &str,
    params: &[(String, String)],
) -> String {
    let mut p: Vec<(String, String)> = vec![
        ("access_key_id".into(), key.to_string()),
        ("action".into(), action.to_string()),
        ("signature_method".into(), "HmacSHA256".into()),
        ("signature_version".into(), "1".into()),
        ("time_stamp".into(), chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ("version".into(), "1".into()),
        ("zone".into(), zone.to_string()),
    ];
    p.extend(params.iter().cloned());
    let qs = sign::canonical_query(&mut p);
    let sig = sign::signature(secret, "GET", "/iaas/", &qs);
    let mut target = format!("/iaas/?{qs}&signature=");
    sign::encode(&sig, &mut target);
    target
}

/// One keep-alive HTTP/1.1 connection; requests go one at a time.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Where the last answer's head ends in `buf`.
    head_end: usize,
}

impl Conn {
    pub(crate) async fn open(addr: &str) -> anyhow::Result<Conn> {
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
    pub(crate) async fn send(&mut self, req: &[u8]) -> anyhow::Result<(u16, &[u8])> {
        self.stream.write_all(req).await?;
        // The buffer keeps its length between answers (bytes past `filled` are stale, never
        // read): zeroing ~100 KB again for every answer was client time too.
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
/// (serde_json writes the top-level keys in order, after `snapshot_set`) or, where the
/// top-level object opens with it (Cinder's and EVS's `{"count":N,"snapshots":[…]}`, keys in
/// byte order), the first: found there without scanning the ~100 KB of items back to front
/// (that scan was most of the client's time on those two, and the client one thread).
fn total_count(body: &[u8], key: &[u8]) -> Option<u64> {
    let at = match body.strip_prefix(b"{").filter(|rest| rest.starts_with(key)) {
        Some(_) => 1 + key.len(),
        None => body.windows(key.len()).rposition(|w| w == key)? + key.len(),
    };
    let digits: Vec<u8> = body[at..].iter().copied().take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// Check an answer to `q` sent at the write stream's version `since`: Ok(true) when its count
/// had to include a point of the stream's (the check saw a write).
fn check(mix: &Mix, q: &Query, since: usize, status: u16, body: &[u8]) -> anyhow::Result<bool> {
    let kinds = &mix.kinds;
    let ok = status == 200 && (mix.dialect != Dialect::QingCloud || body.windows(12).any(|w| w == b"\"ret_code\":0"));
    if !ok {
        bail!("{}: HTTP {status}: {}", kinds[q.kind], String::from_utf8_lossy(&body[..body.len().min(300)]));
    }
    let (lo, hi, moved) = match q.moves {
        Some(class) => mix.truth.bounds(since, class),
        None => (0, 0, false),
    };
    match total_count(body, mix.dialect.total_key()) {
        Some(t) if (q.total + lo..=q.total + hi).contains(&t) => Ok(moved),
        t => bail!(
            "{} {:?}: total_count {t:?}, expected {} (seeded {} + stream volumes {lo}..={hi}){}",
            kinds[q.kind],
            q.params,
            if lo == hi { format!("{}", q.total + lo) } else { format!("{}..={}", q.total + lo, q.total + hi) },
            q.total,
            match t {
                None => format!(": {}", String::from_utf8_lossy(&body[..body.len().min(300)])),
                Some(_) => String::new(),
            }
        ),
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
    /// Whether the write stream ran alongside.
    writes: bool,
    requests: usize,
    rps: f64,
    p50: f64,
    p99: f64,
    max: f64,
    server_cpu: f64,
    client_cpu: f64,
    /// kind -> (p50, p99) ms
    kinds: BTreeMap<usize, (f64, f64)>,
    /// List answers whose count had to include a point of the write stream's.
    moved: usize,
    /// The write stream: creates and deletes answered in the window, their p50, p99 and max
    /// (NaN without writes), refused writes and failed jobs, ticks with every volume busy.
    w_requests: usize,
    w_p50: f64,
    w_p99: f64,
    w_max: f64,
    w_failures: usize,
    w_idle: usize,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

async fn step(mix: &std::rc::Rc<Mix>, o: &Opts, c: usize, with_writes: bool) -> anyhow::Result<Step> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(o.warmup);
    let end = measure_from + Duration::from_secs_f64(o.secs);
    let stream = with_writes.then(|| {
        writes::spawn(
            mix.stream.clone(),
            mix.stream_volumes.clone(),
            o.write_rate,
            mix.truth.clone(),
            measure_from,
            end,
        )
    });
    let mut tasks = Vec::new();
    let cpu0 = std::cell::Cell::new((0.0, 0.0));
    for w in 0..c {
        let mix = mix.clone();
        let addr = o.addr.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let mut conn = Conn::open(&addr).await?;
            let mut lat: Vec<(usize, u32)> = Vec::with_capacity(1 << 16);
            let mut moved = 0usize;
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
                let since = mix.truth.version();
                let t = Instant::now();
                let (status, body) = conn.send(req.as_bytes()).await?;
                let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                moved += check(&mix, q, since, status, body)? as usize;
                if t >= measure_from {
                    lat.push((q.kind, us));
                }
            }
            anyhow::Ok((lat, moved))
        }));
    }
    // CPU is counted over the measured window only.
    tokio::time::sleep_until(measure_from.into()).await;
    cpu0.set((o.server_pid.and_then(cpu_of_pid).unwrap_or(0.0), own_cpu()));
    tokio::time::sleep_until(end.into()).await;
    let cpu1 = (o.server_pid.and_then(cpu_of_pid).unwrap_or(0.0), own_cpu());
    let mut all = Vec::new();
    let mut moved = 0;
    for t in tasks {
        let (lat, m) = t.await??;
        all.extend(lat);
        moved += m;
    }
    // The stream lets its last points settle and go (a few hundred ms) before it returns.
    let w = match stream {
        Some(h) => {
            let mut w = h.join().map_err(|_| anyhow!("the write stream panicked"))??;
            w.lat.sort_unstable();
            for f in &w.first_failures {
                eprintln!("write stream: {f}");
            }
            Some(w)
        }
        None => None,
    };
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
        writes: with_writes,
        moved,
        w_requests: w.as_ref().map_or(0, |w| w.lat.len()),
        w_p50: w.as_ref().map_or(f64::NAN, |w| pct(&w.lat, 0.5)),
        w_p99: w.as_ref().map_or(f64::NAN, |w| pct(&w.lat, 0.99)),
        w_max: w.as_ref().map_or(f64::NAN, |w| pct(&w.lat, 1.0)),
        w_failures: w.as_ref().map_or(0, |w| w.failures),
        w_idle: w.as_ref().map_or(0, |w| w.idle_ticks),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn print_steps(title: &str, steps: &[Step]) {
    println!("{title}");
    println!(
        "{:>5} {:>6} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10} {:>8} {:>8} {:>8} {:>7} {:>6}",
        "conc",
        "writes",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "server CPU",
        "client CPU",
        "writes n",
        "w p50",
        "w p99",
        "w fail",
        "moved"
    );
    for s in steps {
        println!(
            "{:>5} {:>6} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>8.1} {:>9.0}% {:>9.0}% {:>8} {:>8.2} {:>8.2} {:>7} {:>6}",
            s.concurrency,
            if s.writes { "on" } else { "off" },
            s.requests,
            s.rps,
            s.p50,
            s.p99,
            s.max,
            s.server_cpu * 100.0,
            s.client_cpu * 100.0,
            s.w_requests,
            s.w_p50,
            s.w_p99,
            s.w_failures,
            s.moved
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
    // The stream volumes' anchors (made on the first run over a data dir, kept after) count in
    // every unfiltered list, with writes off too.
    let base = writes::setup(&mix.stream, &mix.stream_volumes, mix.dialect == Dialect::QingCloud).await?;
    mix.truth = std::sync::Arc::new(Truth::new(base));
    let mix = std::rc::Rc::new(mix);
    println!("dialect: {}", mix.dialect.name());
    // Every query once, checked and timed: the first answer to a filter is the one no cache
    // of the server has seen (what a filter costs right after a write), reported apart.
    let mut conn = Conn::open(&o.addr).await?;
    let mut cold: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for q in mix.by_kind.iter().flatten() {
        let req = request(&mix, q);
        let since = mix.truth.version();
        let t = Instant::now();
        let (status, body) = conn.send(req.as_bytes()).await?;
        cold.entry(q.kind).or_default().push(t.elapsed().as_micros() as u32);
        check(&mix, q, since, status, body)?;
    }
    drop(conn);
    println!("first request of each query (c=1, nothing cached for it yet), ms:");
    println!("{:<24} {:>8} {:>8} {:>8}", "kind", "queries", "p50", "max");
    for (k, mut v) in cold {
        v.sort_unstable();
        println!("{:<24} {:>8} {:>8.2} {:>8.2}", mix.kinds[k], v.len(), pct(&v, 0.5), pct(&v, 1.0));
    }
    println!();
    // Each concurrency without the stream, then with it (the same order in every run).
    let plan: Vec<(usize, bool)> = o.concurrency.iter().flat_map(|&c| o.writes.iter().map(move |&w| (c, w))).collect();
    let mut runs: Vec<Vec<Step>> = Vec::new();
    for r in 0..o.runs {
        let mut steps = Vec::new();
        for &(c, w) in &plan {
            steps.push(step(&mix, &o, c, w).await?);
        }
        print_steps(&format!("run {}/{}:", r + 1, o.runs), &steps);
        runs.push(steps);
    }
    // Medians per step (each figure on its own) over the runs.
    let med: Vec<Step> = (0..plan.len())
        .map(|i| {
            let col = |f: &dyn Fn(&Step) -> f64| median(runs.iter().map(|r| f(&r[i])).collect());
            Step {
                concurrency: plan[i].0,
                writes: plan[i].1,
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
                // Not medians: every run's count, so one bad run shows.
                moved: runs.iter().map(|r| r[i].moved).min().unwrap_or(0),
                w_requests: col(&|s| s.w_requests as f64) as usize,
                w_p50: col(&|s| s.w_p50),
                w_p99: col(&|s| s.w_p99),
                w_max: col(&|s| s.w_max),
                w_failures: runs.iter().map(|r| r[i].w_failures).sum(),
                w_idle: runs.iter().map(|r| r[i].w_idle).sum(),
            }
        })
        .collect();
    println!();
    print_steps(
        &format!(
            "medians of {} run(s), {:.0} s per step after {:.0} s warm-up (w fail: summed over the runs, moved: the least of the runs):",
            o.runs, o.secs, o.warmup
        ),
        &med,
    );
    println!("\nper filter kind (medians), p50 / p99 ms:");
    print!("{:<24}", "kind");
    for s in &med {
        print!(" {:>15}", format!("c={}{}", s.concurrency, if s.writes { " +w" } else { "" }));
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
    let (verdicts, pass) = verdicts(mix.dialect.name(), &o, &med);
    println!(
        "\ntargets ({}; issue 16: p99 <= {} ms at one connection, >= {} signed requests/s on 2 cores; writes p99 <= {} ms):",
        mix.dialect.name(),
        o.p99_ms,
        o.rps,
        o.write_p99_ms
    );
    println!("{:<62} {:>10} {:>12} {:>6}", "figure", "measured", "target", "result");
    for v in &verdicts {
        println!("{v}");
    }
    if let Some(out) = &o.out {
        let num = |x: f64| if x.is_nan() { Value::Null } else { json!(x) };
        let steps = |v: &[Step]| -> Value {
            v.iter()
                .map(|s| {
                    json!({"concurrency": s.concurrency, "writes": s.writes, "requests": s.requests, "rps": s.rps,
                           "p50_ms": num(s.p50), "p99_ms": num(s.p99), "max_ms": num(s.max), "server_cpu": s.server_cpu,
                           "client_cpu": s.client_cpu, "moved": s.moved, "write_requests": s.w_requests,
                           "write_p50_ms": num(s.w_p50), "write_p99_ms": num(s.w_p99), "write_max_ms": num(s.w_max),
                           "write_failures": s.w_failures, "write_idle_ticks": s.w_idle,
                           "kinds": s.kinds.iter().map(|(k, (a, b))| json!({"kind": mix.kinds[*k], "p50_ms": num(*a), "p99_ms": num(*b)})).collect::<Vec<_>>()})
                })
                .collect()
        };
        let doc = json!({
            "runs": runs.iter().map(|r| steps(r)).collect::<Vec<_>>(),
            "dialect": mix.dialect.name(),
            "write_rate": o.write_rate,
            "medians": steps(&med),
            "pass": pass,
            "verdicts": verdicts,
        });
        std::fs::write(out, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(pass)
}

/// The PASS/MISS lines of dialect `d` and whether all passed. The list targets are judged on
/// the steps without writes when there are any (the issue's figures are for the list alone),
/// the write stream's on the steps with it: its p99 at the worst concurrency, no write refused,
/// and list answers that had to count the stream's points in every step (else the exactness
/// check saw no write and proves nothing).
fn verdicts(d: &str, o: &Opts, med: &[Step]) -> (Vec<String>, bool) {
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    let mut lines = Vec::new();
    let mut pass = true;
    let mut line = |lines: &mut Vec<String>, figure: String, measured: String, target: String, ok: bool| {
        pass &= ok;
        lines.push(format!("{figure:<62} {measured:>10} {target:>12} {:>6}", verdict(ok)));
    };
    let list: Vec<&Step> =
        if med.iter().any(|s| !s.writes) { med.iter().filter(|s| !s.writes).collect() } else { med.iter().collect() };
    let tag = |s: &Step| if s.writes { ", writes on" } else { "" };
    if let Some(c1) = list.iter().min_by_key(|s| s.concurrency) {
        line(
            &mut lines,
            format!("{d}: p99 at c={} (one client{})", c1.concurrency, tag(c1)),
            format!("{:.2} ms", c1.p99),
            format!("<= {} ms", o.p99_ms),
            c1.p99 <= o.p99_ms,
        );
    }
    if let Some(peak) = list.iter().max_by(|a, b| a.rps.total_cmp(&b.rps)) {
        line(
            &mut lines,
            format!("{d}: peak req/s (c={}, p99 {:.2} ms{})", peak.concurrency, peak.p99, tag(peak)),
            format!("{:.0}", peak.rps),
            format!(">= {}", o.rps),
            peak.rps >= o.rps,
        );
    }
    let (both_rps, both_line) = match list.iter().filter(|s| s.p99 <= o.p99_ms).max_by(|a, b| a.rps.total_cmp(&b.rps)) {
        Some(s) => {
            (s.rps, format!("{d}: req/s with p99 <= {} ms (best: c={}, p99 {:.2})", o.p99_ms, s.concurrency, s.p99))
        }
        None => (0.0, format!("{d}: req/s with p99 <= {} ms (no step met the p99)", o.p99_ms)),
    };
    line(&mut lines, both_line, format!("{both_rps:.0}"), format!(">= {}", o.rps), both_rps >= o.rps);
    let on: Vec<&Step> = med.iter().filter(|s| s.writes).collect();
    if let Some(worst) = on.iter().max_by(|a, b| a.w_p99.total_cmp(&b.w_p99)) {
        let failures: usize = on.iter().map(|s| s.w_failures).sum();
        line(
            &mut lines,
            format!(
                "{d}: write p99 at {} writes/s (worst: c={}; {} refused or failed)",
                o.write_rate, worst.concurrency, failures
            ),
            format!("{:.2} ms", worst.w_p99),
            format!("<= {} ms", o.write_p99_ms),
            worst.w_p99 <= o.write_p99_ms && failures == 0,
        );
        let least = on.iter().map(|s| s.moved).min().unwrap_or(0);
        line(
            &mut lines,
            format!("{d}: exact lists with writes on (answers that counted a write, least step)"),
            format!("{least}"),
            "> 0".into(),
            least > 0,
        );
    }
    (lines, pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Opts {
        Opts {
            dialect: Dialect::Cinder,
            addr: String::new(),
            data: Default::default(),
            concurrency: vec![1],
            secs: 1.0,
            warmup: 0.0,
            runs: 1,
            server_pid: None,
            out: None,
            p99_ms: 6.0,
            rps: 4000.0,
            writes: vec![false, true],
            write_rate: 20.0,
            write_p99_ms: 50.0,
        }
    }

    fn step(writes: bool, rps: f64, w_p99: f64, moved: usize) -> Step {
        Step { concurrency: 1, writes, rps, p99: 1.0, w_p99, moved, ..Default::default() }
    }

    #[test]
    fn tencent_nonces_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            let n = tencent_nonce();
            assert!((1..1_000_000_000).contains(&n));
            assert!(seen.insert(n), "{n} twice");
        }
    }

    #[test]
    fn total_count_first_or_last() {
        let key = Dialect::Cinder.total_key();
        assert_eq!(total_count(br#"{"count":12,"snapshots":[{"count":3}]}"#, key), Some(12));
        assert_eq!(total_count(br#"{"snapshots":[{"count":3}],"count":12}"#, key), Some(12));
        let qc = Dialect::QingCloud.total_key();
        assert_eq!(total_count(br#"{"snapshot_set":[{"total_count":3}],"total_count":7}"#, qc), Some(7));
        assert_eq!(total_count(br#"{"snapshot_set":[]}"#, qc), None);
    }

    #[test]
    fn list_targets_on_steps_without_writes_and_the_stream_on_the_others() {
        let (lines, pass) =
            verdicts("cinder", &opts(), &[step(false, 4500.0, f64::NAN, 0), step(true, 3000.0, 12.0, 40)]);
        assert!(pass, "{lines:#?}");
        assert_eq!(lines.len(), 5);
        assert!(lines[1].contains("4500") && lines[3].contains("12.00 ms"), "{lines:#?}");
        // a slow write, a failed one, or an exactness check that saw no write: MISS
        let (lines, pass) =
            verdicts("cinder", &opts(), &[step(false, 4500.0, f64::NAN, 0), step(true, 3000.0, 51.0, 40)]);
        assert!(!pass && lines[3].ends_with("MISS"), "{lines:#?}");
        let mut failed = step(true, 3000.0, 12.0, 40);
        failed.w_failures = 1;
        assert!(!verdicts("cinder", &opts(), &[step(false, 4500.0, f64::NAN, 0), failed]).1);
        let (lines, pass) =
            verdicts("cinder", &opts(), &[step(false, 4500.0, f64::NAN, 0), step(true, 3000.0, 12.0, 0)]);
        assert!(!pass && lines[4].ends_with("MISS"), "{lines:#?}");
        // writes off only: no write lines
        assert_eq!(verdicts("cinder", &opts(), &[step(false, 4500.0, f64::NAN, 0)]).0.len(), 3);
    }
}
