//! OAuth2 client credentials (RFC 6749 §4.4) as the 51idc SDK speaks it: `POST /v2/oauth2/token`
//! with HTTP Basic `apiKey:secretKey` (the account's QingCloud pair), then `Authorization:
//! Bearer <token>` on every call. Tokens are random, kept (hashed) in the metadata store, and
//! expire.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use disksnap_api_common::{encode, sign, ApiContext, RawRequest};
use disksnap_service::StateKind;
use serde_json::json;

use super::Rest51;
use crate::error::QcError;

/// Issue a token for `account`, kept (hashed) in the metadata store until it expires, so it
/// stays valid across a restart.
async fn issue(ctx: &ApiContext, account: &str, lifetime: Duration) -> Result<String, QcError> {
    let token = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
    ctx.service.remember(StateKind::OAuth2Token, "", &token, account, Some(lifetime)).await?;
    Ok(token)
}

/// The account of the request's bearer token. The SDK re-sends a request after a 401 with a
/// second Authorization header added, so the last one counts (dialects.md §3.3).
pub async fn account_of(ctx: &ApiContext, headers: &HeaderMap) -> Result<String, QcError> {
    let value =
        headers.get_all(header::AUTHORIZATION).iter().next_back().and_then(|v| v.to_str().ok()).ok_or_else(|| {
            QcError::Auth(
                "an Authorization: Bearer <token> header is required; get a token from POST /v2/oauth2/token".into(),
            )
        })?;
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(|| QcError::Auth("the Authorization header must be Bearer <token>".into()))?;
    // an expired token is not read back: the store keeps none past its expiry
    match ctx.service.recall(StateKind::OAuth2Token, "", token).await? {
        Some((account, _)) => Ok(account),
        None => Err(QcError::Auth("the access token is not valid or has expired; request a new one".into())),
    }
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    let body = json!({"error": code, "error_description": description});
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic"));
    }
    resp
}

pub async fn token(State(st): State<Arc<Rest51>>, req: Request) -> Response {
    if req.method() != axum::http::Method::POST {
        return oauth_error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "use POST");
    }
    let raw = match RawRequest::read(req).await {
        Ok(r) => r,
        Err(m) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &m),
    };
    // Parameters come as a form body (or, leniently, in the query).
    let mut params = encode::parse_pairs(&raw.query, |_| false);
    params.extend(encode::parse_pairs(&String::from_utf8_lossy(&raw.body), |_| false));
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let basic = raw
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(sign::base64_decode)
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())));
    // RFC 6749 also allows client_id/client_secret in the body.
    let creds = basic.or_else(|| Some((get("client_id")?, get("client_secret")?)));
    let Some((key, secret)) = creds else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "send the API key pair as HTTP Basic credentials",
        );
    };
    let account = match st.ctx.keys.lookup(crate::KEYS, &key) {
        Some(s) if sign::same(s.secret.as_bytes(), secret.as_bytes()) => s.account.clone(),
        _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown API key or wrong secret key"),
    };
    match get("grant_type").as_deref() {
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type {other} is not supported; use client_credentials"),
            )
        }
        None => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type=client_credentials is required")
        }
    }
    let lifetime = st.ctx.token_lifetime;
    let token = match issue(&st.ctx, &account, lifetime).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = ?e, "issuing an OAuth2 token failed");
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the token could not be stored; retry",
            );
        }
    };
    let body = json!({"access_token": token, "token_type": "Bearer", "expires_in": lifetime.as_secs()});
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
        body.to_string(),
    )
        .into_response()
}
