//! The signatures each vendor's SDK computes (dialects.md): QingCloud v1 (§2.3), Aliyun RPC
//! HMAC-SHA1, Tencent API v2 HmacSHA256, Tencent TC3-HMAC-SHA256 and Huawei SDK-HMAC-SHA256.
//! Written here on their own rather than borrowed from the dialect crates, so a bug there
//! cannot sign its own requests.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Keep `A–Z a–z 0–9 - _ . ~`, everything else `%XX` (upper-case hex).
pub fn encode(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from_digit((b >> 4) as u32, 16).unwrap().to_ascii_uppercase());
            out.push(char::from_digit((b & 15) as u32, 16).unwrap().to_ascii_uppercase());
        }
    }
}

/// The sorted, encoded query (what is signed, and what is sent before `&signature=`).
pub fn canonical_query(params: &mut [(String, String)]) -> String {
    params.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut qs = String::with_capacity(256);
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            qs.push('&');
        }
        encode(k, &mut qs);
        qs.push('=');
        encode(v, &mut qs);
    }
    qs
}

pub fn signature(secret: &str, method: &str, path: &str, qs: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(method.as_bytes());
    mac.update(b"\n");
    mac.update(path.as_bytes());
    mac.update(b"\n");
    mac.update(qs.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn hmac256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(data))
}

/// Aliyun RPC: `GET&%2F&pe(sorted, encoded query)`, HMAC-SHA1 with `secret&`, base64. `qs` is
/// [`canonical_query`] of every parameter but `Signature`.
pub fn aliyun(secret: &str, qs: &str) -> String {
    let mut sts = String::from("GET&%2F&");
    encode(qs, &mut sts);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("any key length");
    mac.update(sts.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Tencent API v2: `GET` host path `?` the sorted pairs unencoded, HmacSHA256, base64.
pub fn tencent_v2(secret: &str, host: &str, path: &str, sorted: &[(String, String)]) -> String {
    let mut sts = format!("GET{host}{path}?");
    for (i, (k, v)) in sorted.iter().enumerate() {
        if i > 0 {
            sts.push('&');
        }
        sts.push_str(k);
        sts.push('=');
        sts.push_str(v);
    }
    base64::engine::general_purpose::STANDARD.encode(hmac256(secret.as_bytes(), sts.as_bytes()))
}

/// Tencent TC3-HMAC-SHA256 over a JSON POST to `/` signing `content-type;host`: the
/// Authorization header's value.
pub fn tc3(secret_id: &str, secret: &str, host: &str, timestamp: i64, body: &[u8]) -> String {
    let date = chrono::DateTime::from_timestamp(timestamp, 0).unwrap_or_default().format("%Y-%m-%d").to_string();
    let canonical =
        format!("POST\n/\n\ncontent-type:application/json\nhost:{host}\n\ncontent-type;host\n{}", sha256_hex(body));
    let sts = format!("TC3-HMAC-SHA256\n{timestamp}\n{date}/cbs/tc3_request\n{}", sha256_hex(canonical.as_bytes()));
    let k_date = hmac256(format!("TC3{secret}").as_bytes(), date.as_bytes());
    let k_service = hmac256(&k_date, b"cbs");
    let k_signing = hmac256(&k_service, b"tc3_request");
    let sig = hex::encode(hmac256(&k_signing, sts.as_bytes()));
    format!("TC3-HMAC-SHA256 Credential={secret_id}/{date}/cbs/tc3_request, SignedHeaders=content-type;host, Signature={sig}")
}

/// Huawei SDK-HMAC-SHA256 of a GET signing `host;x-sdk-date` (`path` without its trailing `/`,
/// `qs` sorted and encoded): the Authorization header's value.
pub fn huawei(ak: &str, sk: &str, host: &str, sdk_date: &str, path: &str, qs: &str) -> String {
    let canonical =
        format!("GET\n{path}/\n{qs}\nhost:{host}\nx-sdk-date:{sdk_date}\n\nhost;x-sdk-date\n{}", sha256_hex(b""));
    let sts = format!("SDK-HMAC-SHA256\n{sdk_date}\n{}", sha256_hex(canonical.as_bytes()));
    let sig = hex::encode(hmac256(sk.as_bytes(), sts.as_bytes()));
    format!("SDK-HMAC-SHA256 Access={ak}, SignedHeaders=host;x-sdk-date, Signature={sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vector (a) of dialects.md §2.3 (qingcloud-sdk 1.2.16).
    #[test]
    fn sdk_vector_a() {
        let mut p: Vec<(String, String)> = [
            ("zone", "pek3a"),
            ("version", "1"),
            ("time_stamp", "2013-08-27T14:30:10Z"),
            ("signature_version", "1"),
            ("signature_method", "HmacSHA256"),
            ("limit", "2"),
            ("action", "DescribeSnapshots"),
            ("access_key_id", "QYACCESSKEYIDEXAMPLE"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let qs = canonical_query(&mut p);
        assert_eq!(
            qs,
            "access_key_id=QYACCESSKEYIDEXAMPLE&action=DescribeSnapshots&limit=2&signature_method=HmacSHA256&signature_version=1&time_stamp=2013-08-27T14%3A30%3A10Z&version=1&zone=pek3a"
        );
        assert_eq!(signature("SECRETACCESSKEY", "GET", "/iaas/", &qs), "4HnhQJmdpqvqYvTxwEz18BQkJZeWjbg6ueg+CaqbsO4=");
        let mut e = String::new();
        encode("my snap+1/~*中", &mut e);
        assert_eq!(e, "my%20snap%2B1%2F~%2A%E4%B8%AD");
    }
}
