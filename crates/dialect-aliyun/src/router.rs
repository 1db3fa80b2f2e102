//! Which requests are Aliyun's, and which action each one names.
//!
//! Aliyun serves every action on `/`: `Action` and `Version` in the query or form body (RPC v1,
//! the old SDK, the Tea SDK with `signature_algorithm="v2"`), or only in the `x-acs-action` /
//! `x-acs-version` headers (the Tea SDK's default V3).

use axum::extract::Request;
use axum::http::Method;

use crate::error::{vendor, AliyunError};

/// The one API version served.
pub const VERSION: &str = "2014-05-26";

/// Every action this dialect answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    DescribeSnapshots,
    CreateSnapshot,
    DeleteSnapshot,
    ModifySnapshotAttribute,
    ResetDisk,
    CreateDisk,
    CreateImage,
    DescribeDisks,
    DescribeSnapshotLinks,
    DescribeSnapshotsUsage,
    DescribeRegions,
    DescribeZones,
    DeleteDisk,
    ResizeDisk,
    ModifyDiskAttribute,
    AttachDisk,
    DetachDisk,
    TagResources,
    UntagResources,
    ListTagResources,
    AddTags,
    RemoveTags,
    DescribeTags,
    DescribeImages,
    DeleteImage,
    ModifyImageAttribute,
    JoinResourceGroup,
    CreateSnapshotGroup,
    DescribeSnapshotGroups,
    ModifySnapshotGroup,
    DeleteSnapshotGroup,
    ResetDisks,
    CreateAutoSnapshotPolicy,
    DescribeAutoSnapshotPolicyEx,
    ModifyAutoSnapshotPolicyEx,
    DeleteAutoSnapshotPolicy,
    ApplyAutoSnapshotPolicy,
    CancelAutoSnapshotPolicy,
}

impl Endpoint {
    pub const ALL: &'static [Endpoint] = &[
        Endpoint::DescribeSnapshots,
        Endpoint::CreateSnapshot,
        Endpoint::DeleteSnapshot,
        Endpoint::ModifySnapshotAttribute,
        Endpoint::ResetDisk,
        Endpoint::CreateDisk,
        Endpoint::CreateImage,
        Endpoint::DescribeDisks,
        Endpoint::DescribeSnapshotLinks,
        Endpoint::DescribeSnapshotsUsage,
        Endpoint::DescribeRegions,
        Endpoint::DescribeZones,
        Endpoint::DeleteDisk,
        Endpoint::ResizeDisk,
        Endpoint::ModifyDiskAttribute,
        Endpoint::AttachDisk,
        Endpoint::DetachDisk,
        Endpoint::TagResources,
        Endpoint::UntagResources,
        Endpoint::ListTagResources,
        Endpoint::AddTags,
        Endpoint::RemoveTags,
        Endpoint::DescribeTags,
        Endpoint::DescribeImages,
        Endpoint::DeleteImage,
        Endpoint::ModifyImageAttribute,
        Endpoint::JoinResourceGroup,
        Endpoint::CreateSnapshotGroup,
        Endpoint::DescribeSnapshotGroups,
        Endpoint::ModifySnapshotGroup,
        Endpoint::DeleteSnapshotGroup,
        Endpoint::ResetDisks,
        Endpoint::CreateAutoSnapshotPolicy,
        Endpoint::DescribeAutoSnapshotPolicyEx,
        Endpoint::ModifyAutoSnapshotPolicyEx,
        Endpoint::DeleteAutoSnapshotPolicy,
        Endpoint::ApplyAutoSnapshotPolicy,
        Endpoint::CancelAutoSnapshotPolicy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::DescribeSnapshots => "DescribeSnapshots",
            Endpoint::CreateSnapshot => "CreateSnapshot",
            Endpoint::DeleteSnapshot => "DeleteSnapshot",
            Endpoint::ModifySnapshotAttribute => "ModifySnapshotAttribute",
            Endpoint::ResetDisk => "ResetDisk",
            Endpoint::CreateDisk => "CreateDisk",
            Endpoint::CreateImage => "CreateImage",
            Endpoint::DescribeDisks => "DescribeDisks",
            Endpoint::DescribeSnapshotLinks => "DescribeSnapshotLinks",
            Endpoint::DescribeSnapshotsUsage => "DescribeSnapshotsUsage",
            Endpoint::DescribeRegions => "DescribeRegions",
            Endpoint::DescribeZones => "DescribeZones",
            Endpoint::DeleteDisk => "DeleteDisk",
            Endpoint::ResizeDisk => "ResizeDisk",
            Endpoint::ModifyDiskAttribute => "ModifyDiskAttribute",
            Endpoint::AttachDisk => "AttachDisk",
            Endpoint::DetachDisk => "DetachDisk",
            Endpoint::TagResources => "TagResources",
            Endpoint::UntagResources => "UntagResources",
            Endpoint::ListTagResources => "ListTagResources",
            Endpoint::AddTags => "AddTags",
            Endpoint::RemoveTags => "RemoveTags",
            Endpoint::DescribeTags => "DescribeTags",
            Endpoint::DescribeImages => "DescribeImages",
            Endpoint::DeleteImage => "DeleteImage",
            Endpoint::ModifyImageAttribute => "ModifyImageAttribute",
            Endpoint::JoinResourceGroup => "JoinResourceGroup",
            Endpoint::CreateSnapshotGroup => "CreateSnapshotGroup",
            Endpoint::DescribeSnapshotGroups => "DescribeSnapshotGroups",
            Endpoint::ModifySnapshotGroup => "ModifySnapshotGroup",
            Endpoint::DeleteSnapshotGroup => "DeleteSnapshotGroup",
            Endpoint::ResetDisks => "ResetDisks",
            Endpoint::CreateAutoSnapshotPolicy => "CreateAutoSnapshotPolicy",
            Endpoint::DescribeAutoSnapshotPolicyEx => "DescribeAutoSnapshotPolicyEx",
            Endpoint::ModifyAutoSnapshotPolicyEx => "ModifyAutoSnapshotPolicyEx",
            Endpoint::DeleteAutoSnapshotPolicy => "DeleteAutoSnapshotPolicy",
            Endpoint::ApplyAutoSnapshotPolicy => "ApplyAutoSnapshotPolicy",
            Endpoint::CancelAutoSnapshotPolicy => "CancelAutoSnapshotPolicy",
        }
    }

    /// The action of a request from its `Action`/`Version` (parameter, else header). Action
    /// names are case-sensitive, as Aliyun's are.
    pub fn from_request(action: Option<&str>, version: Option<&str>) -> Result<Endpoint, AliyunError> {
        let Some(action) = action.filter(|a| !a.is_empty()) else {
            return Err(AliyunError::MissingParameter("Action".into()));
        };
        if let Some(v) = version.filter(|v| *v != VERSION) {
            return Err(vendor(
                "InvalidAction.NotFound",
                404,
                format!("Specified api is not found: Version \"{v}\" is not served; use Version={VERSION}."),
            ));
        }
        Endpoint::ALL.iter().copied().find(|e| e.name() == action).ok_or_else(|| {
            vendor(
                "InvalidAction.NotFound",
                404,
                format!(
                    "Specified api \"{action}\" is not found; this server answers {}.",
                    Endpoint::ALL.iter().map(|e| e.name()).collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }
}

/// Does this body name an action as a form does (`…&Action=…`), whatever the request's
/// Content-Type claims? A JSON or XML body never parses to an `Action` key.
pub fn body_names_action(body: &[u8]) -> bool {
    !body.is_empty()
        && disksnap_api_common::encode::parse_pairs(&String::from_utf8_lossy(body), |_| true)
            .iter()
            .any(|(k, _)| k == "Action")
}

/// Is this request Aliyun's, from its head alone? Path `/` and an `Action` query parameter, an
/// `x-acs-action` header, or a POSTed form (whose body names the action). A body that names
/// an action under another Content-Type is found by [`crate::serve_root`].
pub fn wants(req: &Request) -> bool {
    if req.uri().path() != "/" {
        return false;
    }
    let query = req.uri().query().unwrap_or("");
    let has_action = query.split('&').any(|p| p == "Action" || p.starts_with("Action="));
    let is_form = req.method() == Method::POST
        && req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    has_action || req.headers().contains_key("x-acs-action") || is_form
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[test]
    fn every_action_routes_to_itself() {
        // one line per action
        let cases = [
            ("DescribeSnapshots", Endpoint::DescribeSnapshots),
            ("CreateSnapshot", Endpoint::CreateSnapshot),
            ("DeleteSnapshot", Endpoint::DeleteSnapshot),
            ("ModifySnapshotAttribute", Endpoint::ModifySnapshotAttribute),
            ("ResetDisk", Endpoint::ResetDisk),
            ("CreateDisk", Endpoint::CreateDisk),
            ("CreateImage", Endpoint::CreateImage),
            ("DescribeDisks", Endpoint::DescribeDisks),
            ("DescribeSnapshotLinks", Endpoint::DescribeSnapshotLinks),
            ("DescribeSnapshotsUsage", Endpoint::DescribeSnapshotsUsage),
            ("DescribeRegions", Endpoint::DescribeRegions),
            ("DescribeZones", Endpoint::DescribeZones),
            ("DeleteDisk", Endpoint::DeleteDisk),
            ("ResizeDisk", Endpoint::ResizeDisk),
            ("ModifyDiskAttribute", Endpoint::ModifyDiskAttribute),
            ("AttachDisk", Endpoint::AttachDisk),
            ("DetachDisk", Endpoint::DetachDisk),
            ("TagResources", Endpoint::TagResources),
            ("UntagResources", Endpoint::UntagResources),
            ("ListTagResources", Endpoint::ListTagResources),
            ("AddTags", Endpoint::AddTags),
            ("RemoveTags", Endpoint::RemoveTags),
            ("DescribeTags", Endpoint::DescribeTags),
            ("DescribeImages", Endpoint::DescribeImages),
            ("DeleteImage", Endpoint::DeleteImage),
            ("ModifyImageAttribute", Endpoint::ModifyImageAttribute),
            ("JoinResourceGroup", Endpoint::JoinResourceGroup),
            ("CreateSnapshotGroup", Endpoint::CreateSnapshotGroup),
            ("DescribeSnapshotGroups", Endpoint::DescribeSnapshotGroups),
            ("ModifySnapshotGroup", Endpoint::ModifySnapshotGroup),
            ("DeleteSnapshotGroup", Endpoint::DeleteSnapshotGroup),
            ("ResetDisks", Endpoint::ResetDisks),
            ("CreateAutoSnapshotPolicy", Endpoint::CreateAutoSnapshotPolicy),
            ("DescribeAutoSnapshotPolicyEx", Endpoint::DescribeAutoSnapshotPolicyEx),
            ("ModifyAutoSnapshotPolicyEx", Endpoint::ModifyAutoSnapshotPolicyEx),
            ("DeleteAutoSnapshotPolicy", Endpoint::DeleteAutoSnapshotPolicy),
            ("ApplyAutoSnapshotPolicy", Endpoint::ApplyAutoSnapshotPolicy),
            ("CancelAutoSnapshotPolicy", Endpoint::CancelAutoSnapshotPolicy),
        ];
        assert_eq!(cases.len(), Endpoint::ALL.len());
        for (name, e) in cases {
            assert_eq!(Endpoint::from_request(Some(name), Some(VERSION)), Ok(e));
            assert_eq!(Endpoint::from_request(Some(name), None), Ok(e));
        }
    }

    #[test]
    fn unknown_action_version_or_none() {
        let e = Endpoint::from_request(Some("RunInstances"), Some(VERSION)).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("InvalidAction.NotFound", 404));
        let e = Endpoint::from_request(Some("describesnapshots"), None).unwrap_err();
        assert_eq!(e.code(), "InvalidAction.NotFound");
        let e = Endpoint::from_request(Some("DescribeSnapshots"), Some("2016-03-14")).unwrap_err();
        assert_eq!(e.code(), "InvalidAction.NotFound");
        assert_eq!(Endpoint::from_request(None, None).unwrap_err().code(), "MissingParameter");
    }

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = axum::http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).unwrap()
    }

    #[test]
    fn wants_only_aliyun_requests() {
        assert!(wants(&req("POST", "/?Action=DescribeSnapshots&RegionId=cn-hangzhou", &[])));
        assert!(wants(&req("GET", "/?RegionId=x&Action=DescribeRegions", &[])));
        assert!(wants(&req("POST", "/?RegionId=cn-hangzhou", &[("x-acs-action", "DescribeSnapshots")])));
        assert!(wants(&req("POST", "/", &[("content-type", "application/x-www-form-urlencoded")])));
        // Cinder version discovery and everything off the root stay someone else's
        assert!(!wants(&req("GET", "/", &[])));
        assert!(!wants(&req("GET", "/?NoAction=1", &[])));
        assert!(!wants(&req("GET", "/iaas/?Action=DescribeSnapshots", &[])));
        assert!(!wants(&req("GET", "/", &[("content-type", "application/x-www-form-urlencoded")])));
    }

    #[test]
    fn a_body_names_an_action_as_a_form_does() {
        assert!(body_names_action(b"RegionId=x&Action=DescribeRegions"));
        assert!(body_names_action(b"Action"));
        assert!(!body_names_action(b""));
        assert!(!body_names_action(br#"{"Action":"DescribeRegions"}"#));
        assert!(!body_names_action(b"<Action>DescribeRegions</Action>"));
        assert!(!body_names_action(b"NoAction=1&a=b"));
    }
}
