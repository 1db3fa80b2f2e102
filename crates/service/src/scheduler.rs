//! The policy scheduler: `disksnap serve` calls [`Scheduler::run_due`] every few seconds.
//!
//! Each enabled policy's latest slot at or before the clock's now fires once: the slot is
//! claimed in the metadata store first (an insert on its primary key, so of several servers on
//! one data dir, or a server before and after a restart, exactly one claims it), then one job
//! takes one automatic point of every bound volume. Only the latest slot is looked at, so a
//! server that was down takes the slot it missed once at start-up (it is then less than one
//! period late: the next slot has not come) and never the ones before it. Then the policy's
//! automatic points past its retention are deleted; manual points are never looked at.
//!
//! The clock is injected ([`Clock`]): tests (and the test-control API of issue 15) move a
//! [`ManualClock`] instead of waiting for the wall clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use disksnap_meta::PolicySnapshotRow;
use serde::Serialize;

use crate::error::{Result, ServiceError};
use crate::model::{now_ms, to_time, Origin, SnapshotStatus};
use crate::policies::{days, Policy, Retention};
use crate::service::{Caller, Service};
use crate::snapshots::{CreateSnapshots, DeleteScope};
use crate::state::StateKind;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;

    /// Move the clock to `at` (test control); false for a clock that cannot be moved.
    fn set(&self, _at: DateTime<Utc>) -> bool {
        false
    }

    /// How far this clock is from the wall clock, in ms (what test control persists).
    fn offset_ms(&self) -> i64 {
        (self.now() - Utc::now()).num_milliseconds()
    }

    /// A clock every server on one metadata store keeps there: test control's moved wall
    /// clock, re-read before each round, so a move through one node of a cluster moves every
    /// node's scheduler (the leader's periodic round included), not only the node it reached.
    fn shared(&self) -> bool {
        false
    }
}

/// The wall clock moved by an offset that test control sets: time goes on at its pace from
/// wherever it was moved to, as a server's clock does.
#[derive(Default)]
pub struct OffsetClock(Mutex<chrono::Duration>);

impl OffsetClock {
    pub fn with_offset_ms(ms: i64) -> Self {
        OffsetClock(Mutex::new(chrono::Duration::milliseconds(ms)))
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.0.lock().unwrap()
    }
    fn set(&self, at: DateTime<Utc>) -> bool {
        *self.0.lock().unwrap() = at - Utc::now();
        true
    }
    fn offset_ms(&self) -> i64 {
        self.0.lock().unwrap().num_milliseconds()
    }
    fn shared(&self) -> bool {
        true
    }
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(at))
    }
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
    fn set(&self, at: DateTime<Utc>) -> bool {
        ManualClock::set(self, at);
        true
    }
}

/// A slot this process fired.
#[derive(Clone, Debug, Serialize)]
pub struct Fired {
    /// The policy's account.
    pub account: String,
    pub policy_id: String,
    pub slot: DateTime<Utc>,
    /// The snapshot job(s); none when no bound volume could be snapshotted.
    pub jobs: Vec<String>,
    pub snapshots: Vec<String>,
    /// Volumes left out, and why.
    pub skipped: Vec<(String, String)>,
}

pub struct Scheduler {
    service: Service,
    clock: Arc<dyn Clock>,
    /// When `run_due` last pruned (clock time): pruning reads every point a policy made, so
    /// it runs after a slot fired and otherwise once a minute, not every few seconds.
    last_prune: Mutex<Option<DateTime<Utc>>>,
    /// One round at a time: a clock move and the round it triggers are never interleaved
    /// with the periodic round (which would fire the moved-to slot without the mover
    /// seeing it).
    round: tokio::sync::Mutex<()>,
}

/// Most slots one clock move steps through (a year of hourly slots of a few policies).
const MAX_STEPS: usize = 100_000;

/// How long a clock move waits for the jobs of each slot it fires before the next (a held
/// kind of job is not waited for beyond it).
const STEP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

const PRUNE_EVERY: chrono::Duration = chrono::Duration::seconds(60);

impl Scheduler {
    pub fn new(service: Service, clock: Arc<dyn Clock>) -> Self {
        Scheduler { service, clock, last_prune: Mutex::new(None), round: tokio::sync::Mutex::new(()) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Move the clock from the wall clock by what an earlier test-control move left in the
    /// metadata store (so a restart keeps the moved time).
    pub async fn restore_clock(&self) -> Result<()> {
        if let Some((v, _)) = self.service.recall(StateKind::SchedulerClock, "", "offset").await? {
            if let Ok(ms) = v.parse::<i64>() {
                self.clock.set(Utc::now() + chrono::Duration::milliseconds(ms));
            }
        }
        Ok(())
    }

    /// A shared clock ([`Clock::shared`]) as the metadata store last recorded it: another
    /// server may have moved it since this one did.
    pub async fn refresh_clock(&self) -> Result<()> {
        if self.clock.shared() {
            self.restore_clock().await?;
        }
        Ok(())
    }

    fn set_clock(&self, at: DateTime<Utc>) -> Result<()> {
        if !self.clock.set(at) {
            return Err(ServiceError::invalid("clock", "this scheduler's clock cannot be moved"));
        }
        Ok(())
    }

    async fn persist_clock(&self) -> Result<()> {
        let ms = self.clock.offset_ms().to_string();
        self.service.remember(StateKind::SchedulerClock, "", "offset", &ms, None).await
    }

    /// Set the clock to `at` (earlier or later) and run a round there; slots already fired
    /// never fire again.
    pub async fn set_time(&self, at: DateTime<Utc>) -> Result<Vec<Fired>> {
        let _round = self.round.lock().await;
        self.set_clock(at)?;
        // The round before the move is recorded: another server sees the moved clock only
        // once this one has claimed the slots it makes due (else another node's periodic round
        // could take them, and this answer would not list them).
        let fired = self.run_due_locked().await;
        self.persist_clock().await?;
        let fired = fired?;
        self.settle(&fired).await;
        Ok(fired)
    }

    /// Move the clock forward by `by`, stopping at every slot of every enabled policy on the
    /// way, in order, as time passing with the server up would: each fires once, its jobs are
    /// waited for (up to 30 s), and retention is applied at its time. Returns every slot fired.
    pub async fn advance(&self, by: chrono::Duration) -> Result<Vec<Fired>> {
        if by < chrono::Duration::zero() {
            return Err(ServiceError::invalid(
                "advance",
                "the clock only moves forward by advance; set a time instead",
            ));
        }
        let _round = self.round.lock().await;
        self.refresh_clock().await?;
        let target = self.clock.now() + by;
        let mut fired = Vec::new();
        for _ in 0..MAX_STEPS {
            let now = self.clock.now();
            let mut next: Option<DateTime<Utc>> = None;
            for row in self.service.meta().policies(None).await? {
                if !row.enabled {
                    continue;
                }
                if let Some(t) = Policy::from_row_without_volumes(row)?.next_slot(now) {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
            let Some(t) = next.filter(|t| *t <= target) else { break };
            self.set_clock(t)?;
            let step = self.run_due_locked().await?;
            self.settle(&step).await;
            fired.extend(step);
        }
        self.set_clock(target)?;
        // recorded after the round, as in set_time
        let last = self.run_due_locked().await;
        self.persist_clock().await?;
        let last = last?;
        self.settle(&last).await;
        fired.extend(last);
        // Points the last steps made are available now: retention counts them.
        self.prune().await?;
        Ok(fired)
    }

    /// Fire the caller's policy's next slot now (its points carry that slot; when the clock
    /// reaches it, it is not taken again).
    pub async fn fire_next(&self, caller: &Caller, id: &str) -> Result<Fired> {
        let _round = self.round.lock().await;
        self.refresh_clock().await?;
        let p = self.service.policy(caller, id).await?;
        let slot = p.next_slot(self.clock.now()).ok_or_else(|| {
            ServiceError::wrong_state(crate::model::Kind::Policy, id, "unscheduled", "it has no next slot")
        })?;
        let f = self.service.fire_slot(caller, &p, slot).await?.ok_or_else(|| {
            ServiceError::wrong_state(crate::model::Kind::Policy, id, "fired", "its next slot was fired already")
        })?;
        self.settle(std::slice::from_ref(&f)).await;
        self.prune().await?;
        Ok(f)
    }

    /// Wait (bounded) for the jobs of fired slots.
    async fn settle(&self, fired: &[Fired]) {
        for f in fired {
            let caller = Caller::new(f.account.clone());
            for j in &f.jobs {
                if tokio::time::timeout(STEP_WAIT, self.service.wait_job(&caller, j)).await.is_err() {
                    tracing::warn!(job = %j, "a policy slot's job did not end within 30 s (held?); moving on");
                }
            }
        }
    }

    /// Fire every due slot not claimed yet, then prune past retention. Returns the slots this
    /// call fired.
    pub async fn run_due(&self) -> Result<Vec<Fired>> {
        let _round = self.round.lock().await;
        self.refresh_clock().await?;
        self.run_due_locked().await
    }

    async fn run_due_locked(&self) -> Result<Vec<Fired>> {
        let now = self.clock.now();
        // First the slots a dead runner claimed and never started (step 4 of issue 15).
        let mut fired = self.service.retry_orphan_slots().await?;
        for row in self.service.meta().policies(None).await? {
            if !row.enabled {
                continue;
            }
            let account = row.account.clone();
            let p = Policy::from_row_without_volumes(row)?;
            let Some(slot) = p.last_slot(now) else { continue };
            match self.service.fire_slot(&Caller::new(account), &p, slot).await {
                Ok(Some(f)) => fired.push(f),
                Ok(None) => {}
                Err(e) => tracing::warn!(policy = %p.id, slot = %slot, error = %e, "a policy slot failed"),
            }
        }
        let due = {
            let mut last = self.last_prune.lock().unwrap();
            let due = !fired.is_empty() || last.is_none_or(|t| now - t >= PRUNE_EVERY || now < t);
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            self.prune().await?;
        }
        Ok(fired)
    }

    /// Delete every policy's automatic points past its retention (by the scheduler's clock);
    /// returns the points deleted.
    pub async fn prune(&self) -> Result<Vec<String>> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for row in self.service.meta().policies(None).await? {
            let account = row.account.clone();
            let p = Policy::from_row_without_volumes(row)?;
            out.extend(self.service.prune_policy(&Caller::new(account), &p, now).await?);
        }
        Ok(out)
    }
}

impl Service {
    /// Fire `p`'s slot `slot` now, unless it was claimed already (None then).
    pub(crate) async fn fire_slot(&self, caller: &Caller, p: &Policy, slot: DateTime<Utc>) -> Result<Option<Fired>> {
        let ms = slot.timestamp_millis();
        if !self.meta().policy_slot_claim(&p.id, ms, &self.inner.runner, now_ms()).await? {
            return Ok(None);
        }
        self.take_slot(caller, p, slot).await.map(Some)
    }

    /// Slots a runner claimed and died before starting their job (the window between the
    /// claim and `policy_slot_started`): claimed again (a compare-and-set on the runner, so
    /// one process of several takes each) and taken now. The dead runner's jobs are
    /// recovered first, so a snapshot job it had started (and that recovery undoes) no longer
    /// holds the volumes.
    pub(crate) async fn retry_orphan_slots(&self) -> Result<Vec<Fired>> {
        let leases = self.runner_lease_ends().await?;
        // A runner of another machine without a lease yet is given one from its claim.
        let orphans: Vec<_> = self
            .meta()
            .policy_slots_unstarted()
            .await?
            .into_iter()
            .filter(|(_, _, runner, claimed)| self.runner_is_dead(runner, *claimed, leases.as_ref()))
            .collect();
        if orphans.is_empty() {
            return Ok(vec![]);
        }
        self.recover().await?;
        let policies = self.meta().policies(None).await?;
        let mut out = Vec::new();
        for (policy_id, ms, runner, _) in orphans {
            let Some(row) = policies.iter().find(|r| r.id == policy_id) else { continue };
            if !self.meta().policy_slot_reclaim(&policy_id, ms, &runner, &self.inner.runner, now_ms()).await? {
                continue; // another process took it over first
            }
            let account = row.account.clone();
            let p = Policy::from_row_without_volumes(row.clone())?;
            tracing::warn!(policy = %p.id, slot = %to_time(ms), dead_runner = %runner, "retrying a slot whose runner died before starting it");
            out.push(self.take_slot(&Caller::new(account), &p, to_time(ms)).await?);
        }
        Ok(out)
    }

    /// Take a claimed slot: one job, one snapshot time for every bound volume.
    async fn take_slot(&self, caller: &Caller, p: &Policy, slot: DateTime<Utc>) -> Result<Fired> {
        let ms = slot.timestamp_millis();
        let mut f = Fired {
            account: caller.account.clone(),
            policy_id: p.id.clone(),
            slot,
            jobs: vec![],
            snapshots: vec![],
            skipped: vec![],
        };
        let mut volumes = Vec::new();
        for v in self.meta().policy_volumes(&p.id).await? {
            match self.volume_row(caller, &v).await {
                Ok(_) => volumes.push(v),
                Err(e) => f.skipped.push((v, e.to_string())),
            }
        }
        if volumes.is_empty() {
            // Started with nothing to take: no retry may take it later with other volumes.
            self.meta().policy_slot_started(&p.id, ms, "", &[]).await?;
            return Ok(f);
        }
        let req = |vols: Vec<String>| CreateSnapshots {
            volumes: vols,
            name: format!("auto-{}-{}", p.name, slot.format("%Y%m%dT%H%MZ")),
            description: format!("automatic snapshot of policy {} for the slot {}", p.id, slot.to_rfc3339()),
            origin: Some(Origin::Auto),
            ..Default::default()
        };
        // One job, one snapshot time for the slot; if that is refused (a volume busy with
        // another job), each volume that can be is snapshotted on its own.
        let mut made = Vec::new();
        match self.create_snapshots(caller, req(volumes.clone())).await {
            Ok((job, snaps)) => made.push((job, snaps)),
            Err(_) if volumes.len() > 1 => {
                for v in volumes {
                    match self.create_snapshots(caller, req(vec![v.clone()])).await {
                        Ok(m) => made.push(m),
                        Err(e) => f.skipped.push((v, e.to_string())),
                    }
                }
            }
            Err(e) => f.skipped.push((volumes[0].clone(), e.to_string())),
        }
        for (job, snaps) in made {
            let rows: Vec<PolicySnapshotRow> = snaps
                .iter()
                .map(|s| PolicySnapshotRow {
                    snapshot_id: s.id.clone(),
                    policy_id: p.id.clone(),
                    volume_id: s.volume_id.clone(),
                    slot: ms,
                })
                .collect();
            self.meta().policy_slot_started(&p.id, ms, &job.id, &rows).await?;
            f.jobs.push(job.id);
            f.snapshots.extend(snaps.into_iter().map(|s| s.id));
        }
        if f.jobs.is_empty() {
            self.meta().policy_slot_started(&p.id, ms, "", &[]).await?;
        }
        for (v, why) in &f.skipped {
            tracing::warn!(policy = %p.id, volume = %v, reason = %why, "a policy slot left a volume out");
        }
        tracing::info!(policy = %p.id, slot = %slot, snapshots = f.snapshots.len(), "fired a policy slot");
        Ok(f)
    }

    /// Fire a slot of the caller's policy at `at` now (`disksnap policy run`), claimed like a
    /// scheduled one, so it is never taken twice.
    pub async fn run_policy(&self, caller: &Caller, id: &str, at: DateTime<Utc>) -> Result<Fired> {
        let p = self.policy(caller, id).await?;
        self.fire_slot(caller, &p, at).await?.ok_or_else(|| {
            ServiceError::wrong_state(crate::model::Kind::Policy, id, "fired", "this slot was fired already")
        })
    }

    /// Delete `p`'s automatic points past its retention at `now`; forget the ones gone.
    pub(crate) async fn prune_policy(&self, caller: &Caller, p: &Policy, now: DateTime<Utc>) -> Result<Vec<String>> {
        if p.retention == Retention::Forever {
            return Ok(vec![]);
        }
        let rows = self.meta().policy_snapshots(&p.id).await?;
        let mut gone = Vec::new();
        let mut live: HashMap<String, Vec<(PolicySnapshotRow, SnapshotStatus)>> = HashMap::new();
        for r in rows {
            match self.meta().snapshot(&caller.account, &r.snapshot_id).await? {
                Some(s) => match SnapshotStatus::parse(&s.status) {
                    Some(st @ (SnapshotStatus::Available | SnapshotStatus::Creating)) => {
                        live.entry(r.volume_id.clone()).or_default().push((r, st))
                    }
                    _ => gone.push(r.snapshot_id),
                },
                None => gone.push(r.snapshot_id),
            }
        }
        let mut doomed = Vec::new();
        for (_, mut points) in live {
            points.sort_by_key(|(r, _)| std::cmp::Reverse(r.slot));
            for (i, (r, st)) in points.iter().enumerate() {
                let past = match p.retention {
                    Retention::Count(n) => i >= n as usize,
                    Retention::Days(d) => to_time(r.slot) + days(d) <= now,
                    Retention::Forever => false,
                };
                // A point still being taken is left for the next round.
                if past && *st == SnapshotStatus::Available {
                    doomed.push(r.snapshot_id.clone());
                }
            }
        }
        let mut deleted = Vec::new();
        if !doomed.is_empty() {
            match self.delete_snapshots(caller, &doomed, DeleteScope::Points).await {
                Ok(_) => deleted = doomed,
                Err(_) => {
                    for id in doomed {
                        match self.delete_snapshots(caller, std::slice::from_ref(&id), DeleteScope::Points).await {
                            Ok(_) => deleted.push(id),
                            Err(e) => {
                                tracing::warn!(policy = %p.id, snapshot = %id, error = %e, "pruning a point failed")
                            }
                        }
                    }
                }
            }
        }
        gone.extend(deleted.iter().cloned());
        if !gone.is_empty() {
            self.meta().policy_forget_snapshots(&gone).await?;
        }
        if !deleted.is_empty() {
            tracing::info!(policy = %p.id, deleted = deleted.len(), "pruned automatic points past retention");
        }
        Ok(deleted)
    }
}
