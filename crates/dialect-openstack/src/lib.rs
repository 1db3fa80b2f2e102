//! OpenStack Block Storage (Cinder v2/v3 with microversions), a minimal Keystone v3, and Huawei
//! Cloud EVS's native `cloudsnapshots` API (shared/design/dialect-openstack.md).
//!
//! How the pieces fit: [`router`] turns method + path into an [`router::Endpoint`]; this file
//! holds the [`OpenStack`] dialect's steps of api-common's pipeline: it negotiates the
//! microversion, authenticates (a Keystone token
//! from [`keystone`], or a Huawei AK/SK signature checked by [`signature`]), calls the handler
//! module ([`keystone`], [`cinder`], [`volumes`], [`evs`]) and adds the request-id and version
//! headers. [`wire`] renders ids (reversible UUIDs), times, views and the status words the
//! store computes for lists; [`listing`] reads Cinder's list parameters (filters, sort keys,
//! marker/offset paging) into store queries and builds next links; [`error`] renders every
//! failure in the route's envelope.
//!
//! State this dialect keeps between requests (Keystone tokens, status overrides set by
//! `os-reset_status` / `os-update_snapshot_status`) is service request state in the metadata
//! store, and which snapshot a volume was made from is a volume column: a restart loses none.

pub mod cinder;
pub mod error;
pub mod evs;
pub mod keystone;
pub mod listing;
pub mod microversion;
pub mod page_cache;
pub mod router;
pub mod signature;
pub mod volumes;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::{json, Value};

use disksnap_api_common::{pipeline, ApiContext, Dialect, DialectError, EndpointName, KeyKind, RawRequest, RequestId};
use disksnap_service::{Caller, Kind, ServiceError, StateKind};

use crate::error::{Envelope, OsError, OsResult};
use crate::microversion::{Version, VersionError};
use crate::router::{Api, Endpoint};
use crate::wire::{Flavour, Override};

/// Snapshot (bare id) → the status override and when it was set.
pub type Overrides = HashMap<String, (Override, chrono::DateTime<chrono::Utc>)>;

/// An override as the metadata store keeps it (service request state, JSON).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredOverride {
    #[serde(flatten)]
    o: Override,
    at: chrono::DateTime<chrono::Utc>,
}

/// How long an override lasts at most: it shows until the snapshot's next real change, which
/// for a snapshot left alone may never come; a month bounds what the store keeps.
const OVERRIDE_LIFE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The dialect's state (axum state; cheap to clone). Tokens and status overrides are service
/// request state, kept in the metadata store: a restart keeps them.
#[derive(Clone)]
pub struct OpenStack {
    pub ctx: ApiContext,
    pub tokens: keystone::TokenStore,
}

/// The override of a snapshot among `ov`, if set since its last real state change.
pub fn override_in(ov: &Overrides, s: &disksnap_service::Snapshot) -> Option<Override> {
    ov.get(&s.id).filter(|(_, at)| *at >= s.status_time).map(|(o, _)| o.clone())
}

impl OpenStack {
    pub fn new(ctx: ApiContext) -> Self {
        OpenStack { tokens: keystone::TokenStore { ctx: ctx.clone() }, ctx }
    }

    /// Every override the account has set (status shown until the next real change, §5.4).
    pub async fn overrides(&self, account: &str) -> OsResult<Overrides> {
        let rows = self.ctx.service.recall_all(StateKind::StatusOverride, account).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, v)| serde_json::from_str::<StoredOverride>(&v).ok().map(|so| (id, (so.o, so.at))))
            .collect())
    }

    /// The override of a snapshot, if set since its last real state change.
    pub async fn override_of(&self, account: &str, s: &disksnap_service::Snapshot) -> OsResult<Option<Override>> {
        let found = self.ctx.service.recall(StateKind::StatusOverride, account, &s.id).await?;
        let stored = found.and_then(|(v, _)| serde_json::from_str::<StoredOverride>(&v).ok());
        Ok(stored.filter(|so| so.at >= s.status_time).map(|so| so.o))
    }

    pub async fn set_override(&self, account: &str, id: &str, o: Option<Override>) -> OsResult<()> {
        let svc = &self.ctx.service;
        match o {
            Some(o) => {
                let v = serde_json::to_string(&StoredOverride { o, at: chrono::Utc::now() })
                    .map_err(|e| ServiceError::Internal(format!("override: {e}")))?;
                svc.remember(StateKind::StatusOverride, account, id, &v, Some(OVERRIDE_LIFE)).await?;
            }
            None => {
                svc.forget(StateKind::StatusOverride, account, id).await?;
            }
        }
        Ok(())
    }
}

/// Who is calling, after authentication.
#[derive(Clone, Debug)]
pub struct Auth {
    pub account: String,
    pub project_id: String,
    pub user_id: String,
    /// **disksnap choice:** an account's OpenStack user holds admin, member and reader in its
    /// own project (it can only ever reach its own account).
    pub admin: bool,
}

impl Auth {
    pub fn caller(&self) -> Caller {
        Caller::new(self.account.clone())
    }
}

/// One authenticated Block Storage / EVS request.
pub struct Call {
    pub raw: RawRequest,
    pub base: String,
    pub api: Api,
    pub version: Version,
    pub flavour: Flavour,
    pub auth: Auth,
    /// Whether the URL carried the project id (next links keep its presence).
    pub with_project: bool,
}

impl Call {
    pub fn query(&self) -> Vec<(String, String)> {
        disksnap_api_common::encode::parse_pairs(&self.raw.query, |_| false)
    }

    /// The JSON body (an empty body is `null`); malformed → 400.
    pub fn json(&self) -> OsResult<Value> {
        if self.raw.body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.raw.body)
            .map_err(|e| OsError::BadRequest(format!("Invalid JSON in request body: {e}")))
    }
}

pub fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// A success without a body (Tempest checks that none is sent).
pub fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

/// The account's Huawei AK/SK pair (config section `huawei`); Keystone users are the
/// [`KeyRing`](disksnap_api_common::KeyRing)'s users of kind [`USERS`].
pub const HUAWEI_KEYS: KeyKind = KeyKind("huawei");
/// Keystone's password users (the config's `openstack` of an account).
pub const USERS: KeyKind = KeyKind("openstack");

/// Huawei's `X-Sdk-Date` may be this far from the server clock, either way (README: ±15 min).
pub const HUAWEI_CLOCK_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The routes of this dialect; `/` (shared with Aliyun) is served by [`version_root`].
pub fn routes(ctx: ApiContext) -> Router {
    let d = Arc::new(OpenStack::new(ctx));
    let serve = pipeline::handler::<OpenStack>;
    Router::new()
        .route("/identity", any(serve))
        .route("/identity/", any(serve))
        .route("/identity/{*rest}", any(serve))
        .route("/v3", any(serve))
        .route("/v3/", any(serve))
        .route("/v3/{*rest}", any(serve))
        .route("/v2", any(serve))
        .route("/v2/", any(serve))
        .route("/v2/{project}/{*rest}", any(serve))
        .with_state(d)
}

fn request_id_headers(resp: &mut Response, rid: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("req-{rid}")) {
        resp.headers_mut().insert("x-openstack-request-id", v.clone());
        resp.headers_mut().insert("x-compute-request-id", v);
    }
}

/// `GET /` (without Aliyun's markers): Cinder's version list, 300 (§4.1).
pub async fn version_root(_ctx: ApiContext, req: Request) -> Response {
    let rid = req.extensions().get::<disksnap_api_common::RequestId>().cloned().unwrap_or_default();
    let base = wire::base_url(req.headers());
    let mut resp = json_response(StatusCode::MULTIPLE_CHOICES, json!({"versions": [wire::v3_version(&base)]}));
    request_id_headers(&mut resp, &rid.0);
    resp
}

/// What every answer needs: the route (read before anything else: it decides the error
/// envelope) and the microversion once negotiated.
pub struct Frame {
    endpoint: Endpoint,
    envelope: Envelope,
    api: Option<Api>,
    version: Version,
    /// The microversion was accepted: every answer (faults too) echoes it.
    echo: bool,
}

impl EndpointName for Endpoint {
    fn name(&self) -> String {
        let op = |op: &router::Op| match op {
            router::Op::List { detail: false } => "list",
            router::Op::List { detail: true } => "detail",
            router::Op::Create => "create",
            router::Op::Show(_) => "show",
            router::Op::Update(_) => "update",
            router::Op::Delete(_) => "delete",
            router::Op::Metadata(..) => "metadata",
            router::Op::MetadataItem(..) => "metadata_item",
            router::Op::Action(_) => "action",
            router::Op::Summary => "summary",
        };
        match self {
            Endpoint::IdentityVersions => "identity.versions".into(),
            Endpoint::IdentityV3 => "identity.v3".into(),
            Endpoint::IssueToken => "identity.tokens.issue".into(),
            Endpoint::RevokeToken => "identity.tokens.revoke".into(),
            Endpoint::VolumeVersion(_) => "volume.versions".into(),
            Endpoint::Cinder { res: router::Res::Snapshot, op: o, .. } => format!("cinder.snapshots.{}", op(o)),
            Endpoint::Cinder { res: router::Res::Volume, op: o, .. } => format!("cinder.volumes.{}", op(o)),
            Endpoint::Evs { op, .. } => format!(
                "evs.cloudsnapshots.{}",
                match op {
                    router::EvsOp::List => "list",
                    router::EvsOp::Create => "create",
                    router::EvsOp::Show(_) => "show",
                    router::EvsOp::Update(_) => "update",
                    router::EvsOp::Delete(_) => "delete",
                    router::EvsOp::Rollback(_) => "rollback",
                }
            ),
            Endpoint::BadMethod { .. } => "bad_method".into(),
            Endpoint::NotFound { .. } => "not_found".into(),
        }
    }
}

impl DialectError for OsError {
    fn unreadable(why: String) -> Self {
        OsError::BadRequest(why)
    }
    fn is_internal(&self) -> bool {
        matches!(self, OsError::Service(ServiceError::Internal(_) | ServiceError::Corrupt(_)))
    }
    fn code(&self) -> String {
        self.name().to_string()
    }
}

impl Dialect for OpenStack {
    const NAME: &'static str = "openstack";
    const KEY_KIND: KeyKind = HUAWEI_KEYS;
    const CLOCK_WINDOW: Duration = HUAWEI_CLOCK_WINDOW;
    type Frame = Frame;

    /// Reversible UUIDs (`d15c0001-…` volumes, `d15c0002-…` snapshots…).
    fn show_id(kind: Kind, bare: &str) -> String {
        wire::uuid(kind, bare)
    }

    /// A Keystone token or a Huawei signature's caller; None on the routes that need neither
    /// (version lists, token issue and revoke, which check what they need themselves).
    type Caller = Option<Auth>;
    type Endpoint = Endpoint;
    type Error = OsError;

    fn frame(&self, raw: &RawRequest) -> Frame {
        let endpoint = Endpoint::parse(&raw.method, &raw.path);
        let api = match &endpoint {
            Endpoint::Cinder { api, .. } | Endpoint::VolumeVersion(api) => Some(*api),
            Endpoint::BadMethod { api } | Endpoint::NotFound { api } => *api,
            Endpoint::Evs { .. } => Some(Api::V2),
            _ => None,
        };
        let envelope = match &endpoint {
            Endpoint::Evs { .. } => Envelope::EvsNative,
            Endpoint::IdentityVersions | Endpoint::IdentityV3 | Endpoint::IssueToken | Endpoint::RevokeToken => {
                Envelope::Keystone
            }
            _ if raw.path.starts_with("/identity") => Envelope::Keystone,
            _ if api == Some(Api::V2) => Envelope::EvsCinder,
            _ => Envelope::Cinder,
        };
        Frame { endpoint, envelope, api, version: microversion::MIN, echo: false }
    }

    /// Microversions first (`/v3` only), then the caller of a Block Storage or EVS route.
    async fn verify(&self, raw: &RawRequest, f: &mut Frame) -> OsResult<Option<Auth>> {
        if f.api == Some(Api::V3) {
            f.version = microversion::negotiate(raw.header("openstack-api-version")).map_err(|e| match e {
                VersionError::Malformed(m) => OsError::BadRequest(m),
                VersionError::Unsupported(m) => OsError::NotAcceptable(m),
            })?;
            f.echo = true;
        }
        match &f.endpoint {
            Endpoint::Cinder { project, .. } => authenticate(self, raw, project.as_deref()).await.map(Some),
            Endpoint::Evs { project, .. } => authenticate(self, raw, Some(project)).await.map(Some),
            _ => Ok(None),
        }
    }

    fn endpoint(&self, _raw: &RawRequest, f: &mut Frame, _auth: &Option<Auth>) -> OsResult<Endpoint> {
        match &f.endpoint {
            Endpoint::BadMethod { .. } => Err(OsError::BadMethod),
            Endpoint::NotFound { .. } => Err(OsError::NotFound("The resource could not be found.".into())),
            e => Ok(e.clone()),
        }
    }

    async fn handle(&self, call: pipeline::Call<'_, Self>) -> OsResult<Response> {
        let version = call.frame.version;
        handle(self, call.raw, call.endpoint, version, call.caller).await
    }

    fn error_response(&self, f: &Frame, e: &OsError, request_id: &RequestId) -> Response {
        e.render(f.envelope, &request_id.0)
    }

    /// The request id on every answer; the accepted microversion echoed, and `Vary` on every
    /// answer of a `/v3` route (a refused microversion included).
    fn finish(&self, f: &Frame, resp: &mut Response, request_id: &RequestId) {
        request_id_headers(resp, &request_id.0);
        if f.echo {
            if let Ok(v) = HeaderValue::from_str(&format!("volume {}", f.version)) {
                resp.headers_mut().insert("openstack-api-version", v);
            }
        }
        if f.api == Some(Api::V3) {
            resp.headers_mut().insert(header::VARY, HeaderValue::from_static("OpenStack-API-Version"));
        }
    }
}

async fn handle(
    d: &OpenStack,
    raw: RawRequest,
    endpoint: Endpoint,
    version: Version,
    auth: Option<Auth>,
) -> OsResult<Response> {
    let base = wire::base_url(&raw.headers);
    match endpoint {
        Endpoint::IdentityVersions => Ok(json_response(StatusCode::MULTIPLE_CHOICES, keystone::versions_body(&base))),
        Endpoint::IdentityV3 => Ok(json_response(StatusCode::OK, json!({"version": wire::identity_version(&base)}))),
        Endpoint::IssueToken => {
            let user = keystone::authenticate(d.ctx.keys.users(crate::USERS), &raw.body)?;
            let (id, t) = d.tokens.issue(user, d.ctx.token_lifetime).await?;
            let mut resp = json_response(StatusCode::CREATED, keystone::token_body(&d.ctx, &t, &base));
            if let Ok(v) = HeaderValue::from_str(&id) {
                resp.headers_mut().insert("x-subject-token", v);
            }
            Ok(resp)
        }
        Endpoint::RevokeToken => {
            let caller = d.tokens.check(raw.header("x-auth-token")).await?;
            let subject = raw.header("x-subject-token").unwrap_or("").trim();
            if d.tokens.revoke(&caller, subject).await? {
                Ok(empty(StatusCode::NO_CONTENT))
            } else {
                Err(OsError::NotFound("Could not find token.".into()))
            }
        }
        Endpoint::VolumeVersion(Api::V3) => {
            Ok(json_response(StatusCode::OK, json!({"versions": [wire::v3_version(&base)]})))
        }
        Endpoint::VolumeVersion(Api::V2) => {
            Ok(json_response(StatusCode::OK, json!({"versions": [wire::v2_version(&base)]})))
        }
        Endpoint::BadMethod { .. } => Err(OsError::BadMethod),
        Endpoint::NotFound { .. } => Err(OsError::NotFound("The resource could not be found.".into())),
        Endpoint::Cinder { api, project, res, op } => {
            let auth = auth.ok_or(OsError::Unauthorized("authentication required".into()))?;
            let flavour = if api == Api::V3 { Flavour::Cinder } else { Flavour::Evs };
            let with_project = project.is_some();
            let call = Call { raw, base, api, version, flavour, auth, with_project };
            match res {
                router::Res::Snapshot => cinder::handle(d, &call, op).await,
                router::Res::Volume => volumes::handle(d, &call, op).await,
            }
        }
        Endpoint::Evs { project: _, op } => {
            let auth = auth.ok_or(OsError::Unauthorized("authentication required".into()))?;
            let call = Call { raw, base, api: Api::V2, version, flavour: Flavour::Evs, auth, with_project: true };
            evs::handle(d, &call, op).await
        }
    }
}

fn project_of(d: &OpenStack, account: &str) -> Option<(String, String)> {
    d.ctx
        .keys
        .users(crate::USERS)
        .iter()
        .find(|u| u.account == account)
        .map(|u| (u.project_id.clone(), keystone::user_id(u)))
}

/// A Keystone token (`X-Auth-Token`) or a Huawei AK/SK signature; the URL project must be the
/// caller's (else 403).
async fn authenticate(d: &OpenStack, raw: &RawRequest, url_project: Option<&str>) -> OsResult<Auth> {
    let signed = raw.header("authorization").is_some_and(|a| a.trim_start().starts_with("SDK-HMAC"));
    let auth = if signed || raw.header("x-sdk-date").is_some() && raw.header("x-auth-token").is_none() {
        let v = signature::verify(raw, &d.ctx.keys, HUAWEI_CLOCK_WINDOW).map_err(OsError::SignatureRefused)?;
        let (project_id, user_id) = project_of(d, &v.account)
            .ok_or_else(|| OsError::Forbidden("This account has no OpenStack project configured.".into()))?;
        if let Some(h) = raw.header("x-project-id") {
            if !h.eq_ignore_ascii_case(&project_id) {
                return Err(OsError::Forbidden(format!("X-Project-Id {h} is not the project of this key.")));
            }
        }
        Auth { account: v.account, project_id, user_id, admin: true }
    } else {
        let t = d.tokens.check(raw.header("x-auth-token")).await?;
        Auth { account: t.account, project_id: t.project_id, user_id: t.user_id, admin: true }
    };
    if let Some(p) = url_project {
        if !p.eq_ignore_ascii_case(&auth.project_id) {
            return Err(OsError::Forbidden(format!(
                "Policy doesn't allow this operation: project {p} is not the project of this token."
            )));
        }
    }
    Ok(auth)
}
