//! CBS 3.0 automatic snapshot policies (issue 15): CreateAutoSnapshotPolicy,
//! DescribeAutoSnapshotPolicies, ModifyAutoSnapshotPolicyAttribute, DeleteAutoSnapshotPolicies,
//! BindAutoSnapshotPolicy, UnbindAutoSnapshotPolicy, DescribeDiskAssociatedAutoSnapshotPolicy,
//! over the service's policies, with the fields of tencentcloud-sdk-python's cbs models.
//!
//! `Policy` is a list of `{Hour: [0..23], DayOfWeek: [0..6]}` (0 = Sunday) or
//! `{Hour, IntervalDays: 1..365}`; disksnap keeps one schedule per policy, so one item (or
//! several with the same days, whose hours are merged). `DayOfMonth` is not offered. Hours are
//! UTC (disksnap keeps every schedule in UTC, whichever API set it). Retention:
//! `IsPermanent` (forever) or `RetentionDays` (default 7, as CBS's). A policy name is unique
//! within the account.

use chrono::{DateTime, Utc};
use disksnap_service::{Kind, Policy, PolicySpec, Retention, Schedule, ServiceError};
use serde_json::{json, Map, Value};

use super::{fields, id_list, id_param, name_param, paging, Call, Result};
use crate::error::Tc3Error;
use crate::params::Args;
use crate::wire;

/// CBS's default retention when neither IsPermanent nor RetentionDays is given.
const DEFAULT_RETENTION_DAYS: u32 = 7;
/// Policies per account (CBS's quota of a region).
const MAX_POLICIES: usize = 100;

/// A list of small integers (JSON numbers, or strings from a flattened form).
fn int_list(p: &Args, key: &str, range: std::ops::RangeInclusive<i64>, what: &str) -> Result<Option<Vec<i64>>> {
    let items = match p.0.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(Tc3Error::InvalidParameter(format!(
                "parameter `Policy.{key}` must be a list of integers, got {other}"
            )))
        }
    };
    let mut out = Vec::new();
    for (i, v) in items.iter().enumerate() {
        let n = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        match n {
            Some(n) if range.contains(&n) => out.push(n),
            _ => {
                return Err(Tc3Error::value(
                    &format!("Policy.{key}.{i}"),
                    format!("{v} is not {what} ({} to {})", range.start(), range.end()),
                ))
            }
        }
    }
    Ok(Some(out))
}

/// `Policy` → (hours, schedule).
fn schedule(p: &Args) -> Result<Option<(Vec<u8>, Schedule)>> {
    let items = p.objects("Policy")?;
    if items.is_empty() {
        return Ok(None);
    }
    let mut hours = Vec::new();
    let mut sched: Option<Schedule> = None;
    for it in &items {
        if it.0.get("DayOfMonth").is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty())) {
            return Err(Tc3Error::Unsupported(
                "Policy.DayOfMonth is not offered by disksnap; use DayOfWeek or IntervalDays".into(),
            ));
        }
        let h = int_list(it, "Hour", 0..=23, "an hour of the day")?
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Tc3Error::MissingParameter("Policy.Hour".into()))?;
        hours.extend(h.into_iter().map(|h| h as u8));
        let this = match (int_list(it, "DayOfWeek", 0..=6, "a day of the week (0 = Sunday)")?, it.int("IntervalDays")?)
        {
            (Some(days), _) if !days.is_empty() => {
                let mut iso: Vec<u8> = days.into_iter().map(|d| if d == 0 { 7 } else { d as u8 }).collect();
                iso.sort_unstable();
                iso.dedup();
                Schedule::Weekdays(iso)
            }
            (_, Some(n)) if (1..=365).contains(&n) => Schedule::EveryDays(n as u32),
            (_, Some(n)) => return Err(Tc3Error::value("Policy.IntervalDays", format!("{n} is not 1 to 365 days"))),
            _ => return Err(Tc3Error::MissingParameter("Policy.DayOfWeek (or Policy.IntervalDays)".into())),
        };
        match &sched {
            None => sched = Some(this),
            Some(s) if *s == this => {}
            Some(_) => {
                return Err(Tc3Error::value(
                    "Policy",
                    "disksnap keeps one schedule per policy: give one item (or items with the same days)",
                ))
            }
        }
    }
    Ok(sched.map(|s| (hours, s)))
}

fn retention(p: &Args, creating: bool) -> Result<Option<Retention>> {
    let days = match p.int("RetentionDays")? {
        None => None,
        Some(d @ 1..=65535) => Some(d as u32),
        Some(d) => return Err(Tc3Error::value("RetentionDays", format!("{d} is not 1 to 65535 days"))),
    };
    Ok(match (p.bool("IsPermanent")?, days) {
        (Some(true), _) => Some(Retention::Forever),
        (_, Some(d)) => Some(Retention::Days(d)),
        (Some(false), None) | (None, None) if creating => Some(Retention::Days(DEFAULT_RETENTION_DAYS)),
        _ => None,
    })
}

/// The service's "name taken" (its only InvalidParameter on `name` after the checks above).
fn named(e: ServiceError) -> Tc3Error {
    match &e {
        ServiceError::InvalidParameter { name, reason } if name == "name" => {
            Tc3Error::value("AutoSnapshotPolicyName", reason.clone())
        }
        _ => e.into(),
    }
}

fn time(t: DateTime<Utc>) -> String {
    wire::time(t)
}

fn item(pol: &Policy, next: Option<DateTime<Utc>>) -> Value {
    let policy = match &pol.schedule {
        Schedule::Weekdays(days) => json!([{
            "Hour": pol.hours,
            "DayOfWeek": days.iter().map(|d| d % 7).collect::<Vec<_>>(),
        }]),
        Schedule::EveryDays(n) => json!([{ "Hour": pol.hours, "IntervalDays": n }]),
    };
    let (permanent, days, amount) = match pol.retention {
        Retention::Forever => (true, 0, 0),
        Retention::Days(d) => (false, d, 0),
        Retention::Count(c) => (false, 0, c),
    };
    json!({
        "AutoSnapshotPolicyId": wire::show(Kind::Policy, &pol.id),
        "AutoSnapshotPolicyName": pol.name,
        "AutoSnapshotPolicyState": "NORMAL",
        "IsActivated": pol.enabled,
        "IsCopyToRemote": 0,
        "IsPermanent": permanent,
        "RetentionDays": days,
        "RetentionMonths": 0,
        "RetentionAmount": amount,
        "NextTriggerTime": next.filter(|_| pol.enabled).map(time).unwrap_or_default(),
        "Policy": policy,
        "CreateTime": time(pol.create_time),
        "DiskIdSet": pol.volumes.iter().map(|v| wire::show(Kind::Volume, v)).collect::<Vec<_>>(),
        "InstanceIdSet": [],
        "Tags": [],
    })
}

impl Call<'_> {
    fn next_trigger(&self, pol: &Policy) -> Option<DateTime<Utc>> {
        pol.next_slot(Utc::now())
    }

    pub(super) async fn create_auto_snapshot_policy(&self) -> Result<Map<String, Value>> {
        let p = self.p;
        let (hours, schedule) = schedule(&p)?.ok_or_else(|| Tc3Error::MissingParameter("Policy".into()))?;
        let name = name_param(&p, "AutoSnapshotPolicyName")?;
        let spec = PolicySpec {
            name: Some(name.map(String::from).unwrap_or_else(|| "未命名".to_string())),
            hours: Some(hours),
            schedule: Some(schedule),
            retention: retention(&p, true)?,
            enabled: Some(p.bool("IsActivated")?.unwrap_or(true)),
        };
        if p.bool("DryRun")? == Some(true) {
            // What the policy would be: its next trigger time, nothing created.
            let probe = Policy {
                id: String::new(),
                name: String::new(),
                hours: spec.hours.clone().unwrap_or_default(),
                schedule: spec.schedule.clone().unwrap_or(Schedule::EveryDays(1)),
                retention: Retention::Forever,
                enabled: true,
                create_time: Utc::now(),
                schedule_from: Utc::now(),
                volumes: vec![],
            };
            return Ok(fields(json!({
                "AutoSnapshotPolicyId": "",
                "NextTriggerTime": self.next_trigger(&probe).map(time).unwrap_or_default(),
            })));
        }
        if self.svc.policies(self.caller).await?.len() >= MAX_POLICIES {
            return Err(Tc3Error::PolicyQuota(MAX_POLICIES));
        }
        let pol = self.svc.create_policy(self.caller, spec).await.map_err(named)?;
        Ok(fields(json!({
            "AutoSnapshotPolicyId": wire::show(Kind::Policy, &pol.id),
            "NextTriggerTime": self.next_trigger(&pol).filter(|_| pol.enabled).map(time).unwrap_or_default(),
        })))
    }

    pub(super) async fn describe_auto_snapshot_policies(&self) -> Result<Map<String, Value>> {
        let p = self.p;
        let wanted = id_list(&p, "AutoSnapshotPolicyIds", Kind::Policy)?;
        let filters = p.filters()?;
        let pg = paging(&p, &["CREATE_TIME"])?;
        let mut all = self.svc.policies(self.caller).await?;
        if !wanted.is_empty() {
            let bare: Vec<String> =
                wanted.iter().filter_map(|w| disksnap_service::ids::parse(Kind::Policy, w)).collect();
            all.retain(|pol| bare.contains(&pol.id));
        }
        for (name, values) in &filters {
            match name.as_str() {
                "auto-snapshot-policy-id" => {
                    let bare: Vec<String> =
                        values.iter().filter_map(|w| disksnap_service::ids::parse(Kind::Policy, w)).collect();
                    all.retain(|pol| bare.contains(&pol.id));
                }
                "auto-snapshot-policy-name" => all.retain(|pol| values.contains(&pol.name)),
                "auto-snapshot-policy-state" => all.retain(|_| values.iter().any(|v| v == "NORMAL")),
                other => {
                    return Err(Tc3Error::InvalidFilter(format!(
                        "filter {other:?} is not one of auto-snapshot-policy-id, auto-snapshot-policy-name, auto-snapshot-policy-state"
                    )))
                }
            }
        }
        let (total, page) = super::page(all, |pol| (pol.create_time, pol.id.clone()), &pg);
        let set: Vec<Value> = page.iter().map(|pol| item(pol, self.next_trigger(pol))).collect();
        Ok(fields(json!({ "TotalCount": total, "AutoSnapshotPolicySet": set })))
    }

    pub(super) async fn modify_auto_snapshot_policy_attribute(&self) -> Result<Map<String, Value>> {
        let p = self.p;
        let id = id_param("AutoSnapshotPolicyId", Kind::Policy, p.required_str("AutoSnapshotPolicyId")?)?;
        let sched = schedule(&p)?;
        let spec = PolicySpec {
            name: name_param(&p, "AutoSnapshotPolicyName")?.map(String::from),
            hours: sched.as_ref().map(|(h, _)| h.clone()),
            schedule: sched.map(|(_, s)| s),
            retention: retention(&p, false)?,
            enabled: p.bool("IsActivated")?,
        };
        self.svc.modify_policy(self.caller, &id, spec).await.map_err(named)?;
        Ok(Map::new())
    }

    pub(super) async fn delete_auto_snapshot_policies(&self) -> Result<Map<String, Value>> {
        let ids = id_list(&self.p, "AutoSnapshotPolicyIds", Kind::Policy)?;
        if ids.is_empty() {
            return Err(Tc3Error::MissingParameter("AutoSnapshotPolicyIds".into()));
        }
        // Every id is checked before any is deleted.
        for id in &ids {
            self.svc.policy(self.caller, id).await?;
        }
        for id in &ids {
            self.svc.delete_policy(self.caller, id).await?;
        }
        Ok(Map::new())
    }

    pub(super) async fn bind_auto_snapshot_policy(&self) -> Result<Map<String, Value>> {
        let p = self.p;
        let id = id_param("AutoSnapshotPolicyId", Kind::Policy, p.required_str("AutoSnapshotPolicyId")?)?;
        let disks = id_list(&p, "DiskIds", Kind::Volume)?;
        if disks.is_empty() {
            return Err(Tc3Error::MissingParameter("DiskIds".into()));
        }
        self.svc.bind_policy(self.caller, &id, &disks).await?;
        Ok(Map::new())
    }

    pub(super) async fn unbind_auto_snapshot_policy(&self) -> Result<Map<String, Value>> {
        let p = self.p;
        let id = id_param("AutoSnapshotPolicyId", Kind::Policy, p.required_str("AutoSnapshotPolicyId")?)?;
        let mut disks = id_list(&p, "DiskIds", Kind::Volume)?;
        for inst in id_list(&p, "InstanceIds", Kind::Instance)? {
            let q = disksnap_service::VolumeFilter { instance_ids: vec![inst], limit: 1000, ..Default::default() };
            disks.extend(self.svc.volumes(self.caller, &q).await?.0.into_iter().map(|v| v.id));
        }
        if disks.is_empty() {
            return Err(Tc3Error::MissingParameter("DiskIds".into()));
        }
        for d in &disks {
            self.svc.volume(self.caller, d).await?;
        }
        self.svc.unbind_policy(self.caller, &id, &disks).await?;
        Ok(Map::new())
    }

    pub(super) async fn describe_disk_associated_auto_snapshot_policy(&self) -> Result<Map<String, Value>> {
        let disk = id_param("DiskId", Kind::Volume, self.p.required_str("DiskId")?)?;
        let set: Vec<Value> = match self.svc.policy_of_volume(self.caller, &disk).await? {
            Some(pid) => {
                let pol = self.svc.policy(self.caller, &pid).await?;
                vec![item(&pol, self.next_trigger(&pol))]
            }
            None => vec![],
        };
        Ok(fields(json!({ "TotalCount": set.len(), "AutoSnapshotPolicySet": set })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn policy_items_as_cbs_writes_them() {
        let m = args(json!({"Policy": [{"Hour": [14, 2], "DayOfWeek": [0, 1, 6]}]}));
        assert_eq!(schedule(&Args(&m)).unwrap(), Some((vec![14, 2], Schedule::Weekdays(vec![1, 6, 7]))));
        let m = args(json!({"Policy": [{"Hour": ["3"], "IntervalDays": "2"}]}));
        assert_eq!(schedule(&Args(&m)).unwrap(), Some((vec![3], Schedule::EveryDays(2))));
        for (bad, code) in [
            (json!({"Policy": [{"Hour": [24], "DayOfWeek": [1]}]}), "InvalidParameterValue"),
            (json!({"Policy": [{"Hour": [1], "DayOfWeek": [7]}]}), "InvalidParameterValue"),
            (json!({"Policy": [{"Hour": [1], "IntervalDays": 0}]}), "InvalidParameterValue"),
            (json!({"Policy": [{"Hour": [1], "DayOfMonth": [1]}]}), "UnsupportedOperation"),
            (json!({"Policy": [{"Hour": [1]}]}), "MissingParameter"),
            (
                json!({"Policy": [{"Hour": [1], "DayOfWeek": [1]}, {"Hour": [2], "DayOfWeek": [2]}]}),
                "InvalidParameterValue",
            ),
        ] {
            let m = args(bad.clone());
            assert_eq!(schedule(&Args(&m)).unwrap_err().code(), code, "{bad}");
        }
        let m = args(json!({}));
        assert_eq!(retention(&Args(&m), true).unwrap(), Some(Retention::Days(7)));
        let m = args(json!({"IsPermanent": true, "RetentionDays": 3}));
        assert_eq!(retention(&Args(&m), true).unwrap(), Some(Retention::Forever));
        let m = args(json!({"RetentionDays": 3}));
        assert_eq!(retention(&Args(&m), false).unwrap(), Some(Retention::Days(3)));
        assert_eq!(retention(&Args(&args(json!({}))), false).unwrap(), None);
    }
}
