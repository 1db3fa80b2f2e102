//! 51idc REST (dialects.md §3): `/v2/zone/{zone}/volume_snapshots…`, the job endpoint and
//! `/v2/zone/{zone}/volumes`, behind OAuth2 client-credentials tokens issued for the account's
//! QingCloud key pair. JSON bodies, comma-joined list parameters, real HTTP statuses.

mod auth;
mod handlers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use disksnap_api_common::{encode, ApiContext, RawRequest};
use serde_json::{json, Value};

use crate::error::QcError;
use crate::params::Params;

/// Per-process state: issued tokens and the request that made each job (the Job object shows
/// `request_id`; kept in memory, so after a restart a job shows the id of the request reading it).
pub struct Rest51 {
    pub ctx: ApiContext,
    pub tokens: auth::Tokens,
    job_requests: Mutex<HashMap<String, String>>,
}

/// Everything under `/v2/zone` is this dialect's, whatever its segments hold (empty ones, bytes
/// that are not UTF-8): [`endpoint`] reads the path itself, so no such request falls through to
/// the OpenStack `/v2/{project}/…` routes or to axum's plain-text rejections.
pub fn routes(ctx: ApiContext) -> Router {
    let st = Arc::new(Rest51 { ctx, tokens: auth::Tokens::default(), job_requests: Mutex::new(HashMap::new()) });
    Router::new()
        .route("/v2/oauth2/token", any(auth::token))
        .route("/v2/zone", any(endpoint))
        .route("/v2/zone/", any(endpoint))
        .route("/v2/zone/{*rest}", any(endpoint))
        .with_state(st)
}

/// A 51idc path, read from its segments after `/v2/zone/`.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Snapshots {
        zone: String,
    },
    /// `volume_snapshots/{rest}`: an action name or the ids to delete (possibly empty).
    SnapshotSub {
        zone: String,
        rest: String,
    },
    Job {
        zone: String,
        id: String,
    },
    Volumes {
        zone: String,
    },
    Unknown,
}

impl Route {
    /// Err when a segment does not decode to UTF-8.
    fn parse(path: &str) -> Result<Route, QcError> {
        let Some(rest) = path.strip_prefix("/v2/zone/") else {
            return Ok(Route::Unknown);
        };
        let segs = rest
            .split('/')
            .map(|s| {
                encode::decode_path_segment(s).ok_or_else(|| {
                    QcError::invalid(format!(
                        "the path segment [{s}] is not valid UTF-8 once percent-decoded; send UTF-8 ids and zone names"
                    ))
                })
            })
            .collect::<Result<Vec<String>, QcError>>()?;
        Ok(match segs.as_slice() {
            [zone, what] if what == "volume_snapshots" => Route::Snapshots { zone: zone.clone() },
            [zone, what, rest] if what == "volume_snapshots" => {
                Route::SnapshotSub { zone: zone.clone(), rest: rest.clone() }
            }
            [zone, what, id] if what == "job" => Route::Job { zone: zone.clone(), id: id.clone() },
            [zone, what] if what == "volumes" => Route::Volumes { zone: zone.clone() },
            _ => Route::Unknown,
        })
    }
}

async fn endpoint(State(st): State<Arc<Rest51>>, req: Request) -> Response {
    let route = match Route::parse(req.uri().path()) {
        Ok(r) => r,
        Err(e) => {
            let rid = req.extensions().get::<disksnap_api_common::RequestId>().map(|r| r.0.clone()).unwrap_or_default();
            return error_response(&e, &rid);
        }
    };
    match route {
        Route::Snapshots { zone } => snapshots(st, zone, req).await,
        Route::SnapshotSub { zone, rest } => snapshot_sub(st, zone, rest, req).await,
        Route::Job { zone, id } => job(st, zone, id, req).await,
        Route::Volumes { zone } => volumes(st, zone, req).await,
        Route::Unknown => unknown_path(req).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn routes_do_not_conflict() {
        // Route conflicts only show when the router is built: build it.
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let svc =
            rt.block_on(disksnap_service::Service::open(disksnap_service::ServiceConfig::new(dir.path()))).unwrap();
        let ctx = disksnap_api_common::ApiContext::new(svc, Default::default());
        let _ = crate::routes(ctx);
    }

    #[test]
    fn every_path_under_v2_zone_is_read_here() {
        use super::Route;
        let z = || "pek3a".to_string();
        let cases = [
            ("/v2/zone/pek3a/volume_snapshots", Route::Snapshots { zone: z() }),
            ("/v2/zone/pek3a/volume_snapshots/", Route::SnapshotSub { zone: z(), rest: "".into() }),
            ("/v2/zone/pek3a/volume_snapshots/ss-a,ss-b", Route::SnapshotSub { zone: z(), rest: "ss-a,ss-b".into() }),
            ("/v2/zone/pek3a/volume_snapshots/a%2Cb", Route::SnapshotSub { zone: z(), rest: "a,b".into() }),
            ("/v2/zone/pek3a/job/", Route::Job { zone: z(), id: "".into() }),
            ("/v2/zone/pek3a/job/j-1", Route::Job { zone: z(), id: "j-1".into() }),
            ("/v2/zone/pek3a/volumes", Route::Volumes { zone: z() }),
            ("/v2/zone//volumes", Route::Volumes { zone: "".into() }),
            ("/v2/zone/pek3a", Route::Unknown),
            ("/v2/zone/pek3a/", Route::Unknown),
            ("/v2/zone/", Route::Unknown),
            ("/v2/zone", Route::Unknown),
            ("/v2/zone/pek3a/volume_snapshots/a/b", Route::Unknown),
            ("/v2/zone/pek3a/volumes/", Route::Unknown),
        ];
        for (path, want) in cases {
            assert_eq!(Route::parse(path).unwrap(), want, "{path}");
        }
        let e = Route::parse("/v2/zone/%ff/volume_snapshots").unwrap_err();
        assert_eq!((e.ret_code(), e.http_status()), (1100, 400));
    }
}

/// A verified, parsed request: who, which zone (canonical and as written), its parameters.
pub struct Call {
    pub account: String,
    pub zone: String,
    pub zone_as_written: String,
    pub method: Method,
    pub params: Params,
    pub body: Value,
    pub request_id: String,
}

async fn prepare(st: &Rest51, zone: &str, req: Request) -> Result<Call, (QcError, String)> {
    let raw = RawRequest::read(req).await.map_err(|m| (QcError::invalid(m), String::new()))?;
    let rid = raw.request_id.0.clone();
    let fail = |e: QcError| (e, rid.clone());
    let account = st.tokens.account_of(&raw.headers).map_err(fail)?;
    let zone_c = st.ctx.service.resolve_zone(zone).map_err(|e| fail(e.into()))?;
    // `+` is literal in this dialect: the SDK does not form-encode values (dialects.md §3.4).
    let params = Params(encode::parse_pairs(&raw.query, |_| true));
    let body = if raw.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw.body)
            .map_err(|e| fail(QcError::invalid(format!("the request body is not valid JSON: {e}"))))?
    };
    if !(body.is_null() || body.is_object()) {
        return Err(fail(QcError::invalid("the request body must be a JSON object")));
    }
    Ok(Call {
        account,
        zone: zone_c,
        zone_as_written: zone.to_string(),
        method: raw.method,
        params,
        body,
        request_id: rid,
    })
}

fn error_response(e: &QcError, request_id: &str) -> Response {
    e.log(request_id);
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"code": e.ret_code().to_string(), "message": e.message(request_id)}});
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    resp
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn method_not_allowed(method: &Method, path: &str, allowed: &str) -> QcError {
    QcError::UnknownAction(format!("{method} {path} (allowed: {allowed})"))
}

/// Run a handler on a prepared call and render either outcome.
async fn run<F, Fut>(st: Arc<Rest51>, zone: String, req: Request, f: F) -> Response
where
    F: FnOnce(Arc<Rest51>, Call) -> Fut,
    Fut: std::future::Future<Output = Result<Value, QcError>>,
{
    let call = match prepare(&st, &zone, req).await {
        Ok(c) => c,
        Err((e, rid)) => return error_response(&e, &rid),
    };
    let rid = call.request_id.clone();
    match f(st, call).await {
        Ok(v) => ok(v),
        Err(e) => error_response(&e, &rid),
    }
}

async fn snapshots(st: Arc<Rest51>, zone: String, req: Request) -> Response {
    let m = req.method().clone();
    let path = req.uri().path().to_string();
    run(st, zone, req, move |st, call| async move {
        match m {
            Method::GET => handlers::list_snapshots(&st, &call).await,
            Method::POST => handlers::create_snapshots(&st, &call).await,
            _ => Err(method_not_allowed(&m, &path, "GET, POST")),
        }
    })
    .await
}

async fn snapshot_sub(st: Arc<Rest51>, zone: String, rest: String, req: Request) -> Response {
    let m = req.method().clone();
    let path = req.uri().path().to_string();
    run(st, zone, req, move |st, call| async move {
        match (&m, rest.as_str()) {
            (&Method::POST, "apply") => handlers::apply(&st, &call).await,
            (&Method::POST, "capture_instance") => handlers::capture_instance(&st, &call).await,
            (&Method::POST, "create_volume") => handlers::create_volume(&st, &call).await,
            (_, "apply" | "capture_instance" | "create_volume") => Err(method_not_allowed(&m, &path, "POST")),
            (&Method::DELETE, ids) => handlers::delete(&st, &call, ids).await,
            _ => Err(method_not_allowed(&m, &path, "DELETE")),
        }
    })
    .await
}

async fn job(st: Arc<Rest51>, zone: String, job_id: String, req: Request) -> Response {
    let m = req.method().clone();
    let path = req.uri().path().to_string();
    run(st, zone, req, move |st, call| async move {
        if m != Method::GET {
            return Err(method_not_allowed(&m, &path, "GET"));
        }
        if job_id.trim().is_empty() {
            return Err(QcError::invalid("name the job in the path: /v2/zone/{zone}/job/j-…"));
        }
        handlers::job(&st, &call, &job_id).await
    })
    .await
}

async fn volumes(st: Arc<Rest51>, zone: String, req: Request) -> Response {
    let m = req.method().clone();
    let path = req.uri().path().to_string();
    run(st, zone, req, move |st, call| async move {
        if m != Method::GET {
            return Err(method_not_allowed(&m, &path, "GET"));
        }
        handlers::list_volumes(&st, &call).await
    })
    .await
}

async fn unknown_path(req: Request) -> Response {
    let e = QcError::UnknownAction(format!("{} {}", req.method(), req.uri().path()));
    let rid = req.extensions().get::<disksnap_api_common::RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    error_response(&e, &rid)
}

impl Rest51 {
    pub fn remember_job(&self, job: &str, request_id: &str) {
        self.job_requests.lock().unwrap_or_else(|p| p.into_inner()).insert(job.to_string(), request_id.to_string());
    }

    pub fn request_of(&self, job: &str) -> Option<String> {
        self.job_requests.lock().unwrap_or_else(|p| p.into_inner()).get(job).cloned()
    }
}
