//! Jobs: every byte-moving operation is a persisted job, pending → working → successful | failed.
//!
//! An operation checks its inputs, then commits its job row together with the rows it
//! reserves (volumes marked busy, snapshots in `creating`) in one batch, and returns at once.
//! The job runs on this process's tokio runtime; its end commits the result and the job's
//! final status in one batch too, or, on failure, undoes the reservation in the same batch
//! that marks the job failed. So no half state is ever committed.
//!
//! Runners: each process that runs jobs holds an exclusive `flock` on `runners/<id>.lock`
//! for its whole life, and stamps its id on the jobs it runs. A job whose runner's lock can be
//! taken belongs to a dead process: [`Service::recover`] claims it (a compare-and-set on the
//! runner column, so two recovering processes never both do) and either resumes it (the work
//! is idempotent: roll back, restore, capture image, delete) or fails it and undoes its
//! reservation (a snapshot's point in time cannot be taken again later).
//!
//! With the metadata on PostgreSQL the runners of one database may be on several machines
//! (a cluster's nodes), and a lock file proves nothing to another machine: each process also
//! holds a lease in the database (`runners`, renewed every 2 s; see [`crate::cluster`]), and a
//! job whose runner's lease ran out ([`crate::cluster::RUNNER_LEASE`]) is taken over in the
//! same way by the next `recover` of any live process.

use std::fs::{self, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use disksnap_meta::{Batch, Expect, JobFilter, JobRow, MetaError};

use crate::error::{Result, ServiceError};
use crate::homes::HomeDown;
use crate::ids;
use crate::model::{now_ms, Job, JobAction, JobStatus, Kind};
pub use crate::progress::JobProgress;
use crate::service::{Caller, Service};
use crate::work::{Done, Work};

impl Service {
    /// Commit `batch` plus a new pending job for `work`, then start the job.
    pub(crate) async fn submit(
        &self,
        caller: &Caller,
        work: Work,
        resources: Vec<String>,
        batch: Batch,
    ) -> Result<Job> {
        // In a cluster only the home node of the job's volumes runs it (crate::homes): another
        // node's job is committed unclaimed, and that node's next recovery round claims it.
        let node = Self::job_node(&batch)?;
        let row = self.job_row(caller, &work, resources, node);
        self.submit_rows(batch, vec![(row.clone(), work)]).await?;
        Job::try_from(row)
    }

    /// A new pending job row for `work`, to run on `node` (None: any process); this process
    /// stamps itself its runner when it may run it.
    pub(crate) fn job_row(&self, caller: &Caller, work: &Work, resources: Vec<String>, node: Option<String>) -> JobRow {
        let now = now_ms();
        JobRow {
            id: ids::new_id(),
            account: caller.account.clone(),
            action: work.kind().action().as_str().to_string(),
            status: JobStatus::Pending.as_str().to_string(),
            resources: serde_json::to_string(&resources).unwrap(),
            params: serde_json::to_string(work).unwrap(),
            error: None,
            runner: self.is_home(node.as_deref()).then(|| self.inner.runner.clone()),
            create_time: now,
            status_time: now,
            node,
        }
    }

    /// Commit `batch` with the rows of `jobs` (all or none), then start the ones this process runs.
    pub(crate) async fn submit_rows(&self, mut batch: Batch, jobs: Vec<(JobRow, Work)>) -> Result<()> {
        batch.put_jobs.extend(jobs.iter().map(|(row, _)| row.clone()));
        self.meta().commit(batch).await?;
        for (row, work) in jobs {
            if row.runner.as_deref() == Some(self.inner.runner.as_str()) {
                self.spawn(row, work);
            }
        }
        Ok(())
    }

    /// Record work that already finished (synchronously) as a successful job: for dialects
    /// that answer every mutating call with a job id to poll (QingCloud's AttachVolumes,
    /// DeleteImages…). `resources` are bare ids; `Job::typed_resources` names their kinds.
    pub async fn record_finished_job(&self, caller: &Caller, action: JobAction, resources: Vec<String>) -> Result<Job> {
        self.check_account(caller)?;
        let now = now_ms();
        let row = JobRow {
            id: ids::new_id(),
            account: caller.account.clone(),
            action: action.as_str().to_string(),
            status: JobStatus::Successful.as_str().to_string(),
            resources: serde_json::to_string(&resources).unwrap(),
            params: "null".into(),
            error: None,
            runner: None,
            create_time: now,
            status_time: now,
            node: None,
        };
        self.meta().commit(Batch { put_jobs: vec![row.clone()], ..Default::default() }).await?;
        Job::try_from(row)
    }

    fn spawn(&self, row: JobRow, work: Work) {
        let svc = self.clone();
        let progress = Arc::new(JobProgress::default());
        self.inner.progress.lock().unwrap().insert(row.id.clone(), progress.clone());
        tokio::spawn(async move { svc.run(row, work, progress).await });
    }

    async fn run(&self, mut row: JobRow, work: Work, progress: Arc<JobProgress>) {
        row.status = JobStatus::Working.as_str().into();
        row.status_time = now_ms();
        let started = self
            .meta()
            .commit(Batch { expect: vec![self.runs(&row)], put_jobs: vec![row.clone()], ..Default::default() })
            .await;
        let outcome = match started {
            Ok(()) => {
                // Test control (control.rs): a held kind waits here, `working`, its resources
                // reserved; an armed failure ends the job as a failed one, undone.
                let action = work.kind().action();
                self.inner.control.gate(action, &row.id).await;
                match self.inner.control.take_failure(action) {
                    // The job's error is the text asked for, verbatim.
                    Some(error) => Err(error),
                    None => self.execute(&row, &work, &progress).await.map_err(|e| e.to_string()),
                }
            }
            Err(e) => Err(ServiceError::from(e).to_string()),
        };
        if let Err(e) = &outcome {
            tracing::warn!(job = %row.id, action = %row.action, error = %e, "job failed");
        }
        match self.finish(&mut row, &work, outcome).await {
            Ok(()) => {
                if row.error.is_none() && !work.kind().ceased().is_empty() {
                    self.release_ceased(&row.account, work.kind().ceased()).await;
                }
            }
            // The job stays `working` under this (live) runner; the next start recovers it.
            Err(e) => tracing::error!(job = %row.id, error = %e, "could not record the end of a job"),
        }
        self.inner.progress.lock().unwrap().remove(&row.id);
        self.inner.job_done.notify_waiters();
    }

    /// The expectation every write of a running job's row carries: this process still runs it
    /// (a process that took it over after deciding this one was dead owns it now).
    fn runs(&self, row: &JobRow) -> Expect {
        Expect::JobRunner { id: row.id.clone(), expected: self.inner.runner.clone() }
    }

    /// Record a job's end: on success the rows its work changed, on failure the undoing of
    /// what it reserved, and the job's final status, in one commit. The batch is decided from
    /// rows read just before the commit, and every row write is guarded by the version it read
    /// (`disksnap_meta::VolumeRow::version`): when another job wrote one of them in between, the
    /// commit is refused as stale and the end is decided again from fresh rows. Bytes already
    /// moved are never moved again.
    pub(crate) async fn finish(
        &self,
        row: &mut JobRow,
        work: &Work,
        outcome: std::result::Result<Done, String>,
    ) -> std::result::Result<(), MetaError> {
        let mut attempt = 0;
        loop {
            let (mut batch, error) = match &outcome {
                Ok(done) => match self.settle(row, work, done).await {
                    Ok(batch) => (batch, None),
                    Err(e) => {
                        tracing::warn!(job = %row.id, action = %row.action, error = %e, "job failed while recording its result");
                        (self.undo(row, work).await, Some(e.to_string()))
                    }
                },
                Err(e) => (self.undo(row, work).await, Some(e.clone())),
            };
            row.status = if error.is_some() { JobStatus::Failed } else { JobStatus::Successful }.as_str().into();
            row.error = error;
            row.status_time = now_ms();
            batch.expect.push(self.runs(row));
            batch.put_jobs.push(row.clone());
            // Unlike a request, a job's end has no caller to hand a conflict to: it is decided
            // again for as long as other writes keep going first (each attempt re-reads a few
            // rows; the backoff spreads the racers out).
            match self.meta().commit(batch).await {
                Err(MetaError::Stale { what, id }) => {
                    attempt += 1;
                    if attempt % crate::retry::ATTEMPTS == 0 {
                        tracing::warn!(job = %row.id, what, %id, attempt, "the end of a job keeps losing races; still deciding again");
                    }
                    crate::retry::backoff(attempt).await;
                }
                other => return other,
            }
        }
    }

    async fn execute(&self, row: &JobRow, work: &Work, progress: &Arc<JobProgress>) -> Result<Done> {
        work.kind().execute(self, &row.account, progress).await
    }

    /// The batch that records what a job's work did, from rows read now.
    async fn settle(&self, row: &JobRow, work: &Work, done: &Done) -> Result<Batch> {
        work.kind().settle(self, &row.account, done).await
    }

    /// The batch that takes back what a failed job reserved.
    async fn undo(&self, row: &JobRow, work: &Work) -> Batch {
        work.kind().undo(self, &row.account).await.unwrap_or_else(|e| {
            tracing::error!(job = %row.id, error = %e, "could not undo a failed job; its resources stay reserved");
            Batch::default()
        })
    }

    /// Wait until a job ends and return it.
    pub async fn wait_job(&self, caller: &Caller, id: &str) -> Result<Job> {
        loop {
            let notified = self.inner.job_done.notified();
            let job = self.job(caller, id).await?;
            if job.is_done() {
                return Ok(job);
            }
            // Jobs of other processes end without notifying us: poll as well.
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    /// Wait until this process runs no job (say, the ones [`Service::recover`] resumed, of
    /// whichever account).
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.inner.job_done.notified();
            if self.running_jobs() == 0 {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    /// Progress of a job running in this process: (done, total).
    pub fn job_progress(&self, id: &str) -> Option<(u64, u64)> {
        let bare = ids::parse(Kind::Job, id)?;
        let map = self.inner.progress.lock().unwrap();
        let p = map.get(&bare)?;
        Some((p.done.load(Ordering::Relaxed), p.total.load(Ordering::Relaxed)))
    }

    /// How many jobs this process is running now.
    pub fn running_jobs(&self) -> usize {
        self.inner.progress.lock().unwrap().len()
    }

    pub async fn job(&self, caller: &Caller, id: &str) -> Result<Job> {
        self.check_account(caller)?;
        let bare = self.parse_id(Kind::Job, id)?;
        self.meta()
            .job(&caller.account, &bare)
            .await?
            .map(Job::try_from)
            .transpose()?
            .ok_or_else(|| ServiceError::not_found(Kind::Job, id))
    }

    pub async fn jobs(
        &self,
        caller: &Caller,
        ids_: &[String],
        statuses: &[JobStatus],
        action: Option<JobAction>,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<Job>, u64)> {
        self.check_account(caller)?;
        // Ids none of which can name a job match nothing, not every job.
        let Some(wanted) = crate::snapshots::parse_all(Kind::Job, ids_) else {
            return Ok((Vec::new(), 0));
        };
        let page = self
            .meta()
            .jobs(&JobFilter {
                account: Some(caller.account.clone()),
                ids: wanted,
                statuses: statuses.iter().map(|s| s.as_str().to_string()).collect(),
                // Rows from before the neutral names carry the former one.
                actions: action
                    .map(|a| vec![a.as_str().to_string(), a.stored_before().to_string()])
                    .unwrap_or_default(),
                offset,
                limit,
            })
            .await?;
        Ok((page.items.into_iter().map(Job::try_from).collect::<Result<_>>()?, page.total))
    }

    /// Whether the process that owns `runner` is gone: its lock file can be locked, or, with
    /// runner leases (`leases`: runner → lease end, PostgreSQL), a process of another machine
    /// let its lease run out. A runner with neither lock file here nor lease may have stamped
    /// `status_time`'s job just before its first lease was written: it is given a lease's
    /// time from then.
    pub(crate) fn runner_is_dead(
        &self,
        runner: &str,
        status_time: i64,
        leases: Option<&std::collections::HashMap<String, i64>>,
    ) -> bool {
        if runner == self.inner.runner {
            return false;
        }
        let path = self.inner.runners_dir.join(format!("{runner}.lock"));
        if let Some(leases) = leases {
            if !path.exists() {
                let now = now_ms();
                return match leases.get(runner) {
                    Some(until) => *until < now,
                    None => status_time < now - crate::cluster::RUNNER_LEASE.as_millis() as i64,
                };
            }
        }
        let Ok(f) = OpenOptions::new().write(true).open(&path) else { return true };
        // SAFETY: flock on an fd we own.
        let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if free {
            let _ = fs::remove_file(&path);
        }
        free
    }

    /// With runner leases (see [`Service::uses_runner_leases`]): each runner's lease end.
    pub(crate) async fn runner_lease_ends(&self) -> Result<Option<std::collections::HashMap<String, i64>>> {
        if !self.uses_runner_leases() {
            return Ok(None);
        }
        Ok(Some(self.meta().runner_leases().await?.into_iter().map(|(r, _, until)| (r, until)).collect()))
    }

    /// Find jobs left pending or working by a process that died, claim them, and resume or
    /// fail each. Returns the jobs it handled; resumed ones are running when this returns
    /// (use [`Service::wait_job`]).
    pub async fn recover(&self) -> Result<Vec<Job>> {
        // First what dead processes left in the store: their temp files hold disk space
        // (perhaps the space a full disk needs back) and nothing will ever commit them.
        match self.reap_dead_runners().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed temp files of processes that died"),
            Err(e) => tracing::warn!(error = %e, "could not remove the temp files of dead processes"),
        }
        let open = self
            .meta()
            .jobs(&JobFilter {
                statuses: vec!["pending".into(), "working".into()],
                limit: u64::MAX >> 1,
                ..Default::default()
            })
            .await?;
        let leases = self.runner_lease_ends().await?;
        let mut beats = None;
        let mut handled = Vec::new();
        for mut row in open.items {
            let old = row.runner.clone().unwrap_or_default();
            // Another node's job (crate::homes), or one submitted unclaimed for this node.
            let foreign = !self.is_home(row.node.as_deref());
            if old.is_empty() && !foreign {
                if let Some(job) = self.claim_handed_job(row).await? {
                    handled.push(job);
                }
                continue;
            }
            if !old.is_empty() && !self.runner_is_dead(&old, row.status_time, leases.as_ref()) {
                continue;
            }
            let work: Work = match serde_json::from_str(&row.params) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(job = %row.id, error = %e, "unreadable job parameters; failing it");
                    row.status = JobStatus::Failed.as_str().into();
                    row.error = Some("interrupted by a restart, and its parameters could not be read".into());
                    row.runner = Some(self.inner.runner.clone());
                    row.status_time = now_ms();
                    self.meta()
                        .commit(Batch {
                            expect: vec![Expect::JobRunner { id: row.id.clone(), expected: old }],
                            put_jobs: vec![row.clone()],
                            ..Default::default()
                        })
                        .await?;
                    handled.push(Job::try_from(row)?);
                    continue;
                }
            };
            if foreign {
                // Its runner is gone and it must run on its volumes' home: while that node is
                // up (or back within NODE_DOWN_AFTER) it takes the job itself.
                let home = row.node.clone().unwrap_or_default();
                if beats.is_none() {
                    beats = Some(self.node_beats().await?);
                }
                if beats.as_ref().is_some_and(|b| Self::node_up(b, &home)) {
                    continue;
                }
                if let Some(job) = self.home_is_down(row, work, &old, &home).await? {
                    handled.push(job);
                }
                continue;
            }
            if !self.take_over(&mut row, &old).await {
                continue; // another process claimed it first
            }
            if work.kind().resumable() {
                tracing::info!(job = %row.id, action = %row.action, "resuming a job interrupted by a restart");
                handled.push(Job::try_from(row.clone())?);
                self.spawn(row, work);
            } else {
                tracing::info!(job = %row.id, action = %row.action, "failing a job interrupted by a restart");
                let why = "interrupted by a restart before it finished; nothing it started was kept";
                self.finish(&mut row, &work, Err(why.into())).await?;
                handled.push(Job::try_from(row)?);
            }
        }
        Ok(handled)
    }

    /// Make this process the runner of job `row`, which runner `old` had ("" for none): a
    /// compare-and-set on the runner column, false when another process claimed it first.
    async fn take_over(&self, row: &mut JobRow, old: &str) -> bool {
        row.runner = Some(self.inner.runner.clone());
        let claim = Batch {
            expect: vec![Expect::JobRunner { id: row.id.clone(), expected: old.to_string() }],
            put_jobs: vec![row.clone()],
            ..Default::default()
        };
        self.meta().commit(claim).await.is_ok()
    }

    /// Start the jobs other processes submitted for this node (a cluster's nodes poll this
    /// often: it is what a request to another node waits on). Returns how many it started.
    pub async fn start_handed_jobs(&self) -> Result<usize> {
        let Some(me) = self.node().map(|n| n.name.clone()) else { return Ok(0) };
        let open = self
            .meta()
            .jobs(&JobFilter { statuses: vec!["pending".into()], limit: u64::MAX >> 1, ..Default::default() })
            .await?;
        let mut started = 0;
        for row in open.items {
            if row.runner.is_none()
                && row.node.as_deref() == Some(me.as_str())
                && self.claim_handed_job(row).await?.is_some()
            {
                started += 1;
            }
        }
        Ok(started)
    }

    /// Claim a pending job another process submitted for this node (its volumes' home) and
    /// start it; None when another process of this node claimed it first.
    async fn claim_handed_job(&self, mut row: JobRow) -> Result<Option<Job>> {
        let work: Work = match serde_json::from_str(&row.params) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(job = %row.id, error = %e, "unreadable job parameters; leaving it");
                return Ok(None);
            }
        };
        if !self.take_over(&mut row, "").await {
            return Ok(None);
        }
        tracing::info!(job = %row.id, action = %row.action, "starting a job submitted for this node");
        let job = Job::try_from(row.clone())?;
        self.spawn(row, work);
        Ok(Some(job))
    }

    /// A job whose home node is down and whose runner is gone: wait, fail it, or move its new
    /// volumes here and run it (crate::homes::HomeDown). Some when this process acted.
    async fn home_is_down(&self, mut row: JobRow, work: Work, old: &str, home: &str) -> Result<Option<Job>> {
        match work.kind().when_home_is_down() {
            HomeDown::Wait => Ok(None),
            HomeDown::Fail => {
                if !self.take_over(&mut row, old).await {
                    return Ok(None);
                }
                tracing::info!(job = %row.id, action = %row.action, node = home, "failing a job whose home node is down");
                let why = format!(
                    "node {home}, which holds the volume, stopped before the job finished; nothing it started was kept"
                );
                self.finish(&mut row, &work, Err(why)).await?;
                Ok(Some(Job::try_from(row)?))
            }
            HomeDown::Rehome(vols) => {
                if !self.rehome(&mut row, &vols, old).await? {
                    return Ok(None);
                }
                tracing::info!(job = %row.id, action = %row.action, from = home, "moved new volumes off a node that is down; running the job here");
                let job = Job::try_from(row.clone())?;
                self.spawn(row, work);
                Ok(Some(job))
            }
        }
    }

    /// Run a blocking engine call on the blocking pool.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::result::Result<T, disksnap_engine::EngineError> + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ServiceError::Internal(format!("worker panicked: {e}")))?
            .map_err(Into::into)
    }
}
