//! Snapshot list bodies (Cinder's `snapshots[/detail]`, EVS's `cloudsnapshots/detail`) through
//! the service's page cache (`Service::page_cached`, issue 16): a body is kept while the
//! store's page generation stands, so a write by any process or node is in the next list.
//!
//! What the store's generation does not cover is in the key: the request as sent (path and
//! query: filters, marker, limit, sort), the caller, the microversion and flavour, the base next
//! links start with. The account's status overrides (Cinder's `os-reset_status`) are request
//! state with an expiry; setting or removing one moves the page generation (meta migration
//! 0021), so a body made while the account had none is kept and stays exact (expiry only ever
//! removes one); a body made with overrides is not kept (each such list is made afresh).

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{OsError, OsResult};
use crate::{Call, OpenStack, Overrides};

/// The list body `make` builds from the account's overrides, served from the cache when it can
/// be (see the module doc). `what` names the list.
pub async fn list_body<Fut>(
    d: &OpenStack,
    call: &Call,
    what: &str,
    make: impl FnOnce(Overrides) -> Fut,
) -> OsResult<Response>
where
    Fut: Future<Output = OsResult<Value>>,
{
    let a = &call.auth;
    let key = format!(
        "openstack.{what}\n{:?} {:?} {} {} {} {} {}\n{}{}?{}",
        call.flavour,
        call.version,
        call.with_project,
        a.account,
        a.project_id,
        a.user_id,
        a.admin,
        call.base,
        call.raw.path,
        call.raw.query
    );
    let (body, _) = d
        .ctx
        .service
        .page_cached(Some(key), || async move {
            let ov = d.overrides(&call.auth.account).await?;
            let keep = ov.is_empty();
            let v = make(ov).await?;
            Ok::<_, OsError>(((serde_json::to_vec(&v).expect("a JSON value writes to memory").into(), 0), keep))
        })
        .await?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from(Bytes::from_owner(body)))
        .into_response())
}
