//! Sessions, CSRF tokens and the sign-in rate limit, all in memory: a restart signs everyone
//! out, which is the safe direction for a console (nothing secret is ever written to disk).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

/// The session cookie's name (the pre-sign-in CSRF cookie is [`LOGIN_COOKIE`]).
pub const SESSION_COOKIE: &str = "ds_session";
/// A double-submit token for the sign-in form: there is no session yet to hold its CSRF token.
pub const LOGIN_COOKIE: &str = "ds_login";

/// A session ends after this long without a request.
pub const IDLE_LIMIT: Duration = Duration::from_secs(8 * 3600);
/// Failed sign-ins allowed per identity (user name or key id) within [`FAIL_WINDOW`].
pub const FAILS_PER_IDENTITY: usize = 5;
pub const FAIL_WINDOW: Duration = Duration::from_secs(300);
/// Sign-in attempts allowed across all identities within [`GLOBAL_WINDOW`]: bounds guessing
/// spread over many names (the listener gives no peer address to limit by).
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
    last_seen: Instant,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session for `account`; returns its id (the cookie value).
    pub fn create(&self, account: &str) -> String {
        let id = token();
        let mut map = self.map.lock().unwrap();
        let now = Instant::now();
        map.retain(|_, s| now.duration_since(s.last_seen) < IDLE_LIMIT);
        map.insert(id.clone(), Session { account: account.to_string(), csrf: token(), flash: None, last_seen: now });
        id
    }

    /// The live session `id` names, or None when unknown or idle too long. Its flash is taken
    /// out when `take_flash` (a page shows it; the progress poll must not swallow it).
    pub fn touch(&self, id: &str, take_flash: bool) -> Option<Session> {
        let mut map = self.map.lock().unwrap();
        let now = Instant::now();
        let s = map.get_mut(id)?;
        if now.duration_since(s.last_seen) >= IDLE_LIMIT {
            map.remove(id);
            return None;
        }
        s.last_seen = now;
        let out = s.clone();
        if take_flash {
            s.flash = None;
        }
        Some(out)
    }

    pub fn flash(&self, id: &str, flash: Flash) {
        if let Some(s) = self.map.lock().unwrap().get_mut(id) {
            s.flash = Some(flash);
        }
    }

    pub fn remove(&self, id: &str) {
        self.map.lock().unwrap().remove(id);
    }
}

/// Why a sign-in attempt is refused before its password is even checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Throttled {
    /// This identity failed too often; it may try again after this long.
    Identity(Duration),
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
    attempts: Vec<Instant>,
}

impl RateLimit {
    /// Count an attempt for `identity`, or refuse it.
    pub fn attempt(&self, identity: &str, now: Instant) -> Result<(), Throttled> {
        let mut l = self.inner.lock().unwrap();
        l.attempts.retain(|t| now.duration_since(*t) < GLOBAL_WINDOW);
        if l.attempts.len() >= GLOBAL_ATTEMPTS {
            return Err(Throttled::Everyone(GLOBAL_WINDOW.saturating_sub(now.duration_since(l.attempts[0]))));
        }
        l.failures.retain(|_, v| {
            v.retain(|t| now.duration_since(*t) < FAIL_WINDOW);
            !v.is_empty()
        });
        if let Some(f) = l.failures.get(&key(identity)) {
            if f.len() >= FAILS_PER_IDENTITY {
                return Err(Throttled::Identity(FAIL_WINDOW.saturating_sub(now.duration_since(f[0]))));
            }
        }
        l.attempts.push(now);
        Ok(())
    }

    pub fn failed(&self, identity: &str, now: Instant) {
        self.inner.lock().unwrap().failures.entry(key(identity)).or_default().push(now);
    }

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
            assert_eq!(rl.attempt("Alice", t0 + Duration::from_secs(i as u64)), Ok(()));
            rl.failed("alice ", t0 + Duration::from_secs(i as u64));
        }
        assert!(matches!(rl.attempt("alice", t0 + Duration::from_secs(20)), Err(Throttled::Identity(_))));
        // Another identity is not held back by alice's failures.
        assert_eq!(rl.attempt("bob", t0 + Duration::from_secs(20)), Ok(()));
        assert_eq!(rl.attempt("alice", t0 + FAIL_WINDOW + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn attempts_over_all_identities_are_bounded() {
        let rl = RateLimit::default();
        let t0 = Instant::now();
        for i in 0..GLOBAL_ATTEMPTS {
            assert_eq!(rl.attempt(&format!("user{i}"), t0), Ok(()));
        }
        assert!(matches!(rl.attempt("another", t0), Err(Throttled::Everyone(_))));
        assert_eq!(rl.attempt("another", t0 + GLOBAL_WINDOW), Ok(()));
    }

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }
}
