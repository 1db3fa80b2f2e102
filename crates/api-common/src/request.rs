//! The raw request as a signature sees it, and the id each request is logged and answered with.

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, Method};

/// Set by the server's middleware on every request; dialects echo it (RequestId, req-…) and
/// log internal errors with it.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    pub fn new() -> Self {
        let u: u128 = rand::random();
        // Shaped as a UUID v4 so every vendor's client accepts it.
        let u = (u & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
        let h = format!("{u:032x}");
        RequestId(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

/// Largest body a dialect reads (API calls carry parameters, never disk bytes).
pub const MAX_BODY: usize = 1 << 20;

/// Method, path, raw query, headers and body of one request.
#[derive(Clone, Debug)]
pub struct RawRequest {
    pub method: Method,
    pub path: String,
    /// The query exactly as sent (undecoded), without the `?`.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: RequestId,
}

impl RawRequest {
    /// Read the whole request. Err (why) when the body is larger than [`MAX_BODY`] or
    /// unreadable.
    pub async fn read(req: Request) -> Result<RawRequest, String> {
        match Self::read_or_head(req).await {
            (raw, None) => Ok(raw),
            (_, Some(why)) => Err(why),
        }
    }

    /// Read the whole request; when its body cannot be read (larger than [`MAX_BODY`], or cut
    /// off), the request with an empty body and why, so the dialect can still answer in its
    /// own envelope with what the head says (the pipeline's first step).
    ///
    /// An HTTP/2 request names its host in the `:authority` pseudo-header (the URI), not in
    /// `Host`; it is copied to `Host` (RFC 9113 §8.3.1) so that signatures over the host, and
    /// links built from it, read the same whatever the protocol.
    pub async fn read_or_head(req: Request) -> (RawRequest, Option<String>) {
        let (mut parts, body) = req.into_parts();
        if !parts.headers.contains_key(axum::http::header::HOST) {
            if let Some(v) = parts.uri.authority().and_then(|a| a.as_str().parse().ok()) {
                parts.headers.insert(axum::http::header::HOST, v);
            }
        }
        let request_id = parts.extensions.get::<RequestId>().cloned().unwrap_or_default();
        let (body, why) = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => (b, None),
            Err(e) => (Bytes::new(), Some(format!("request body could not be read (at most {MAX_BODY} bytes): {e}"))),
        };
        let raw = RawRequest {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            headers: parts.headers,
            body,
            request_id,
        };
        (raw, why)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body is a form (`application/x-www-form-urlencoded`), or has no content type but
    /// looks like one.
    pub fn body_is_form(&self) -> bool {
        match self.header("content-type") {
            Some(ct) => ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"),
            None => !self.body.is_empty() && !self.body.starts_with(b"{"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http2_authority_is_the_host() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let req = Request::builder().uri("https://cbs.example:7443/v2/index.php?a=1").body(Default::default()).unwrap();
        let (raw, why) = rt.block_on(RawRequest::read_or_head(req));
        assert!(why.is_none());
        assert_eq!(
            (raw.header("host"), raw.path.as_str(), raw.query.as_str()),
            (Some("cbs.example:7443"), "/v2/index.php", "a=1")
        );
        // a Host header that was sent stays as sent
        let req = Request::builder().uri("https://a:1/x").header("host", "b:2").body(Default::default()).unwrap();
        assert_eq!(rt.block_on(RawRequest::read_or_head(req)).0.header("host"), Some("b:2"));
    }

    #[test]
    fn request_ids_look_like_uuid4() {
        let r = RequestId::new().0;
        assert_eq!(r.len(), 36);
        assert_eq!(&r[14..15], "4");
        assert!(matches!(&r[19..20], "8" | "9" | "a" | "b"));
    }
}
