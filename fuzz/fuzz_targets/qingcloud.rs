//! QingCloud IaaS and 51idc: the parameter reader (query + form body, `+` rules), every typed
//! read of `Params`, and signature v1 verification (key → version → method → signature →
//! time_stamp/expires window → req_id replay).
#![no_main]

use arbitrary::Arbitrary;
use disksnap_api_common::{encode, time};
use disksnap_dialect_qingcloud::iaas::{params_of, router::Action, signature};
use disksnap_dialect_qingcloud::params::Params;
use disksnap_dialect_qingcloud::wire;
use disksnap_fuzz::{block_on, with_ctx, Fix, Req, KEY, SECRET};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    req: Req,
    fix: Fix,
    /// Also sign a signature_version / signature_method the input chose.
    version_one: bool,
    expires: Option<i32>,
    keys: Vec<String>,
}

fn reads(p: &Params, keys: &[String]) {
    let fixed =
        ["limit", "offset", "is_full", "verbose", "count", "size", "snapshots", "volumes", "resources", "status"];
    for k in fixed.iter().copied().chain(keys.iter().map(String::as_str)) {
        let _ = p.get(k);
        let _ = p.required(k);
        let _ = p.int(k);
        let _ = p.flag(k, &[0, 1]);
        let _ = p.count(k, Some(100));
        let _ = p.count(k, None);
        let _ = p.list(k);
        let _ = p.dicts(k);
        if let Some(v) = p.get(k) {
            let _ = wire::snapshot_statuses_of(v);
            let _ = wire::volume_statuses_of(v);
        }
    }
    let _ = p.dicts("resource_tag_pairs");
    if let Some(a) = p.get("action") {
        let _ = Action::parse(a);
    }
}

// The real service opens once, before the first input (it is not what is being timed).
fuzz_target!(init: disksnap_fuzz::init(), |inp: Input| {
    let raw = inp.req.raw();
    let mut p = params_of(&raw);
    reads(&p, &inp.keys);
    // 51idc reads its query with `+` as a space everywhere.
    reads(&Params(encode::parse_pairs(&raw.query, |_| true)), &inp.keys);

    let front = |p: &mut Params, k: &str, v: String| p.0.insert(0, (k.to_string(), v));
    if inp.fix.key {
        front(&mut p, "access_key_id", KEY.into());
    }
    if inp.version_one {
        front(&mut p, "signature_version", "1".into());
    }
    if let Some(t) = inp.fix.time.at() {
        front(&mut p, "time_stamp", time::iso_z(t));
    }
    if let Some(s) = inp.expires {
        front(&mut p, "expires", time::iso_z(chrono::Utc::now() + chrono::Duration::seconds(s as i64)));
    }
    if inp.fix.sign {
        let method_name = p.get("signature_method").unwrap_or("HmacSHA256").to_string();
        let to_sign = signature::string_to_sign(raw.method.as_str(), &raw.path, &p.0);
        if let Some(sig) = signature::compute(&method_name, SECRET, &to_sign) {
            p.0.retain(|(k, _)| k != "signature");
            p.0.push(("signature".into(), sig));
        }
    }
    let result = with_ctx(|ctx| block_on(signature::verify(ctx, raw.method.as_str(), &raw.path, &p)));
    match result {
        Ok(v) => disksnap_fuzz::note(|| format!("ok {}", v.account)),
        Err(e) => {
            let (code, message) = (e.ret_code(), e.message("fuzz"));
            let _ = e.http_status();
            disksnap_fuzz::note(|| format!("{code} {}", message.split(':').next().unwrap_or("")));
        }
    }
});
