//! Regions and zones: a disksnap zone is an Aliyun region (`RegionId` names it by name or
//! alias), shown with one zone `<RegionId>-a` (disksnap choice, dialects.md §4.5).

use disksnap_api_common::ApiContext;
use disksnap_service::ZoneConfig;
use serde_json::{json, Value};

use crate::error::{vendor, AliyunError};
use crate::params::{Params, Res};
use crate::wire::zone_id;

/// The region a request names: as the client spelled it, and the zone it resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub name: String,
    pub zone: String,
}

/// `cn-hangzhou`-shaped: lower case, a two-letter prefix and a dash, not a zone (`…-a`).
fn looks_like_region(a: &str) -> bool {
    let lower = a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let two = a.split('-').next().is_some_and(|p| p.len() == 2) && a.contains('-');
    let zone_like = a.rsplit_once('-').is_some_and(|(_, l)| l.len() == 1 && l.as_bytes()[0].is_ascii_lowercase());
    lower && two && !zone_like
}

/// How a configured zone is named as an Aliyun region: its first region-shaped alias, else its
/// own name.
pub fn region_name(z: &ZoneConfig) -> String {
    z.aliases.iter().find(|a| looks_like_region(a)).cloned().unwrap_or_else(|| z.name.clone())
}

/// The region name to show for a resource in `zone`: the request's, when it names that zone.
pub fn region_of(ctx: &ApiContext, asked: Option<&Region>, zone: &str) -> String {
    if let Some(r) = asked.filter(|r| r.zone == zone) {
        return r.name.clone();
    }
    ctx.service.zones().iter().find(|z| z.name == zone).map(region_name).unwrap_or_else(|| zone.to_string())
}

/// `RegionId`, resolved; `MissingParameter` when required and absent.
pub fn region(ctx: &ApiContext, p: &Params, required: bool) -> Res<Option<Region>> {
    let Some(name) = p.get("RegionId") else {
        return if required { Err(AliyunError::MissingParameter("RegionId".into())) } else { Ok(None) };
    };
    let zone = ctx.service.resolve_zone(name)?;
    Ok(Some(Region { name: name.to_string(), zone }))
}

/// A `ZoneId` must be the region itself or `<region>-<letter>` (or another name of its zone).
pub fn check_zone(ctx: &ApiContext, region: &Region, zone_id: &str) -> Res<()> {
    let base = match zone_id.rsplit_once('-') {
        Some((b, l)) if l.len() == 1 => b,
        _ => zone_id,
    };
    let ok = [zone_id, base].iter().any(|z| ctx.service.resolve_zone(z).is_ok_and(|z| z == region.zone));
    if ok {
        Ok(())
    } else {
        Err(vendor(
            "InvalidZoneId.NotFound",
            404,
            format!(
                "The specified ZoneId \"{zone_id}\" is not in region {}; use {} (DescribeZones lists it).",
                region.name,
                crate::wire::zone_id(&region.name)
            ),
        ))
    }
}

pub fn describe_regions(ctx: &ApiContext, host: &str) -> Value {
    let regions: Vec<Value> = ctx
        .service
        .zones()
        .iter()
        .map(|z| {
            json!({
                "RegionId": region_name(z),
                "LocalName": format!("disksnap zone {}", z.name),
                "RegionEndpoint": host,
                "Status": "available",
            })
        })
        .collect();
    json!({ "Regions": { "Region": regions } })
}

pub fn describe_zones(region: &Region) -> Value {
    json!({ "Zones": { "Zone": [{
        "ZoneId": zone_id(&region.name),
        "LocalName": format!("disksnap zone {}", region.zone),
        "AvailableResourceCreation": { "ResourceTypes": ["Disk"] },
        "AvailableDiskCategories": { "DiskCategories": ["cloud_essd"] },
    }] } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_from_aliases() {
        let z = |aliases: &[&str]| ZoneConfig {
            name: "pek3a".into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        };
        assert_eq!(region_name(&z(&["gz", "cn-hangzhou-a", "cn-hangzhou", "ap-guangzhou"])), "cn-hangzhou");
        assert_eq!(region_name(&z(&["RegionOne", "gz"])), "pek3a");
        assert_eq!(region_name(&z(&["cn-north-4"])), "cn-north-4");
    }
}
