//! Tencent v2 request signing (`QcloudApi.common.sign.Sign.make`, dialects.md §5.3):
//!
//! `srcStr = METHOD + Host + path + "?" + join("&", sorted(key.replace("_", ".") + "=" + raw value))`
//! over every parameter but `Signature` (with POST, values starting with `@` are skipped, as the
//! SDK skips them); `Signature = base64(HMAC(SecretKey, srcStr))`, SHA-256 when
//! `SignatureMethod == "HmacSHA256"`, SHA-1 otherwise. Host is the `Host` header as received,
//! port included.
//!
//! [`verify`] is the only way to get a [`Verified`] caller, so no handler sees an unsigned,
//! stale or replayed request. Order of checks: common parameters present → Token → SecretId →
//! signature → Timestamp window → Nonce (a request that fails the signature never uses up a nonce).

use std::collections::BTreeMap;

use disksnap_api_common::{clock, sign, ApiContext, NonceUse, Verified};

use crate::error::TencentError;

/// The request's parameters, by key with `_` read as `.` (the signing rule; no Tencent v2
/// parameter name contains `_`), values decoded. Empty values are kept here (they are signed)
/// but read as "not given" by the accessors in `handlers.rs`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    /// Build from decoded pairs; a key given twice (also as `a_b` and `a.b`) is ambiguous.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Params, TencentError> {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            let key = k.replace('_', ".");
            if map.insert(key.clone(), v).is_some() {
                return Err(TencentError::InvalidCommon(format!(
                    "parameter {key} is given more than once; give each parameter once"
                )));
            }
        }
        Ok(Params(map))
    }

    pub fn raw(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureMethod {
    HmacSha1,
    HmacSha256,
}

impl SignatureMethod {
    /// "HmacSHA256" selects SHA-256; anything else (absent included) is HmacSHA1, as in the SDK.
    pub fn from_param(v: Option<&str>) -> Self {
        if v == Some("HmacSHA256") {
            SignatureMethod::HmacSha256
        } else {
            SignatureMethod::HmacSha1
        }
    }
}

/// The string the client signed. `params` are keyed as signed (`_` already `.`), and exclude
/// `Signature`.
pub fn string_to_sign(method: &str, host: &str, path: &str, params: &Params) -> String {
    let post = method.eq_ignore_ascii_case("POST");
    let joined: Vec<String> = params
        .0
        .iter()
        .filter(|(k, v)| k.as_str() != "Signature" && !(post && v.starts_with('@')))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{}{host}{path}?{}", method.to_ascii_uppercase(), joined.join("&"))
}

pub fn signature(secret: &str, method: SignatureMethod, src: &str) -> String {
    let mac = match method {
        SignatureMethod::HmacSha1 => sign::hmac_sha1(secret.as_bytes(), src.as_bytes()),
        SignatureMethod::HmacSha256 => sign::hmac_sha256(secret.as_bytes(), src.as_bytes()),
    };
    sign::base64(&mac)
}

fn present<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params.raw(key).filter(|v| !v.is_empty())
}

/// Check a request's credentials (see the module doc for the order).
pub async fn verify(
    ctx: &ApiContext,
    method: &str,
    host: &str,
    path: &str,
    params: &Params,
) -> Result<Verified, TencentError> {
    let missing: Vec<&str> =
        ["SecretId", "Signature", "Timestamp", "Nonce"].into_iter().filter(|k| present(params, k).is_none()).collect();
    if !missing.is_empty() {
        return Err(TencentError::InvalidCommon(format!(
            "missing common parameter {}: every request carries SecretId, Timestamp, Nonce and Signature",
            missing.join(", ")
        )));
    }
    if present(params, "Token").is_some() {
        return Err(TencentError::InvalidToken);
    }
    let secret_id = present(params, "SecretId").unwrap_or_default().to_string();
    let secret = ctx.keys.lookup(crate::KEYS, &secret_id).ok_or(TencentError::SecretIdNotFound(secret_id.clone()))?;
    let sig_method = SignatureMethod::from_param(params.raw("SignatureMethod"));
    let src = string_to_sign(method, host, path, params);
    let expected = signature(&secret.secret, sig_method, &src);
    // Base64 has no spaces: a `+` sent unencoded was decoded as a space; read it back.
    let given = present(params, "Signature").unwrap_or_default().replace(' ', "+");
    if !sign::same(expected.as_bytes(), given.as_bytes()) {
        return Err(TencentError::AuthFailure(format!(
            "signature does not match; the server signed {src:?} with {} (METHOD + Host header + path + \"?\" + \
             sorted key=value pairs, raw values, \"_\" in keys read as \".\"); check SecretKey and the host the \
             client signs",
            match sig_method {
                SignatureMethod::HmacSha1 => "HmacSHA1",
                SignatureMethod::HmacSha256 => "HmacSHA256",
            }
        )));
    }
    let ts = present(params, "Timestamp").unwrap_or_default();
    let t = clock::parse_unix(ts)
        .map_err(|_| TencentError::InvalidCommon(format!("Timestamp {ts:?} is not Unix seconds")))?;
    let window = crate::CLOCK_WINDOW;
    clock::check(t, window).map_err(|skew| {
        TencentError::RequestExpired(format!(
            "Timestamp {ts} is outside the allowed window of {}s: {skew}; check the client's clock",
            window.as_secs()
        ))
    })?;
    let nonce = present(params, "Nonce").unwrap_or_default();
    match nonce.parse::<u64>() {
        Ok(n) if n > 0 => {}
        _ => {
            return Err(TencentError::InvalidCommon(format!(
                "Nonce {nonce:?} is not a positive integer (1 to 18446744073709551615)"
            )))
        }
    }
    match ctx.first_use_nonce(&format!("tencent:{secret_id}"), nonce, t, window).await? {
        NonceUse::First => {}
        NonceUse::Reused => return Err(TencentError::NonceUsed(nonce.to_string())),
        NonceUse::PastHorizon(h) => return Err(TencentError::RequestExpired(NonceUse::horizon_message(h))),
    }
    Ok(Verified { account: secret.account.clone(), key_id: secret_id })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap()
    }

    fn base(method: &str, extra: &[(&str, &str)]) -> Params {
        let mut p: Vec<(&str, &str)> = vec![
            ("Action", "DescribeSnapshots"),
            ("Nonce", "11886"),
            ("Region", "gz"),
            ("SecretId", "AKIDexample"),
            ("SignatureMethod", method),
            ("Timestamp", "1465185768"),
            ("limit", "1"),
        ];
        p.extend_from_slice(extra);
        params(&p)
    }

    const HOST: &str = "snapshot.api.qcloud.com";
    const PATH: &str = "/v2/index.php";

    /// dialects.md §5.3, produced by qcloudapi-sdk-python 2.0.15.
    #[test]
    fn sdk_test_vectors() {
        let p = base("HmacSHA1", &[]);
        let src = string_to_sign("GET", HOST, PATH, &p);
        assert_eq!(
            src,
            "GETsnapshot.api.qcloud.com/v2/index.php?Action=DescribeSnapshots&Nonce=11886&Region=gz&SecretId=AKIDexample&SignatureMethod=HmacSHA1&Timestamp=1465185768&limit=1"
        );
        assert_eq!(signature("secretexample", SignatureMethod::HmacSha1, &src), "rp74lNXlN5XS5QQyms3VU85iqNA=");
        let src = string_to_sign("POST", HOST, PATH, &p);
        assert_eq!(signature("secretexample", SignatureMethod::HmacSha1, &src), "BARa5ph74ThTlkdawATjz8ceaEs=");
        let p = base("HmacSHA256", &[]);
        let src = string_to_sign("GET", HOST, PATH, &p);
        assert_eq!(
            signature("secretexample", SignatureMethod::HmacSha256, &src),
            "NCW/swpqEtR73gPPFd+KDrb5+Yknd92oaCkDiMuiMx0="
        );
        // What the SDK really sends: RequestClient is signed too.
        let p = base("HmacSHA1", &[("RequestClient", "SDK_PYTHON_2.0.15")]);
        let src = string_to_sign("GET", HOST, PATH, &p);
        assert_eq!(
            src,
            "GETsnapshot.api.qcloud.com/v2/index.php?Action=DescribeSnapshots&Nonce=11886&Region=gz&RequestClient=SDK_PYTHON_2.0.15&SecretId=AKIDexample&SignatureMethod=HmacSHA1&Timestamp=1465185768&limit=1"
        );
        assert_eq!(signature("secretexample", SignatureMethod::HmacSha1, &src), "nt1y4a2NLpCbUGcfMpWZ7F7k+tY=");
        // The Signature parameter itself is never part of the string.
        let with_sig = base("HmacSHA1", &[("RequestClient", "SDK_PYTHON_2.0.15"), ("Signature", "x")]);
        assert_eq!(string_to_sign("GET", HOST, PATH, &with_sig), src);
    }

    #[test]
    fn vendor_doc_example() {
        let p = |m: &str| {
            params(&[
                ("Action", "DescribeInstances"),
                ("InstanceIds.0", "ins-09dx96dg"),
                ("Nonce", "11886"),
                ("Region", "ap-guangzhou"),
                ("SecretId", "AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA"),
                ("SignatureMethod", m),
                ("Timestamp", "1465185768"),
            ])
        };
        let key = "Gu5t9xGARNpq86cd98joQYCN3Cozk1qA";
        let src = string_to_sign("GET", "cvm.api.qcloud.com", PATH, &p("HmacSHA256"));
        assert_eq!(
            src,
            "GETcvm.api.qcloud.com/v2/index.php?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg&Nonce=11886&Region=ap-guangzhou&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&SignatureMethod=HmacSHA256&Timestamp=1465185768"
        );
        assert_eq!(signature(key, SignatureMethod::HmacSha256, &src), "0EEm/HtGRr/VJXTAD9tYMth1Bzm3lLHz5RCDv1GdM8s=");
        let src = string_to_sign("GET", "cvm.api.qcloud.com", PATH, &p("HmacSHA1"));
        assert_eq!(signature(key, SignatureMethod::HmacSha1, &src), "nPVnY6njQmwQ8ciqbPl5Qe+Oru4=");
    }

    #[test]
    fn underscores_in_keys_sign_as_dots_and_values_stay_raw() {
        let p = params(&[("snapshotIds_0", "snap-1"), ("snapshotName", "a b&c=d")]);
        assert_eq!(string_to_sign("GET", "h", "/p", &p), "GETh/p?snapshotIds.0=snap-1&snapshotName=a b&c=d");
        // POST skips values starting with '@' (the SDK's file-upload convention); GET keeps them.
        let p = params(&[("a", "@file"), ("b", "1")]);
        assert_eq!(string_to_sign("POST", "h", "/p", &p), "POSTh/p?b=1");
        assert_eq!(string_to_sign("GET", "h", "/p", &p), "GETh/p?a=@file&b=1");
        // Sorted by byte: upper case first.
        let p = params(&[("limit", "1"), ("Action", "X"), ("Zed", "z")]);
        assert_eq!(string_to_sign("GET", "h", "/p", &p), "GETh/p?Action=X&Zed=z&limit=1");
        // A key given as both a_b and a.b is ambiguous.
        let twice = Params::from_pairs(vec![("a_b".into(), "1".into()), ("a.b".into(), "2".into())]);
        assert!(matches!(twice, Err(TencentError::InvalidCommon(_))));
        assert_eq!(SignatureMethod::from_param(Some("HmacSHA512")), SignatureMethod::HmacSha1);
    }
}
