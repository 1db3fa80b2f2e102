//! Tencent Cloud CBS API v2 (work in progress).
use axum::Router;
use disksnap_api_common::ApiContext;

pub fn routes(_ctx: ApiContext) -> Router {
    Router::new()
}
