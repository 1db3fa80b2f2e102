//! disksnap's web console, served by `disksnap serve` at `/console/` on every listener.
//!
//! Server-rendered HTML over the neutral [`Service`] API (the same calls, the same account
//! scoping as the cloud APIs), a stylesheet and a small script that updates job progress bars
//! and copies ids, all compiled into the binary: no CDN, no build step, works offline.
//!
//! What the console does not own is injected by the binary, so it depends on no dialect:
//! - [`Authenticate`]: (user or access key id, password or secret) → account, from the
//!   binary's credential tables;
//! - [`IdRendering`]s: how each dialect spells an id, for the "ids in every API" boxes.
//!
//! Security: a session is a random id in an HttpOnly, SameSite=Strict cookie (Secure when the
//! request came over TLS, see [`Https`]), kept in the metadata store only as its hash (so a
//! restart keeps people signed in, see [`session`]); every form carries the session's CSRF
//! token and every POST is refused without it; sign-in attempts are rate-limited per identity,
//! per client address and overall ([`session::RateLimit`]); pages are sent with a strict CSP.
//! The client address is the connection's peer (axum's `ConnectInfo`, which the binary's
//! listener sets); `X-Forwarded-For` counts only when that peer is a configured proxy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use disksnap_service::{Caller, Kind, Service};

mod groups;
pub mod html;
mod pages;
mod policies;
pub mod session;
pub mod svg;

/// Checks a sign-in: (OpenStack user name or access key id, its password or secret) → the
/// account it belongs to, or None.
pub type Authenticate = Arc<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

/// One dialect's spelling of ids: (its name as shown, kind + bare suffix → the id it shows).
pub type IdRendering = (&'static str, fn(Kind, &str) -> String);

/// Put on requests that arrived over TLS (the binary layers it onto its TLS listener's router),
/// so the session cookie is marked Secure there.
#[derive(Clone, Copy, Debug)]
pub struct Https;

pub struct Console {
    pub service: Service,
    pub authenticate: Authenticate,
    pub renderings: Vec<IdRendering>,
    sessions: session::Sessions,
    limits: session::RateLimit,
    /// Peers whose `X-Forwarded-For` is believed (reverse proxies in front of the server).
    trusted_proxies: Vec<IpAddr>,
}

impl Console {
    /// The first of `renderings` is the console's own way of showing ids (the binary passes
    /// the CLI's first).
    pub fn new(service: Service, authenticate: Authenticate, renderings: Vec<IdRendering>) -> Self {
        if let Some((_, own)) = renderings.first() {
            html::set_own_rendering(*own);
        }
        Console {
            sessions: session::Sessions::new(service.clone()),
            service,
            authenticate,
            renderings,
            limits: session::RateLimit::default(),
            trusted_proxies: Vec::new(),
        }
    }

    /// Believe `X-Forwarded-For` from these peers (and only from them): the client address the
    /// sign-in limit counts is then the last address in the header that is not one of them.
    pub fn with_trusted_proxies(mut self, proxies: Vec<IpAddr>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The address a request came from: its peer, or, when the peer is a trusted proxy, the
    /// nearest address its `X-Forwarded-For` names that is not a trusted proxy. A header from
    /// any other peer is ignored (anyone can write one).
    pub fn client_address(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())?;
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        for v in parts.headers.get_all("x-forwarded-for") {
            let Ok(v) = v.to_str() else { return Some(peer) };
            for item in v.split(',') {
                match item.trim().parse::<IpAddr>() {
                    Ok(a) => hops.push(a),
                    // A hop we cannot read: nothing before it can be trusted either.
                    Err(_) => return Some(peer),
                }
            }
        }
        Some(hops.into_iter().rev().find(|a| !self.trusted_proxies.contains(a)).unwrap_or(peer))
    }
}

/// The console's routes, all under `/console`.
pub fn router(console: Console) -> Router {
    let st = Arc::new(console);
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(pages::overview))
        .route("/console/static/style.css", get(pages::style))
        .route("/console/static/console.js", get(pages::script))
        .route("/console/login", get(pages::login_form).post(pages::login))
        .route("/console/logout", post(pages::logout))
        .route("/console/volumes", get(pages::volumes).post(pages::create_volume))
        .route("/console/volumes/{id}", get(pages::volume))
        .route("/console/volumes/{id}/snapshot", post(pages::snapshot_volume))
        .route("/console/volumes/{id}/resize", post(pages::resize_volume))
        .route("/console/volumes/{id}/rename", post(pages::rename_volume))
        .route("/console/volumes/{id}/delete", get(pages::confirm_delete_volume).post(pages::delete_volume))
        .route("/console/snapshots", get(pages::snapshots))
        .route("/console/snapshots/{id}", get(pages::snapshot))
        .route("/console/snapshots/{id}/rollback", get(pages::confirm_rollback).post(pages::rollback))
        .route("/console/snapshots/{id}/to-volume", post(pages::to_volume))
        .route("/console/snapshots/{id}/capture", post(pages::capture))
        .route("/console/snapshots/{id}/rename", post(pages::rename_snapshot))
        .route("/console/snapshots/{id}/tag", post(pages::tag_snapshot))
        .route("/console/snapshots/{id}/untag", post(pages::untag_snapshot))
        .route("/console/snapshots/{id}/delete", get(pages::confirm_delete_snapshot).post(pages::delete_snapshot))
        .route("/console/snapshots/{id}/recover", post(pages::recover))
        .route("/console/jobs", get(pages::jobs))
        .route("/console/images", get(pages::images))
        .route("/console/images/{id}/delete", post(pages::delete_image))
        .route("/console/api/jobs", get(pages::jobs_json))
        .route("/console/policies", get(policies::policies).post(policies::create_policy))
        .route("/console/policies/{id}/{action}", post(policies::policy_action))
        .route("/console/groups", get(groups::groups).post(groups::create_group))
        .route("/console/groups/{id}/rollback", get(groups::confirm_rollback).post(groups::rollback))
        .route("/console/groups/{id}/{action}", post(groups::group_action))
        // Not a fallback: the binary's router has its own, and axum merges only one.
        .route("/console/{*rest}", get(pages::not_found))
        .layer(axum::middleware::map_response(harden))
        .with_state(st)
}

/// Every console answer: not cached, not framed, no inline script or style, no sniffing.
async fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    r
}

/// A signed-in request: its session and account. Without a live session, pages redirect to
/// the sign-in form and the JSON endpoint answers 401.
pub(crate) struct Signed {
    pub token: String,
    pub session: session::Session,
}

impl Signed {
    pub fn caller(&self) -> Caller {
        Caller::new(self.session.account.clone())
    }
}

impl FromRequestParts<Arc<Console>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<Console>) -> Result<Self, Response> {
        let api = parts.uri.path().starts_with("/console/api/");
        let mut found = None;
        if let Some(t) = session::cookie(&parts.headers, session::SESSION_COOKIE) {
            match st.sessions.touch(&t, !api).await {
                Ok(s) => found = s.map(|s| (t, s)),
                Err(e) => {
                    tracing::warn!(target: "disksnap::console", error = %e, "reading a console session failed");
                    let msg = "The server could not read your session (its metadata database failed). Nothing was done; try again in a moment.";
                    return Err(if api {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(serde_json::json!({"error": "unavailable", "message": msg})),
                        )
                            .into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg)
                            .into_response()
                    });
                }
            }
        }
        match found {
            Some((token, session)) => Ok(Signed { token, session }),
            None if api => (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "not signed in", "message": "sign in at /console/login"})),
            )
                .into_response()
                .pipe(Err),
            None => Err(Redirect::to("/console/login").into_response()),
        }
    }
}

/// The client's address (see [`Console::client_address`]); None when the listener gave none.
pub(crate) struct Client(pub Option<IpAddr>);

impl FromRequestParts<Arc<Console>> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<Console>) -> Result<Self, Self::Rejection> {
        Ok(Client(st.client_address(parts)))
    }
}

/// Whether the request came over TLS.
pub(crate) struct Tls(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Tls {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Tls(parts.extensions.get::<Https>().is_some()))
    }
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}
