//! Replay protection: each (key, nonce) is remembered for the clock window; a second use inside
//! it is refused. Outside the window the clock check refuses the request anyway, so forgetting
//! then is safe and keeps the cache bounded by (request rate × window).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct NonceCache {
    seen: Mutex<HashMap<(String, String), Instant>>,
}

impl NonceCache {
    /// Record the nonce; false when it was already used within `window`.
    pub fn first_use(&self, key: &str, nonce: &str, window: Duration) -> bool {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 4096 {
            // Twice the window: the longest any vendor's timestamp can stay acceptable.
            seen.retain(|_, t| now.duration_since(*t) < window * 2);
        }
        match seen.get(&(key.to_string(), nonce.to_string())) {
            Some(t) if now.duration_since(*t) < window * 2 => false,
            _ => {
                seen.insert((key.to_string(), nonce.to_string()), now);
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
}
