//! The QingCloud family of dialects: QingCloud IaaS (`/iaas/`, signature v1, errors as HTTP 200
//! with a `ret_code`) and 51idc's REST API (`/v2/zone/{zone}/…`, OAuth2 bearer tokens, real HTTP
//! statuses). 51idc resells QingCloud: its seed points at QingCloud's for every meaning, so both
//! share one vocabulary ([`wire`]), one parameter reader ([`params`]) and one error table
//! ([`error`]) — dialects.md §2 and §3.

pub mod error;
pub mod iaas;
pub mod ids;
pub mod listing;
pub mod params;
pub mod rest51;
pub mod wire;

use axum::routing::any;
use axum::Router;
use disksnap_api_common::ApiContext;

/// Routes of both dialects, ready to merge into the server's router.
pub fn routes(ctx: ApiContext) -> Router {
    Router::new()
        .route("/iaas/", any(iaas::endpoint))
        .route("/iaas", any(iaas::endpoint))
        .with_state(ctx.clone())
        .merge(rest51::routes(ctx))
}
