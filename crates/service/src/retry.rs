//! Losing a race, and trying again.
//!
//! Every whole-row write of a volume, snapshot or image names the version of the row it read
//! (`disksnap_meta::VolumeRow::version`), and the commit refuses it as stale when someone else
//! wrote the row in between. The loser reads again, decides again (its checks may now refuse
//! the operation with a precise reason) and commits again: so two jobs on one chain, or a
//! rename racing a job's end, never write each other's columns back from an old read.

use std::time::Duration;

use rand::Rng;

/// How many times one operation decides again before it gives up with
/// [`ServiceError::Conflict`]. Each attempt re-reads a handful of rows; losing this many times
/// in a row takes a storm of writes to the same rows.
pub(crate) const ATTEMPTS: u32 = 24;

/// Randomised, growing pause before the next attempt (1 ms up to ~64 ms), so racers that
/// keep colliding spread out.
pub(crate) async fn backoff(attempt: u32) {
    let cap = 1u64 << attempt.min(6);
    let ms = rand::thread_rng().gen_range(1..=cap);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// `retrying!(async { read → decide → commit })`: run the step until its commit is not stale
/// (a new future each attempt; the step's own checks may refuse the operation on a later one).
/// A macro, not a function taking an async closure: the futures stay `Send` for the dialects
/// that spawn them.
macro_rules! retrying {
    ($step:expr) => {{
        let mut attempt = 0u32;
        loop {
            match $step.await {
                Err($crate::error::ServiceError::Conflict { kind, id }) if attempt < $crate::retry::ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(%kind, %id, attempt, "a concurrent write went first; deciding again");
                    $crate::retry::backoff(attempt).await;
                }
                other => break other,
            }
        }
    }};
}
