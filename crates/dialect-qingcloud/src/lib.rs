//! The QingCloud family of dialects: QingCloud IaaS (`/iaas/`, signature v1, errors as HTTP 200
//! with a `ret_code`) and 51idc's REST API (`/v2/zone/{zone}/…`, OAuth2 bearer tokens, real HTTP
//! statuses). 51idc resells QingCloud: its seed points at QingCloud's for every meaning, so both
//! share one vocabulary ([`wire`]), one parameter reader ([`params`]) and one error table
//! ([`error`]) — dialects.md §2 and §3.

pub mod error;
pub mod iaas;
pub mod ids;
pub mod params;
pub mod rest51;
pub mod wire;

use std::sync::Arc;

use axum::routing::any;
use axum::Router;
use disksnap_api_common::{pipeline, ApiContext, KeyKind};

/// The QingCloud key pair of an account (config section `qingcloud`); 51idc's OAuth2 client
/// credentials are the same pair (dialects.md §3.3).
pub const KEYS: KeyKind = KeyKind("qingcloud");

/// Routes of both dialects, ready to merge into the server's router.
pub fn routes(ctx: ApiContext) -> Router {
    Router::new()
        .route("/iaas/", any(pipeline::handler::<iaas::Iaas>))
        .route("/iaas", any(pipeline::handler::<iaas::Iaas>))
        .with_state(Arc::new(iaas::Iaas { ctx: ctx.clone() }))
        .merge(rest51::routes(ctx))
}
