//! OAuth2 client credentials (RFC 6749 §4.4) as the 51idc SDK speaks it: `POST /v2/oauth2/token`
//! with HTTP Basic `apiKey:secretKey` (the account's QingCloud pair), then `Authorization:
//! Bearer <token>` on every call. Tokens are random, held in memory, and expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use disksnap_api_common::{encode, sign, RawRequest};
use serde_json::json;

use super::Rest51;
use crate::error::QcError;

#[derive(Default)]
pub struct Tokens {
    live: Mutex<HashMap<String, (String, Instant)>>,
}

impl Tokens {
    fn issue(&self, account: &str, lifetime: Duration) -> String {
        let token = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        live.retain(|_, (_, exp)| *exp > now);
        live.insert(token.clone(), (account.to_string(), now + lifetime));
        token
    }

    /// The account of the request's bearer token. The SDK re-sends a request after a 401 with a
    /// second Authorization header added, so the last one counts (dialects.md §3.3).
    pub fn account_of(&self, headers: &HeaderMap) -> Result<String, QcError> {
        let value =
            headers.get_all(header::AUTHORIZATION).iter().next_back().and_then(|v| v.to_str().ok()).ok_or_else(
                || {
                    QcError::Auth(
                        "an Authorization: Bearer <token> header is required; get a token from POST /v2/oauth2/token"
                            .into(),
                    )
                },
            )?;
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| QcError::Auth("the Authorization header must be Bearer <token>".into()))?;
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.get(token) {
            Some((account, exp)) if *exp > Instant::now() => Ok(account.clone()),
            Some(_) => Err(QcError::Auth("the access token has expired; request a new one".into())),
            None => Err(QcError::Auth("the access token is not valid; request a new one".into())),
        }
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
    let token = st.tokens.issue(&account, lifetime);
    let body = json!({"access_token": token, "token_type": "Bearer", "expires_in": lifetime.as_secs()});
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
        body.to_string(),
    )
        .into_response()
}
