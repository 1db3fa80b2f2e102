//! Letting one batch's tasks run while the next is planned and queued.
//!
//! A restore works in batches of slots (a bounded plan, and the page cache handed back behind
//! it). Waiting for every read of a batch before queueing the next left the
//! read threads idle in each batch's tail, one slow read at a time: with 64 MiB batches a 4 GiB
//! restore paid that tail 64 times. Now the next batch's reads are queued behind the current
//! one's, and a batch is closed (its progress, its pages) once its own tasks are done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use crate::error::{EngineError, Result};

/// How many of a batch's tasks are still to finish.
pub(crate) struct Countdown {
    left: Mutex<usize>,
    zero: Condvar,
}

impl Countdown {
    pub fn new(n: usize) -> Self {
        Countdown { left: Mutex::new(n), zero: Condvar::new() }
    }

    /// A task's guard: the task counts as finished when it is dropped, so a task that panics
    /// still lets the waiter on (rayon then re-raises the panic at the end of its scope).
    pub fn task(&self) -> TaskDone<'_> {
        TaskDone(self)
    }

    /// Block until every task has finished.
    pub fn wait(&self) {
        let mut left = self.left.lock().unwrap_or_else(|p| p.into_inner());
        while *left > 0 {
            left = self.zero.wait(left).unwrap_or_else(|p| p.into_inner());
        }
    }
}

pub(crate) struct TaskDone<'a>(&'a Countdown);

impl Drop for TaskDone<'_> {
    fn drop(&mut self) {
        let mut left = self.0.left.lock().unwrap_or_else(|p| p.into_inner());
        *left -= 1;
        if *left == 0 {
            self.0.zero.notify_all();
        }
    }
}

/// The first error of tasks running side by side; once there is one, the rest skip their work.
#[derive(Default)]
pub(crate) struct FirstError {
    failed: AtomicBool,
    first: Mutex<Option<EngineError>>,
}

impl FirstError {
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Keep `result`'s error if it is the first.
    pub fn note<T>(&self, result: Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert(e);
                self.failed.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    /// The first error noted, if any.
    pub fn into_result(self) -> Result<()> {
        match self.first.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_returns_once_every_task_is_done_even_a_panicking_one() {
        let left = Countdown::new(3);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.in_place_scope(|s| {
                for i in 0..3 {
                    let left = &left;
                    s.spawn(move |_| {
                        let _done = left.task();
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        assert!(i != 1, "task 1 fails");
                    });
                }
                left.wait();
            })
        }));
        assert!(outcome.is_err(), "the panic reaches the scope's caller");
        assert_eq!(*left.left.lock().unwrap(), 0);
    }

    #[test]
    fn the_first_error_wins() {
        let errors = FirstError::default();
        assert!(!errors.failed());
        assert_eq!(errors.note(Ok::<_, EngineError>(7)), Some(7));
        errors.note::<()>(Err(EngineError::Invalid("first".into())));
        errors.note::<()>(Err(EngineError::Invalid("second".into())));
        assert!(errors.failed());
        match errors.into_result() {
            Err(EngineError::Invalid(m)) => assert_eq!(m, "first"),
            other => panic!("{other:?}"),
        }
    }
}
