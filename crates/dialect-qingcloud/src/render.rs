//! Rendering that needs a lookup: snapshot items show their volume's (or instance's) name, so a
//! page of points costs two extra queries in all (volumes of the page, the account's instances),
//! never one per item. Shared by the IaaS and 51idc lists.

use std::collections::HashMap;

use disksnap_service::{Caller, Service, ServiceError, Snapshot, VolumeQuery};
use serde_json::Value;

use crate::wire;

/// `i-…` / `ins-…` name an instance; anything else given as a resource is a volume.
pub fn is_instance_id(id: &str) -> bool {
    let l = id.trim().to_ascii_lowercase();
    l.starts_with("i-") || l.starts_with("ins-")
}

pub async fn snapshot_items(
    svc: &Service,
    caller: &Caller,
    snaps: &[Snapshot],
    verbose: bool,
) -> Result<Vec<Value>, ServiceError> {
    let mut vol_ids: Vec<String> = snaps.iter().map(|s| s.volume_id.clone()).collect();
    vol_ids.sort();
    vol_ids.dedup();
    let names: HashMap<String, String> = if vol_ids.is_empty() {
        HashMap::new()
    } else {
        let q = VolumeQuery { ids: vol_ids, limit: 100, ..Default::default() };
        svc.volumes(caller, &q).await?.0.into_iter().map(|v| (v.id, v.name)).collect()
    };
    let instances: HashMap<String, String> = if snaps.iter().any(|s| s.instance_id.is_some()) {
        svc.instances(caller).await?.into_iter().map(|i| (i.id, i.name)).collect()
    } else {
        HashMap::new()
    };
    Ok(snaps
        .iter()
        .map(|s| {
            let vname = names.get(&s.volume_id).map(String::as_str).unwrap_or("");
            let iname = s.instance_id.as_ref().and_then(|i| instances.get(i)).map(String::as_str);
            wire::snapshot_item(s, &wire::resource_of(s, vname, iname), verbose)
        })
        .collect())
}
