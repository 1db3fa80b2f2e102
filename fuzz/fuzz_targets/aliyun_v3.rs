//! Aliyun ACS3-HMAC-SHA256: the Authorization header parser on any text, and V3 verification
//! of a whole request (STS refusal → key → canonical request over the query, the listed
//! headers and the body hash → signature → x-acs-date window → x-acs-signature-nonce).
#![no_main]

use arbitrary::Arbitrary;
use disksnap_api_common::sign::sha256_hex;
use disksnap_api_common::time;
use disksnap_dialect_aliyun::params_of;
use disksnap_dialect_aliyun::signature::{
    parse_v3_authorization, v3_canonical_request, v3_signature, v3_string_to_sign, verify,
};
use disksnap_fuzz::{block_on, set_header, with_ctx, Fix, Req, KEY, SECRET};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    req: Req,
    fix: Fix,
    /// An Authorization header as sent (parsed on its own, and used when not signing).
    authorization: String,
    signed_headers: String,
    nonce: Option<u32>,
    upper_signature: bool,
}

// The real service opens once, before the first input (it is not what is being timed).
fuzz_target!(init: disksnap_fuzz::init(), |inp: Input| {
    let _ = parse_v3_authorization(&inp.authorization);
    let mut raw = inp.req.raw();
    if let Some(t) = inp.fix.time.at() {
        set_header(&mut raw, "x-acs-date", &time::iso_z(t));
    }
    if let Some(n) = inp.nonce {
        set_header(&mut raw, "x-acs-signature-nonce", &n.to_string());
    }
    let (p, query) = params_of(&raw);
    let auth = if inp.fix.sign {
        // The client's side: sign what is sent with the known secret.
        let header = |name: &str| {
            raw.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
        };
        let canonical = v3_canonical_request(
            raw.method.as_str(),
            &raw.path,
            &query,
            &inp.signed_headers,
            header,
            &sha256_hex(&raw.body),
        );
        let mut sig = v3_signature(SECRET, &v3_string_to_sign(&canonical));
        if inp.upper_signature {
            sig = sig.to_ascii_uppercase();
        }
        let key = if inp.fix.key { KEY } else { "unknown" };
        format!("ACS3-HMAC-SHA256 Credential={key},SignedHeaders={},Signature={sig}", inp.signed_headers)
    } else if inp.fix.key {
        format!("ACS3-HMAC-SHA256 Credential={KEY},SignedHeaders={},Signature=00", inp.signed_headers)
    } else {
        format!("ACS3-{}", inp.authorization)
    };
    set_header(&mut raw, "authorization", &auth);
    let result = with_ctx(|ctx| block_on(verify(ctx, &raw, &p.0, &query)));
    match result {
        Ok(v) => disksnap_fuzz::note(|| format!("ok {}", v.account)),
        Err(e) => {
            let _ = (e.http_status(), e.message());
            disksnap_fuzz::note(|| e.code().to_string());
        }
    }
});
