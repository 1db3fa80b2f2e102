//! Huawei Cloud SDK-HMAC-SHA256 (dialect-openstack.md §9.4, `huaweicloudsdkcore/signer/signer.py`).
//! The server rebuilds the canonical request from what arrived and compares in constant time;
//! only a [`Verified`] request reaches an EVS handler through AK/SK.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeZone, Utc};

use disksnap_api_common::encode::rfc3986;
use disksnap_api_common::sign::{hmac_sha256, same, sha256_hex};
use disksnap_api_common::{clock, KeyRing, RawRequest, Verified};

pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The parts of `Authorization: SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…`.
#[derive(Debug, PartialEq, Eq)]
pub struct AuthHeader {
    pub access: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(value: &str) -> Result<AuthHeader, String> {
    let rest = value
        .trim()
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| "unsupported signing algorithm".to_string())?;
    let (mut access, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or("malformed Authorization header")?;
        match k.trim() {
            "Access" => access = Some(v.trim().to_string()),
            "SignedHeaders" => signed = Some(v.trim().to_string()),
            "Signature" => sig = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let (Some(access), Some(signed), Some(signature)) = (access, signed, sig) else {
        return Err("Authorization lacks Access, SignedHeaders or Signature".into());
    };
    let signed_headers: Vec<String> = signed.split(';').map(|h| h.trim().to_ascii_lowercase()).collect();
    if signed_headers.iter().any(|h| h.is_empty()) {
        return Err("empty name in SignedHeaders".into());
    }
    Ok(AuthHeader { access, signed_headers, signature: signature.to_ascii_lowercase() })
}

/// Path percent-decoded, each segment re-encoded (RFC 3986), with a trailing `/`.
pub fn canonical_uri(path: &str) -> String {
    let decoded = disksnap_api_common::encode::decode(path, false);
    let mut out = decoded.split('/').map(rfc3986).collect::<Vec<_>>().join("/");
    if !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// Pairs decoded (`%XX` only, never `+`), re-encoded, sorted by key then value.
pub fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let d = |s: &str| disksnap_api_common::encode::decode(s, false);
            (rfc3986(&d(k)), rfc3986(&d(v)))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The canonical request for the headers the client says it signed.
pub fn canonical_request(req: &RawRequest, signed: &[String]) -> Result<String, String> {
    let mut headers = String::new();
    for name in signed {
        let values: Vec<&str> = req.headers.get_all(name.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
        if values.is_empty() {
            return Err(format!("signed header {name} is missing"));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",").trim()));
    }
    let payload = payload_hash(req)?;
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.as_str(),
        canonical_uri(&req.path),
        canonical_query(&req.query),
        headers,
        signed.join(";"),
        payload
    ))
}

/// The payload hash of the body that arrived. The SDK puts an `X-Sdk-Content-Sha256` value in
/// place of the hash when the header is set; the server still hashes what it received, so an
/// unsigned header cannot vouch for a body other than the signed one. `UNSIGNED-PAYLOAD`, which
/// huaweicloudsdkcore sends only for non-JSON content types (`Signer._process_content_header`),
/// is refused: every EVS request body is JSON, and an unsigned body would let anyone replay a
/// captured signature with a body of their own.
fn payload_hash(req: &RawRequest) -> Result<String, String> {
    if req.body.is_empty() {
        return Ok(EMPTY_SHA256.to_string());
    }
    let ours = sha256_hex(&req.body);
    match req.header("x-sdk-content-sha256").map(str::trim) {
        None => Ok(ours),
        Some(h) if h.eq_ignore_ascii_case("UNSIGNED-PAYLOAD") => Err(
            "X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD is not accepted; EVS bodies are JSON: sign the SHA-256 of the body"
                .into(),
        ),
        // The client signed the value it sent (its case included).
        Some(h) if h.eq_ignore_ascii_case(&ours) => Ok(h.to_string()),
        Some(h) => Err(format!("X-Sdk-Content-Sha256 {h} is not the SHA-256 of the body received ({ours})")),
    }
}

pub fn string_to_sign(date: &str, canonical: &str) -> String {
    format!("{ALGORITHM}\n{date}\n{}", sha256_hex(canonical.as_bytes()))
}

pub fn signature(secret: &str, string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(secret.as_bytes(), string_to_sign.as_bytes()))
}

/// Check an AK/SK request: key known, date inside the window, signature equal.
pub fn verify(req: &RawRequest, keys: &KeyRing, window: Duration) -> Result<Verified, String> {
    let auth = req.header("authorization").ok_or("no Authorization header")?;
    let a = parse_authorization(auth)?;
    let secret = keys.lookup(crate::HUAWEI_KEYS, &a.access).ok_or("verify aksk signature fail")?;
    let date = req.header("x-sdk-date").ok_or("X-Sdk-Date is missing")?;
    let t = NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| format!("X-Sdk-Date {date:?} is not YYYYMMDDTHHMMSSZ"))?;
    clock::check(Utc.from_utc_datetime(&t), window).map_err(|e| format!("X-Sdk-Date: {e}"))?;
    if !a.signed_headers.iter().any(|h| h == "x-sdk-date") {
        return Err("X-Sdk-Date must be signed".into());
    }
    let canonical = canonical_request(req, &a.signed_headers)?;
    let want = signature(&secret.secret, &string_to_sign(date, &canonical));
    if !same(want.as_bytes(), a.signature.as_bytes()) {
        return Err("verify aksk signature fail".into());
    }
    Ok(Verified { account: secret.account.clone(), key_id: a.access })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::http::{HeaderMap, HeaderValue, Method};
    use disksnap_api_common::RequestId;

    const P: &str = "0123456789abcdef0123456789abcdef";

    fn req(method: Method, path: &str, query: &str, headers: &[(&str, &str)], body: &[u8]) -> RawRequest {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        RawRequest {
            method,
            path: path.into(),
            query: query.into(),
            headers: h,
            body: Bytes::copy_from_slice(body),
            request_id: RequestId::new(),
        }
    }

    fn sign(r: &RawRequest, signed: &[&str]) -> (String, String) {
        let signed: Vec<String> = signed.iter().map(|s| s.to_string()).collect();
        let c = canonical_request(r, &signed).unwrap();
        let sts = string_to_sign(r.header("x-sdk-date").unwrap(), &c);
        (c, signature("MYSKEXAMPLE", &sts))
    }

    #[test]
    fn vector_a() {
        let r = req(
            Method::GET,
            &format!("/v2/{P}/cloudsnapshots/detail"),
            "limit=2&offset=1&status=available",
            &[
                ("content-type", "application/json"),
                ("host", "127.0.0.1:7480"),
                ("x-project-id", P),
                ("x-sdk-date", "20261123T001604Z"),
            ],
            b"",
        );
        let (c, sig) = sign(&r, &["content-type", "host", "x-project-id", "x-sdk-date"]);
        let want = format!(
            "GET\n/v2/{P}/cloudsnapshots/detail/\nlimit=2&offset=1&status=available\ncontent-type:application/json\n\
             host:127.0.0.1:7480\nx-project-id:{P}\nx-sdk-date:20261123T001604Z\n\ncontent-type;host;x-project-id;\
             x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(c, want);
        assert_eq!(sha256_hex(c.as_bytes()), "6e22e69d370266915cb08b3a935c66ec45d269a93ff7692c4a2bc88191a5789f");
        assert_eq!(sig, "8cbe7c193d5d942f0867aa38b84edec9e9f1ac5e6979b79f3be7f4f94ea7d946");
    }

    const UA: &str = "huaweicloud-usdk-python/3.0; os/Linux##1_SMP_PREEMPT_DYNAMIC_@0#x86_64 python/3.11.7 impl/CPython; app/dc8ef0ad-7873-4acc-b3c5-67a8f0562af9";
    const SIGNED_B: &[&str] = &["content-type", "host", "user-agent", "x-project-id", "x-sdk-date"];

    #[test]
    fn vector_b_list() {
        let r = req(
            Method::GET,
            &format!("/v2/{P}/cloudsnapshots/detail"),
            "limit=2&name=n&offset=1&status=available&volume_id=v1",
            &[
                ("content-type", "application/json"),
                ("host", "127.0.0.1:8081"),
                ("user-agent", UA),
                ("x-project-id", P),
                ("x-sdk-date", "20261123T001604Z"),
            ],
            b"",
        );
        let (c, sig) = sign(&r, SIGNED_B);
        assert_eq!(sha256_hex(c.as_bytes()), "936b430ad94f5b017c4ec22aa95d76707b6e6409d75010a893cf53d5a2af116f");
        assert_eq!(sig, "ec662ea642e21d794410355a7a61f19cfe4563b1940af354da1d6a7559acd54e");
    }

    #[test]
    fn vector_b_create() {
        let body = br#"{"snapshot": {"volume_id": "v1", "force": false, "metadata": {"k": "v"}, "description": "d", "name": "s"}}"#;
        assert_eq!(body.len(), 106);
        assert_eq!(sha256_hex(body), "6e2e4c9a581b193850e9e57239f36ae227f28beaec2cbcdd8ea4137250c54e2e");
        let r = req(
            Method::POST,
            &format!("/v2/{P}/cloudsnapshots"),
            "",
            &[
                ("content-type", "application/json;charset=utf-8"),
                ("host", "127.0.0.1:8081"),
                ("user-agent", UA),
                ("x-project-id", P),
                ("x-sdk-date", "20261123T001604Z"),
            ],
            body,
        );
        let (c, sig) = sign(&r, SIGNED_B);
        assert_eq!(sha256_hex(c.as_bytes()), "6d3b474105ae1b59f82dcc1a2117b5bacf8fa384ddabea8d3cf789c6bf59ae7c");
        assert_eq!(sig, "77503954f0001b0805cc3ec5f80487e255358cfe8dc741fce8a21ce418969ba4");
    }

    #[test]
    fn verify_accepts_fresh_and_refuses_forged_or_stale() {
        let mut keys = KeyRing::default();
        keys.add(crate::HUAWEI_KEYS, "MYAKEXAMPLE", "dev", "MYSKEXAMPLE").unwrap();
        let date = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let mut r = req(
            Method::GET,
            &format!("/v2/{P}/cloudsnapshots/detail"),
            "limit=2",
            &[("host", "127.0.0.1:7480"), ("x-project-id", P), ("x-sdk-date", &date)],
            b"",
        );
        let (_, sig) = sign(&r, &["host", "x-project-id", "x-sdk-date"]);
        let auth =
            format!("SDK-HMAC-SHA256 Access=MYAKEXAMPLE, SignedHeaders=host;x-project-id;x-sdk-date, Signature={sig}");
        r.headers.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        let w = Duration::from_secs(900);
        assert_eq!(verify(&r, &keys, w).unwrap().account, "dev");
        let mut forged = r.clone();
        forged.query = "limit=3".into();
        assert!(verify(&forged, &keys, w).is_err());
        let mut stale = r.clone();
        stale.headers.insert("x-sdk-date", HeaderValue::from_static("20200101T000000Z"));
        assert!(verify(&stale, &keys, w).is_err());
        let mut other = r.clone();
        other.headers.insert("authorization", HeaderValue::from_str(&auth.replace("MYAK", "NOAK")).unwrap());
        assert!(verify(&other, &keys, w).is_err());
        assert!(parse_authorization("V11-HMAC-SHA256 Credential=x").is_err());
    }
}
