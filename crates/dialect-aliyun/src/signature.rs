//! The two signatures Aliyun's SDKs send (dialects.md §4.3, §4.4), checked before any handler
//! runs: [`verify`] returns a [`Verified`] caller or the vendor's refusal.
//!
//! - RPC v1: `Signature = base64(HMAC-SHA1(secret + "&", METHOD + "&%2F&" + pe(sorted pairs)))`
//!   over every parameter (query and form body) but `Signature`, empty ones included.
//! - V3 `ACS3-HMAC-SHA256`: hex HMAC-SHA256 of `"ACS3-HMAC-SHA256\n" + hex(SHA256(canonical
//!   request))`, the canonical request covering the query and the headers the `Authorization`
//!   header lists, and the body's hash.
//!
//! Order of checks (dialects.md §1.2): key → signature → time window → nonce, so a forged
//! request never uses up a nonce.

use chrono::{DateTime, Utc};
use disksnap_api_common::encode::rfc3986;
use disksnap_api_common::sign::{base64, hmac_sha1, hmac_sha256, same, sha256_hex};
use disksnap_api_common::{clock, ApiContext, NonceUse, RawRequest, Verified};

use crate::error::{vendor, AliyunError};

const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// The headers a V3 signature must cover. The Tea SDK (alibabacloud-tea-openapi 0.4.6,
/// `Client.do_request` then `Utils.get_authorization`) always sends and signs these, along with
/// whatever else it has (accept, user-agent, content-type). Unsigned, the date and nonce could
/// be swapped for fresh ones to replay a captured request, and the action and version changed.
pub const V3_REQUIRED_SIGNED: &[&str] =
    &["host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"];

/// `METHOD&%2F&pe(k1=v1&k2=v2…)` over the pairs sorted by key (byte order), `Signature` left out.
pub fn rpc_string_to_sign(method: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "Signature").collect();
    pairs.sort();
    let canonical: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v))).collect();
    format!("{}&{}&{}", method.to_ascii_uppercase(), rfc3986("/"), rfc3986(&canonical.join("&")))
}

pub fn rpc_signature(secret: &str, string_to_sign: &str) -> String {
    base64(&hmac_sha1(format!("{secret}&").as_bytes(), string_to_sign.as_bytes()))
}

/// The parts of an `Authorization: ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Authorization {
    pub access_key_id: String,
    pub signed_headers: String,
    pub signature: String,
}

pub fn parse_v3_authorization(header: &str) -> Result<V3Authorization, AliyunError> {
    let incomplete = |what: &str| {
        vendor(
            "IncompleteSignature",
            400,
            format!(
                "The Authorization header is not valid ({what}); expected \"{V3_ALGORITHM} Credential=<AccessKeyId>,SignedHeaders=<a;b;…>,Signature=<hex>\"."
            ),
        )
    };
    let rest = header.trim().strip_prefix(V3_ALGORITHM).ok_or_else(|| incomplete("unknown algorithm"))?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.trim().split(',') {
        let (k, v) = part.trim().split_once('=').ok_or_else(|| incomplete("a part without '='"))?;
        match k.trim() {
            "Credential" => cred = Some(v.trim().to_string()),
            "SignedHeaders" => signed = Some(v.trim().to_string()),
            "Signature" => sig = Some(v.trim().to_string()),
            _ => {}
        }
    }
    match (cred, signed, sig) {
        (Some(c), Some(h), Some(s)) if !c.is_empty() && !h.is_empty() && !s.is_empty() => {
            Ok(V3Authorization { access_key_id: c, signed_headers: h, signature: s })
        }
        _ => Err(incomplete("Credential, SignedHeaders and Signature are all required")),
    }
}

/// The V3 canonical request. `query` holds the decoded query pairs; `header` gives every value
/// of a (lower-case) header name; `payload_hash` is hex SHA-256 of the body.
pub fn v3_canonical_request(
    method: &str,
    path: &str,
    query: &[(String, String)],
    signed_headers: &str,
    header: impl Fn(&str) -> Vec<String>,
    payload_hash: &str,
) -> String {
    let mut q: Vec<&(String, String)> = query.iter().collect();
    q.sort();
    let canonical_query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", rfc3986(v))).collect();
    let mut names: Vec<String> =
        signed_headers.split(';').map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()).collect();
    names.sort();
    names.dedup();
    let mut canonical_headers = String::new();
    for n in &names {
        let mut values: Vec<String> = header(n).into_iter().map(|v| v.trim().to_string()).collect();
        values.sort();
        canonical_headers.push_str(&format!("{n}:{}\n", values.join(",")));
    }
    let path = if path.is_empty() { "/" } else { path };
    format!(
        "{}\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        method.to_ascii_uppercase(),
        canonical_query.join("&")
    )
}

pub fn v3_string_to_sign(canonical_request: &str) -> String {
    format!("{V3_ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()))
}

pub fn v3_signature(secret: &str, string_to_sign: &str) -> String {
    let mac = hmac_sha256(secret.as_bytes(), string_to_sign.as_bytes());
    mac.iter().map(|b| format!("{b:02x}")).collect()
}

fn unknown_key(id: &str) -> AliyunError {
    vendor(
        "InvalidAccessKeyId.NotFound",
        404,
        format!("Specified access key \"{id}\" is not found: no account of this server holds it."),
    )
}

fn incomplete(message: String) -> AliyunError {
    vendor("IncompleteSignature", 400, message)
}

/// Parse a request time and check it against the window.
fn check_time(name: &str, value: Option<&str>) -> Result<DateTime<Utc>, AliyunError> {
    let Some(text) = value.filter(|t| !t.trim().is_empty()) else {
        return Err(vendor(
            "IllegalTimestamp",
            400,
            format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied."),
        ));
    };
    let t = clock::parse_iso(text).map_err(|_| {
        vendor(
            "InvalidTimeStamp.Format",
            400,
            format!("Specified {name} \"{text}\" is not valid: use UTC in the form 2016-02-23T12:46:24Z."),
        )
    })?;
    clock::check(t, crate::CLOCK_WINDOW).map_err(|skew| {
        vendor(
            "InvalidTimeStamp.Expired",
            400,
            format!(
                "Specified {name} {text} is expired: {skew} (±{} s); check the client's clock.",
                crate::CLOCK_WINDOW.as_secs()
            ),
        )
    })?;
    Ok(t)
}

async fn check_nonce(
    ctx: &ApiContext,
    key: &str,
    name: &str,
    nonce: Option<&str>,
    signed: DateTime<Utc>,
) -> Result<(), AliyunError> {
    let Some(nonce) = nonce.filter(|n| !n.is_empty()) else {
        return Err(incomplete(format!(
            "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
        )));
    };
    match ctx.first_use_nonce(&format!("aliyun:{key}"), nonce, signed, crate::CLOCK_WINDOW).await? {
        NonceUse::First => Ok(()),
        NonceUse::Reused => Err(vendor(
            "SignatureNonceUsed",
            400,
            format!(
                "Specified signature nonce \"{nonce}\" was used already; send a new random nonce with each request."
            ),
        )),
        NonceUse::PastHorizon(h) => Err(vendor("InvalidTimeStamp.Expired", 400, NonceUse::horizon_message(h))),
    }
}

/// Authenticate a request. `params` are every decoded parameter (query then form body);
/// `query` only the query's.
pub async fn verify(
    ctx: &ApiContext,
    raw: &RawRequest,
    params: &[(String, String)],
    query: &[(String, String)],
) -> Result<Verified, AliyunError> {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if let Some(auth) = raw.header("authorization").filter(|a| a.trim_start().starts_with("ACS3-")) {
        return verify_v3(ctx, raw, auth, query).await;
    }
    if raw.header("x-acs-security-token").is_some() || get("SecurityToken").is_some_and(|t| !t.is_empty()) {
        return Err(unknown_key("(STS token)"));
    }
    let (Some(key_id), Some(signature)) = (get("AccessKeyId"), get("Signature")) else {
        return Err(incomplete(
            "The request is not signed: sign it with RPC v1 (AccessKeyId, Signature, SignatureMethod=HMAC-SHA1, \
             SignatureVersion=1.0, SignatureNonce, Timestamp) or with an \"Authorization: ACS3-HMAC-SHA256 …\" header."
                .into(),
        ));
    };
    let secret = ctx.keys.lookup(crate::KEYS, key_id).ok_or_else(|| unknown_key(key_id))?;
    match get("SignatureMethod") {
        Some("HMAC-SHA1") => {}
        Some(m) => {
            return Err(vendor(
                "InvalidSignatureMethod",
                400,
                format!("Specified signature method \"{m}\" is not supported; use HMAC-SHA1."),
            ))
        }
        None => return Err(incomplete("The input parameter \"SignatureMethod\" is not supplied (HMAC-SHA1).".into())),
    }
    if let Some(v) = get("SignatureVersion").filter(|v| *v != "1.0") {
        return Err(vendor(
            "InvalidSignatureVersion",
            400,
            format!("Specified signature version \"{v}\" is not supported; use 1.0."),
        ));
    }
    let sts = rpc_string_to_sign(raw.method.as_str(), params);
    if !same(rpc_signature(&secret.secret, &sts).as_bytes(), signature.as_bytes()) {
        return Err(AliyunError::SignatureDoesNotMatch { string_to_sign: sts });
    }
    let signed = check_time("Timestamp", get("Timestamp"))?;
    check_nonce(ctx, key_id, "SignatureNonce", get("SignatureNonce"), signed).await?;
    Ok(Verified { account: secret.account.clone(), key_id: key_id.to_string() })
}

async fn verify_v3(
    ctx: &ApiContext,
    raw: &RawRequest,
    auth: &str,
    query: &[(String, String)],
) -> Result<Verified, AliyunError> {
    let a = parse_v3_authorization(auth)?;
    let signed: Vec<String> = a.signed_headers.split(';').map(|n| n.trim().to_ascii_lowercase()).collect();
    let unsigned: Vec<&str> = V3_REQUIRED_SIGNED.iter().copied().filter(|r| !signed.iter().any(|n| n == r)).collect();
    if !unsigned.is_empty() {
        return Err(incomplete(format!(
            "The SignedHeaders of the Authorization header leave out {}; a {V3_ALGORITHM} signature must cover {}.",
            unsigned.join(", "),
            V3_REQUIRED_SIGNED.join(", ")
        )));
    }
    if raw.header("x-acs-security-token").is_some() || raw.header("x-acs-accesskey-id").is_some() {
        return Err(unknown_key("(STS token)"));
    }
    let secret = ctx.keys.lookup(crate::KEYS, &a.access_key_id).ok_or_else(|| unknown_key(&a.access_key_id))?;
    let header = |name: &str| {
        raw.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
    };
    let canonical =
        v3_canonical_request(raw.method.as_str(), &raw.path, query, &a.signed_headers, header, &sha256_hex(&raw.body));
    let sts = v3_string_to_sign(&canonical);
    let ours = v3_signature(&secret.secret, &sts);
    if !same(ours.as_bytes(), a.signature.to_ascii_lowercase().as_bytes()) {
        return Err(AliyunError::SignatureDoesNotMatch { string_to_sign: sts });
    }
    let signed = check_time("x-acs-date", raw.header("x-acs-date"))?;
    check_nonce(ctx, &a.access_key_id, "x-acs-signature-nonce", raw.header("x-acs-signature-nonce"), signed).await?;
    Ok(Verified { account: secret.account.clone(), key_id: a.access_key_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// dialects.md §4.3, aliyun-python-sdk-core 2.16.1 with frozen Timestamp and nonce.
    fn sdk_params(with_signature_type: bool) -> Vec<(String, String)> {
        let mut p = pairs(&[
            ("Action", "DescribeSnapshots"),
            ("RegionId", "cn-hangzhou"),
            ("PageSize", "10"),
            ("Version", "2014-05-26"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "nonce-1"),
            ("AccessKeyId", "testid"),
            ("Format", "JSON"),
            ("Signature", "ignored"),
        ]);
        if with_signature_type {
            p.push(("SignatureType".into(), "".into()));
        }
        p
    }

    #[test]
    fn rpc_v1_vector_a_with_empty_signature_type() {
        let sts = rpc_string_to_sign("GET", &sdk_params(true));
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeSnapshots%26Format%3DJSON%26PageSize%3D10%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3Dnonce-1%26SignatureType%3D%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(rpc_signature("testsecret", &sts), "gd5j/dAeBYWp5RPKfBt2S4NbcnI=");
        let post = rpc_string_to_sign("POST", &sdk_params(true));
        assert_eq!(rpc_signature("testsecret", &post), "Ll6BXFoR5e/UWK6kWml//SejuzI=");
    }

    #[test]
    fn rpc_v1_vector_b_without_signature_type() {
        let sts = rpc_string_to_sign("GET", &sdk_params(false));
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeSnapshots%26Format%3DJSON%26PageSize%3D10%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3Dnonce-1%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(rpc_signature("testsecret", &sts), "CkaqRIYbcwiZVxS1jFrfihkCuXk=");
        let post = rpc_string_to_sign("POST", &sdk_params(false));
        assert_eq!(rpc_signature("testsecret", &post), "lxACooqJa72nn5UN4B5gfj8wexg=");
    }

    #[test]
    fn rpc_v1_vector_c_encoding_edge() {
        let sts = rpc_string_to_sign("GET", &pairs(&[("A", "a b*c~d/e:f+g=h&i中")]));
        assert_eq!(sts, "GET&%2F&A%3Da%2520b%252Ac~d%252Fe%253Af%252Bg%253Dh%2526i%25E4%25B8%25AD");
    }

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const SIGNED: &str = "accept;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version";

    #[test]
    fn v3_vector() {
        let headers = pairs(&[
            ("host", "ecs.cn-hangzhou.aliyuncs.com"),
            ("x-acs-action", "DescribeSnapshots"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2016-02-23T12:46:24Z"),
            ("x-acs-signature-nonce", "nonce-1"),
            ("accept", "application/json"),
            ("x-acs-content-sha256", EMPTY),
        ]);
        let header = |n: &str| headers.iter().filter(|(k, _)| k == n).map(|(_, v)| v.clone()).collect::<Vec<String>>();
        let canonical = v3_canonical_request(
            "POST",
            "/",
            &pairs(&[("RegionId", "cn-hangzhou"), ("PageSize", "10")]),
            SIGNED,
            header,
            EMPTY,
        );
        assert_eq!(
            canonical,
            format!(
                "POST\n/\nPageSize=10&RegionId=cn-hangzhou\naccept:application/json\nhost:ecs.cn-hangzhou.aliyuncs.com\nx-acs-action:DescribeSnapshots\nx-acs-content-sha256:{EMPTY}\nx-acs-date:2016-02-23T12:46:24Z\nx-acs-signature-nonce:nonce-1\nx-acs-version:2014-05-26\n\n{SIGNED}\n{EMPTY}"
            )
        );
        let sts = v3_string_to_sign(&canonical);
        assert_eq!(sts, "ACS3-HMAC-SHA256\na492833eeea01f0af199bafd076432ea580c1d830ad6639ba427ff389bbb97b6");
        assert_eq!(
            v3_signature("testsecret", &sts),
            "5039ce34e55de915b7d802433b7d9bcd277e64c4f798dd01b0f0f353dd8e2029"
        );
        let auth = parse_v3_authorization(&format!(
            "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={SIGNED},Signature=5039ce34e55de915b7d802433b7d9bcd277e64c4f798dd01b0f0f353dd8e2029"
        ))
        .unwrap();
        assert_eq!((auth.access_key_id.as_str(), auth.signed_headers.as_str()), ("testid", SIGNED));
    }

    #[test]
    fn v3_query_encoding_edge() {
        let c =
            v3_canonical_request("GET", "/", &pairs(&[("B", ""), ("A", "a b*c~d/e:f+g=h&i中")]), "", |_| vec![], "");
        assert_eq!(c.lines().nth(2), Some("A=a%20b%2Ac~d%2Fe%3Af%2Bg%3Dh%26i%E4%B8%AD&B="));
    }

    #[test]
    fn malformed_authorization_is_incomplete_signature() {
        for bad in ["ACS3-HMAC-SHA256", "ACS3-HMAC-SHA256 Credential=x", "HMAC x", "ACS3-HMAC-SHA256 garbage"] {
            assert_eq!(parse_v3_authorization(bad).unwrap_err().code(), "IncompleteSignature", "{bad}");
        }
    }
}
