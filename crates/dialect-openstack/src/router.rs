//! Every route of the dialect, parsed in one place (dialect-openstack.md §1).

use axum::http::Method;

/// Which Block Storage API a path belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `/v3/…`: Cinder with microversions.
    V3,
    /// `/v2/{project_id}/…`: the legacy API Huawei EVS keeps (no microversions, string codes).
    V2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaOp {
    Get,
    /// POST: merge.
    Merge,
    /// PUT: replace.
    Replace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemOp {
    Get,
    Put,
    Delete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Res {
    Snapshot,
    Volume,
}

/// A Block Storage operation on `snapshots` or `volumes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    List {
        detail: bool,
    },
    Create,
    Show(String),
    Update(String),
    Delete(String),
    Metadata(String, MetaOp),
    MetadataItem(String, String, ItemOp),
    Action(String),
    /// `GET /volumes/summary` (≥ 3.12).
    Summary,
}

/// Huawei's native `cloudsnapshots` operations (§9.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvsOp {
    List,
    Create,
    Show(String),
    Update(String),
    Delete(String),
    Rollback(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /identity`: 300 with the Keystone version list.
    IdentityVersions,
    /// `GET /identity/v3[/]`.
    IdentityV3,
    IssueToken,
    RevokeToken,
    /// `GET /v3[/]` or `/v2[/]`.
    VolumeVersion(Api),
    Cinder {
        api: Api,
        project: Option<String>,
        res: Res,
        op: Op,
    },
    Evs {
        project: String,
        op: EvsOp,
    },
    /// A known path with a method it does not take.
    BadMethod {
        api: Option<Api>,
    },
    NotFound {
        api: Option<Api>,
    },
}

fn is_project_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Endpoint {
    pub fn parse(method: &Method, path: &str) -> Endpoint {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let m = method.clone();
        match segs.as_slice() {
            ["identity"] if m == Method::GET => Endpoint::IdentityVersions,
            ["identity", "v3"] if m == Method::GET => Endpoint::IdentityV3,
            ["identity", "v3", "auth", "tokens"] => match m {
                Method::POST => Endpoint::IssueToken,
                Method::DELETE => Endpoint::RevokeToken,
                _ => Endpoint::BadMethod { api: None },
            },
            ["identity", ..] => Endpoint::NotFound { api: None },
            ["v3"] => Self::get_only(&m, Endpoint::VolumeVersion(Api::V3), Api::V3),
            ["v2"] => Self::get_only(&m, Endpoint::VolumeVersion(Api::V2), Api::V2),
            ["v3", p, rest @ ..] if is_project_id(p) => Self::cinder(&m, Api::V3, Some(p.to_ascii_lowercase()), rest),
            ["v3", rest @ ..] => Self::cinder(&m, Api::V3, None, rest),
            ["v2", p, "cloudsnapshots", rest @ ..] if is_project_id(p) => Self::evs(&m, p, rest),
            ["v2", p, "os-vendor-snapshots", id, "rollback"] if is_project_id(p) => {
                if m == Method::POST {
                    Endpoint::Evs { project: p.to_ascii_lowercase(), op: EvsOp::Rollback(id.to_string()) }
                } else {
                    Endpoint::BadMethod { api: Some(Api::V2) }
                }
            }
            ["v2", p, rest @ ..] if is_project_id(p) => Self::cinder(&m, Api::V2, Some(p.to_ascii_lowercase()), rest),
            _ => Endpoint::NotFound { api: None },
        }
    }

    fn get_only(m: &Method, e: Endpoint, api: Api) -> Endpoint {
        if m == Method::GET {
            e
        } else {
            Endpoint::BadMethod { api: Some(api) }
        }
    }

    fn cinder(m: &Method, api: Api, project: Option<String>, rest: &[&str]) -> Endpoint {
        let res = match rest.first() {
            Some(&"snapshots") => Res::Snapshot,
            Some(&"volumes") => Res::Volume,
            _ => return Endpoint::NotFound { api: Some(api) },
        };
        use Method as M;
        let op = match (&rest[1..], m) {
            ([], &M::GET) => Op::List { detail: false },
            ([], &M::POST) => Op::Create,
            (["detail"], &M::GET) => Op::List { detail: true },
            (["summary"], &M::GET) if res == Res::Volume => Op::Summary,
            ([id], &M::GET) => Op::Show(id.to_string()),
            ([id], &M::PUT) => Op::Update(id.to_string()),
            ([id], &M::DELETE) => Op::Delete(id.to_string()),
            ([id, "metadata"], &M::GET) => Op::Metadata(id.to_string(), MetaOp::Get),
            ([id, "metadata"], &M::POST) => Op::Metadata(id.to_string(), MetaOp::Merge),
            ([id, "metadata"], &M::PUT) => Op::Metadata(id.to_string(), MetaOp::Replace),
            ([id, "metadata", key], &M::GET) => Op::MetadataItem(id.to_string(), key.to_string(), ItemOp::Get),
            ([id, "metadata", key], &M::PUT) => Op::MetadataItem(id.to_string(), key.to_string(), ItemOp::Put),
            ([id, "metadata", key], &M::DELETE) => Op::MetadataItem(id.to_string(), key.to_string(), ItemOp::Delete),
            ([id, "action"], &M::POST) => Op::Action(id.to_string()),
            ([] | ["detail"] | [_] | [_, "metadata"] | [_, "metadata", _] | [_, "action"], _) => {
                return Endpoint::BadMethod { api: Some(api) }
            }
            _ => return Endpoint::NotFound { api: Some(api) },
        };
        Endpoint::Cinder { api, project, res, op }
    }

    fn evs(m: &Method, project: &str, rest: &[&str]) -> Endpoint {
        use Method as M;
        let op = match (rest, m) {
            (["detail"], &M::GET) => EvsOp::List,
            ([], &M::POST) => EvsOp::Create,
            ([id], &M::GET) => EvsOp::Show(id.to_string()),
            ([id], &M::PUT) => EvsOp::Update(id.to_string()),
            ([id], &M::DELETE) => EvsOp::Delete(id.to_string()),
            ([id, "rollback"], &M::POST) => EvsOp::Rollback(id.to_string()),
            ([] | ["detail"] | [_] | [_, "rollback"], _) => return Endpoint::BadMethod { api: Some(Api::V2) },
            _ => return Endpoint::NotFound { api: Some(Api::V2) },
        };
        Endpoint::Evs { project: project.to_ascii_lowercase(), op }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "0123456789abcdef0123456789abcdef";

    macro_rules! test_cases {
        ($($method:ident $path:expr => $want:expr;)+) => {
            $( assert_eq!(Endpoint::parse(&Method::$method, &$path), $want, "{} {}", stringify!($method), $path); )+
        };
    }

    #[test]
    fn every_route() {
        let s = |op| Endpoint::Cinder { api: Api::V3, project: Some(P.into()), res: Res::Snapshot, op };
        let v = |op| Endpoint::Cinder { api: Api::V3, project: Some(P.into()), res: Res::Volume, op };
        let evs = |op| Endpoint::Evs { project: P.into(), op };
        test_cases! {
            GET "/identity" => Endpoint::IdentityVersions;
            GET "/identity/v3/" => Endpoint::IdentityV3;
            POST "/identity/v3/auth/tokens" => Endpoint::IssueToken;
            DELETE "/identity/v3/auth/tokens" => Endpoint::RevokeToken;
            GET "/identity/v3/projects" => Endpoint::NotFound { api: None };
            GET "/v3" => Endpoint::VolumeVersion(Api::V3);
            GET "/v2/" => Endpoint::VolumeVersion(Api::V2);
            GET format!("/v3/{P}/snapshots") => s(Op::List { detail: false });
            GET format!("/v3/{P}/snapshots/detail") => s(Op::List { detail: true });
            POST format!("/v3/{P}/snapshots") => s(Op::Create);
            GET format!("/v3/{P}/snapshots/x") => s(Op::Show("x".into()));
            PUT format!("/v3/{P}/snapshots/x") => s(Op::Update("x".into()));
            DELETE format!("/v3/{P}/snapshots/x") => s(Op::Delete("x".into()));
            GET format!("/v3/{P}/snapshots/x/metadata") => s(Op::Metadata("x".into(), MetaOp::Get));
            POST format!("/v3/{P}/snapshots/x/metadata") => s(Op::Metadata("x".into(), MetaOp::Merge));
            PUT format!("/v3/{P}/snapshots/x/metadata") => s(Op::Metadata("x".into(), MetaOp::Replace));
            GET format!("/v3/{P}/snapshots/x/metadata/k") => s(Op::MetadataItem("x".into(), "k".into(), ItemOp::Get));
            PUT format!("/v3/{P}/snapshots/x/metadata/k") => s(Op::MetadataItem("x".into(), "k".into(), ItemOp::Put));
            DELETE format!("/v3/{P}/snapshots/x/metadata/k") => s(Op::MetadataItem("x".into(), "k".into(), ItemOp::Delete));
            POST format!("/v3/{P}/snapshots/x/action") => s(Op::Action("x".into()));
            PATCH format!("/v3/{P}/snapshots/x") => Endpoint::BadMethod { api: Some(Api::V3) };
            POST format!("/v3/{P}/volumes") => v(Op::Create);
            GET format!("/v3/{P}/volumes/detail") => v(Op::List { detail: true });
            GET format!("/v3/{P}/volumes/summary") => v(Op::Summary);
            GET format!("/v3/{P}/snapshots/summary") => s(Op::Show("summary".into()));
            POST format!("/v3/{P}/volumes/x/action") => v(Op::Action("x".into()));
            GET "/v3/snapshots" => Endpoint::Cinder { api: Api::V3, project: None, res: Res::Snapshot, op: Op::List { detail: false } };
            GET format!("/v3/{P}/backups") => Endpoint::NotFound { api: Some(Api::V3) };
            GET format!("/v2/{P}/snapshots/detail") => Endpoint::Cinder { api: Api::V2, project: Some(P.into()), res: Res::Snapshot, op: Op::List { detail: true } };
            GET format!("/v2/{P}/cloudsnapshots/detail") => evs(EvsOp::List);
            POST format!("/v2/{P}/cloudsnapshots") => evs(EvsOp::Create);
            GET format!("/v2/{P}/cloudsnapshots/x") => evs(EvsOp::Show("x".into()));
            PUT format!("/v2/{P}/cloudsnapshots/x") => evs(EvsOp::Update("x".into()));
            DELETE format!("/v2/{P}/cloudsnapshots/x") => evs(EvsOp::Delete("x".into()));
            POST format!("/v2/{P}/cloudsnapshots/x/rollback") => evs(EvsOp::Rollback("x".into()));
            POST format!("/v2/{P}/os-vendor-snapshots/x/rollback") => evs(EvsOp::Rollback("x".into()));
            GET format!("/v5/{P}/snapshots") => Endpoint::NotFound { api: None };
            GET "/v2/zone/pek3a/volume_snapshots" => Endpoint::NotFound { api: None };
        }
    }
}
