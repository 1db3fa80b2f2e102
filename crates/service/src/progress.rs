//! Live progress of running jobs (a leaf: the service holds it, jobs advance it).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live progress of a running job, in bytes (or items).
#[derive(Default, Debug)]
pub struct JobProgress {
    pub done: AtomicU64,
    pub total: AtomicU64,
}

impl disksnap_engine::Progress for JobProgress {
    fn start(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }
    fn advance(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
    }
}

impl JobProgress {
    pub fn percent(&self) -> u8 {
        let total = self.total.load(Ordering::Relaxed);
        if total == 0 {
            return 0;
        }
        (self.done.load(Ordering::Relaxed).saturating_mul(100) / total).min(100) as u8
    }
}
