//! The test-control admin API (issue 15), at `/admin/v1/…` on the server's listeners: move the
//! scheduler's clock (every slot on the way fires, in order), fire a policy's next slot now,
//! empty an account, make the next N jobs of a kind fail, hold jobs of a kind in `working`
//! until released. What moto and LocalStack give their users, so a CI job tests waiters,
//! retries and schedules without waiting for a wall clock.
//!
//! Off unless the config says `[admin] enabled = true`; then every call needs
//! `Authorization: Bearer <[admin] token>` (compared in constant time). Answers are JSON;
//! errors `{"error": code, "message": …}` with a real HTTP status.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use disksnap_service::control::job_kind;
use disksnap_service::{Caller, Fired, Scheduler, Service, ServiceError};
use serde::Deserialize;
use serde_json::{json, Value};

/// The shared state of the admin routes.
#[derive(Clone)]
pub struct Admin {
    pub service: Service,
    pub scheduler: Arc<Scheduler>,
    pub token: String,
}

/// How long a reset waits for the account's running jobs.
const RESET_WAIT: Duration = Duration::from_secs(30);

pub fn routes(admin: Admin) -> Router {
    Router::new()
        .route("/admin/v1/state", get(state))
        .route("/admin/v1/clock", post(clock))
        .route("/admin/v1/policies/{id}/fire", post(fire))
        .route("/admin/v1/accounts/{account}/reset", post(reset))
        .route("/admin/v1/jobs/fail", post(fail))
        .route("/admin/v1/jobs/hold", post(hold))
        .route("/admin/v1/jobs/release", post(release))
        .with_state(admin)
}

struct AdminError(StatusCode, &'static str, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1, "message": self.2}))).into_response()
    }
}

impl From<ServiceError> for AdminError {
    fn from(e: ServiceError) -> Self {
        let (status, code) = match &e {
            ServiceError::MissingParameter(_) | ServiceError::InvalidParameter { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_parameter")
            }
            ServiceError::NotFound { .. } | ServiceError::UnknownAccount(_) | ServiceError::UnknownZone(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            ServiceError::WrongState { .. } | ServiceError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "admin API call failed");
            return AdminError(status, code, "the call failed; the server's log says why".into());
        }
        AdminError(status, code, e.to_string())
    }
}

type Res = Result<Json<Value>, AdminError>;

fn bad(message: impl Into<String>) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, "invalid_parameter", message.into())
}

fn authorize(a: &Admin, headers: &HeaderMap) -> Result<(), AdminError> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !given.is_empty() && disksnap_api_common::sign::same(given.as_bytes(), a.token.as_bytes()) {
        return Ok(());
    }
    Err(AdminError(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "send Authorization: Bearer <the [admin] token of the server's config>".into(),
    ))
}

/// A JSON body, or `{}` when there is none.
fn body<T: for<'de> Deserialize<'de> + Default>(text: &str) -> Result<T, AdminError> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(text).map_err(|e| bad(format!("the body is not the JSON this call takes: {e}")))
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn fired_json(f: &[Fired]) -> Value {
    Value::Array(
        f.iter()
            .map(|f| {
                json!({
                    "account": f.account,
                    "policy": format!("sp-{}", f.policy_id),
                    "slot": time(&f.slot),
                    "jobs": f.jobs.iter().map(|j| format!("j-{j}")).collect::<Vec<_>>(),
                    "snapshots": f.snapshots.iter().map(|s| format!("ss-{s}")).collect::<Vec<_>>(),
                    "skipped": f.skipped.iter().map(|(v, why)| json!({"volume": format!("vol-{v}"), "reason": why})).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

fn clock_json(s: &Scheduler) -> Value {
    let now = s.now();
    json!({"now": time(&now), "offset_seconds": (now - Utc::now()).num_seconds()})
}

async fn state(State(a): State<Admin>, headers: HeaderMap) -> Res {
    authorize(&a, &headers)?;
    // the clock as the cluster has it: another node may have moved it
    a.scheduler.refresh_clock().await?;
    Ok(Json(json!({"clock": clock_json(&a.scheduler), "control": a.service.control_state()})))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    /// A duration: "90m", "2h", "3d", "45s".
    advance: Option<String>,
    /// An RFC 3339 time.
    set: Option<String>,
}

/// "3d", "2h", "90m", "45s" (or what the config's durations take).
pub fn parse_span(text: &str) -> Result<chrono::Duration, String> {
    let t = text.trim();
    if let Some(days) = t.strip_suffix('d') {
        let n: i64 = days.trim().parse().map_err(|_| format!("{text:?} is not a duration like 3d, 2h, 90m or 45s"))?;
        return Ok(chrono::Duration::days(n));
    }
    let d = crate::config::duration_text::parse(t)?;
    chrono::Duration::from_std(d).map_err(|e| e.to_string())
}

async fn clock(State(a): State<Admin>, headers: HeaderMap, text: String) -> Res {
    authorize(&a, &headers)?;
    let b: ClockBody = body(&text)?;
    let fired = match (b.advance, b.set) {
        (Some(by), None) => {
            let by = parse_span(&by).map_err(bad)?;
            a.scheduler.advance(by).await?
        }
        (None, Some(at)) => {
            let at = DateTime::parse_from_rfc3339(&at)
                .map_err(|e| bad(format!("set: {at:?} is not an RFC 3339 time like 2026-12-03T14:00:00Z: {e}")))?;
            a.scheduler.set_time(at.with_timezone(&Utc)).await?
        }
        _ => return Err(bad("give exactly one of \"advance\" (e.g. \"2h\") or \"set\" (an RFC 3339 time)")),
    };
    Ok(Json(json!({"clock": clock_json(&a.scheduler), "fired": fired_json(&fired)})))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountBody {
    account: Option<String>,
}

fn account(a: &Admin, given: Option<String>) -> Caller {
    Caller::new(given.unwrap_or_else(|| a.service.config().accounts[0].clone()))
}

async fn fire(State(a): State<Admin>, headers: HeaderMap, Path(id): Path<String>, text: String) -> Res {
    authorize(&a, &headers)?;
    let b: AccountBody = body(&text)?;
    let caller = account(&a, b.account);
    let f = a.scheduler.fire_next(&caller, &id).await?;
    Ok(Json(json!({"clock": clock_json(&a.scheduler), "fired": fired_json(&[f])})))
}

async fn reset(State(a): State<Admin>, headers: HeaderMap, Path(account): Path<String>) -> Res {
    authorize(&a, &headers)?;
    a.service.reset_account(&Caller::new(account.clone()), RESET_WAIT).await?;
    Ok(Json(json!({"account": account, "reset": true})))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
    kind: String,
    count: u32,
    error: Option<String>,
}

async fn fail(State(a): State<Admin>, headers: HeaderMap, text: String) -> Res {
    authorize(&a, &headers)?;
    let b: FailBody = body(&text)?;
    let kind = job_kind(&b.kind)?;
    let error = b.error.unwrap_or_else(|| "failed on purpose by the test-control API".into());
    a.service.fail_next_jobs(kind, b.count, &error)?;
    Ok(Json(json!({"control": a.service.control_state()})))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KindBody {
    kind: Option<String>,
}

async fn hold(State(a): State<Admin>, headers: HeaderMap, text: String) -> Res {
    authorize(&a, &headers)?;
    let b: KindBody = body(&text)?;
    let kind = job_kind(b.kind.as_deref().ok_or_else(|| bad("name the \"kind\" of job to hold"))?)?;
    a.service.hold_jobs(kind);
    Ok(Json(json!({"control": a.service.control_state()})))
}

async fn release(State(a): State<Admin>, headers: HeaderMap, text: String) -> Res {
    authorize(&a, &headers)?;
    let b: KindBody = body(&text)?;
    let kind = b.kind.as_deref().map(job_kind).transpose()?;
    a.service.release_jobs(kind);
    Ok(Json(json!({"control": a.service.control_state()})))
}

/// The CLI's side: one call to a running server's admin API over plain HTTP (the admin API
/// is for test rigs on the same host or network). Returns the answer's JSON.
pub async fn call(url: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        anyhow::anyhow!("--url {url:?}: the admin API is reached over http:// (e.g. http://127.0.0.1:7480)")
    })?;
    let host = rest.trim_end_matches('/');
    let mut conn = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the server at {url}: {e} (is `disksnap serve` running?)"))?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    conn.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(600), conn.read_to_end(&mut raw))
        .await
        .map_err(|_| anyhow::anyhow!("the server did not answer within 10 minutes"))??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(body) } else { body.to_string() };
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| json!({"message": body}));
    match status {
        200 => Ok(v),
        // The server's own fallback (no admin routes at all), not an admin "not found".
        404 if v.get("message").and_then(Value::as_str).is_none_or(|m| m.starts_with("no API is served")) => {
            anyhow::bail!(
                "the server at {url} answers no admin API: set [admin] enabled = true and a token in its config"
            )
        }
        _ => anyhow::bail!("{} (HTTP {status})", v.get("message").and_then(Value::as_str).unwrap_or(&body)),
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}
