//! The web console's two injections (crates/console depends on no dialect): sign-in checked
//! against the account credentials the dialects use, and each dialect's spelling of ids.

use std::sync::Arc;

use disksnap_api_common::ApiContext;
use disksnap_console::{Console, IdRendering};

/// How the console shows an id to each API's users.
const RENDERINGS: &[IdRendering] = &[
    ("QingCloud / 51idc", disksnap_dialect_qingcloud::ids::display),
    ("Alibaba Cloud ECS", disksnap_dialect_aliyun::ids::show),
    ("Tencent Cloud CBS", disksnap_dialect_tencent::wire::show),
    ("OpenStack Cinder / Huawei EVS", disksnap_dialect_openstack::wire::uuid),
];

pub fn console(api: &ApiContext) -> Console {
    let keys = api.keys.clone();
    let authenticate = Arc::new(move |user: &str, password: &str| -> Option<String> {
        // An access key pair of any vendor…
        for kind in [
            disksnap_dialect_qingcloud::KEYS,
            disksnap_dialect_aliyun::KEYS,
            disksnap_dialect_tencent::KEYS,
            disksnap_dialect_openstack::HUAWEI_KEYS,
        ] {
            if let Some(s) = keys.lookup(kind, user) {
                if disksnap_console::session::same(&s.secret, password) {
                    return Some(s.account.clone());
                }
            }
        }
        // …or an OpenStack user (a user name two accounts share signs in only with the
        // password of one of them; the first configured wins, as Keystone's own lookup).
        keys.users(disksnap_dialect_openstack::USERS)
            .iter()
            .find(|u| u.user == user && disksnap_console::session::same(&u.password, password))
            .map(|u| u.account.clone())
    });
    Console::new(api.service.clone(), authenticate, RENDERINGS.to_vec())
}
