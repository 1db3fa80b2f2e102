//! OpenStack request parsing without signatures: the Keystone password-auth body, the
//! `OpenStack-API-Version` microversion header, method + path routing, the Cinder snapshot and
//! volume request bodies (envelope, name/description, force, metadata, update, size), and the
//! list query (filters, sort, marker/offset paging, next links).
#![no_main]

use arbitrary::Arbitrary;
use axum::http::Method;
use chrono::{TimeZone, Utc};
use disksnap_api_common::encode::parse_pairs;
use disksnap_dialect_openstack::cinder::{envelope, opt_text, parse_force, parse_meta, parse_update};
use disksnap_dialect_openstack::listing::{self, Row, Target};
use disksnap_dialect_openstack::microversion::{negotiate, MIN};
use disksnap_dialect_openstack::router::Endpoint;
use disksnap_dialect_openstack::volumes::parse_size;
use disksnap_dialect_openstack::{error::OsError, keystone};
use disksnap_fuzz::{keys, Req};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct RowIn {
    id: u8,
    created: u32,
    name: String,
    status: u8,
    size: u8,
    bootable: bool,
    metadata: Vec<(String, String)>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    req: Req,
    version: Option<String>,
    volumes: bool,
    strict: bool,
    rows: Vec<RowIn>,
}

fn os_err(e: OsError) {
    let _ = (e.status(), e.name(), e.message());
}

fuzz_target!(|inp: Input| {
    static USERS: std::sync::OnceLock<disksnap_api_common::KeyRing> = std::sync::OnceLock::new();
    let ring = USERS.get_or_init(keys);
    let raw = inp.req.raw();
    let _ = Endpoint::parse(&raw.method, &raw.path);
    let _ = Endpoint::parse(&Method::POST, &raw.path);
    match keystone::authenticate(ring.openstack_users(), &raw.body) {
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
    let rows: Vec<Row> = inp
        .rows
        .iter()
        .take(64)
        .enumerate()
        .map(|(index, r)| {
            let t = Utc.timestamp_opt(r.created as i64, 0).single().unwrap_or_default();
            Row {
                id: format!("{:08x}-0000-4000-8000-000000000000", r.id),
                created: t,
                updated: t,
                name: r.name.clone(),
                description: r.name.clone(),
                status: ["available", "creating", "error", "deleting"][r.status as usize % 4].into(),
                volume_id: format!("v{}", r.id % 4),
                size: r.size as u64,
                zone: "nova".into(),
                bootable: r.bootable,
                metadata: r.metadata.clone(),
                index,
            }
        })
        .collect();
    if let Ok(page) = listing::page(rows, &p) {
        if let Some(m) = page.next_marker {
            let _ = listing::next_href("http://h", &raw.path, &raw.query, &m);
        }
    }
});
