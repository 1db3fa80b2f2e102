//! Tags on disks and snapshots as both of ECS's tag APIs speak them (TagResources /
//! UntagResources / ListTagResources, and the older AddTags / RemoveTags / DescribeTags), and
//! resource groups (JoinResourceGroup; the `ResourceGroupId` filters read what it recorded).
//!
//! ECS keeps one value per tag key on a resource: tagging a key again replaces its value. The
//! service's tags are (key, value) rows bound to resources, so a new value is the old binding
//! removed and the new one added.

use disksnap_api_common::ApiContext;
use disksnap_service::{Caller, Kind, SnapshotFilter, SnapshotStatus, StateKind, Tag, VolumeFilter};
use serde_json::{json, Value};

use super::{check_tag_keys, ensure_tags, live_snapshot, Res};
use crate::error::{invalid, vendor, AliyunError};
use crate::ids::show;
use crate::params::{Paging, Params};

/// The resource types this server tags or groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceType {
    Disk,
    Snapshot,
    Image,
}

impl ResourceType {
    /// ECS's lower-case word (`ResourceType=disk`), any case accepted as ECS does.
    fn parse(word: &str, images: bool) -> Res<ResourceType> {
        match word.to_ascii_lowercase().as_str() {
            "disk" => Ok(ResourceType::Disk),
            "snapshot" => Ok(ResourceType::Snapshot),
            "image" if images => Ok(ResourceType::Image),
            _ => Err(vendor(
                "InvalidResourceType.NotFound",
                404,
                format!(
                    "The specified ResourceType \"{word}\" is not supported by this server; use {}.",
                    if images { "disk, snapshot or image" } else { "disk or snapshot" }
                ),
            )),
        }
    }

    fn word(self) -> &'static str {
        match self {
            ResourceType::Disk => "disk",
            ResourceType::Snapshot => "snapshot",
            ResourceType::Image => "image",
        }
    }

    fn kind(self) -> Kind {
        match self {
            ResourceType::Disk => Kind::Volume,
            ResourceType::Snapshot => Kind::Snapshot,
            ResourceType::Image => Kind::Image,
        }
    }

    /// The request-state key of a resource's group: `disk/<bare id>`.
    pub fn key(self, bare: &str) -> String {
        format!("{}/{bare}", self.word())
    }
}

/// The resource's bare id and tags; `InvalidResourceId.NotFound` when it is not the account's
/// live resource of that type.
async fn resource(ctx: &ApiContext, caller: &Caller, t: ResourceType, id: &str) -> Res<(String, Vec<Tag>)> {
    let not_found = || {
        vendor(
            "InvalidResourceId.NotFound",
            404,
            format!("The specified ResourceId \"{id}\" is not a {} of this account.", t.word()),
        )
    };
    match t {
        ResourceType::Disk => match ctx.service.volume(caller, id).await {
            Ok(v) if v.status != disksnap_service::VolumeStatus::Deleted => Ok((v.id, v.tags)),
            _ => Err(not_found()),
        },
        ResourceType::Snapshot => match live_snapshot(ctx, caller, id).await {
            Ok(s) => Ok((s.id, s.tags)),
            Err(_) => Err(not_found()),
        },
        ResourceType::Image => match ctx.service.image(caller, id).await {
            Ok(i) if i.status != disksnap_service::ImageStatus::Deleted => Ok((i.id, Vec::new())),
            _ => Err(not_found()),
        },
    }
}

/// `ResourceId.N` (1 to `max`), required.
fn resource_ids(p: &Params, max: usize) -> Res<Vec<String>> {
    let ids_ = p.repeated("ResourceId")?;
    if ids_.is_empty() {
        return Err(AliyunError::MissingParameter("ResourceId.1".into()));
    }
    if ids_.len() > max {
        return Err(invalid("ResourceId", format!("at most {max} resources at once")));
    }
    Ok(ids_)
}

/// Tags ECS allows on write: keys 1–128 characters and not reserved, values ≤ 128.
fn check_tags(tags: &[(String, Option<String>)]) -> Res<()> {
    check_tag_keys(tags)?;
    for (k, v) in tags {
        if k.chars().count() > 128 {
            return Err(vendor(
                "InvalidTagKey.Malformed",
                400,
                format!("The tag key \"{k}\" is longer than 128 characters."),
            ));
        }
        if let Some(v) = v {
            let lower = v.to_ascii_lowercase();
            if v.chars().count() > 128
                || lower.starts_with("aliyun")
                || lower.starts_with("acs:")
                || v.contains("http://")
                || v.contains("https://")
            {
                return Err(vendor(
                    "InvalidTagValue.Malformed",
                    400,
                    format!("The tag value \"{v}\" is not valid: at most 128 characters, not starting with aliyun or acs:, no URL."),
                ));
            }
        }
    }
    Ok(())
}

/// Most tags one resource may carry (ECS's documented limit).
const MAX_TAGS_PER_RESOURCE: usize = 20;

/// Bind `tags` to each resource, replacing the value of a key it has already.
async fn tag(
    ctx: &ApiContext,
    caller: &Caller,
    t: ResourceType,
    ids_: &[String],
    tags: &[(String, Option<String>)],
) -> Res<()> {
    if tags.is_empty() {
        return Err(AliyunError::MissingParameter("Tag.1.Key".into()));
    }
    check_tags(tags)?;
    let mut targets = Vec::new();
    for id in ids_ {
        let (bare, have) = resource(ctx, caller, t, id).await?;
        let keys: std::collections::BTreeSet<&str> =
            have.iter().map(|t| t.key.as_str()).chain(tags.iter().map(|(k, _)| k.as_str())).collect();
        if keys.len() > MAX_TAGS_PER_RESOURCE {
            return Err(vendor(
                "InvalidTagCount",
                400,
                format!("The {} {id} would carry more than {MAX_TAGS_PER_RESOURCE} tags.", t.word()),
            ));
        }
        targets.push((bare, have));
    }
    let tag_ids = ensure_tags(ctx, caller, tags).await?;
    // Every resource's replaced values go and new ones come in one commit (a crash never
    // leaves a key without its value, nor some resources retagged and others not).
    let (mut detach, mut attach) = (Vec::new(), Vec::new());
    for (bare, have) in targets {
        detach.extend(
            have.iter()
                .filter(|h| tags.iter().any(|(k, v)| &h.key == k && h.value != v.clone().unwrap_or_default()))
                .map(|h| (h.id.clone(), bare.clone())),
        );
        attach.extend(
            tag_ids.iter().filter(|id| !have.iter().any(|h| &h.id == *id)).map(|id| (id.clone(), bare.clone())),
        );
    }
    if !detach.is_empty() || !attach.is_empty() {
        ctx.service.retag(caller, &detach, &attach).await?;
    }
    Ok(())
}

/// Unbind from each resource its tags of these keys (with the value, when one is given);
/// `keys` None: every tag.
async fn untag(
    ctx: &ApiContext,
    caller: &Caller,
    t: ResourceType,
    ids_: &[String],
    keys: Option<&[(String, Option<String>)]>,
) -> Res<()> {
    let mut targets = Vec::new();
    for id in ids_ {
        targets.push(resource(ctx, caller, t, id).await?);
    }
    for (bare, have) in targets {
        let pairs: Vec<(String, String)> = have
            .iter()
            .filter(|h| {
                keys.is_none_or(|ks| ks.iter().any(|(k, v)| &h.key == k && v.as_ref().is_none_or(|v| v == &h.value)))
            })
            .map(|h| (h.id.clone(), bare.clone()))
            .collect();
        if !pairs.is_empty() {
            ctx.service.detach_tags(caller, &pairs).await?;
        }
    }
    Ok(())
}

fn resource_type(p: &Params, images: bool) -> Res<ResourceType> {
    ResourceType::parse(p.required("ResourceType")?, images)
}

pub(super) async fn tag_resources(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let t = resource_type(p, false)?;
    let ids_ = resource_ids(p, 50)?;
    let tags = p.tags()?;
    tag(ctx, caller, t, &ids_, &tags).await?;
    Ok(json!({}))
}

pub(super) async fn untag_resources(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let t = resource_type(p, false)?;
    let ids_ = resource_ids(p, 50)?;
    let keys: Vec<(String, Option<String>)> = p.repeated("TagKey")?.into_iter().map(|k| (k, None)).collect();
    if keys.len() > 20 {
        return Err(vendor("InvalidTagCount", 400, "At most 20 TagKey.N may be given."));
    }
    let all = p.bool("All")?.unwrap_or(false);
    match (keys.is_empty(), all) {
        (false, _) => untag(ctx, caller, t, &ids_, Some(&keys)).await?,
        (true, true) => untag(ctx, caller, t, &ids_, None).await?,
        // ECS: without TagKey.N and All=true nothing is removed
        (true, false) => {
            for id in &ids_ {
                resource(ctx, caller, t, id).await?;
            }
        }
    }
    Ok(json!({}))
}

/// Page size of ListTagResources (ECS answers at most 50 rows a page).
const LIST_TAGS_PAGE: u64 = 50;

pub(super) async fn list_tag_resources(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let t = resource_type(p, false)?;
    let ids_ = p.repeated("ResourceId")?;
    if ids_.len() > 50 {
        return Err(invalid("ResourceId", "at most 50 resources at once"));
    }
    let tags = p.tags()?;
    if p.0.iter().any(|(k, _)| k.starts_with("TagFilter.")) {
        return Err(invalid("TagFilter", "fuzzy tag filters are not served here; use Tag.N.Key and Tag.N.Value"));
    }
    let offset = match p.get("NextToken") {
        Some(tok) => crate::params::decode_token(tok).ok_or_else(|| {
            invalid("NextToken", "it is not a token this server returned; start again without NextToken")
        })?,
        None => 0,
    };
    // (resource id as shown, its tags)
    let mut found: Vec<(String, Vec<Tag>)> = Vec::new();
    if !ids_.is_empty() {
        for id in &ids_ {
            // an unknown id lists nothing, as ECS does
            if let Ok((bare, have)) = resource(ctx, caller, t, id).await {
                if !found.iter().any(|(b, _)| b == &bare) {
                    found.push((bare, have));
                }
            }
        }
    } else {
        match t {
            ResourceType::Disk => {
                for v in ctx.service.all_volumes(caller, &VolumeFilter::default()).await? {
                    found.push((v.id, v.tags));
                }
            }
            ResourceType::Snapshot => {
                let q = SnapshotFilter {
                    statuses: vec![SnapshotStatus::Creating.into(), SnapshotStatus::Available.into()],
                    tag_pairs: tags.clone(),
                    ..Default::default()
                };
                for s in ctx.service.all_snapshots(caller, &q).await? {
                    found.push((s.id, s.tags));
                }
            }
            ResourceType::Image => {}
        }
    }
    let matches = |have: &[Tag]| {
        tags.iter().all(|(k, v)| have.iter().any(|h| &h.key == k && v.as_ref().is_none_or(|v| v == &h.value)))
    };
    let mut rows = Vec::new();
    for (bare, have) in found.iter().filter(|(_, have)| matches(have)) {
        for h in have {
            rows.push(json!({
                "ResourceType": t.word(),
                "ResourceId": show(t.kind(), bare),
                "TagKey": h.key,
                "TagValue": h.value,
            }));
        }
    }
    let total = rows.len() as u64;
    let page: Vec<Value> = rows.into_iter().skip(offset as usize).take(LIST_TAGS_PAGE as usize).collect();
    let next = offset + page.len() as u64;
    let next_token = if !page.is_empty() && next < total { crate::params::encode_token(next) } else { String::new() };
    Ok(json!({ "NextToken": next_token, "TagResources": { "TagResource": page } }))
}

/// AddTags / RemoveTags name one resource by `ResourceId`.
fn one_resource(p: &Params) -> Res<(ResourceType, String)> {
    let t = resource_type(p, false)?;
    Ok((t, p.required("ResourceId")?.to_string()))
}

pub(super) async fn add_tags(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let (t, id) = one_resource(p)?;
    tag(ctx, caller, t, &[id], &p.tags()?).await?;
    Ok(json!({}))
}

pub(super) async fn remove_tags(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let (t, id) = one_resource(p)?;
    let tags = p.tags()?;
    if tags.is_empty() {
        return Err(AliyunError::MissingParameter("Tag.1.Key".into()));
    }
    untag(ctx, caller, t, &[id], Some(&tags)).await?;
    Ok(json!({}))
}

pub(super) async fn describe_tags(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let t = p.get("ResourceType").map(|w| ResourceType::parse(w, false)).transpose()?;
    let paging = Paging::from_params(p, 1)?;
    let filter = p.tags()?;
    let mut tags: Vec<Tag> = match (t, p.get("ResourceId")) {
        (Some(t), Some(id)) => resource(ctx, caller, t, id).await?.1,
        (None, Some(_)) => return Err(AliyunError::MissingParameter("ResourceType".into())),
        _ => ctx.service.tags(caller).await?,
    };
    tags.retain(|tag| filter.iter().all(|(k, v)| &tag.key == k && v.as_ref().is_none_or(|v| v == &tag.value)));
    // one row per (key, value) with how many disks and snapshots carry it
    let mut rows = Vec::new();
    for tag in &tags {
        let disks = if t.is_none_or(|t| t == ResourceType::Disk) {
            let q = VolumeFilter { tag_ids: vec![tag.id.clone()], limit: 1, ..Default::default() };
            ctx.service.volumes(caller, &q).await?.1
        } else {
            0
        };
        let snaps = if t.is_none_or(|t| t == ResourceType::Snapshot) {
            let q = SnapshotFilter {
                tag_pairs: vec![(tag.key.clone(), Some(tag.value.clone()))],
                statuses: vec![SnapshotStatus::Creating.into(), SnapshotStatus::Available.into()],
                limit: 1,
                ..Default::default()
            };
            ctx.service.snapshots(caller, &q).await?.1
        } else {
            0
        };
        if disks + snaps == 0 {
            continue; // a tag no live resource carries is not listed by ECS
        }
        rows.push(json!({
            "TagKey": tag.key,
            "TagValue": tag.value,
            "ResourceTypeCount": {
                "Disk": disks, "Snapshot": snaps, "Instance": 0, "Image": 0, "Ddh": 0, "Eni": 0,
                "KeyPair": 0, "LaunchTemplate": 0, "ReservedInstance": 0, "Securitygroup": 0,
                "SnapshotPolicy": 0, "Volume": 0,
            },
        }));
    }
    let total = rows.len() as u64;
    let page: Vec<Value> = rows.into_iter().skip(paging.offset as usize).take(paging.limit as usize).collect();
    Ok(json!({
        "TotalCount": total,
        "PageNumber": paging.page_number,
        "PageSize": paging.limit,
        "Tags": { "Tag": page },
    }))
}

/// `rg-` and lower-case letters and digits, as Resource Manager's ids are.
fn check_group(id: &str) -> Res<()> {
    let ok = id.len() <= 64
        && id
            .strip_prefix("rg-")
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()));
    if !ok {
        return Err(vendor(
            "InvalidResourceGroupId.Malformed",
            400,
            format!("The specified ResourceGroupId \"{id}\" is not valid: rg- and letters or digits, e.g. rg-acfmxazb4ph6aiy."),
        ));
    }
    Ok(())
}

pub(super) async fn join_resource_group(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let group = p.required("ResourceGroupId")?;
    check_group(group)?;
    let t = resource_type(p, true)?;
    let (bare, _) = resource(ctx, caller, t, p.required("ResourceId")?).await?;
    ctx.service.remember(StateKind::ResourceGroup, &caller.account, &t.key(&bare), group, None).await?;
    Ok(json!({}))
}

/// Record the group a new resource is created in (`ResourceGroupId` of CreateDisk and
/// CreateSnapshot).
pub(super) async fn join_on_create(
    ctx: &ApiContext,
    caller: &Caller,
    t: ResourceType,
    bare: &str,
    group: Option<&str>,
) -> Res<()> {
    if let Some(g) = group {
        ctx.service.remember(StateKind::ResourceGroup, &caller.account, &t.key(bare), g, None).await?;
    }
    Ok(())
}

/// Check a `ResourceGroupId` given on create, before anything is made.
pub(super) fn check_group_param(p: &Params) -> Res<Option<&str>> {
    let g = p.get("ResourceGroupId");
    if let Some(g) = g {
        check_group(g)?;
    }
    Ok(g)
}

/// The group a resource joined, if any.
pub(super) async fn group_of(ctx: &ApiContext, caller: &Caller, t: ResourceType, bare: &str) -> Res<Option<String>> {
    Ok(ctx.service.recall(StateKind::ResourceGroup, &caller.account, &t.key(bare)).await?.map(|(g, _)| g))
}

/// The groups of a page of resources (bare id → group; a resource in none is absent): one
/// request-state read for the page, not one per item (issue 16: a page of 100 read 100 times).
pub(super) async fn groups_of(
    ctx: &ApiContext,
    caller: &Caller,
    t: ResourceType,
    bares: &[String],
) -> Res<std::collections::HashMap<String, String>> {
    let keys: Vec<String> = bares.iter().map(|b| t.key(b)).collect();
    let prefix = format!("{}/", t.word());
    let found = ctx.service.recall_many(StateKind::ResourceGroup, &caller.account, &keys).await?;
    Ok(found.into_iter().filter_map(|(k, g)| k.strip_prefix(&prefix).map(|b| (b.to_string(), g))).collect())
}

/// The bare ids of the resources of one type in a group.
pub(super) async fn resources_in_group(
    ctx: &ApiContext,
    caller: &Caller,
    t: ResourceType,
    group: &str,
) -> Res<Vec<String>> {
    let prefix = format!("{}/", t.word());
    let keys = ctx.service.keys_holding(StateKind::ResourceGroup, &caller.account, group).await?;
    Ok(keys.into_iter().filter_map(|k| k.strip_prefix(&prefix).map(String::from)).collect())
}

/// Narrow a list filter's ids to a group's members: the group's members when no ids were
/// asked, else the asked ids that are members (each id in any rendering). None: nothing
/// can match.
pub(super) fn narrow_to_group(kind: Kind, asked: &[String], members: Vec<String>) -> Option<Vec<String>> {
    let out: Vec<String> = if asked.is_empty() {
        members
    } else {
        asked.iter().filter_map(|a| crate::ids::parse(kind, a)).filter(|b| members.contains(b)).collect()
    };
    (!out.is_empty()).then_some(out)
}
