//! Test control (issue 15): what moto and LocalStack give their users, so a CI job tests its
//! waiters, retries and error paths without waiting for a wall clock or for a real failure.
//! Make the next N jobs of a kind fail with a given error; hold the jobs of a kind in
//! `working` (their resources in `creating`, `snapshotting`, `rolling-back`…) until released;
//! empty an account. The scheduler's clock is moved by [`crate::scheduler::Scheduler`].
//!
//! This is per process and in memory: a restart forgets every armed failure and hold (a held
//! job of a killed server is recovered like any interrupted job). The server exposes it only
//! when its config enables the admin API (`[admin]`); nothing here is reachable otherwise.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Result, ServiceError};
use crate::model::{JobAction, JobStatus};
use crate::service::{Caller, Service};

/// Failures armed for one kind of job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArmedFailure {
    /// How many of the next jobs of the kind still fail.
    pub remaining: u32,
    /// The error each of them ends with.
    pub error: String,
}

/// What is armed now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ControlState {
    pub failures: BTreeMap<String, ArmedFailure>,
    pub holds: BTreeSet<String>,
    /// Jobs waiting at a hold now.
    pub held_jobs: Vec<String>,
}

#[derive(Default)]
pub(crate) struct TestControl {
    failures: Mutex<HashMap<JobAction, ArmedFailure>>,
    holds: Mutex<HashSet<JobAction>>,
    held_jobs: Mutex<BTreeSet<String>>,
    released: tokio::sync::Notify,
}

/// A job kind by its neutral name (`create-snapshots`, `roll-back`…).
pub fn job_kind(name: &str) -> Result<JobAction> {
    JobAction::parse(name.trim()).ok_or_else(|| {
        ServiceError::invalid(
            "kind",
            format!(
                "\"{name}\" is not a kind of job; kinds: {}",
                JobAction::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

impl TestControl {
    /// The error this job is to fail with, if one is armed for its kind (counting it).
    pub(crate) fn take_failure(&self, action: JobAction) -> Option<String> {
        let mut f = self.failures.lock().unwrap();
        let armed = f.get_mut(&action)?;
        armed.remaining -= 1;
        let error = armed.error.clone();
        if armed.remaining == 0 {
            f.remove(&action);
        }
        Some(error)
    }

    /// Wait while the job's kind is held. Cheap when nothing is held (one lock).
    pub(crate) async fn gate(&self, action: JobAction, job: &str) {
        if !self.holds.lock().unwrap().contains(&action) {
            return;
        }
        self.held_jobs.lock().unwrap().insert(job.to_string());
        tracing::info!(job, action = %action, "test control: holding the job until released");
        loop {
            let notified = self.released.notified();
            if !self.holds.lock().unwrap().contains(&action) {
                break;
            }
            // A release notifies; the timeout only guards against a missed wake-up.
            let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
        }
        self.held_jobs.lock().unwrap().remove(job);
    }
}

impl Service {
    /// Make the next `count` jobs of `kind` (any account) fail with `error`, undoing what they
    /// reserved as any failed job does; `count` 0 disarms.
    pub fn fail_next_jobs(&self, kind: JobAction, count: u32, error: &str) -> Result<()> {
        let error = error.trim();
        if count > 0 && error.is_empty() {
            return Err(ServiceError::invalid("error", "name the error the failing jobs end with"));
        }
        let mut f = self.inner.control.failures.lock().unwrap();
        if count == 0 {
            f.remove(&kind);
        } else {
            f.insert(kind, ArmedFailure { remaining: count, error: error.to_string() });
        }
        Ok(())
    }

    /// Hold every job of `kind` that starts from now on (and none already past its start) in
    /// `working` until [`Service::release_jobs`].
    pub fn hold_jobs(&self, kind: JobAction) {
        self.inner.control.holds.lock().unwrap().insert(kind);
    }

    /// Release the held jobs of `kind` (None: of every kind) and stop holding it.
    pub fn release_jobs(&self, kind: Option<JobAction>) {
        let mut h = self.inner.control.holds.lock().unwrap();
        match kind {
            Some(k) => {
                h.remove(&k);
            }
            None => h.clear(),
        }
        drop(h);
        self.inner.control.released.notify_waiters();
    }

    pub fn control_state(&self) -> ControlState {
        let c = &self.inner.control;
        ControlState {
            failures: c.failures.lock().unwrap().iter().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect(),
            holds: c.holds.lock().unwrap().iter().map(|k| k.as_str().to_string()).collect::<BTreeSet<_>>(),
            held_jobs: c.held_jobs.lock().unwrap().iter().cloned().collect(),
        }
    }

    /// Empty an account: every volume, snapshot, image, job, tag, policy and request-state
    /// row of it, and its volume and image files. Held jobs are released first and the
    /// account's running jobs waited for (up to `wait`), so no job writes rows back after the
    /// purge; with jobs still running then, nothing is deleted. Snapshot bytes no other
    /// account references are freed by the next `disksnap gc`.
    pub async fn reset_account(&self, caller: &Caller, wait: Duration) -> Result<()> {
        self.check_account(caller)?;
        self.release_jobs(None);
        let deadline = tokio::time::Instant::now() + wait;
        let (volumes, images) = loop {
            let open = self.jobs(caller, &[], &[JobStatus::Pending, JobStatus::Working], None, 0, 1).await?.1;
            if open == 0 {
                // The files to remove, read before the rows naming them go.
                let vols = self
                    .meta()
                    .volumes(&disksnap_meta::VolumeFilter {
                        account: caller.account.clone(),
                        statuses: crate::model::VolumeStatus::ALL.iter().map(|s| s.as_str().to_string()).collect(),
                        limit: u64::MAX >> 1,
                        ..Default::default()
                    })
                    .await?
                    .items;
                let imgs = self.meta().images(&caller.account, 0, u64::MAX >> 1).await?.items;
                break (vols, imgs);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ServiceError::wrong_state(
                    crate::model::Kind::Job,
                    &caller.account,
                    "running",
                    format!("{open} job(s) of the account are still running; retry once they end"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        self.meta().account_purge(&caller.account).await?;
        for v in volumes {
            let _ = std::fs::remove_file(&v.path);
            let _ = std::fs::remove_dir_all(crate::points::points_dir(std::path::Path::new(&v.path)));
        }
        for i in images {
            let _ = std::fs::remove_file(self.image_path(&i.id));
        }
        tracing::warn!(account = %caller.account, "test control: the account was reset to empty");
        Ok(())
    }
}
