//! Credentials, by vendor. The service knows accounts by name only; which key belongs to which
//! account is the dialects' business, so it lives here (filled from the config by the binary).

use std::collections::HashMap;

/// The signature families a key belongs to. 51idc uses the QingCloud pair (dialects.md §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    QingCloud,
    Aliyun,
    Tencent,
    Huawei,
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
    keys: HashMap<(Vendor, String), Secret>,
    openstack: Vec<OpenStackUser>,
}

impl KeyRing {
    /// Register a key. A key id registered twice for one vendor is a configuration error.
    pub fn add(&mut self, vendor: Vendor, key_id: &str, account: &str, secret: &str) -> Result<(), String> {
        let entry = Secret { account: account.to_string(), secret: secret.to_string() };
        if let Some(old) = self.keys.insert((vendor, key_id.to_string()), entry) {
            return Err(format!("{vendor:?} key {key_id} is given to both {} and {account}", old.account));
        }
        Ok(())
    }

    pub fn lookup(&self, vendor: Vendor, key_id: &str) -> Option<&Secret> {
        self.keys.get(&(vendor, key_id.to_string()))
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
