//! 51idc REST (dialects.md §3): `/v2/zone/{zone}/volume_snapshots…`, the job endpoint and
//! `/v2/zone/{zone}/volumes`, behind OAuth2 client-credentials tokens issued for the account's
//! QingCloud key pair. JSON bodies, comma-joined list parameters, real HTTP statuses.

mod auth;
mod handlers;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use disksnap_api_common::{encode, pipeline, ApiContext, Dialect, EndpointName, KeyKind, RawRequest, RequestId};
use disksnap_service::{Caller, Kind, StateKind};
use serde_json::{json, Value};

use crate::error::QcError;
use crate::params::Params;

/// The dialect's state. Issued tokens and the request that made each job (the Job object
/// shows `request_id`) are service request state, kept in the metadata store, so a restart
/// keeps them.
pub struct Rest51 {
    pub ctx: ApiContext,
}

/// Everything under `/v2/zone` is this dialect's, whatever its segments hold (empty ones, bytes
/// that are not UTF-8): the pipeline's frame reads the path itself ([`Route::parse`]), so no
/// such request falls through to the OpenStack `/v2/{project}/…` routes or to axum's
/// plain-text rejections.
pub fn routes(ctx: ApiContext) -> Router {
    let st = Arc::new(Rest51 { ctx });
    Router::new()
        .route("/v2/oauth2/token", any(auth::token))
        .route("/v2/zone", any(pipeline::handler::<Rest51>))
        .route("/v2/zone/", any(pipeline::handler::<Rest51>))
        .route("/v2/zone/{*rest}", any(pipeline::handler::<Rest51>))
        .with_state(st)
}

/// A 51idc path, read from its segments after `/v2/zone/`.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
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

/// What a 51idc path and method name.
#[derive(Debug, PartialEq, Eq)]
pub enum Op {
    ListSnapshots,
    CreateSnapshots,
    Apply,
    CaptureInstance,
    CreateVolume,
    /// `DELETE volume_snapshots/{ids}`: the ids as written (comma-joined, possibly empty).
    Delete(String),
    Job(String),
    ListVolumes,
}

impl EndpointName for Op {
    fn name(&self) -> String {
        match self {
            Op::ListSnapshots => "volume_snapshots.list",
            Op::CreateSnapshots => "volume_snapshots.create",
            Op::Apply => "volume_snapshots.apply",
            Op::CaptureInstance => "volume_snapshots.capture_instance",
            Op::CreateVolume => "volume_snapshots.create_volume",
            Op::Delete(_) => "volume_snapshots.delete",
            Op::Job(_) => "job.show",
            Op::ListVolumes => "volumes.list",
        }
        .to_string()
    }
}

impl Dialect for Rest51 {
    const NAME: &'static str = "51idc";
    const KEY_KIND: KeyKind = crate::KEYS;
    /// Bearer tokens carry no client time; their lifetime is the config's `token_lifetime`.
    const CLOCK_WINDOW: Duration = Duration::ZERO;
    /// The path, read once: the route it names, or why it names none.
    type Frame = Result<Route, QcError>;
    type Caller = Call;

    /// 51idc shows QingCloud's ids.
    fn show_id(kind: Kind, bare: &str) -> String {
        crate::ids::display(kind, bare)
    }

    type Endpoint = Op;
    type Error = QcError;

    fn frame(&self, raw: &RawRequest) -> Self::Frame {
        Route::parse(&raw.path)
    }

    /// A path that names no endpoint is refused before the token is read (as it always was):
    /// a client with a wrong base URL learns that first.
    async fn verify(&self, raw: &RawRequest, route: &mut Self::Frame) -> Result<Call, QcError> {
        let zone = match route {
            Err(e) => return Err(e.clone()),
            Ok(Route::Unknown) => return Err(QcError::UnknownAction(format!("{} {}", raw.method, raw.path))),
            Ok(
                Route::Snapshots { zone }
                | Route::SnapshotSub { zone, .. }
                | Route::Job { zone, .. }
                | Route::Volumes { zone },
            ) => zone.clone(),
        };
        let account = auth::account_of(&self.ctx, &raw.headers).await?;
        let zone_c = self.ctx.service.resolve_zone(&zone)?;
        // `+` is literal in this dialect: the SDK does not form-encode values (dialects.md §3.4).
        let params = Params(encode::parse_pairs(&raw.query, |_| true));
        let body = if raw.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw.body)
                .map_err(|e| QcError::invalid(format!("the request body is not valid JSON: {e}")))?
        };
        if !(body.is_null() || body.is_object()) {
            return Err(QcError::invalid("the request body must be a JSON object"));
        }
        Ok(Call {
            account,
            zone: zone_c,
            zone_as_written: zone,
            method: raw.method.clone(),
            params,
            body,
            request_id: raw.request_id.0.clone(),
        })
    }

    fn endpoint(&self, raw: &RawRequest, route: &mut Self::Frame, _call: &Call) -> Result<Op, QcError> {
        let m = &raw.method;
        let not_allowed = |allowed: &str| QcError::UnknownAction(format!("{m} {} (allowed: {allowed})", raw.path));
        match route {
            Ok(Route::Snapshots { .. }) => match *m {
                Method::GET => Ok(Op::ListSnapshots),
                Method::POST => Ok(Op::CreateSnapshots),
                _ => Err(not_allowed("GET, POST")),
            },
            Ok(Route::SnapshotSub { rest, .. }) => match (m, rest.as_str()) {
                (&Method::POST, "apply") => Ok(Op::Apply),
                (&Method::POST, "capture_instance") => Ok(Op::CaptureInstance),
                (&Method::POST, "create_volume") => Ok(Op::CreateVolume),
                (_, "apply" | "capture_instance" | "create_volume") => Err(not_allowed("POST")),
                (&Method::DELETE, ids) => Ok(Op::Delete(ids.to_string())),
                _ => Err(not_allowed("DELETE")),
            },
            Ok(Route::Job { id, .. }) => {
                if *m != Method::GET {
                    return Err(not_allowed("GET"));
                }
                if id.trim().is_empty() {
                    return Err(QcError::invalid("name the job in the path: /v2/zone/{zone}/job/j-…"));
                }
                Ok(Op::Job(id.clone()))
            }
            Ok(Route::Volumes { .. }) => {
                if *m != Method::GET {
                    return Err(not_allowed("GET"));
                }
                Ok(Op::ListVolumes)
            }
            // verify refused these already
            Ok(Route::Unknown) => Err(QcError::UnknownAction(format!("{m} {}", raw.path))),
            Err(e) => Err(e.clone()),
        }
    }

    async fn handle(&self, c: pipeline::Call<'_, Self>) -> Result<Response, QcError> {
        let call = &c.caller;
        let v = match &c.endpoint {
            Op::ListSnapshots => handlers::list_snapshots(self, call).await,
            Op::CreateSnapshots => handlers::create_snapshots(self, call).await,
            Op::Apply => handlers::apply(self, call).await,
            Op::CaptureInstance => handlers::capture_instance(self, call).await,
            Op::CreateVolume => handlers::create_volume(self, call).await,
            Op::Delete(ids) => handlers::delete(self, call, ids).await,
            Op::Job(id) => handlers::job(self, call, id).await,
            Op::ListVolumes => handlers::list_volumes(self, call).await,
        }?;
        Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response())
    }

    fn error_response(&self, _route: &Self::Frame, e: &QcError, request_id: &RequestId) -> Response {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"error": {"code": e.ret_code().to_string(), "message": e.message(&request_id.0)}});
        let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// How long a job's request id is kept (a job older than this shows the id of the request
/// reading it, as every job did before the ids were kept).
const JOB_REQUEST_LIFE: Duration = Duration::from_secs(7 * 24 * 3600);

impl Rest51 {
    /// Record the request that made a job (service request state: kept across restarts).
    pub async fn remember_job(&self, caller: &Caller, job: &str, request_id: &str) -> Result<(), QcError> {
        let svc = &self.ctx.service;
        Ok(svc.remember(StateKind::JobRequest, &caller.account, job, request_id, Some(JOB_REQUEST_LIFE)).await?)
    }

    pub async fn request_of(&self, caller: &Caller, job: &str) -> Result<Option<String>, QcError> {
        Ok(self.ctx.service.recall(StateKind::JobRequest, &caller.account, job).await?.map(|(r, _)| r))
    }
}
