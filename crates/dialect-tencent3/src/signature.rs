//! The two ways the 3.0 SDKs sign (tencentcloud-sdk-python `AbstractClient`):
//!
//! **TC3-HMAC-SHA256** (the default): `Authorization: TC3-HMAC-SHA256
//! Credential=<SecretId>/<date>/cbs/tc3_request, SignedHeaders=content-type;host, Signature=<hex>`
//! over
//!
//! ```text
//! CanonicalRequest = METHOD \n path \n query-as-sent \n (name:lower(trim(value)) \n)* \n signed-headers \n hex(sha256(body))
//! StringToSign     = "TC3-HMAC-SHA256" \n X-TC-Timestamp \n date/cbs/tc3_request \n hex(sha256(CanonicalRequest))
//! key              = HMAC(HMAC(HMAC("TC3" + SecretKey, date), "cbs"), "tc3_request")
//! ```
//!
//! (`X-TC-Content-SHA256: UNSIGNED-PAYLOAD` hashes that word instead of the body, the SDK's
//! `unsignedPayload` option.) TC3 has no nonce: a replay is the same signature again. The
//! signature of every action that changes something is remembered for the window, and a
//! change whose signature was already spent is refused — under any action, since the SDK does
//! not sign `X-TC-Action` (a captured `DetachDisks {"DiskIds": [d]}` must not pass as
//! `TerminateDisks`). Reads are neither refused nor remembered: two identical reads in one
//! second (a client polling a disk's state) are exactly what a replay looks like, and a client
//! that polls `DescribeDisks {"DiskIds": [d]}` and then, in the same second, sends
//! `TerminateDisks {"DiskIds": [d]}` signs both alike. What that leaves: an observer of plain
//! HTTP traffic could send a captured read's signature once as a change with the same body,
//! within the window. Over HTTPS (the vendor's only transport) nothing is captured; a client
//! can also add `x-tc-action` to SignedHeaders, which is checked like any signed header.
//!
//! **v1** (`SignMethod` HmacSHA1/HmacSHA256): parameters `Action`, `Version`, `Region`,
//! `Timestamp`, `Nonce`, `SecretId`, `SignatureMethod`, `Signature` beside the action's
//! (flattened), in the query (GET) or a form body (POST);
//! `Signature = base64(HMAC(SecretKey, METHOD + Host + path + "?" + sorted key=value))`, keys
//! with `_` read as `.`, raw values, every parameter but `Signature`. The Nonce is refused on
//! a second use within the window.
//!
//! Order of checks, both forms: token → credential shape → SecretId → signature → timestamp
//! window → replay (a request failing its signature never uses up a nonce).

use chrono::{DateTime, Utc};
use disksnap_api_common::{clock, sign, ApiContext, NonceUse, RawRequest, Verified};

use crate::error::Tc3Error;

type Result<T> = std::result::Result<T, Tc3Error>;

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The parts of a TC3 Authorization header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tc3Auth {
    pub secret_id: String,
    pub date: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(h: &str) -> Result<Tc3Auth> {
    let bad = |why: &str| {
        Tc3Error::InvalidAuthorization(format!(
            "Authorization header {why}; expected \"TC3-HMAC-SHA256 Credential=<SecretId>/<YYYY-MM-DD>/cbs/tc3_request, \
             SignedHeaders=content-type;host, Signature=<hex>\""
        ))
    };
    let rest = h.trim().strip_prefix(ALGORITHM).ok_or_else(|| bad("does not start with TC3-HMAC-SHA256"))?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or_else(|| bad("has a part without '='"))?;
        match k.trim() {
            "Credential" => cred = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => sig = Some(v.trim()),
            _ => return Err(bad(&format!("has an unknown part {k:?}"))),
        }
    }
    let (cred, signed, sig) = match (cred, signed, sig) {
        (Some(c), Some(h), Some(s)) => (c, h, s),
        _ => return Err(bad("lacks Credential, SignedHeaders or Signature")),
    };
    let parts: Vec<&str> = cred.split('/').collect();
    let [secret_id, date, service, term] = parts[..] else {
        return Err(bad("has a Credential that is not SecretId/date/service/tc3_request"));
    };
    if term != "tc3_request" || secret_id.is_empty() {
        return Err(bad("has a Credential that is not SecretId/date/service/tc3_request"));
    }
    Ok(Tc3Auth {
        secret_id: secret_id.to_string(),
        date: date.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(|s| s.trim().to_ascii_lowercase()).collect(),
        signature: sig.to_ascii_lowercase(),
    })
}

/// The canonical request. `headers` are (lower-case name, value as received) for each signed
/// header, in the order of `SignedHeaders`.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    payload: &[u8],
) -> String {
    let canonical_headers: String =
        headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim().to_ascii_lowercase())).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    format!(
        "{}\n{path}\n{query}\n{canonical_headers}\n{}\n{}",
        method.to_ascii_uppercase(),
        signed.join(";"),
        sign::sha256_hex(payload)
    )
}

pub fn tc3_string_to_sign(timestamp: &str, date: &str, service: &str, canonical: &str) -> String {
    format!("{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{}", sign::sha256_hex(canonical.as_bytes()))
}

pub fn tc3_signature(secret: &str, date: &str, service: &str, string_to_sign: &str) -> String {
    let k_date = sign::hmac_sha256(format!("TC3{secret}").as_bytes(), date.as_bytes());
    let k_service = sign::hmac_sha256(&k_date, service.as_bytes());
    let k_signing = sign::hmac_sha256(&k_service, b"tc3_request");
    hex::encode(sign::hmac_sha256(&k_signing, string_to_sign.as_bytes()))
}

/// The UTC date (`YYYY-MM-DD`) of a Unix time, as the credential scope carries it.
pub fn scope_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn check_window(ts: &str, t: DateTime<Utc>) -> Result<()> {
    clock::check(t, crate::CLOCK_WINDOW).map_err(|skew| {
        Tc3Error::SignatureExpire(format!(
            "signature expired: timestamp {ts} is outside the allowed window of {}s ({skew}); check the client's clock",
            crate::CLOCK_WINDOW.as_secs()
        ))
    })
}

fn parse_ts(name: &str, ts: &str) -> Result<DateTime<Utc>> {
    clock::parse_unix(ts).map_err(|_| Tc3Error::value(name, format!("{ts:?} is not Unix seconds")))
}

/// Check a TC3-signed request. `mutating`: the action changes something (replays refused).
pub async fn verify_tc3(ctx: &ApiContext, raw: &RawRequest, mutating: bool) -> Result<Verified> {
    if raw.header("x-tc-token").is_some_and(|t| !t.is_empty()) {
        return Err(Tc3Error::TokenFailure);
    }
    let auth = raw
        .header("authorization")
        .ok_or_else(|| Tc3Error::InvalidAuthorization("the request has no Authorization header".into()))?;
    let auth = parse_authorization(auth)?;
    if auth.service != crate::SERVICE {
        return Err(Tc3Error::InvalidAuthorization(format!(
            "the credential scope names service {:?}; this endpoint is {:?} (date/{}/tc3_request)",
            auth.service,
            crate::SERVICE,
            crate::SERVICE
        )));
    }
    for needed in ["content-type", "host"] {
        if !auth.signed_headers.iter().any(|h| h == needed) {
            return Err(Tc3Error::InvalidAuthorization(format!(
                "SignedHeaders must include {needed} (content-type;host)"
            )));
        }
    }
    let ts = raw.header("x-tc-timestamp").ok_or_else(|| Tc3Error::MissingParameter("X-TC-Timestamp".into()))?;
    let t = parse_ts("X-TC-Timestamp", ts)?;
    let secret = ctx
        .keys
        .lookup(crate::KEYS, &auth.secret_id)
        .ok_or_else(|| Tc3Error::SecretIdNotFound(auth.secret_id.clone()))?;
    if auth.date != scope_date(t) {
        return Err(Tc3Error::SignatureFailure(format!(
            "the credential date {} is not the UTC date of X-TC-Timestamp {ts} ({})",
            auth.date,
            scope_date(t)
        )));
    }
    let headers: Vec<(String, String)> =
        auth.signed_headers.iter().map(|h| (h.clone(), raw.header(h).unwrap_or("").to_string())).collect();
    let unsigned = raw.header("x-tc-content-sha256") == Some(UNSIGNED_PAYLOAD);
    let payload: &[u8] = if unsigned { UNSIGNED_PAYLOAD.as_bytes() } else { &raw.body };
    let canonical = canonical_request(raw.method.as_str(), &raw.path, &raw.query, &headers, payload);
    let sts = tc3_string_to_sign(ts, &auth.date, &auth.service, &canonical);
    let expected = tc3_signature(&secret.secret, &auth.date, &auth.service, &sts);
    if !sign::same(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(Tc3Error::SignatureFailure(format!(
            "the signature does not match; the server's canonical request was {canonical:?}; check the SecretKey, \
             the Host the client signs and that the body is sent as signed"
        )));
    }
    check_window(ts, t)?;
    if mutating {
        match ctx
            .first_use_nonce(&format!("tencent3:{}", auth.secret_id), &auth.signature, t, crate::CLOCK_WINDOW)
            .await?
        {
            NonceUse::First => {}
            NonceUse::PastHorizon(h) => return Err(Tc3Error::SignatureExpire(NonceUse::horizon_message(h))),
            NonceUse::Reused => return Err(Tc3Error::Replay(
                "a request with this signature was already received (the same body and X-TC-Timestamp; X-TC-Action is \
             not signed); send it again in a later second, or sign x-tc-action too"
                    .into(),
            )),
        }
    }
    Ok(Verified { account: secret.account.clone(), key_id: auth.secret_id })
}

/// The v1 string to sign: `pairs` as decoded, `Signature` left out, `_` in keys read as `.`.
pub fn v1_string_to_sign(method: &str, host: &str, path: &str, pairs: &[(String, String)]) -> String {
    let mut kv: Vec<(String, &str)> =
        pairs.iter().filter(|(k, _)| k != "Signature").map(|(k, v)| (k.replace('_', "."), v.as_str())).collect();
    kv.sort();
    let joined: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}{host}{path}?{}", method.to_ascii_uppercase(), joined.join("&"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V1Method {
    HmacSha1,
    HmacSha256,
}

pub fn v1_signature(secret: &str, m: V1Method, src: &str) -> String {
    let mac = match m {
        V1Method::HmacSha1 => sign::hmac_sha1(secret.as_bytes(), src.as_bytes()),
        V1Method::HmacSha256 => sign::hmac_sha256(secret.as_bytes(), src.as_bytes()),
    };
    sign::base64(&mac)
}

fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// Check a v1-signed request (parameters already decoded from the query or form).
pub async fn verify_v1(
    ctx: &ApiContext,
    method: &str,
    host: &str,
    path: &str,
    pairs: &[(String, String)],
) -> Result<Verified> {
    if get(pairs, "Token").is_some() {
        return Err(Tc3Error::TokenFailure);
    }
    for k in ["SecretId", "Signature", "Timestamp", "Nonce"] {
        if get(pairs, k).is_none() {
            return Err(Tc3Error::MissingParameter(k.into()));
        }
    }
    let m = match get(pairs, "SignatureMethod") {
        None | Some("HmacSHA1") => V1Method::HmacSha1,
        Some("HmacSHA256") => V1Method::HmacSha256,
        Some(other) => {
            return Err(Tc3Error::value("SignatureMethod", format!("{other:?} is not HmacSHA1 or HmacSHA256")));
        }
    };
    let secret_id = get(pairs, "SecretId").unwrap_or_default();
    let secret = ctx.keys.lookup(crate::KEYS, secret_id).ok_or_else(|| Tc3Error::SecretIdNotFound(secret_id.into()))?;
    let src = v1_string_to_sign(method, host, path, pairs);
    let expected = v1_signature(&secret.secret, m, &src);
    // Base64 has no spaces: a `+` sent unencoded was decoded as a space; read it back.
    let given = get(pairs, "Signature").unwrap_or_default().replace(' ', "+");
    if !sign::same(expected.as_bytes(), given.as_bytes()) {
        return Err(Tc3Error::SignatureFailure(format!(
            "the signature does not match; the server signed {src:?} (METHOD + Host header + path + \"?\" + sorted \
             key=value pairs, raw values); check the SecretKey and the host the client signs"
        )));
    }
    let ts = get(pairs, "Timestamp").unwrap_or_default();
    let signed = parse_ts("Timestamp", ts)?;
    check_window(ts, signed)?;
    let nonce = get(pairs, "Nonce").unwrap_or_default();
    if !nonce.parse::<u64>().is_ok_and(|n| n > 0) {
        return Err(Tc3Error::value("Nonce", format!("{nonce:?} is not a positive integer")));
    }
    match ctx.first_use_nonce(&format!("tencent3-v1:{secret_id}"), nonce, signed, crate::CLOCK_WINDOW).await? {
        NonceUse::First => {}
        NonceUse::Reused => {
            return Err(Tc3Error::Replay(format!(
                "Nonce {nonce} was already used with this SecretId; send a fresh random Nonce with every request"
            )))
        }
        NonceUse::PastHorizon(h) => return Err(Tc3Error::SignatureExpire(NonceUse::horizon_message(h))),
    }
    Ok(Verified { account: secret.account.clone(), key_id: secret_id.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "example-secret-key-000000000001";
    const HOST: &str = "cbs.example.test:8443";

    /// Computed by tencentcloud-sdk-python-common 3.1.195 / -cbs 3.1.175 (`CbsClient`,
    /// `_build_req_inter` with time.time() = 1700000000.5, randint = 1234567), endpoint
    /// cbs.example.test:8443, region ap-guangzhou, DescribeSnapshots with
    /// `{"Filters": [{"Name": "disk-id", "Values": ["disk-k3x9a2bq"]}], "Limit": 10, "Offset": 0}`.
    #[test]
    fn sdk_tc3_vectors() {
        let body = r#"{"Filters": [{"Name": "disk-id", "Values": ["disk-k3x9a2bq"]}], "Limit": 10, "Offset": 0}"#;
        let h = |ct: &str| vec![("content-type".to_string(), ct.to_string()), ("host".to_string(), HOST.to_string())];
        let canonical = canonical_request("POST", "/", "", &h("application/json"), body.as_bytes());
        let sts = tc3_string_to_sign("1700000000", "2023-11-14", "cbs", &canonical);
        assert_eq!(
            tc3_signature(SECRET, "2023-11-14", "cbs", &sts),
            "95296e80843e11e0fdc613ba7ae04bd605f9da6def00d3d8b9f4733a9c498b5d"
        );
        let query = "Filters.0.Name=disk-id&Filters.0.Values.0=disk-k3x9a2bq&Limit=10&Offset=0";
        let canonical = canonical_request("GET", "/", query, &h("application/x-www-form-urlencoded"), b"");
        let sts = tc3_string_to_sign("1700000000", "2023-11-14", "cbs", &canonical);
        assert_eq!(
            tc3_signature(SECRET, "2023-11-14", "cbs", &sts),
            "d9785ccb817600ce0554142d6c6814751f7a564ef99c7faa34f3c2632c43acf0"
        );
        assert_eq!(scope_date(clock::parse_unix("1700000000").unwrap()), "2023-11-14");
    }

    #[test]
    fn sdk_v1_vectors() {
        let pairs = |m: &str| -> Vec<(String, String)> {
            [
                ("Filters.0.Name", "disk-id"),
                ("Filters.0.Values.0", "disk-k3x9a2bq"),
                ("Limit", "10"),
                ("Offset", "0"),
                ("Action", "DescribeSnapshots"),
                ("RequestClient", "SDK_PYTHON_3.1.175"),
                ("Nonce", "1234567"),
                ("Timestamp", "1700000000"),
                ("Version", "2017-03-12"),
                ("Region", "ap-guangzhou"),
                ("SecretId", "AKIDexample00000000000000000000001"),
                ("SignatureMethod", m),
                ("Language", "zh-CN"),
                ("Signature", "ignored"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let src = v1_string_to_sign("GET", HOST, "/", &pairs("HmacSHA1"));
        assert_eq!(
            src,
            "GETcbs.example.test:8443/?Action=DescribeSnapshots&Filters.0.Name=disk-id&Filters.0.Values.0=disk-k3x9a2bq&Language=zh-CN&Limit=10&Nonce=1234567&Offset=0&Region=ap-guangzhou&RequestClient=SDK_PYTHON_3.1.175&SecretId=AKIDexample00000000000000000000001&SignatureMethod=HmacSHA1&Timestamp=1700000000&Version=2017-03-12"
        );
        assert_eq!(v1_signature(SECRET, V1Method::HmacSha1, &src), "tzWbtHCI3jFBWvx6G+rEq/EvIhs=");
        let src = v1_string_to_sign("POST", HOST, "/", &pairs("HmacSHA256"));
        assert_eq!(v1_signature(SECRET, V1Method::HmacSha256, &src), "AktKlxH8yjb63+o+BwGTcGG4m0U47b3JVwYwfCKpaO4=");
        let src = v1_string_to_sign("POST", HOST, "/", &pairs("HmacSHA1"));
        assert_eq!(v1_signature(SECRET, V1Method::HmacSha1, &src), "OeA/fydEcfKtOqPG+RinUcitARU=");
    }

    #[test]
    fn authorization_header_is_parsed_strictly() {
        let a = parse_authorization(
            "TC3-HMAC-SHA256 Credential=AKIDx/2023-11-14/cbs/tc3_request, SignedHeaders=content-type;host, Signature=AB12",
        )
        .unwrap();
        assert_eq!(
            a,
            Tc3Auth {
                secret_id: "AKIDx".into(),
                date: "2023-11-14".into(),
                service: "cbs".into(),
                signed_headers: vec!["content-type".into(), "host".into()],
                signature: "ab12".into()
            }
        );
        for bad in [
            "",
            "HMAC-SHA256 Credential=a/b/cbs/tc3_request, SignedHeaders=host, Signature=x",
            "TC3-HMAC-SHA256 Credential=a/b/cbs/other, SignedHeaders=host, Signature=x",
            "TC3-HMAC-SHA256 Credential=a/b/cbs, SignedHeaders=host, Signature=x",
            "TC3-HMAC-SHA256 Credential=a/b/cbs/tc3_request, Signature=x",
            "TC3-HMAC-SHA256 Credential=a/b/cbs/tc3_request, SignedHeaders=host, Signature=x, Extra=1",
        ] {
            assert!(matches!(parse_authorization(bad), Err(Tc3Error::InvalidAuthorization(_))), "{bad}");
        }
    }
}
