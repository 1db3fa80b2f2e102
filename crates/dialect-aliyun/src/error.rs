//! Aliyun ECS errors: every refusal as `{RequestId, HostId, Code, Message, Recommend}` (or XML
//! `<Error>`) with the vendor's code and a fixed HTTP status (dialects.md §4.7).
//!
//! [`ServiceError`] is mapped exhaustively (no catch-all arm): a new service error breaks this
//! build until the dialect decides its code.

use disksnap_service::{ids, Kind, ServiceError};

use crate::ids::show;

/// One refusal of an Aliyun request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliyunError {
    /// A service error, mapped by [`service_code`].
    Service(ServiceError),
    /// A parameter the action requires is absent (Aliyun's spelling of the name).
    MissingParameter(String),
    /// A refusal the dialect decides itself (parameter formats, authentication, vendor rules),
    /// with its vendor code and HTTP status.
    Vendor { code: &'static str, status: u16, message: String },
    /// The signature differs from ours; the message carries our string to sign, which the old
    /// SDK parses (`message.split(':')[1]`).
    SignatureDoesNotMatch { string_to_sign: String },
}

impl From<ServiceError> for AliyunError {
    fn from(e: ServiceError) -> Self {
        AliyunError::Service(e)
    }
}

/// Shorthand for a dialect-level error.
pub fn vendor(code: &'static str, status: u16, message: impl Into<String>) -> AliyunError {
    AliyunError::Vendor { code, status, message: message.into() }
}

/// `InvalidParameter` (400) naming the parameter.
pub fn invalid(name: &str, reason: impl std::fmt::Display) -> AliyunError {
    vendor("InvalidParameter", 400, format!("The specified parameter \"{name}\" is not valid: {reason}"))
}

impl AliyunError {
    pub fn code(&self) -> &'static str {
        self.parts().0
    }

    pub fn http_status(&self) -> u16 {
        self.parts().1
    }

    pub fn message(&self) -> String {
        self.parts().2
    }

    /// Our fault, not the caller's: logged with the request id, answered generically.
    pub fn is_internal(&self) -> bool {
        matches!(self, AliyunError::Service(ServiceError::Internal(_) | ServiceError::Corrupt(_)))
    }

    fn parts(&self) -> (&'static str, u16, String) {
        match self {
            AliyunError::Service(e) => service_code(e),
            AliyunError::MissingParameter(name) => (
                "MissingParameter",
                400,
                format!(
                    "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
                ),
            ),
            AliyunError::Vendor { code, status, message } => (code, *status, message.clone()),
            AliyunError::SignatureDoesNotMatch { string_to_sign } => (
                "SignatureDoesNotMatch",
                400,
                format!(
                    "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
                ),
            ),
        }
    }
}

/// Service parameter names (snake_case, neutral) as Aliyun spells them.
fn param_name(name: &str) -> String {
    match name {
        "retention_days" => "RetentionDays",
        "size" => "Size",
        "zone" => "ZoneId",
        "resources" | "volume" | "volumes" => "DiskId",
        "snapshots" | "snapshot" => "SnapshotId",
        "instance" => "InstanceId",
        "tag" => "Tag",
        "name" => "SnapshotName",
        other => other,
    }
    .to_string()
}

/// The vendor code, HTTP status and message of a service error.
pub fn service_code(e: &ServiceError) -> (&'static str, u16, String) {
    match e {
        ServiceError::MissingParameter(name) => (
            "MissingParameter",
            400,
            format!(
                "The input parameter \"{}\" that is mandatory for processing this request is not supplied.",
                param_name(name)
            ),
        ),
        ServiceError::InvalidParameter { name, reason } => (
            "InvalidParameter",
            400,
            format!("The specified parameter \"{}\" is not valid: {reason}", param_name(name)),
        ),
        ServiceError::NotFound { kind, id } => {
            let (code, what) = match kind {
                Kind::Volume => ("InvalidDiskId.NotFound", "DiskId"),
                Kind::Snapshot => ("InvalidSnapshotId.NotFound", "SnapshotId"),
                Kind::Instance => ("InvalidInstanceId.NotFound", "InstanceId"),
                Kind::Image => ("InvalidImageId.NotFound", "ImageId"),
                Kind::Chain => ("InvalidSnapshotLinkId.NotFound", "SnapshotLinkId"),
                Kind::Job => ("InvalidTaskId.NotFound", "TaskId"),
                Kind::Tag => ("InvalidTag.NotFound", "Tag"),
                Kind::Policy => ("InvalidAutoSnapshotPolicyId.NotFound", "AutoSnapshotPolicyId"),
                Kind::SnapshotGroup => ("InvalidSnapshotGroupId.NotFound", "SnapshotGroupId"),
            };
            (code, 404, format!("The specified {what} \"{id}\" does not exist in this account."))
        }
        ServiceError::WrongState { kind, id, state, reason } => {
            let code = match kind {
                Kind::Volume if state == "snapshotting" => "IncorrectDiskStatus.CreatingSnapshot",
                Kind::Volume => "IncorrectDiskStatus",
                Kind::Snapshot if state == "creating" => "InvalidSnapshotId.NotReady",
                Kind::Instance => "IncorrectInstanceStatus",
                Kind::Image => "IncorrectImageStatus",
                Kind::Snapshot | Kind::Chain | Kind::SnapshotGroup => "IncorrectSnapshotStatus",
                Kind::Job | Kind::Tag | Kind::Policy => "OperationConflict",
            };
            // the service names resources its own way (`vol-…`): show Aliyun's words and ids
            let shown = ids::parse(*kind, id).map(|bare| show(*kind, &bare)).unwrap_or_else(|| id.clone());
            let what = match kind {
                Kind::Volume => "disk".to_string(),
                other => other.to_string(),
            };
            let message = format!(
                "The current status of the {what} \"{shown}\" ({state}) does not support this operation: {reason}."
            );
            (code, 403, message)
        }
        ServiceError::Conflict { kind, id } => {
            let shown = ids::parse(*kind, id).map(|bare| show(*kind, &bare)).unwrap_or_else(|| id.clone());
            (
                "OperationConflict",
                403,
                format!(
                    "Request was denied due to conflict with a previous request: the {kind} \"{shown}\" was changed by another operation at the same moment; retry."
                ),
            )
        }
        ServiceError::UnknownZone(z) => (
            "InvalidRegionId.NotFound",
            404,
            format!(
                "The specified RegionId \"{z}\" does not exist; DescribeRegions lists the regions this server has."
            ),
        ),
        ServiceError::UnknownAccount(a) => (
            "InvalidAccessKeyId.NotFound",
            404,
            format!("The account \"{a}\" of this AccessKey is not configured on this server."),
        ),
        ServiceError::LimitExceeded(m) => ("QuotaExceed", 403, format!("A quota would be exceeded: {m}.")),
        // ECS's code for a zone without capacity: the nearest documented word for a full store.
        ServiceError::InsufficientStorage(_) => (
            "OperationDenied.NoStock",
            403,
            "The server's storage is full, so the request was not carried out; retry once space is freed.".into(),
        ),
        ServiceError::Corrupt(_) | ServiceError::Internal(_) => (
            "InternalError",
            500,
            "The request processing has failed due to some unknown error; it was logged with this RequestId.".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One golden line per service variant (and per kind where the code depends on it).
    #[test]
    fn every_service_error_has_its_vendor_code_and_status() {
        let cases: Vec<(ServiceError, &str, u16)> = vec![
            (ServiceError::MissingParameter("resources".into()), "MissingParameter", 400),
            (ServiceError::invalid("retention_days", "must be 1 to 65536 days"), "InvalidParameter", 400),
            (ServiceError::not_found(Kind::Volume, "d-x"), "InvalidDiskId.NotFound", 404),
            (ServiceError::not_found(Kind::Snapshot, "s-x"), "InvalidSnapshotId.NotFound", 404),
            (ServiceError::not_found(Kind::Instance, "i-x"), "InvalidInstanceId.NotFound", 404),
            (ServiceError::not_found(Kind::Image, "m-x"), "InvalidImageId.NotFound", 404),
            (ServiceError::not_found(Kind::Chain, "sl-x"), "InvalidSnapshotLinkId.NotFound", 404),
            (ServiceError::not_found(Kind::Job, "j-x"), "InvalidTaskId.NotFound", 404),
            (ServiceError::not_found(Kind::Tag, "t"), "InvalidTag.NotFound", 404),
            (ServiceError::not_found(Kind::SnapshotGroup, "ssg-x"), "InvalidSnapshotGroupId.NotFound", 404),
            (ServiceError::wrong_state(Kind::SnapshotGroup, "ssg-x", "deleting", "no"), "IncorrectSnapshotStatus", 403),
            (
                ServiceError::wrong_state(Kind::Volume, "d-x", "snapshotting", "busy"),
                "IncorrectDiskStatus.CreatingSnapshot",
                403,
            ),
            (ServiceError::wrong_state(Kind::Volume, "d-x", "rolling-back", "busy"), "IncorrectDiskStatus", 403),
            (ServiceError::wrong_state(Kind::Snapshot, "s-x", "creating", "no"), "InvalidSnapshotId.NotReady", 403),
            (ServiceError::wrong_state(Kind::Snapshot, "s-x", "deleting", "no"), "IncorrectSnapshotStatus", 403),
            (ServiceError::wrong_state(Kind::Chain, "sl-x", "x", "no"), "IncorrectSnapshotStatus", 403),
            (ServiceError::wrong_state(Kind::Instance, "i-x", "empty", "no"), "IncorrectInstanceStatus", 403),
            (ServiceError::wrong_state(Kind::Image, "m-x", "pending", "no"), "IncorrectImageStatus", 403),
            (ServiceError::wrong_state(Kind::Job, "j-x", "x", "no"), "OperationConflict", 403),
            (ServiceError::wrong_state(Kind::Tag, "t", "x", "no"), "OperationConflict", 403),
            (ServiceError::UnknownZone("mars-1".into()), "InvalidRegionId.NotFound", 404),
            (ServiceError::UnknownAccount("ghost".into()), "InvalidAccessKeyId.NotFound", 404),
            (ServiceError::LimitExceeded("256 snapshots per disk".into()), "QuotaExceed", 403),
            (ServiceError::Corrupt("chunk abc".into()), "InternalError", 500),
            (ServiceError::Internal("disk full".into()), "InternalError", 500),
        ];
        for (e, code, status) in cases {
            let a = AliyunError::from(e.clone());
            assert_eq!((a.code(), a.http_status()), (code, status), "{e:?}");
            assert!(!a.message().is_empty());
        }
        let busy = AliyunError::from(ServiceError::wrong_state(Kind::Volume, "vol-abcd1234", "snapshotting", "busy"));
        assert!(busy.message().contains("disk \"d-abcd1234\""), "{}", busy.message());
    }

    #[test]
    fn internals_never_reach_the_client() {
        let a = AliyunError::from(ServiceError::Internal("/var/lib/secret path".into()));
        assert!(a.is_internal());
        assert!(!a.message().contains("/var/lib"));
        assert!(!AliyunError::MissingParameter("DiskId".into()).is_internal());
    }

    #[test]
    fn messages_the_sdks_parse() {
        let a = AliyunError::SignatureDoesNotMatch { string_to_sign: "POST&%2F&A%3D1".into() };
        assert_eq!((a.code(), a.http_status()), ("SignatureDoesNotMatch", 400));
        // aliyunsdkcore: message.split(':')[1] must be our string to sign
        assert_eq!(a.message().split(':').nth(1), Some("POST&%2F&A%3D1"));
        let m = AliyunError::MissingParameter("DiskId".into());
        assert_eq!(
            m.message(),
            "The input parameter \"DiskId\" that is mandatory for processing this request is not supplied."
        );
        let s = AliyunError::from(ServiceError::invalid("retention_days", "must be 1 to 65536 days"));
        assert!(s.message().contains("\"RetentionDays\""));
    }
}
