//! Automatic snapshot policies (issue 15): CreateAutoSnapshotPolicy,
//! DescribeAutoSnapshotPolicyEx, ModifyAutoSnapshotPolicyEx, DeleteAutoSnapshotPolicy,
//! ApplyAutoSnapshotPolicy, CancelAutoSnapshotPolicy, over the service's policies.
//!
//! ECS names most of these actions' parameters in lowerCamel (`regionId`, `timePoints`,
//! `repeatWeekdays`, `retentionDays`, `autoSnapshotPolicyName`, `diskIds`); both spellings are
//! read. `timePoints` and `repeatWeekdays` are JSON-array strings (`["0","14"]`, `["1","7"]`).
//! disksnap's choices where ECS differs or is silent: hours are UTC (ECS documents UTC+8; a
//! disksnap server keeps every schedule in UTC, whichever API set it); a policy name is unique
//! within the account (`InvalidAutoSnapshotPolicyName.Duplicated`); cross-region copy is not
//! offered (`EnableCrossRegionCopy=true` is refused).

use disksnap_api_common::ApiContext;
use disksnap_service::{ids, Caller, Kind, Policy, PolicySpec, Retention, Schedule, ServiceError};
use serde_json::{json, Value};

use super::{answer_page, check_name, dry_run};
use crate::error::{vendor, AliyunError};
use crate::ids::show;
use crate::params::{Paging, Params, Res};
use crate::regions::{region, Region};
use crate::wire::Tags;

/// ECS's limit per region and account.
const MAX_POLICIES: usize = 100;

/// The request's parameters with lowerCamel names also under their PascalCase spelling, so
/// one reader serves both the old SDK (`timePoints`) and callers that capitalise.
fn pascal(p: &Params) -> Params {
    let mut out = p.0.clone();
    for (k, v) in &p.0 {
        let mut c = k.chars();
        if let Some(first) = c.next().filter(char::is_ascii_lowercase) {
            let up = format!("{}{}", first.to_ascii_uppercase(), c.as_str());
            if !p.0.iter().any(|(k2, _)| *k2 == up) {
                out.push((up, v.clone()));
            }
        }
    }
    Params(out)
}

fn required_region(ctx: &ApiContext, p: &Params) -> Res<Region> {
    region(ctx, p, true)?.ok_or_else(|| AliyunError::MissingParameter("regionId".into()))
}

fn required<'a>(p: &'a Params, name: &str) -> Res<&'a str> {
    p.get(name).ok_or_else(|| {
        let mut c = name.chars();
        let lower = c.next().map(|f| format!("{}{}", f.to_ascii_lowercase(), c.as_str())).unwrap_or_default();
        AliyunError::MissingParameter(lower)
    })
}

/// A JSON array of numbers as strings (or numbers), each in `range`.
fn number_list(
    text: &str,
    code: &'static str,
    param: &str,
    range: std::ops::RangeInclusive<u8>,
    what: &str,
) -> Res<Vec<u8>> {
    let bad = |why: String| {
        vendor(
            code,
            400,
            format!("The specified {param} \"{text}\" is not valid: {why}, e.g. [\"{}\"].", range.start()),
        )
    };
    let items: Vec<Value> = serde_json::from_str(text).map_err(|_| bad("it must be a JSON array of strings".into()))?;
    if items.is_empty() {
        return Err(bad(format!("name at least one {what}")));
    }
    let mut out = Vec::new();
    for it in items {
        let n = match &it {
            Value::String(s) => s.trim().parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        match n {
            Some(n) if (*range.start() as i64..=*range.end() as i64).contains(&n) => out.push(n as u8),
            _ => return Err(bad(format!("{it} is not a {what} ({} to {})", range.start(), range.end()))),
        }
    }
    Ok(out)
}

fn time_points(p: &Params) -> Res<Option<Vec<u8>>> {
    p.get("TimePoints")
        .map(|t| number_list(t, "InvalidTimePoints.Malformed", "timePoints", 0..=23, "hour of the day"))
        .transpose()
}

fn weekdays(p: &Params) -> Res<Option<Vec<u8>>> {
    p.get("RepeatWeekdays")
        .map(|t| number_list(t, "InvalidRepeatWeekdays.Malformed", "repeatWeekdays", 1..=7, "weekday"))
        .transpose()
}

/// `retentionDays`: -1 keeps forever, 1 to 65536 days.
fn retention(p: &Params) -> Res<Option<Retention>> {
    let Some(text) = p.get("RetentionDays") else { return Ok(None) };
    match text.trim().parse::<i64>() {
        Ok(-1) => Ok(Some(Retention::Forever)),
        Ok(d @ 1..=65536) => Ok(Some(Retention::Days(d as u32))),
        _ => Err(vendor(
            "InvalidRetentionDays.Malformed",
            400,
            format!("The specified retentionDays \"{text}\" is not valid: -1 (keep forever) or 1 to 65536 days."),
        )),
    }
}

fn no_cross_region_copy(p: &Params) -> Res<()> {
    if p.bool("EnableCrossRegionCopy")? == Some(true) {
        return Err(vendor(
            "OperationDenied",
            403,
            "Cross-region snapshot copy is not offered by this server; leave EnableCrossRegionCopy false.",
        ));
    }
    Ok(())
}

/// The service's "name taken" in ECS's words.
fn policy_error(e: ServiceError, name: Option<&str>) -> AliyunError {
    match (&e, name) {
        (ServiceError::InvalidParameter { name: field, .. }, Some(n)) if field == "name" => vendor(
            "InvalidAutoSnapshotPolicyName.Duplicated",
            400,
            format!("The specified autoSnapshotPolicyName \"{n}\" is already used by a policy of this account; choose another name."),
        ),
        _ => e.into(),
    }
}

fn spec(p: &Params) -> Res<PolicySpec> {
    let name = p.get("AutoSnapshotPolicyName");
    check_name(name, "autoSnapshotPolicyName", "InvalidAutoSnapshotPolicyName.Malformed", false)?;
    Ok(PolicySpec {
        name: name.map(String::from),
        hours: time_points(p)?,
        schedule: weekdays(p)?.map(Schedule::Weekdays),
        retention: retention(p)?,
        enabled: None,
    })
}

pub(super) async fn create_policy(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let p = &pascal(p);
    required_region(ctx, p)?;
    required(p, "TimePoints")?;
    required(p, "RepeatWeekdays")?;
    required(p, "RetentionDays")?;
    no_cross_region_copy(p)?;
    let mut spec = spec(p)?;
    dry_run(p)?;
    if ctx.service.policies(caller).await?.len() >= MAX_POLICIES {
        return Err(vendor(
            "QuotaExceed.AutoSnapshotPolicy",
            403,
            format!("An account may have {MAX_POLICIES} automatic snapshot policies in a region; delete one first."),
        ));
    }
    // ECS's name is optional: an unnamed policy gets one from its id's look.
    let name = spec.name.clone();
    if spec.name.is_none() {
        spec.name = Some(format!("auto-snapshot-policy-{}", &ids::new_id()[..8]));
    }
    let created = ctx.service.create_policy(caller, spec).await.map_err(|e| policy_error(e, name.as_deref()))?;
    Ok(json!({ "AutoSnapshotPolicyId": show(Kind::Policy, &created.id) }))
}

pub(super) async fn modify_policy(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let p = &pascal(p);
    required_region(ctx, p)?;
    let id = required(p, "AutoSnapshotPolicyId")?;
    no_cross_region_copy(p)?;
    let spec = spec(p)?;
    let name = spec.name.clone();
    ctx.service.modify_policy(caller, id, spec).await.map_err(|e| policy_error(e, name.as_deref()))?;
    Ok(json!({}))
}

pub(super) async fn delete_policy(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let p = &pascal(p);
    required_region(ctx, p)?;
    let id = required(p, "AutoSnapshotPolicyId")?;
    ctx.service.delete_policy(caller, id).await?;
    Ok(json!({}))
}

/// `diskIds`: a JSON array of disk ids (at most 100), each a disk of the caller's account.
fn disk_ids(p: &Params) -> Res<Vec<String>> {
    let text = required(p, "DiskIds")?;
    let list = p
        .id_list("DiskIds", "ParameterInvalid", 403)?
        .ok_or_else(|| AliyunError::MissingParameter("diskIds".into()))?;
    if list.is_empty() {
        return Err(vendor(
            "ParameterInvalid",
            403,
            format!("The specified DiskIds \"{text}\" are invalid: name at least one disk."),
        ));
    }
    Ok(list)
}

pub(super) async fn apply_policy(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let p = &pascal(p);
    required_region(ctx, p)?;
    let id = required(p, "AutoSnapshotPolicyId")?;
    let disks = disk_ids(p)?;
    // Checked whole before anything is bound: one unknown disk (or another account's) binds none.
    ctx.service.bind_policy(caller, id, &disks).await?;
    Ok(json!({}))
}

pub(super) async fn cancel_policy(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let p = &pascal(p);
    required_region(ctx, p)?;
    let disks = disk_ids(p)?;
    let mut by_policy: Vec<(String, Vec<String>)> = Vec::new();
    for d in &disks {
        // An unknown disk is ECS's InvalidDiskId.NotFound, before anything changes.
        if let Some(pid) = ctx.service.policy_of_volume(caller, d).await? {
            match by_policy.iter_mut().find(|(p, _)| *p == pid) {
                Some((_, list)) => list.push(d.clone()),
                None => by_policy.push((pid, vec![d.clone()])),
            }
        }
    }
    for (pid, list) in by_policy {
        ctx.service.unbind_policy(caller, &pid, &list).await?;
    }
    Ok(json!({}))
}

/// One policy as DescribeAutoSnapshotPolicyEx shows it.
async fn policy_item(ctx: &ApiContext, caller: &Caller, pol: &Policy, region: &str) -> Res<Value> {
    let hours: Vec<String> = pol.hours.iter().map(|h| h.to_string()).collect();
    let days: Vec<String> = match &pol.schedule {
        Schedule::Weekdays(d) => d.iter().map(|d| d.to_string()).collect(),
        // Every N days has no ECS spelling: shown as every weekday.
        Schedule::EveryDays(_) => (1..=7).map(|d: u8| d.to_string()).collect(),
    };
    let retention = match pol.retention {
        Retention::Forever => -1,
        Retention::Days(d) => d as i64,
        // A count per disk has no ECS spelling: shown as kept (no day limit).
        Retention::Count(_) => -1,
    };
    let mut disk_nums = 0u64;
    for v in &pol.volumes {
        if ctx.service.volume(caller, v).await.is_ok() {
            disk_nums += 1;
        }
    }
    Ok(json!({
        "AutoSnapshotPolicyId": show(Kind::Policy, &pol.id),
        "AutoSnapshotPolicyName": pol.name,
        "RegionId": region,
        "TimePoints": serde_json::to_string(&hours).unwrap_or_default(),
        "RepeatWeekdays": serde_json::to_string(&days).unwrap_or_default(),
        "RetentionDays": retention,
        "DiskNums": disk_nums,
        "VolumeNums": 0,
        "CreationTime": pol.create_time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "Status": if pol.enabled { "Normal" } else { "Expire" },
        "EnableCrossRegionCopy": false,
        "TargetCopyRegions": "[]",
        "CopiedSnapshotsRetentionDays": -1,
        "ResourceGroupId": "",
        "Type": "Custom",
        "Tags": Tags::of(&[]),
    }))
}

pub(super) async fn describe_policies(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let p = &pascal(p);
    let r = required_region(ctx, p)?;
    let paging = Paging::from_params(p, 1)?;
    let mut all = ctx.service.policies(caller).await?;
    if let Some(id) = p.get("AutoSnapshotPolicyId") {
        let bare = ids::parse(Kind::Policy, id);
        all.retain(|pol| Some(&pol.id) == bare.as_ref());
    }
    if let Some(name) = p.get("AutoSnapshotPolicyName") {
        all.retain(|pol| pol.name == name);
    }
    // Tag and resource group filters: no policy carries either.
    if !p.tags()?.is_empty() || p.get("ResourceGroupId").is_some() {
        all.clear();
    }
    let total = all.len() as u64;
    let mut items = Vec::new();
    for pol in all.iter().skip(paging.offset as usize).take(paging.limit as usize) {
        items.push(policy_item(ctx, caller, pol, &r.name).await?);
    }
    Ok(answer_page(&paging, total, items.len(), "AutoSnapshotPolicies", "AutoSnapshotPolicy", items))
}

/// DescribeDisks' `AutoSnapshotPolicyId` filter: the policy's disks (none for an unknown id).
pub(super) async fn disks_of_policy(ctx: &ApiContext, caller: &Caller, id: &str) -> Res<Option<Vec<String>>> {
    match ctx.service.policy(caller, id).await {
        Ok(pol) => Ok(Some(pol.volumes)),
        Err(ServiceError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pascal(&Params(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn time_points_weekdays_and_retention_as_ecs_writes_them() {
        let p =
            params(&[("timePoints", r#"["14", "2", 3]"#), ("repeatWeekdays", r#"["1","7"]"#), ("retentionDays", "-1")]);
        assert_eq!(time_points(&p).unwrap(), Some(vec![14, 2, 3]));
        assert_eq!(weekdays(&p).unwrap(), Some(vec![1, 7]));
        assert_eq!(retention(&p).unwrap(), Some(Retention::Forever));
        assert_eq!(retention(&params(&[("RetentionDays", "30")])).unwrap(), Some(Retention::Days(30)));
        for (k, v, code) in [
            ("timePoints", r#"["24"]"#, "InvalidTimePoints.Malformed"),
            ("timePoints", "2", "InvalidTimePoints.Malformed"),
            ("timePoints", "[]", "InvalidTimePoints.Malformed"),
            ("repeatWeekdays", r#"["0"]"#, "InvalidRepeatWeekdays.Malformed"),
            ("repeatWeekdays", r#"["Mon"]"#, "InvalidRepeatWeekdays.Malformed"),
            ("retentionDays", "0", "InvalidRetentionDays.Malformed"),
            ("retentionDays", "65537", "InvalidRetentionDays.Malformed"),
        ] {
            let p = params(&[(k, v)]);
            let e = time_points(&p).and(weekdays(&p)).and(retention(&p).map(|_| None::<Vec<u8>>)).unwrap_err();
            assert_eq!((e.code(), e.http_status()), (code, 400), "{k}={v}");
        }
    }
}
