//! Percent-encoding as the vendors sign it, and query/form decoding.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// RFC 3986 unreserved characters stay, everything else is `%XX` with upper-case hex. QingCloud,
/// Aliyun (RPC and V3) and Huawei all sign with this encoding.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub fn rfc3986(text: &str) -> String {
    utf8_percent_encode(text, RFC3986).to_string()
}

/// Decode one query component. `plus_is_space` follows HTML forms (`+` → space); some vendors
/// keep `+` literal in some places (QingCloud's `signature`, 51idc values).
pub fn decode(text: &str, plus_is_space: bool) -> String {
    let replaced;
    let t = if plus_is_space && text.contains('+') {
        replaced = text.replace('+', " ");
        replaced.as_str()
    } else {
        text
    };
    percent_decode_str(t).decode_utf8_lossy().into_owned()
}

/// Decode one path segment (`%XX` only; `+` is literal in paths). None when the bytes it
/// decodes to are not UTF-8, so a dialect can refuse it in its own envelope.
pub fn decode_path_segment(text: &str) -> Option<String> {
    percent_decode_str(text).decode_utf8().ok().map(|s| s.into_owned())
}

/// Split `a=1&b=&c` into decoded pairs in order (`c` gets an empty value; empty pieces, as from
/// a trailing `&`, are skipped). `literal_plus(key)` says which keys keep `+` literal.
pub fn parse_pairs(raw: &str, literal_plus: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let key = decode(k, true);
            let plus_is_space = !literal_plus(&key);
            let value = decode(v, plus_is_space);
            (key, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_vendor_sdks() {
        assert_eq!(rfc3986("my snap+1/~*中"), "my%20snap%2B1%2F~%2A%E4%B8%AD");
        assert_eq!(rfc3986("2013-08-27T14:30:10Z"), "2013-08-27T14%3A30%3A10Z");
        assert_eq!(rfc3986("A-Z_a.z~0"), "A-Z_a.z~0");
    }

    #[test]
    fn decodes_pairs_with_plus_rules() {
        let p = parse_pairs("a=x+y&signature=ab+c%3D&&empty=&bare", |k| k == "signature");
        assert_eq!(
            p,
            vec![
                ("a".into(), "x y".into()),
                ("signature".into(), "ab+c=".into()),
                ("empty".into(), "".into()),
                ("bare".into(), "".into())
            ]
        );
    }
}
