//! The minimal Keystone v3 (dialect-openstack.md §3): discovery, password tokens with a
//! catalog, and token checks for the Block Storage routes.
//!
//! Tokens are 32 random bytes, hex, kept (as their SHA-256) in the metadata store until they
//! expire, so they survive a restart as Keystone's own (database-backed or Fernet) tokens do.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use disksnap_api_common::{ApiContext, ProjectUser};
use disksnap_service::{ServiceError, StateKind};

use crate::error::{OsError, OsResult};
use crate::wire;

/// What a live token stands for.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Token {
    pub account: String,
    pub project_id: String,
    pub project_name: String,
    pub user: String,
    pub user_id: String,
    pub issued: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

/// Issued tokens, kept (hashed) in the metadata store as service request state until they
/// expire: a restart, or another node on the same store, still accepts them.
#[derive(Clone)]
pub struct TokenStore {
    pub ctx: ApiContext,
}

impl TokenStore {
    pub async fn issue(&self, user: &ProjectUser, lifetime: Duration) -> OsResult<(String, Token)> {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let now = Utc::now();
        let life = chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::hours(1));
        let t = Token {
            account: user.account.clone(),
            project_id: user.project_id.clone(),
            project_name: user.project_name.clone(),
            user: user.user.clone(),
            user_id: user_id(user),
            issued: now,
            expires: now + life,
        };
        let value = serde_json::to_string(&t).map_err(|e| ServiceError::Internal(format!("token: {e}")))?;
        self.ctx.service.remember(StateKind::KeystoneToken, "", &id, &value, Some(lifetime)).await?;
        Ok((id, t))
    }

    /// The live token, or 401.
    pub async fn check(&self, id: Option<&str>) -> OsResult<Token> {
        let unauthorized = || OsError::Unauthorized("The request you have made requires authentication.".into());
        let id = id.map(str::trim).filter(|t| !t.is_empty()).ok_or_else(unauthorized)?;
        let found = self.ctx.service.recall_keystone_token(id).await?;
        match found.and_then(|(v, _)| serde_json::from_str::<Token>(&v).ok()) {
            Some(t) if t.expires > Utc::now() => Ok(t),
            _ => Err(unauthorized()),
        }
    }

    /// Revoke `subject` on behalf of `caller`: Keystone lets a non-admin revoke its own token
    /// or one of its own project (here a project is one account). Any other token, live or not,
    /// answers false, as an unknown one does, so a caller learns nothing about other projects'
    /// tokens.
    pub async fn revoke(&self, caller: &Token, subject: &str) -> OsResult<bool> {
        let subject = subject.trim();
        if subject.is_empty() {
            return Ok(false);
        }
        let found = self.ctx.service.recall(StateKind::KeystoneToken, "", subject).await?;
        let mine = found
            .and_then(|(v, _)| serde_json::from_str::<Token>(&v).ok())
            .is_some_and(|t| t.account == caller.account && t.project_id == caller.project_id);
        Ok(mine && self.ctx.service.forget(StateKind::KeystoneToken, "", subject).await?)
    }
}

/// **disksnap choice:** the first 128 bits of BLAKE3(`<account>/<user>`), hex.
pub fn user_id(u: &ProjectUser) -> String {
    hex::encode(&blake3::hash(format!("{}/{}", u.account, u.user).as_bytes()).as_bytes()[..16])
}

/// The user id of an account's (first) OpenStack user, for snapshots made elsewhere.
pub fn account_user_id(ctx: &ApiContext, account: &str) -> String {
    ctx.keys.users(crate::USERS).iter().find(|u| u.account == account).map(user_id).unwrap_or_default()
}

fn domain() -> Value {
    json!({"id": "default", "name": "Default"})
}

fn domain_ok(d: Option<&Value>) -> bool {
    match d {
        None => true,
        Some(d) => {
            let id_ok = d.get("id").and_then(Value::as_str).is_none_or(|i| i.eq_ignore_ascii_case("default"));
            let name_ok = d.get("name").and_then(Value::as_str).is_none_or(|n| n.eq_ignore_ascii_case("default"));
            id_ok && name_ok
        }
    }
}

/// Check a token request (§3.2) and return the user it authenticates.
pub fn authenticate<'a>(users: &'a [ProjectUser], body: &[u8]) -> OsResult<&'a ProjectUser> {
    let fail = |m: &str| OsError::Unauthorized(m.to_string());
    let v: Value = serde_json::from_slice(body).map_err(|_| OsError::BadRequest("Malformed JSON body.".into()))?;
    let identity =
        v.pointer("/auth/identity").ok_or_else(|| OsError::BadRequest("auth.identity is required".into()))?;
    let methods = identity.get("methods").and_then(Value::as_array).cloned().unwrap_or_default();
    if !methods.iter().any(|m| m.as_str() == Some("password")) {
        return Err(fail("The request you have made requires authentication."));
    }
    let u =
        identity.pointer("/password/user").ok_or_else(|| fail("The request you have made requires authentication."))?;
    let password = u.get("password").and_then(Value::as_str).unwrap_or("");
    let by_id = u.get("id").and_then(Value::as_str);
    let by_name = u.get("name").and_then(Value::as_str);
    if by_id.is_none() && !domain_ok(u.get("domain")) {
        return Err(fail("The request you have made requires authentication."));
    }
    // Scope (§3.2): a project by id or name; none means the user's only project; a domain or
    // system scope is not served.
    let scope = v.pointer("/auth/scope");
    let project = match scope {
        None => None,
        Some(sc) => match sc.get("project") {
            Some(p) if (p.get("id").is_some() || p.get("name").is_some()) && domain_ok(p.get("domain")) => Some(p),
            _ => return Err(fail("The request you have made requires authentication.")),
        },
    };
    // Two accounts may use the same user name: the password and the scope pick the one.
    users
        .iter()
        .filter(|c| match (by_id, by_name) {
            (Some(id), _) => user_id(c) == id,
            (None, Some(name)) => c.user == name,
            _ => false,
        })
        .filter(|c| disksnap_api_common::sign::same(c.password.as_bytes(), password.as_bytes()))
        .find(|c| {
            project.is_none_or(|p| {
                p.get("id").and_then(Value::as_str).is_none_or(|i| i == c.project_id)
                    && p.get("name").and_then(Value::as_str).is_none_or(|n| n == c.project_name)
            })
        })
        .ok_or_else(|| fail("The request you have made requires authentication."))
}

/// **disksnap choice:** the catalog's one region is `RegionOne` when a zone has that alias,
/// else the default zone's name.
pub fn region(ctx: &ApiContext) -> String {
    let zones = ctx.service.zones();
    if zones.iter().any(|z| z.aliases.iter().any(|a| a.eq_ignore_ascii_case("RegionOne"))) {
        "RegionOne".into()
    } else {
        ctx.service.default_zone()
    }
}

fn service_entry(kind: &str, name: &str, url: &str, region: &str) -> Value {
    let id = |s: &str| hex::encode(&blake3::hash(format!("{kind}/{s}").as_bytes()).as_bytes()[..16]);
    let endpoints: Vec<Value> = ["public", "internal", "admin"]
        .iter()
        .map(|i| json!({"id": id(i), "interface": i, "region_id": region, "region": region, "url": url}))
        .collect();
    json!({"id": id("service"), "type": kind, "name": name, "endpoints": endpoints})
}

pub fn token_body(ctx: &ApiContext, t: &Token, base: &str) -> Value {
    let region = region(ctx);
    let pid = &t.project_id;
    let v3 = format!("{base}/v3/{pid}");
    let audit = &hex::encode(rand::random::<[u8; 11]>())[..22];
    json!({"token": {
    "methods": ["password"],
    "expires_at": t.expires.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    "issued_at": t.issued.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    "user": {"id": t.user_id, "name": t.user, "domain": domain(), "password_expires_at": null},
    "project": {"id": pid, "name": t.project_name, "domain": domain()},
    "roles": [
        {"id": "d15c0000000000000000000000000001", "name": "admin"},
        {"id": "d15c0000000000000000000000000002", "name": "member"},
        {"id": "d15c0000000000000000000000000003", "name": "reader"}],
    "audit_ids": [audit],
    "is_domain": false,
    "catalog": [
        service_entry("identity", "keystone", &format!("{base}/identity/v3"), &region),
        service_entry("block-storage", "cinder", &v3, &region),
        service_entry("volumev3", "cinderv3", &v3, &region),
        service_entry("volumev2", "cinderv2", &format!("{base}/v2/{pid}"), &region),
    ]}})
}

pub fn versions_body(base: &str) -> Value {
    json!({"versions": {"values": [wire::identity_version(base)]}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Vec<ProjectUser> {
        vec![ProjectUser {
            account: "dev".into(),
            project_id: "0123456789abcdef0123456789abcdef".into(),
            project_name: "demo".into(),
            user: "demo".into(),
            password: "secret".into(),
        }]
    }

    fn body(user: Value, scope: Value) -> Vec<u8> {
        let mut v = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}});
        if !scope.is_null() {
            v["auth"]["scope"] = scope;
        }
        v.to_string().into_bytes()
    }

    #[test]
    fn password_auth() {
        let u = users();
        let ok = body(
            json!({"name": "demo", "password": "secret", "domain": {"name": "Default"}}),
            json!({"project": {"name": "demo", "domain": {"name": "Default"}}}),
        );
        assert_eq!(authenticate(&u, &ok).unwrap().account, "dev");
        let by_id = body(
            json!({"id": user_id(&u[0]), "password": "secret"}),
            json!({"project": {"id": "0123456789abcdef0123456789abcdef"}}),
        );
        assert!(authenticate(&u, &by_id).is_ok());
        assert!(authenticate(&u, &body(json!({"name": "demo", "password": "secret"}), Value::Null)).is_ok());
        let bad_pw = body(json!({"name": "demo", "password": "nope"}), Value::Null);
        assert!(matches!(authenticate(&u, &bad_pw), Err(OsError::Unauthorized(_))));
        let other_project = body(json!({"name": "demo", "password": "secret"}), json!({"project": {"name": "x"}}));
        assert!(matches!(authenticate(&u, &other_project), Err(OsError::Unauthorized(_))));
        let domain_scope = body(json!({"name": "demo", "password": "secret"}), json!({"domain": {"id": "default"}}));
        assert!(matches!(authenticate(&u, &domain_scope), Err(OsError::Unauthorized(_))));
        assert!(matches!(authenticate(&u, b"{"), Err(OsError::BadRequest(_))));
    }

    #[test]
    fn same_user_name_in_two_accounts() {
        let mut u = users();
        u.push(ProjectUser {
            account: "other".into(),
            project_id: "fedcba9876543210fedcba9876543210".into(),
            project_name: "demo2".into(),
            user: "demo".into(),
            password: "other-secret".into(),
        });
        let b = body(json!({"name": "demo", "password": "other-secret"}), Value::Null);
        assert_eq!(authenticate(&u, &b).unwrap().account, "other");
        let b = body(json!({"name": "demo", "password": "secret"}), json!({"project": {"name": "demo"}}));
        assert_eq!(authenticate(&u, &b).unwrap().account, "dev");
        let b = body(json!({"name": "demo", "password": "secret"}), json!({"project": {"name": "demo2"}}));
        assert!(authenticate(&u, &b).is_err());
    }

    #[tokio::test]
    async fn tokens_expire_and_outlive_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let open = || async {
            let svc = disksnap_service::Service::open(disksnap_service::ServiceConfig::new(dir.path())).await.unwrap();
            TokenStore { ctx: ApiContext::new(svc, disksnap_api_common::KeyRing::default()) }
        };
        let s = open().await;
        let (id, _) = s.issue(&users()[0], Duration::from_secs(60)).await.unwrap();
        assert_eq!(s.check(Some(&id)).await.unwrap().account, "dev");
        assert!(s.check(Some("nope")).await.is_err());
        assert!(s.check(None).await.is_err());
        let (short, _) = s.issue(&users()[0], Duration::from_millis(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(s.check(Some(&short)).await.is_err());
        // a new service on the same data directory (a restart) still knows the token
        drop(s);
        let s = open().await;
        let me = s.check(Some(&id)).await.unwrap();
        let mut other = users()[0].clone();
        other.account = "other".into();
        other.project_id = "fedcba9876543210fedcba9876543210".into();
        let (theirs, _) = s.issue(&other, Duration::from_secs(60)).await.unwrap();
        assert!(!s.revoke(&me, &theirs).await.unwrap(), "another project's token");
        assert!(s.check(Some(&theirs)).await.is_ok());
        assert!(s.revoke(&me, &id).await.unwrap());
        assert!(s.check(Some(&id)).await.is_err());
    }
}
