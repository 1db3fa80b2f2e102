//! OpenStack request parsing without signatures: the Keystone password-auth body, the
//! `OpenStack-API-Version` microversion header, method + path routing, the Cinder snapshot and
//! volume request bodies (envelope, name/description, force, metadata, update, size), and the
//! list query (filters, sort keys, next links).
#![no_main]

use arbitrary::Arbitrary;
use axum::http::Method;
use disksnap_api_common::encode::parse_pairs;
use disksnap_dialect_openstack::cinder::{envelope, opt_text, parse_force, parse_meta, parse_update};
use disksnap_dialect_openstack::listing::{self, Target};
use disksnap_dialect_openstack::microversion::{negotiate, MIN};
use disksnap_dialect_openstack::router::Endpoint;
use disksnap_dialect_openstack::volumes::parse_size;
use disksnap_dialect_openstack::{error::OsError, keystone};
use disksnap_fuzz::{keys, Req};
use libfuzzer_sys::fuzz_target;

/// A JSON value built from structure, so that bodies with the right envelopes and keys (and
/// the wrong types under them) are common rather than needing the fuzzer to write JSON.
#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Known(u8),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Other(String),
}

const WORDS: &[&str] = &[
    "auth",
    "identity",
    "methods",
    "password",
    "user",
    "id",
    "name",
    "domain",
    "scope",
    "project",
    "admin",
    "pw",
    "pw2",
    "default",
    "Default",
    "dev",
    "other",
    "0123456789abcdef0123456789abcdef",
    "fedcba9876543210fedcba9876543210",
    "snapshot",
    "volume",
    "snapshots",
    "metadata",
    "meta",
    "force",
    "size",
    "display_name",
    "description",
    "display_description",
    "volume_id",
    "os-reset_status",
    "status",
    "revert",
    "snapshot_id",
    "system",
    "token",
    "true",
    "1",
    "",
];

/// The words, and the user ids of the ring's Keystone users.
fn word(i: u8) -> String {
    static ALL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = ALL.get_or_init(|| {
        let mut w: Vec<String> = WORDS.iter().map(|s| s.to_string()).collect();
        w.extend(keys().users(disksnap_dialect_openstack::USERS).iter().map(keystone::user_id));
        w
    });
    all[i as usize % all.len()].clone()
}

impl Json {
    fn value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(n) => Value::from(*n),
            Json::UInt(n) => Value::from(*n),
            Json::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            Json::Str(s) => Value::String(s.clone()),
            Json::Known(i) => Value::String(word(*i)),
            Json::Array(a) => Value::Array(a.iter().map(Json::value).collect()),
            Json::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| {
                        let k = match k {
                            Key::Known(i) => word(*i),
                            Key::Other(s) => s.clone(),
                        };
                        (k, v.value())
                    })
                    .collect(),
            ),
        }
    }
}

/// A Keystone password-auth body with each part chosen (present or not, right or wrong), so
/// the user, password, domain and scope checks are all reached.
#[derive(Arbitrary, Debug)]
struct KsAuth {
    methods: Vec<u8>,
    user_by_id: bool,
    user: u8,
    password: u8,
    user_domain: Option<Json>,
    scope: Option<(bool, u8, Option<Json>)>,
}

impl KsAuth {
    fn value(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let mut user = Map::new();
        user.insert(if self.user_by_id { "id" } else { "name" }.into(), Value::String(word(self.user)));
        user.insert("password".into(), Value::String(word(self.password)));
        if let Some(d) = &self.user_domain {
            user.insert("domain".into(), d.value());
        }
        let methods: Vec<Value> = self.methods.iter().map(|m| Value::String(word(*m))).collect();
        let mut auth = json!({"identity": {"methods": methods, "password": {"user": user}}});
        if let Some((by_id, p, domain)) = &self.scope {
            let mut project = Map::new();
            project.insert(if *by_id { "id" } else { "name" }.into(), Value::String(word(*p)));
            if let Some(d) = domain {
                project.insert("domain".into(), d.value());
            }
            auth["scope"] = json!({ "project": project });
        }
        json!({ "auth": auth })
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    keystone: Option<KsAuth>,
    req: Req,
    version: Option<String>,
    volumes: bool,
    strict: bool,
    /// A marker for the next link.
    marker: String,
    /// When given, the body is this value serialized (else the request's raw bytes).
    json: Option<Json>,
}

fn os_err(e: OsError) {
    let _ = (e.status(), e.name(), e.message());
}

fuzz_target!(|inp: Input| {
    static USERS: std::sync::OnceLock<disksnap_api_common::KeyRing> = std::sync::OnceLock::new();
    let ring = USERS.get_or_init(keys);
    let mut raw = inp.req.raw();
    if let Some(j) = &inp.json {
        raw.body = serde_json::to_vec(&j.value()).expect("a Value serializes").into();
    }
    if let Some(k) = &inp.keystone {
        raw.body = serde_json::to_vec(&k.value()).expect("a Value serializes").into();
    }
    let _ = Endpoint::parse(&raw.method, &raw.path);
    let _ = Endpoint::parse(&Method::POST, &raw.path);
    match keystone::authenticate(ring.users(disksnap_dialect_openstack::USERS), &raw.body) {
        Ok(u) => disksnap_fuzz::note(|| format!("keystone ok {}", u.account)),
        Err(e) => {
            disksnap_fuzz::note(|| format!("keystone {}", e.name()));
            os_err(e);
        }
    }
    let version = negotiate(inp.version.as_deref()).unwrap_or(MIN);

    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&raw.body) {
        for key in ["snapshot", "volume", "metadata", "meta", "os-reset_status", "revert"] {
            match envelope(&body, key) {
                Ok(o) => {
                    let _ = opt_text(o, &["name", "display_name"]).map_err(os_err);
                    let _ = opt_text(o, &["description", "display_description"]).map_err(os_err);
                    let _ = parse_force(o.get("force")).map_err(os_err);
                    let _ = parse_meta(o.get("metadata")).map_err(os_err);
                    let _ = parse_size(o.get("size")).map_err(os_err);
                }
                Err(e) => os_err(e),
            }
        }
        let _ = parse_update(&body).map_err(os_err);
        let _ = parse_meta(Some(&body)).map_err(os_err);
        let _ = parse_size(Some(&body)).map_err(os_err);
    }

    let pairs = parse_pairs(&raw.query, |_| false);
    let target = if inp.volumes { Target::Volumes } else { Target::Snapshots };
    for (_, v) in &pairs {
        let _ = listing::parse_metadata_filter(v).map_err(os_err);
    }
    let p = match listing::parse(&pairs, target, version, inp.strict) {
        Ok(p) => p,
        Err(e) => return os_err(e),
    };
    // The order the store is asked for (every list is SQL: the meta tests check the pages).
    let _ = listing::sort_keys(&p);
    let _ = listing::next_href("http://h", &raw.path, &raw.query, &inp.marker);
});
