//! The CBS 3.0 actions served, and how a 3.0 request is told apart on the shared `/`.

use axum::extract::Request;
use axum::http::Method;
use disksnap_api_common::encode::parse_pairs;

/// The header naming a TC3 request's action.
pub const ACTION_HEADER: &str = "x-tc-action";

macro_rules! endpoints {
    ($($name:ident: $mutates:literal,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Endpoint { $($name,)* }

        impl Endpoint {
            pub const ALL: &'static [Endpoint] = &[$(Endpoint::$name,)*];

            pub fn name(self) -> &'static str {
                match self { $(Endpoint::$name => stringify!($name),)* }
            }

            /// The action changes something (a replayed TC3 request is refused only then; see
            /// signature.rs).
            pub fn mutates(self) -> bool {
                match self { $(Endpoint::$name => $mutates,)* }
            }
        }
    };
}

endpoints! {
    DescribeSnapshots: false,
    CreateSnapshot: true,
    DeleteSnapshots: true,
    ModifySnapshotAttribute: true,
    ApplySnapshot: true,
    DescribeSnapshotOverview: false,
    DescribeDisks: false,
    CreateDisks: true,
    TerminateDisks: true,
    ResizeDisk: true,
    ModifyDiskAttributes: true,
    AttachDisks: true,
    DetachDisks: true,
    CreateAutoSnapshotPolicy: true,
    DescribeAutoSnapshotPolicies: false,
    ModifyAutoSnapshotPolicyAttribute: true,
    DeleteAutoSnapshotPolicies: true,
    BindAutoSnapshotPolicy: true,
    UnbindAutoSnapshotPolicy: true,
    DescribeDiskAssociatedAutoSnapshotPolicy: false,
}

impl Endpoint {
    /// The action exactly as the SDK sends it (case-sensitive, as the vendor's match is).
    pub fn from_action(action: &str) -> Option<Endpoint> {
        Endpoint::ALL.iter().copied().find(|e| e.name() == action)
    }
}

/// A TC3 request names its action in a header; a v1 GET names `SecretId` in its query.
pub fn wants_head(req: &Request) -> bool {
    if req.headers().contains_key(ACTION_HEADER) {
        return true;
    }
    req.method() == Method::GET && req.uri().query().is_some_and(names_secret_id)
}

/// A POST whose body may be a v1 form (a form content type, or none).
pub fn may_be_form(req: &Request) -> bool {
    req.method() == Method::POST
        && req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

pub fn form_names_secret_id(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(names_secret_id)
}

fn names_secret_id(text: &str) -> bool {
    parse_pairs(text, |_| false).iter().any(|(k, _)| k == "SecretId")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[test]
    fn actions() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_action(e.name()), Some(*e));
        }
        for bad in ["describeSnapshots", "DescribeSnapshot", "DeleteSnapshot", "DescribeCbsStorages", ""] {
            assert_eq!(Endpoint::from_action(bad), None, "{bad}");
        }
        assert!(!Endpoint::DescribeDisks.mutates());
        assert!(Endpoint::CreateSnapshot.mutates());
    }

    #[test]
    fn which_requests_on_root_are_ours() {
        let r = |m: &str, uri: &str, h: Option<(&str, &str)>| {
            let mut b = Request::builder().method(m).uri(uri);
            if let Some((k, v)) = h {
                b = b.header(k, v);
            }
            b.body(Body::empty()).unwrap()
        };
        assert!(wants_head(&r("POST", "/", Some(("X-TC-Action", "DescribeDisks")))));
        assert!(wants_head(&r("GET", "/?Action=DescribeDisks&SecretId=AKID", None)));
        // Aliyun RPC (AccessKeyId) and Cinder's version list are not ours.
        assert!(!wants_head(&r("GET", "/?Action=DescribeDisks&AccessKeyId=LTAI", None)));
        assert!(!wants_head(&r("GET", "/", None)));
        assert!(may_be_form(&r("POST", "/", Some(("content-type", "application/x-www-form-urlencoded")))));
        assert!(!may_be_form(&r("POST", "/", Some(("content-type", "application/json")))));
        assert!(form_names_secret_id(b"Action=X&SecretId=AKID&Signature=a%2Bb"));
        assert!(!form_names_secret_id(b"Action=X&AccessKeyId=LTAI"));
    }
}
