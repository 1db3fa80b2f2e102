//! QingCloud IaaS and 51idc REST (work in progress).
use axum::Router;
use disksnap_api_common::ApiContext;

pub fn routes(_ctx: ApiContext) -> Router {
    Router::new()
}
