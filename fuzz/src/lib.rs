//! What the fuzz targets share: a request built from fuzz input, a real `ApiContext` (a real
//! service in a temp dir and a key ring with one fixed key per vendor), and the fix-ups that
//! let the fuzzer reach a verifier's later stages (a known key, a fresh time, a correct
//! signature) as well as its refusals.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use disksnap_api_common::{ApiContext, KeyRing, NonceCache, ProjectUser, RawRequest, RequestId};

pub const KEY: &str = "FUZZKEYID";
pub const SECRET: &str = "fuzz-secret";
pub const ACCOUNT: &str = "dev";

/// A request as the fuzzer writes it. Header names and values the HTTP layer would refuse
/// are dropped, as hyper would never hand them to a dialect.
#[derive(Arbitrary, Debug, Clone)]
pub struct Req {
    pub method: u8,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn method(&self) -> Method {
        match self.method % 6 {
            0 => Method::GET,
            1 => Method::POST,
            2 => Method::PUT,
            3 => Method::DELETE,
            4 => Method::PATCH,
            _ => Method::HEAD,
        }
    }

    pub fn raw(&self) -> RawRequest {
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_bytes(v)) {
                headers.append(k, v);
            }
        }
        RawRequest {
            method: self.method(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers,
            body: Bytes::copy_from_slice(&self.body),
            request_id: RequestId("fuzz".into()),
        }
    }
}

/// Set (replace) a header on a request, if the value is a valid header value.
pub fn set_header(raw: &mut RawRequest, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        raw.headers.insert(HeaderName::from_static(name), v);
    }
}

/// Which time the fix-up puts in the request's timestamp.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Time {
    /// Leave whatever the input carries.
    AsSent,
    Now,
    /// Now plus this many seconds (either way, inside or outside a window).
    Offset(i32),
}

impl Time {
    pub fn at(self) -> Option<chrono::DateTime<chrono::Utc>> {
        let now = chrono::Utc::now();
        match self {
            Time::AsSent => None,
            Time::Now => Some(now),
            Time::Offset(s) => Some(now + chrono::Duration::seconds(s as i64)),
        }
    }
}

/// The fix-ups a target may apply before verifying.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Fix {
    /// Use the ring's known key id.
    pub key: bool,
    pub time: Time,
    /// Sign what is finally sent with the known secret (so only the later checks can refuse).
    pub sign: bool,
}

pub fn keys() -> KeyRing {
    let mut k = KeyRing::default();
    for v in [
        disksnap_dialect_qingcloud::KEYS,
        disksnap_dialect_aliyun::KEYS,
        disksnap_dialect_tencent::KEYS,
        disksnap_dialect_openstack::HUAWEI_KEYS,
    ] {
        k.add(v, KEY, ACCOUNT, SECRET).expect("one key per vendor");
    }
    k.add_user(
        disksnap_dialect_openstack::USERS,
        ProjectUser {
            account: ACCOUNT.into(),
            project_id: "0123456789abcdef0123456789abcdef".into(),
            project_name: "dev".into(),
            user: "admin".into(),
            password: "pw".into(),
        },
    )
    .expect("one project");
    k.add_user(
        disksnap_dialect_openstack::USERS,
        ProjectUser {
            account: "other".into(),
            project_id: "fedcba9876543210fedcba9876543210".into(),
            project_name: "other".into(),
            user: "admin".into(),
            password: "pw2".into(),
        },
    )
    .expect("second project");
    k
}

fn data_dir() -> PathBuf {
    // One directory per process; those of processes that are gone are removed first, so runs
    // (each a process) do not pile up.
    let base = std::env::temp_dir().join("disksnap-fuzz");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok();
            if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    base.join(std::process::id().to_string())
}

/// A real `ApiContext`: the service is opened once per process (the verifiers never touch
/// it, but its type is what they take).
pub fn base_ctx() -> &'static ApiContext {
    static CTX: OnceLock<ApiContext> = OnceLock::new();
    CTX.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = data_dir();
        let svc = rt
            .block_on(disksnap_service::Service::open(disksnap_service::ServiceConfig::new(dir)))
            .expect("service opens");
        // The pool belongs to this runtime; keep it for the process's life.
        std::mem::forget(rt);
        ApiContext::new(svc, keys())
    })
}

/// Run a verifier to its end. They are async (a cluster checks nonces in its database), but
/// the fuzzed service is a single server whose nonce check never waits: any executor will do.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

/// Open the service (fuzz_target!'s `init`): a first open may take seconds on a busy disk
/// (schema migration, fsyncs), which libFuzzer would otherwise count against the first input.
pub fn init() {
    with_ctx(|_| ());
}

thread_local! {
    static CTX: RefCell<(ApiContext, u32)> = RefCell::new((base_ctx().clone(), 0));
}

/// The context for one input. Its nonce cache is renewed every 4096 inputs: replays are still
/// reached (the fuzzer repeats inputs), but the cache, which legitimately holds a window's
/// worth of nonces, does not grow over a run of millions of inputs.
pub fn with_ctx<R>(f: impl FnOnce(&ApiContext) -> R) -> R {
    CTX.with(|c| {
        let mut c = c.borrow_mut();
        c.1 += 1;
        if c.1 % 4096 == 0 {
            c.0.nonces = std::sync::Arc::new(NonceCache::default());
        }
        f(&c.0)
    })
}

/// With DISKSNAP_FUZZ_OUTCOMES set, print each verification's outcome (`ok` or the refusal)
/// to stderr, so replaying a corpus (`TARGET corpus/TARGET -runs=0`) shows which stages the
/// fuzzer reached; otherwise nothing.
pub fn note(outcome: impl FnOnce() -> String) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("DISKSNAP_FUZZ_OUTCOMES").is_some()) {
        eprintln!("outcome: {}", outcome());
    }
}
