//! Aliyun ECS RPC: the parameter reader (query + form body, `Signature` keeps `+`), every
//! typed read of `Params` (booleans, ranges, JSON id lists, Tag.N, creation filters, paging and
//! NextToken), the action/version router, and RPC v1 verification (STS refusal → key →
//! SignatureMethod/Version → HMAC-SHA1 → Timestamp window → SignatureNonce).
#![no_main]

use arbitrary::Arbitrary;
use disksnap_api_common::time;
use disksnap_dialect_aliyun::params::{decode_token, parse_minute_time, Paging, Params};
use disksnap_dialect_aliyun::signature::{rpc_signature, rpc_string_to_sign, verify};
use disksnap_dialect_aliyun::{params_of, Endpoint};
use disksnap_fuzz::{block_on, with_ctx, Fix, Req, KEY, SECRET};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    req: Req,
    fix: Fix,
    method_and_version: bool,
    nonce: Option<u32>,
    min_max_results: u8,
    keys: Vec<String>,
}

fn reads(p: &Params, keys: &[String], min_max_results: u64) {
    let fixed = ["DiskIds", "SnapshotIds", "PageSize", "Force", "DryRun", "Size", "SnapshotName"];
    for k in fixed.iter().copied().chain(keys.iter().map(String::as_str)) {
        let _ = p.get(k);
        let _ = p.required(k);
        let _ = p.bool(k);
        let _ = p.int(k, 1, 100);
        let _ = p.int(k, i64::MIN, i64::MAX);
        let _ = p.id_list(k, "InvalidParameter", 400);
        if let Some(v) = p.get(k) {
            let _ = parse_minute_time(v);
            let _ = decode_token(v);
        }
    }
    let _ = p.tags();
    let _ = p.creation_filters();
    let _ = Paging::from_params(p, min_max_results);
    if let Ok(paging) = Paging::from_params(p, min_max_results) {
        let _ = paging.next_token(min_max_results as usize, u64::MAX);
    }
    let _ = Endpoint::from_request(p.get("Action"), p.get("Version"));
}

// The real service opens once, before the first input (it is not what is being timed).
fuzz_target!(init: disksnap_fuzz::init(), |inp: Input| {
    let mut raw = inp.req.raw();
    // An Authorization: ACS3-… header sends the request to V3 (the aliyun_v3 target).
    raw.headers.remove("authorization");
    let (mut p, query) = params_of(&raw);
    reads(&p, &inp.keys, inp.min_max_results as u64);

    let front = |p: &mut Params, k: &str, v: String| p.0.insert(0, (k.to_string(), v));
    if inp.fix.key {
        front(&mut p, "AccessKeyId", KEY.into());
    }
    if inp.method_and_version {
        front(&mut p, "SignatureMethod", "HMAC-SHA1".into());
        front(&mut p, "SignatureVersion", "1.0".into());
    }
    if let Some(t) = inp.fix.time.at() {
        front(&mut p, "Timestamp", time::iso_z(t));
    }
    if let Some(n) = inp.nonce {
        front(&mut p, "SignatureNonce", n.to_string());
    }
    if inp.fix.sign {
        p.0.retain(|(k, _)| k != "Signature");
        let sig = rpc_signature(SECRET, &rpc_string_to_sign(raw.method.as_str(), &p.0));
        p.0.push(("Signature".into(), sig));
    }
    let result = with_ctx(|ctx| block_on(verify(ctx, &raw, &p.0, &query)));
    match result {
        Ok(v) => disksnap_fuzz::note(|| format!("ok {}", v.account)),
        Err(e) => {
            let _ = (e.http_status(), e.message());
            disksnap_fuzz::note(|| e.code().to_string());
        }
    }
});
