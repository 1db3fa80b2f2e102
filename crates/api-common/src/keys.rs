//! Credentials, by key kind. The service knows accounts by name only; which key belongs to which
//! account is the dialects' business, so it lives here (filled from the config by the binary).

use std::collections::HashMap;

/// Which family of credentials a key belongs to: each dialect names its own
/// ([`Dialect::KEY_KIND`](crate::Dialect::KEY_KIND)); this crate names none. A dialect that
/// shares another's keys uses its kind (51idc signs with the QingCloud pair, dialects.md §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyKind(pub &'static str);

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The caller a signature (or token) check found: the account, and the key id it signed with.
/// Every dialect's verify step ends in one of these (OpenStack adds its project to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub account: String,
    pub key_id: String,
}

impl Verified {
    pub fn caller(&self) -> disksnap_service::Caller {
        disksnap_service::Caller::new(self.account.clone())
    }
}

/// The account a key id belongs to and the secret that signs for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    pub account: String,
    pub secret: String,
}

/// A password user of one account's project, for a dialect that issues tokens for a user name
/// and password (Keystone's). Kept by key kind, as the keys are: the dialect names its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectUser {
    pub account: String,
    pub project_id: String,
    pub project_name: String,
    pub user: String,
    pub password: String,
}

#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: HashMap<(KeyKind, String), Secret>,
    users: HashMap<KeyKind, Vec<ProjectUser>>,
}

impl KeyRing {
    /// Register a key. A key id registered twice for one kind is a configuration error.
    pub fn add(&mut self, kind: KeyKind, key_id: &str, account: &str, secret: &str) -> Result<(), String> {
        let entry = Secret { account: account.to_string(), secret: secret.to_string() };
        if let Some(old) = self.keys.insert((kind, key_id.to_string()), entry) {
            return Err(format!("{kind} key {key_id} is given to both {} and {account}", old.account));
        }
        Ok(())
    }

    pub fn lookup(&self, kind: KeyKind, key_id: &str) -> Option<&Secret> {
        self.keys.get(&(kind, key_id.to_string()))
    }

    /// Register a password user. A project id given twice for one kind is a configuration error.
    pub fn add_user(&mut self, kind: KeyKind, user: ProjectUser) -> Result<(), String> {
        let users = self.users.entry(kind).or_default();
        if users.iter().any(|u| u.project_id == user.project_id) {
            return Err(format!("{kind} project id {} is given to two accounts", user.project_id));
        }
        users.push(user);
        Ok(())
    }

    /// The password users of a kind, in the order registered.
    pub fn users(&self, kind: KeyKind) -> &[ProjectUser] {
        self.users.get(&kind).map(Vec::as_slice).unwrap_or(&[])
    }
}
