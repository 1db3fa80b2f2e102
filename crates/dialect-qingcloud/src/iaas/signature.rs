//! QingCloud signature version 1 (dialects.md §2.3–2.4): HMAC-SHA256 (or SHA1) over
//! `METHOD\nPATH\n` + the sorted, RFC 3986-encoded parameters; then the time window and the
//! `req_id` replay check. Only a [`Verified`] request reaches a handler.

use std::time::Duration;

use chrono::Utc;
use disksnap_api_common::{clock, encode, sign, ApiContext, NonceUse, Verified};

use crate::error::QcError;
use crate::params::Params;

/// When `expires` is present it replaces the time_stamp window, but never reaches further
/// ahead than this (the CLI sends now + 20 min).
const MAX_EXPIRES_AHEAD: Duration = Duration::from_secs(3600);

/// `METHOD\nPATH\nk=v&…` over every parameter but `signature`, sorted by raw key.
pub fn string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "signature").collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let qs: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", encode::rfc3986(k), encode::rfc3986(v))).collect();
    format!("{method}\n{path}\n{}", qs.join("&"))
}

pub fn compute(method_name: &str, secret: &str, to_sign: &str) -> Option<String> {
    match method_name {
        "HmacSHA256" => Some(sign::base64(&sign::hmac_sha256(secret.as_bytes(), to_sign.as_bytes()))),
        "HmacSHA1" => Some(sign::base64(&sign::hmac_sha1(secret.as_bytes(), to_sign.as_bytes()))),
        _ => None,
    }
}

pub async fn verify(ctx: &ApiContext, method: &str, path: &str, p: &Params) -> Result<Verified, QcError> {
    let key = p.get("access_key_id").ok_or_else(|| QcError::Auth("parameter [access_key_id] is required".into()))?;
    let secret =
        ctx.keys.lookup(crate::KEYS, key).ok_or_else(|| QcError::Auth(format!("access key [{key}] does not exist")))?;
    match p.get("signature_version") {
        Some("1") => {}
        Some(v) => {
            return Err(QcError::Auth(format!("signature_version [{v}] is not supported; use 1")));
        }
        None => return Err(QcError::Auth("parameter [signature_version] is required".into())),
    }
    let method_name = p.get("signature_method").unwrap_or("HmacSHA256");
    let given = p.get("signature").ok_or_else(|| QcError::Auth("parameter [signature] is required".into()))?;
    let to_sign = string_to_sign(method, path, &p.0);
    let expected = compute(method_name, &secret.secret, &to_sign).ok_or_else(|| {
        QcError::Auth(format!("signature_method [{method_name}] is not supported; use HmacSHA256 or HmacSHA1"))
    })?;
    if !sign::same(expected.as_bytes(), given.as_bytes()) {
        return Err(QcError::Auth(
            "signature does not match: sign METHOD\\nPATH\\n + the sorted, percent-encoded parameters with your secret key".into(),
        ));
    }
    // Time: a signed time_stamp is always required; `expires`, when signed too, extends the
    // window to itself (capped), as the CLI expects.
    let window = super::CLOCK_WINDOW;
    let ts = p.get("time_stamp").ok_or_else(|| QcError::invalid("parameter [time_stamp] is required"))?;
    let ts = clock::parse_iso(ts).map_err(|e| QcError::invalid(format!("parameter [time_stamp]: {e}")))?;
    let replay_window = match p.get("expires") {
        Some(exp) => {
            let exp = clock::parse_iso(exp).map_err(|e| QcError::invalid(format!("parameter [expires]: {e}")))?;
            let now = Utc::now();
            let cap = ts + chrono::Duration::from_std(MAX_EXPIRES_AHEAD).unwrap_or_default();
            if now > exp.min(cap) {
                return Err(QcError::Expired(format!(
                    "the request expired at {}",
                    exp.min(cap).format("%Y-%m-%dT%H:%M:%SZ")
                )));
            }
            if let Err(clock::Skew::TooNew { .. }) = clock::check(ts, window) {
                return Err(QcError::Expired("time_stamp is ahead of the server clock; sync your clock (UTC)".into()));
            }
            MAX_EXPIRES_AHEAD
        }
        None => {
            clock::check(ts, window)
                .map_err(|e| QcError::Expired(format!("{e} of {}s; sync your clock (UTC)", window.as_secs())))?;
            window
        }
    };
    if let Some(req_id) = p.get("req_id") {
        match ctx.first_use_nonce(&format!("qingcloud:{key}"), req_id, ts, replay_window).await? {
            NonceUse::First => {}
            NonceUse::Reused => return Err(QcError::Expired(format!("req_id [{req_id}] was already used"))),
            NonceUse::PastHorizon(h) => return Err(QcError::Expired(NonceUse::horizon_message(h))),
        }
    }
    Ok(Verified { account: secret.account.clone(), key_id: key.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "SECRETACCESSKEY";

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn base(action: &str, zone: &str, ts: &str) -> Vec<(String, String)> {
        pairs(&[
            ("access_key_id", "QYACCESSKEYIDEXAMPLE"),
            ("action", action),
            ("signature_method", "HmacSHA256"),
            ("signature_version", "1"),
            ("time_stamp", ts),
            ("version", "1"),
            ("zone", zone),
        ])
    }

    fn run_instances(zone: &str, ts: &str) -> Vec<(String, String)> {
        let mut p = base("RunInstances", zone, ts);
        p.extend(pairs(&[
            ("count", "1"),
            ("image_id", "centos64x86a"),
            ("instance_name", "demo"),
            ("instance_type", "small_b"),
            ("login_mode", "passwd"),
            ("login_passwd", "QingCloud20130712"),
            ("vxnets.1", "vxnet-0"),
        ]));
        p
    }

    fn sig(p: &[(String, String)]) -> String {
        compute("HmacSHA256", SECRET, &string_to_sign("GET", "/iaas/", p)).unwrap()
    }

    /// The vectors of dialects.md §2.3, computed by qingcloud-sdk 1.2.16.
    #[test]
    fn sdk_test_vectors() {
        let mut a = base("DescribeSnapshots", "pek3a", "2013-08-27T14:30:10Z");
        a.push(("limit".into(), "2".into()));
        assert_eq!(
            string_to_sign("GET", "/iaas/", &a),
            "GET\n/iaas/\naccess_key_id=QYACCESSKEYIDEXAMPLE&action=DescribeSnapshots&limit=2&signature_method=HmacSHA256&signature_version=1&time_stamp=2013-08-27T14%3A30%3A10Z&version=1&zone=pek3a"
        );
        assert_eq!(sig(&a), "4HnhQJmdpqvqYvTxwEz18BQkJZeWjbg6ueg+CaqbsO4=");
        assert_eq!(sig(&run_instances("pek1", "2013-08-27T14:30:10Z")), "32bseYy39DOlatuewpeuW5vpmW51sD1A/JdGynqSpP8=");
        assert_eq!(
            sig(&run_instances("pek3a", "2013-08-27T14:30:10Z")),
            "byjccvWIvAftaq+oublemagH3bYAlDWxxLFAzAsyslw="
        );
        assert_eq!(
            sig(&run_instances("pek3a", "2021-08-27T14:30:10Z")),
            "eMj5kEqBAZ04MS55xINEo7V3Z3CHEKEDdaB/3SUunMw="
        );
        let mut e = base("CreateSnapshots", "pek3a", "2013-08-27T14:30:10Z");
        e.extend(pairs(&[
            ("resources.1", "vol-abc"),
            ("snapshot_name", "my snap+1/~*中"),
            ("scheduler_id", ""),
            ("is_full", "0"),
        ]));
        assert!(string_to_sign("GET", "/iaas/", &e).contains("&snapshot_name=my%20snap%2B1%2F~%2A%E4%B8%AD&"));
        assert_eq!(sig(&e), "eP07hSmijFM3j1gpAVbX6dwBV6FLQmptx+Xtd8+Jzfk=");
    }

    #[test]
    fn sort_is_bytewise_on_raw_keys() {
        let p = pairs(&[("resources.2", "b"), ("resources.10", "c"), ("resources.1", "a")]);
        assert_eq!(string_to_sign("GET", "/iaas/", &p), "GET\n/iaas/\nresources.1=a&resources.10=c&resources.2=b");
    }
}
