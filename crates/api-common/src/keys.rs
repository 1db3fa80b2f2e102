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

/// A Keystone user of one account's project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenStackUser {
    pub account: String,
    pub project_id: String,
    pub project_name: String,
    pub user: String,
    pub password: String,
}

#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: HashMap<(KeyKind, String), Secret>,
    openstack: Vec<OpenStackUser>,
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

    pub fn add_openstack(&mut self, user: OpenStackUser) -> Result<(), String> {
        if self.openstack.iter().any(|u| u.project_id == user.project_id) {
            return Err(format!("OpenStack project id {} is given to two accounts", user.project_id));
        }
        self.openstack.push(user);
        Ok(())
    }

    pub fn openstack_users(&self) -> &[OpenStackUser] {
        &self.openstack
    }
}
