//! Tencent CBS v2: the parameter reader (GET query or POST form, `_` read as `.`, duplicates
//! refused), every typed read the actions make, and v2 signature verification (common
//! parameters → Token → SecretId → HmacSHA1/SHA256 over METHOD+Host+path → Timestamp window →
//! Nonce replay).
#![no_main]

use arbitrary::Arbitrary;
use disksnap_api_common::RequestId;
use disksnap_dialect_tencent::handlers::fuzzing::{parameters, read_args};
use disksnap_dialect_tencent::signature::{signature, string_to_sign, verify, SignatureMethod};
use disksnap_fuzz::{block_on, with_ctx, Fix, Req, KEY, SECRET};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    req: Req,
    fix: Fix,
    host: String,
    nonce: Option<u64>,
    sha256: Option<bool>,
}

// The real service opens once, before the first input (it is not what is being timed).
fuzz_target!(init: disksnap_fuzz::init(), |inp: Input| {
    let raw = inp.req.raw();
    let Ok(mut p) = parameters(&raw) else { return };
    read_args(&p);
    if inp.fix.key {
        p.0.insert("SecretId".into(), KEY.into());
    }
    if let Some(t) = inp.fix.time.at() {
        p.0.insert("Timestamp".into(), t.timestamp().to_string());
    }
    if let Some(n) = inp.nonce {
        p.0.insert("Nonce".into(), n.to_string());
    }
    match inp.sha256 {
        Some(true) => drop(p.0.insert("SignatureMethod".into(), "HmacSHA256".into())),
        Some(false) => drop(p.0.insert("SignatureMethod".into(), "HmacSHA1".into())),
        None => {}
    }
    if inp.fix.sign {
        let method = SignatureMethod::from_param(p.raw("SignatureMethod"));
        let src = string_to_sign(raw.method.as_str(), &inp.host, &raw.path, &p);
        p.0.insert("Signature".into(), signature(SECRET, method, &src));
    }
    let rid = RequestId("fuzz".into());
    let result = with_ctx(|ctx| block_on(verify(ctx, raw.method.as_str(), &inp.host, &raw.path, &p)));
    match result {
        Ok(v) => {
            read_args(&p);
            disksnap_fuzz::note(|| format!("ok {}", v.account));
        }
        Err(e) => {
            let _ = (e.message(&rid), e.is_internal());
            disksnap_fuzz::note(|| format!("{:?}", e.code()));
        }
    }
});
