//! Huawei EVS SDK-HMAC-SHA256: the Authorization header parser on any text, the canonical
//! URI/query builders, and verification of a whole request (key → X-Sdk-Date format and
//! window → X-Sdk-Date signed → canonical request over the signed headers and the body hash →
//! signature).
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use disksnap_dialect_openstack::signature::{
    canonical_query, canonical_request, canonical_uri, parse_authorization, signature, string_to_sign, verify,
};
use disksnap_fuzz::{keys, set_header, Fix, Req, KEY, SECRET};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    req: Req,
    fix: Fix,
    authorization: String,
    signed: Vec<String>,
    sign_date: bool,
}

fuzz_target!(|inp: Input| {
    static KEYS: std::sync::OnceLock<disksnap_api_common::KeyRing> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(keys);
    let _ = parse_authorization(&inp.authorization);
    let mut raw = inp.req.raw();
    let _ = canonical_uri(&raw.path);
    let _ = canonical_query(&raw.query);
    if let Some(t) = inp.fix.time.at() {
        set_header(&mut raw, "x-sdk-date", &t.format("%Y%m%dT%H%M%SZ").to_string());
    }
    let mut signed: Vec<String> = inp.signed.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    if inp.sign_date {
        signed.push("x-sdk-date".into());
    }
    let key = if inp.fix.key { KEY } else { "unknown" };
    let auth = if inp.fix.sign {
        let date = raw.header("x-sdk-date").unwrap_or("").to_string();
        let sig = match canonical_request(&raw, &signed) {
            Ok(c) => signature(SECRET, &string_to_sign(&date, &c)),
            Err(_) => "00".into(),
        };
        Some(format!("SDK-HMAC-SHA256 Access={key}, SignedHeaders={}, Signature={sig}", signed.join(";")))
    } else if inp.fix.key {
        Some(format!("SDK-HMAC-SHA256 Access={key}, SignedHeaders={}, Signature=00", signed.join(";")))
    } else {
        None
    };
    if let Some(a) = auth {
        set_header(&mut raw, "authorization", &a);
    }
    match verify(&raw, keys, Duration::from_secs(15 * 60)) {
        Ok(v) => disksnap_fuzz::note(|| format!("ok {}", v.account)),
        Err(e) => disksnap_fuzz::note(|| e.split(':').next().unwrap_or("").to_string()),
    }
});
