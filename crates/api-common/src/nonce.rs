//! Replay protection: each (key, nonce) is remembered for the clock window; a second use inside
//! it is refused. Outside the window the clock check refuses the request anyway, so forgetting
//! then is safe and keeps the cache bounded by (request rate × window).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct NonceCache {
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    map: HashMap<(String, String), Instant>,
    /// Prune when the map grows past this. Pruning every insert once the map held 4096
    /// entries made each signed request scan the whole map (at 5 000 requests/s with a 60 s
    /// window: 600 000 entries per request); doubling the bound after each prune keeps the
    /// cost amortised O(1) and the map at most twice what the window holds.
    prune_at: usize,
}

impl NonceCache {
    /// Record the nonce; false when it was already used within `window`.
    pub fn first_use(&self, key: &str, nonce: &str, window: Duration) -> bool {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.map.len() > seen.prune_at.max(4096) {
            // Twice the window: the longest any vendor's timestamp can stay acceptable.
            seen.map.retain(|_, t| now.duration_since(*t) < window * 2);
            seen.prune_at = seen.map.len() * 2;
        }
        match seen.map.entry((key.to_string(), nonce.to_string())) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                if now.duration_since(*e.get()) < window * 2 {
                    return false;
                }
                e.insert(now);
                true
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_use_is_refused() {
        let c = NonceCache::default();
        let w = Duration::from_secs(60);
        assert!(c.first_use("k", "n1", w));
        assert!(!c.first_use("k", "n1", w));
        assert!(c.first_use("other", "n1", w));
        assert!(c.first_use("k", "n2", w));
    }

    #[test]
    fn many_nonces_stay_refused_and_old_ones_are_forgotten() {
        let c = NonceCache::default();
        let w = Duration::from_millis(20);
        for i in 0..10_000 {
            assert!(c.first_use("k", &i.to_string(), w));
        }
        assert!(!c.first_use("k", "9999", w));
        std::thread::sleep(w * 2);
        for i in 10_000..20_000 {
            assert!(c.first_use("k", &i.to_string(), w));
        }
        // the first 10 000 were pruned on the way (past twice the window), the last stay
        assert!(c.seen.lock().unwrap().map.len() < 20_000);
        assert!(!c.first_use("k", "19999", w));
    }
}
