//! Automatic snapshot policies (issue 15): a schedule (hours of the day, UTC, on some weekdays
//! or every N days), a retention (days, a count per volume, or forever), enabled or not, and
//! the volumes bound to it. The scheduler ([`crate::scheduler`]) fires their slots; this module
//! holds the rules of a policy and its slots.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration as Span, NaiveDate, TimeZone, Utc};
use disksnap_meta::{MetaError, PolicyRow};
use serde::Serialize;

use crate::error::{Result, ServiceError};
use crate::ids;
use crate::model::{now_ms, to_time, Kind};
use crate::service::{Caller, Service};

/// Which days a policy's hours fire on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// ISO weekdays, 1 (Monday) to 7 (Sunday).
    Weekdays(Vec<u8>),
    /// Every N days, counted from the UTC day the policy was created.
    EveryDays(u32),
}

/// How long a policy's automatic points are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    Forever,
    /// Points older than this many days (from their slot) are deleted.
    Days(u32),
    /// Only the last N points of each volume are kept.
    Count(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub id: String,
    pub name: String,
    /// Hours of the day (UTC), sorted.
    pub hours: Vec<u8>,
    pub schedule: Schedule,
    pub retention: Retention,
    pub enabled: bool,
    pub create_time: DateTime<Utc>,
    /// No slot before this fires.
    pub schedule_from: DateTime<Utc>,
    /// Bound volumes.
    pub volumes: Vec<String>,
}

/// What a create sets, or what a modify changes (None: unchanged; a create needs name, hours
/// and schedule).
#[derive(Clone, Debug, Default)]
pub struct PolicySpec {
    pub name: Option<String>,
    pub hours: Option<Vec<u8>>,
    pub schedule: Option<Schedule>,
    pub retention: Option<Retention>,
    pub enabled: Option<bool>,
}

pub const MAX_NAME: usize = 128;
pub const MAX_EVERY_DAYS: u32 = 365;
pub const MAX_RETENTION_DAYS: u32 = 65_536;

fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() {
        return Err(ServiceError::invalid("name", "a policy needs a name"));
    }
    if n.chars().count() > MAX_NAME {
        return Err(ServiceError::invalid("name", format!("at most {MAX_NAME} characters")));
    }
    Ok(n.to_string())
}

fn check_hours(hours: &[u8]) -> Result<Vec<u8>> {
    if hours.is_empty() {
        return Err(ServiceError::invalid("time_points", "name at least one hour of the day (0 to 23)"));
    }
    if let Some(h) = hours.iter().find(|h| **h > 23) {
        return Err(ServiceError::invalid("time_points", format!("hour {h} is out of range: hours are 0 to 23")));
    }
    Ok(hours.iter().copied().collect::<BTreeSet<_>>().into_iter().collect())
}

fn check_schedule(s: &Schedule) -> Result<Schedule> {
    match s {
        Schedule::Weekdays(days) => {
            if days.is_empty() {
                return Err(ServiceError::invalid("weekdays", "name at least one weekday (1 = Monday to 7 = Sunday)"));
            }
            if let Some(d) = days.iter().find(|d| !(1..=7).contains(*d)) {
                return Err(ServiceError::invalid(
                    "weekdays",
                    format!("weekday {d} is unknown: weekdays are 1 (Monday) to 7 (Sunday)"),
                ));
            }
            Ok(Schedule::Weekdays(days.iter().copied().collect::<BTreeSet<_>>().into_iter().collect()))
        }
        Schedule::EveryDays(n) if (1..=MAX_EVERY_DAYS).contains(n) => Ok(Schedule::EveryDays(*n)),
        Schedule::EveryDays(n) => {
            Err(ServiceError::invalid("every_days", format!("{n} is out of range: 1 to {MAX_EVERY_DAYS} days")))
        }
    }
}

fn check_retention(r: Retention) -> Result<Retention> {
    match r {
        Retention::Days(d) if !(1..=MAX_RETENTION_DAYS).contains(&d) => Err(ServiceError::invalid(
            "retention_days",
            format!("{d} is out of range: 1 to {MAX_RETENTION_DAYS} days (or keep forever)"),
        )),
        Retention::Count(0) => Err(ServiceError::invalid("retention_count", "keep at least 1 point (or keep forever)")),
        r => Ok(r),
    }
}

impl Policy {
    pub(crate) fn from_row_without_volumes(r: PolicyRow) -> Result<Self> {
        Self::from_row(r, vec![])
    }

    fn from_row(r: PolicyRow, volumes: Vec<String>) -> Result<Self> {
        let bad = |col: &str| ServiceError::Internal(format!("policy {}: stored {col} is unreadable", r.id));
        let hours: Vec<u8> = serde_json::from_str(&r.time_points).map_err(|_| bad("time_points"))?;
        let weekdays: Vec<u8> = serde_json::from_str(&r.weekdays).map_err(|_| bad("weekdays"))?;
        let schedule = match r.every_days {
            Some(n) => Schedule::EveryDays(n as u32),
            None => Schedule::Weekdays(weekdays),
        };
        let retention = match (r.retention_days, r.retention_count) {
            (Some(d), _) => Retention::Days(d as u32),
            (None, Some(c)) => Retention::Count(c as u32),
            (None, None) => Retention::Forever,
        };
        Ok(Policy {
            id: r.id,
            name: r.name,
            hours,
            schedule,
            retention,
            enabled: r.enabled,
            create_time: to_time(r.create_time),
            schedule_from: to_time(r.schedule_from),
            volumes,
        })
    }

    fn to_row(&self, account: &str) -> PolicyRow {
        let (weekdays, every_days) = match &self.schedule {
            Schedule::Weekdays(d) => (d.clone(), None),
            Schedule::EveryDays(n) => (vec![], Some(*n as i64)),
        };
        let (retention_days, retention_count) = match self.retention {
            Retention::Forever => (None, None),
            Retention::Days(d) => (Some(d as i64), None),
            Retention::Count(c) => (None, Some(c as i64)),
        };
        PolicyRow {
            id: self.id.clone(),
            account: account.to_string(),
            name: self.name.clone(),
            time_points: serde_json::to_string(&self.hours).expect("a list of numbers"),
            weekdays: serde_json::to_string(&weekdays).expect("a list of numbers"),
            every_days,
            retention_days,
            retention_count,
            enabled: self.enabled,
            create_time: self.create_time.timestamp_millis(),
            schedule_from: self.schedule_from.timestamp_millis(),
        }
    }

    fn fires_on(&self, day: NaiveDate) -> bool {
        match &self.schedule {
            Schedule::Weekdays(days) => days.contains(&(day.weekday().number_from_monday() as u8)),
            Schedule::EveryDays(n) => {
                let anchor = self.create_time.date_naive();
                day >= anchor && (day - anchor).num_days() % (*n as i64) == 0
            }
        }
    }

    fn slots_of(&self, day: NaiveDate) -> impl DoubleEndedIterator<Item = DateTime<Utc>> + '_ {
        let fires = self.fires_on(day);
        self.hours
            .iter()
            .filter(move |_| fires)
            .filter_map(move |h| day.and_hms_opt(*h as u32, 0, 0).map(|t| Utc.from_utc_datetime(&t)))
    }

    /// The latest slot at or before `t` and not before `schedule_from`, if any.
    pub fn last_slot(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut day = t.date_naive();
        // One period is at most MAX_EVERY_DAYS (or a week): looking further back finds nothing new.
        for _ in 0..=MAX_EVERY_DAYS + 1 {
            if let Some(s) = self.slots_of(day).rev().find(|s| *s <= t) {
                return (s >= self.schedule_from).then_some(s);
            }
            if day < self.schedule_from.date_naive() {
                return None;
            }
            day = day.pred_opt()?;
        }
        None
    }

    /// The first slot after `t`.
    pub fn next_slot(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut day = t.date_naive();
        for _ in 0..=MAX_EVERY_DAYS + 7 {
            if let Some(s) = self.slots_of(day).find(|s| *s > t && *s >= self.schedule_from) {
                return Some(s);
            }
            day = day.succ_opt()?;
        }
        None
    }
}

impl Service {
    pub(crate) async fn policy_row(&self, caller: &Caller, id: &str) -> Result<PolicyRow> {
        self.check_account(caller)?;
        let bare = self.parse_id(Kind::Policy, id)?;
        self.meta().policy(&caller.account, &bare).await?.ok_or_else(|| ServiceError::not_found(Kind::Policy, id))
    }

    async fn policy_view(&self, row: PolicyRow) -> Result<Policy> {
        let volumes = self.meta().policy_volumes(&row.id).await?;
        Policy::from_row(row, volumes)
    }

    async fn put_policy(&self, caller: &Caller, p: &Policy) -> Result<()> {
        match self.meta().policy_put(&p.to_row(&caller.account)).await {
            Err(MetaError::Conflict { what: "policy name", .. }) => Err(ServiceError::invalid(
                "name",
                format!("this account already has a policy named \"{}\"; choose another name", p.name),
            )),
            r => Ok(r?),
        }
    }

    pub async fn create_policy(&self, caller: &Caller, spec: PolicySpec) -> Result<Policy> {
        self.check_account(caller)?;
        let name = check_name(spec.name.as_deref().unwrap_or(""))?;
        let hours = check_hours(spec.hours.as_deref().unwrap_or(&[]))?;
        let schedule = check_schedule(
            spec.schedule.as_ref().ok_or_else(|| ServiceError::MissingParameter("weekdays or every_days".into()))?,
        )?;
        let retention = check_retention(spec.retention.unwrap_or(Retention::Forever))?;
        let now = to_time(now_ms());
        let p = Policy {
            id: ids::new_id(),
            name,
            hours,
            schedule,
            retention,
            enabled: spec.enabled.unwrap_or(true),
            create_time: now,
            schedule_from: now,
            volumes: vec![],
        };
        self.put_policy(caller, &p).await?;
        Ok(p)
    }

    pub async fn policy(&self, caller: &Caller, id: &str) -> Result<Policy> {
        let row = self.policy_row(caller, id).await?;
        self.policy_view(row).await
    }

    pub async fn policies(&self, caller: &Caller) -> Result<Vec<Policy>> {
        self.check_account(caller)?;
        let mut out = Vec::new();
        for row in self.meta().policies(Some(&caller.account)).await? {
            out.push(self.policy_view(row).await?);
        }
        Ok(out)
    }

    /// Change what `spec` names. A new schedule applies from now: no slot of it that is
    /// already past fires.
    pub async fn modify_policy(&self, caller: &Caller, id: &str, spec: PolicySpec) -> Result<Policy> {
        let mut p = self.policy(caller, id).await?;
        if let Some(n) = &spec.name {
            p.name = check_name(n)?;
        }
        let mut rescheduled = false;
        if let Some(h) = &spec.hours {
            let h = check_hours(h)?;
            rescheduled |= h != p.hours;
            p.hours = h;
        }
        if let Some(s) = &spec.schedule {
            let s = check_schedule(s)?;
            rescheduled |= s != p.schedule;
            p.schedule = s;
        }
        if let Some(r) = spec.retention {
            p.retention = check_retention(r)?;
        }
        if let Some(e) = spec.enabled {
            // Enabling again starts from now too: the slots it was off for are not made up.
            rescheduled |= e && !p.enabled;
            p.enabled = e;
        }
        if rescheduled {
            p.schedule_from = to_time(now_ms());
        }
        self.put_policy(caller, &p).await?;
        Ok(p)
    }

    /// Delete a policy: its volumes are unbound; its automatic points stay (as manual ones
    /// would), no longer pruned by it.
    pub async fn delete_policy(&self, caller: &Caller, id: &str) -> Result<()> {
        let row = self.policy_row(caller, id).await?;
        if !self.meta().policy_delete(&caller.account, &row.id).await? {
            return Err(ServiceError::not_found(Kind::Policy, id));
        }
        Ok(())
    }

    /// Bind volumes of the caller's account (each leaves any policy it followed). Every
    /// volume is checked first: one unknown (or another account's) binds none.
    pub async fn bind_policy(&self, caller: &Caller, id: &str, volumes: &[String]) -> Result<Policy> {
        let row = self.policy_row(caller, id).await?;
        if volumes.is_empty() {
            return Err(ServiceError::MissingParameter("volumes".into()));
        }
        let mut bare = Vec::new();
        for v in volumes {
            bare.push(self.volume_row(caller, v).await?.id);
        }
        self.meta().policy_bind(&row.id, &bare).await?;
        self.policy_view(row).await
    }

    pub async fn unbind_policy(&self, caller: &Caller, id: &str, volumes: &[String]) -> Result<Policy> {
        let row = self.policy_row(caller, id).await?;
        let bare: Vec<String> = volumes.iter().map(|v| self.parse_id(Kind::Volume, v)).collect::<Result<_>>()?;
        self.meta().policy_unbind(&row.id, &bare).await?;
        self.policy_view(row).await
    }

    /// The policy a volume follows, if any.
    pub async fn policy_of_volume(&self, caller: &Caller, volume: &str) -> Result<Option<String>> {
        let v = self.volume_row(caller, volume).await?;
        Ok(self.meta().policy_of_volume(&v.id).await?)
    }

    /// Slots claimed so far, oldest first: (slot time, job id once started).
    pub async fn policy_slots(&self, caller: &Caller, id: &str) -> Result<Vec<(DateTime<Utc>, Option<String>)>> {
        let row = self.policy_row(caller, id).await?;
        Ok(self.meta().policy_slots(&row.id).await?.into_iter().map(|(s, j)| (to_time(s), j)).collect())
    }
}

/// A day's span, for retention by days.
pub(crate) fn days(n: u32) -> Span {
    Span::days(n as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn policy(hours: &[u8], schedule: Schedule, from: &str) -> Policy {
        Policy {
            id: "p".into(),
            name: "p".into(),
            hours: hours.to_vec(),
            schedule,
            retention: Retention::Forever,
            enabled: true,
            create_time: at(from),
            schedule_from: at(from),
            volumes: vec![],
        }
    }

    #[test]
    fn slots_follow_hours_and_weekdays() {
        // 2026-12-03 is a Thursday (4).
        let p = policy(&[2, 14], Schedule::Weekdays(vec![4, 5]), "2026-12-01T00:00:00Z");
        assert_eq!(p.last_slot(at("2026-12-03T01:59:59Z")), None, "Tuesday and Wednesday do not fire");
        assert_eq!(p.last_slot(at("2026-12-03T02:00:00Z")), Some(at("2026-12-03T02:00:00Z")));
        assert_eq!(p.last_slot(at("2026-12-03T13:00:00Z")), Some(at("2026-12-03T02:00:00Z")));
        assert_eq!(p.next_slot(at("2026-12-03T02:00:00Z")), Some(at("2026-12-03T14:00:00Z")));
        assert_eq!(p.next_slot(at("2026-12-04T14:00:00Z")), Some(at("2026-12-10T02:00:00Z")));
        assert_eq!(p.last_slot(at("2026-12-09T23:00:00Z")), Some(at("2026-12-04T14:00:00Z")));
    }

    #[test]
    fn every_n_days_counts_from_the_creation_day_and_nothing_fires_before_it() {
        let p = policy(&[6], Schedule::EveryDays(3), "2026-12-01T10:00:00Z");
        assert_eq!(p.last_slot(at("2026-12-03T23:00:00Z")), None, "Dec 1 06:00 is before the policy");
        assert_eq!(p.next_slot(at("2026-12-01T10:00:00Z")), Some(at("2026-12-04T06:00:00Z")));
        assert_eq!(p.next_slot(at("2026-12-04T06:00:00Z")), Some(at("2026-12-07T06:00:00Z")));
        assert_eq!(p.last_slot(at("2026-12-06T06:00:00Z")), Some(at("2026-12-04T06:00:00Z")));
    }

    #[test]
    fn bad_schedules_are_refused_with_the_parameter_named() {
        let e = check_hours(&[3, 24]).unwrap_err();
        assert!(matches!(&e, ServiceError::InvalidParameter { name, .. } if name == "time_points"), "{e}");
        let e = check_schedule(&Schedule::Weekdays(vec![0])).unwrap_err();
        assert!(matches!(&e, ServiceError::InvalidParameter { name, .. } if name == "weekdays"), "{e}");
        assert!(check_schedule(&Schedule::EveryDays(0)).is_err());
        assert!(check_retention(Retention::Count(0)).is_err());
        assert!(check_retention(Retention::Days(0)).is_err());
        assert_eq!(check_hours(&[14, 2, 2]).unwrap(), vec![2, 14]);
    }
}
