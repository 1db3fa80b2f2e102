//! Sessions, CSRF tokens and the sign-in rate limit.
//!
//! A session lives in the metadata store (so a restart keeps people signed in), under the
//! SHA-256 of its cookie's value: the value itself is never written anywhere, and the
//! session's CSRF token is derived from it, so a copy of the database signs nobody in and
//! forges no form. The one-shot messages shown after an action ([`Flash`]) stay in memory: a
//! restart loses at most a message. The rate limit is in memory too (per process).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use disksnap_service::{Service, ServiceError};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The session cookie's name (the pre-sign-in CSRF cookie is [`LOGIN_COOKIE`]).
pub const SESSION_COOKIE: &str = "ds_session";
/// A double-submit token for the sign-in form: there is no session yet to hold its CSRF token.
pub const LOGIN_COOKIE: &str = "ds_login";

/// A session ends after this long without a request.
pub const IDLE_LIMIT: Duration = Duration::from_secs(8 * 3600);
/// A session's `last_seen` is written at most this often (not on every request and poll).
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Failed sign-ins allowed per identity (user name or key id) within [`FAIL_WINDOW`].
pub const FAILS_PER_IDENTITY: usize = 5;
/// Failed sign-ins allowed per client address within [`FAIL_WINDOW`], whatever names they
/// try: more than one person's typos behind a shared NAT, far fewer than a guessing run.
pub const FAILS_PER_ADDRESS: usize = 20;
pub const FAIL_WINDOW: Duration = Duration::from_secs(300);
/// Sign-in attempts allowed across all identities and addresses within [`GLOBAL_WINDOW`]:
/// bounds guessing spread over many names and addresses.
pub const GLOBAL_ATTEMPTS: usize = 30;
pub const GLOBAL_WINDOW: Duration = Duration::from_secs(10);

/// 32 random bytes from the OS generator, hex: session ids and CSRF tokens.
pub fn token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Compare secrets without an early exit, so timing says nothing about where they differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure when served over TLS.
pub fn set_cookie(name: &str, value: &str, path: &str, https: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if let Some(s) = max_age {
        c.push_str(&format!("; Max-Age={s}"));
    }
    if https {
        c.push_str("; Secure");
    }
    c
}

/// A message shown once on the next page: the outcome of an action.
#[derive(Clone, Debug)]
pub struct Flash {
    pub error: bool,
    pub text: String,
    /// A job the action started, shown with a live progress bar.
    pub job: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub account: String,
    pub csrf: String,
    pub flash: Option<Flash>,
}

/// The key a session is stored under: the SHA-256 of its cookie's value.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A session's CSRF token, derived from its cookie's value (which a cross-site page cannot
/// read): nothing to store, and the same after a restart.
pub fn csrf_of(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"disksnap console csrf\0");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

/// Sessions in the metadata store, messages in memory.
pub struct Sessions {
    service: Service,
    /// Session hash → the message its next page shows, and when it was left.
    flashes: Mutex<HashMap<String, (Flash, Instant)>>,
}

/// A message not picked up within this long is dropped (its session went away).
const FLASH_KEPT: Duration = Duration::from_secs(3600);

impl Sessions {
    pub fn new(service: Service) -> Self {
        Sessions { service, flashes: Mutex::new(HashMap::new()) }
    }

    /// A new session for `account`; returns its id (the cookie value).
    pub async fn create(&self, account: &str) -> Result<String, ServiceError> {
        let id = token();
        self.service.console_session_create(&token_hash(&id), account, Utc::now(), IDLE_LIMIT).await?;
        let now = Instant::now();
        self.flashes.lock().unwrap().retain(|_, (_, at)| now.duration_since(*at) < FLASH_KEPT);
        Ok(id)
    }

    /// The live session `id` names, or None when unknown or idle too long. Its flash is taken
    /// out when `take_flash` (a page shows it; the progress poll must not swallow it).
    pub async fn touch(&self, id: &str, take_flash: bool) -> Result<Option<Session>, ServiceError> {
        let hash = token_hash(id);
        let Some(row) = self.service.console_session(&hash).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        let idle = (now - row.last_seen).to_std().unwrap_or_default();
        if idle >= IDLE_LIMIT {
            self.remove(id).await?;
            return Ok(None);
        }
        if idle >= TOUCH_EVERY {
            self.service.console_session_touch(&hash, now).await?;
        }
        let flash = {
            let mut f = self.flashes.lock().unwrap();
            if take_flash {
                f.remove(&hash).map(|(m, _)| m)
            } else {
                f.get(&hash).map(|(m, _)| m.clone())
            }
        };
        Ok(Some(Session { account: row.account, csrf: csrf_of(id), flash }))
    }

    pub fn flash(&self, id: &str, flash: Flash) {
        self.flashes.lock().unwrap().insert(token_hash(id), (flash, Instant::now()));
    }

    pub async fn remove(&self, id: &str) -> Result<(), ServiceError> {
        let hash = token_hash(id);
        self.flashes.lock().unwrap().remove(&hash);
        self.service.console_session_end(&hash).await
    }
}

/// Why a sign-in attempt is refused before its password is even checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Throttled {
    /// This identity failed too often; it may try again after this long.
    Identity(Duration),
    /// The client's address failed too often (whatever names it tried).
    Address(Duration),
    /// Too many attempts overall.
    Everyone(Duration),
}

#[derive(Default)]
pub struct RateLimit {
    inner: Mutex<Limits>,
}

#[derive(Default)]
struct Limits {
    failures: HashMap<String, Vec<Instant>>,
    by_address: HashMap<IpAddr, Vec<Instant>>,
    attempts: Vec<Instant>,
}

/// How long until the oldest of `times` leaves `window`, when `times` holds `allowed` or more.
fn over(times: Option<&Vec<Instant>>, allowed: usize, window: Duration, now: Instant) -> Option<Duration> {
    let t = times?;
    (t.len() >= allowed).then(|| window.saturating_sub(now.duration_since(t[0])))
}

impl RateLimit {
    /// Count an attempt for `identity` from `address` (None: the listener did not say), or
    /// refuse it.
    pub fn attempt(&self, identity: &str, address: Option<IpAddr>, now: Instant) -> Result<(), Throttled> {
        let mut l = self.inner.lock().unwrap();
        l.attempts.retain(|t| now.duration_since(*t) < GLOBAL_WINDOW);
        if l.attempts.len() >= GLOBAL_ATTEMPTS {
            return Err(Throttled::Everyone(GLOBAL_WINDOW.saturating_sub(now.duration_since(l.attempts[0]))));
        }
        let fresh = |v: &mut Vec<Instant>| {
            v.retain(|t| now.duration_since(*t) < FAIL_WINDOW);
            !v.is_empty()
        };
        l.failures.retain(|_, v| fresh(v));
        l.by_address.retain(|_, v| fresh(v));
        if let Some(wait) = address.and_then(|a| over(l.by_address.get(&a), FAILS_PER_ADDRESS, FAIL_WINDOW, now)) {
            return Err(Throttled::Address(wait));
        }
        if let Some(wait) = over(l.failures.get(&key(identity)), FAILS_PER_IDENTITY, FAIL_WINDOW, now) {
            return Err(Throttled::Identity(wait));
        }
        l.attempts.push(now);
        Ok(())
    }

    pub fn failed(&self, identity: &str, address: Option<IpAddr>, now: Instant) {
        let mut l = self.inner.lock().unwrap();
        l.failures.entry(key(identity)).or_default().push(now);
        if let Some(a) = address {
            l.by_address.entry(a).or_default().push(now);
        }
    }

    /// The identity's failures are forgotten; its address's are not (one good password must
    /// not reset a guessing run over other names from the same address).
    pub fn succeeded(&self, identity: &str) {
        self.inner.lock().unwrap().failures.remove(&key(identity));
    }
}

/// Identities differing only in case or surrounding space are one identity for the limit.
fn key(identity: &str) -> String {
    identity.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_refused_after_its_failures_until_the_window_passes() {
        let rl = RateLimit::default();
        let t0 = Instant::now();
        for i in 0..FAILS_PER_IDENTITY {
            assert_eq!(rl.attempt("Alice", None, t0 + Duration::from_secs(i as u64)), Ok(()));
            rl.failed("alice ", None, t0 + Duration::from_secs(i as u64));
        }
        assert!(matches!(rl.attempt("alice", None, t0 + Duration::from_secs(20)), Err(Throttled::Identity(_))));
        // Another identity is not held back by alice's failures.
        assert_eq!(rl.attempt("bob", None, t0 + Duration::from_secs(20)), Ok(()));
        assert_eq!(rl.attempt("alice", None, t0 + FAIL_WINDOW + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn attempts_over_all_identities_are_bounded() {
        let rl = RateLimit::default();
        let t0 = Instant::now();
        for i in 0..GLOBAL_ATTEMPTS {
            assert_eq!(rl.attempt(&format!("user{i}"), None, t0), Ok(()));
        }
        assert!(matches!(rl.attempt("another", None, t0), Err(Throttled::Everyone(_))));
        assert_eq!(rl.attempt("another", None, t0 + GLOBAL_WINDOW), Ok(()));
    }

    #[test]
    fn an_address_is_refused_after_its_failures_whatever_names_it_tries() {
        let rl = RateLimit::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..FAILS_PER_ADDRESS {
            // Spread over time so the overall limit is not what refuses.
            let t = t0 + Duration::from_secs(i as u64);
            assert_eq!(rl.attempt(&format!("user{i}"), Some(a), t), Ok(()));
            rl.failed(&format!("user{i}"), Some(a), t);
        }
        let later = t0 + Duration::from_secs(60);
        assert!(matches!(rl.attempt("fresh-name", Some(a), later), Err(Throttled::Address(_))));
        // Another address with the same fresh name is not held back; a success does not reset a.
        assert_eq!(rl.attempt("fresh-name", Some(b), later), Ok(()));
        rl.succeeded("user0");
        assert!(matches!(rl.attempt("user0", Some(a), later), Err(Throttled::Address(_))));
        assert_eq!(rl.attempt("fresh-name", Some(a), t0 + FAIL_WINDOW + Duration::from_secs(20)), Ok(()));
    }

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }
}
