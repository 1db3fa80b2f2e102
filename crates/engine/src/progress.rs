//! Progress reporting: long operations tell the caller how far they are, in bytes or items.

/// Called from the operation's coordinating thread (never from worker threads), at most a few
/// times per second's worth of work.
pub trait Progress: Sync {
    /// The operation will cover `total` units (bytes or items).
    fn start(&self, _total: u64) {}
    /// `done` units out of `total` are finished.
    fn advance(&self, _done: u64) {}
}

/// A sink for callers that do not watch progress.
pub struct NoProgress;
impl Progress for NoProgress {}
