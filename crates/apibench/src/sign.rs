//! QingCloud signature v1 as the SDK computes it (dialects.md §2.3), written here on its own
//! rather than borrowed from the dialect crate, so a bug there cannot sign its own requests.

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
