//! Replay protection on one server: each (key, nonce) is remembered until the clock check
//! would refuse its request anyway (its signed time + the dialect's window); a second use
//! before then is refused.
//!
//! Memory is what decides the shape. Keeping the key and nonce as strings cost ~290 bytes per
//! signed request (two heap strings, an `Instant`, the table's slack), and a request is
//! remembered for the vendor's whole window (15 min for Aliyun and Huawei): bench/api.sh's
//! sweep left the server at 545 MiB. Here an entry is 16 bytes: a 64-bit keyed fingerprint
//! of (key, nonce) (SipHash with this process's random keys, so no client can aim a collision;
//! a chance collision among the at most [`MAX_ENTRIES`] remembered is ~1e-13 per request) and
//! two second stamps. The table is also capped: past [`MAX_ENTRIES`] (~36 MiB) the oldest
//! signed quarter is forgotten and a *horizon* moves to its newest signed time; a request
//! signed at or before the horizon is then refused as too old, so a forgotten nonce can never
//! be replayed. Only sustained extreme load moves the horizon (1.8 M requests inside one
//! window: 2 000 req/s for all of Aliyun's 15 minutes), and then only clients whose clock lags
//! by more than the remembered span are refused, with a message saying so.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// Entries kept at most: 2^21 table slots at the table's 7/8 load, 16 bytes each.
pub const MAX_ENTRIES: usize = 1_800_000;

/// What a nonce check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceUse {
    /// Not seen before; now remembered until the request's time window closes.
    First,
    /// Seen before, inside the window: a replay (or a client reusing nonces).
    Reused,
    /// Signed at or before this instant, which the server no longer remembers nonces for
    /// (see the module comment): the client must sign again with its current time.
    PastHorizon(DateTime<Utc>),
}

impl NonceUse {
    /// The sentence a dialect puts in its clock-window error for [`NonceUse::PastHorizon`].
    pub fn horizon_message(horizon: DateTime<Utc>) -> String {
        format!(
            "the request was signed at or before {}, older than this server's replay memory reaches under the \
             current load; sign it again with the current time (and check the client's clock)",
            horizon.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

#[derive(Default)]
pub struct NonceCache {
    fingerprint: RandomState,
    seen: Mutex<Seen>,
}

/// When a remembered request was signed and until when its clock window is open (Unix
/// seconds; u32 lasts until 2106).
#[derive(Clone, Copy)]
struct Stamp {
    signed: u32,
    until: u32,
}

/// The keys are already keyed SipHash outputs: hashing them again would only cost time.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys reach this table; fold anything else in rather than panic.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default)]
struct Seen {
    map: HashMap<u64, Stamp, BuildHasherDefault<PassThrough>>,
    /// Drop expired entries when the table grows past this. Doubling it after each sweep
    /// keeps the cost amortised O(1) per request.
    prune_at: usize,
    /// Requests signed at or before this (Unix seconds) are refused: their nonces may have
    /// been forgotten. 0 until the table first overflows.
    horizon: u32,
    /// When expired entries were last dropped: also every [`PRUNE_EVERY`], so memory follows
    /// the load down after a burst rather than waiting for the table to double.
    last_prune: u32,
}

const PRUNE_EVERY: u32 = 10;

fn secs(t: DateTime<Utc>) -> u32 {
    t.timestamp().clamp(0, i64::from(u32::MAX)) as u32
}

impl NonceCache {
    /// Record the nonce of a request signed at `signed` whose clock window is `window` (the
    /// clock check refuses it after `signed + window`, so it is remembered until then).
    pub fn first_use(&self, key: &str, nonce: &str, signed: DateTime<Utc>, window: Duration) -> NonceUse {
        self.first_use_at(key, nonce, signed, window, Utc::now(), MAX_ENTRIES)
    }

    fn first_use_at(
        &self,
        key: &str,
        nonce: &str,
        signed: DateTime<Utc>,
        window: Duration,
        now: DateTime<Utc>,
        cap: usize,
    ) -> NonceUse {
        let fp = self.fingerprint.hash_one((key, nonce));
        let signed_s = secs(signed);
        // +1: stamps are whole seconds, and a window open at x.9 s must not close at x.0.
        let until = signed_s.saturating_add(window.as_secs().min(u64::from(u32::MAX)) as u32).saturating_add(1);
        let now_s = secs(now);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(past) = seen.past_horizon(signed_s) {
            return past;
        }
        match seen.map.get(&fp) {
            Some(s) if s.until >= now_s => return NonceUse::Reused,
            _ => {}
        }
        let due = seen.map.len() > 4096 && now_s.saturating_sub(seen.last_prune) >= PRUNE_EVERY;
        if due || seen.map.len() >= seen.prune_at.max(4096).min(cap) {
            seen.prune(now_s, cap);
            if let Some(past) = seen.past_horizon(signed_s) {
                return past;
            }
        }
        seen.map.insert(fp, Stamp { signed: signed_s, until });
        NonceUse::First
    }
}

impl Seen {
    /// A request signed at `signed_s` (Unix seconds) may replay a forgotten nonce.
    fn past_horizon(&self, signed_s: u32) -> Option<NonceUse> {
        // Any u32 of seconds is a valid time: the default is never used.
        let at = Utc.timestamp_opt(i64::from(self.horizon), 0).single().unwrap_or_default();
        (signed_s <= self.horizon).then_some(NonceUse::PastHorizon(at))
    }

    /// Forget what the clock refuses anyway; when that is not enough, forget the oldest
    /// signed quarter and move the horizon past it. Gives memory back when the table is
    /// mostly empty, so a burst does not hold its peak for the life of the process.
    fn prune(&mut self, now_s: u32, cap: usize) {
        self.last_prune = now_s;
        self.map.retain(|_, s| s.until >= now_s);
        if self.map.len() >= cap * 3 / 4 {
            // The 25th percentile of signed times, from a sample: exact enough, and O(n).
            let step = (self.map.len() / 4096).max(1);
            let mut sample: Vec<u32> = self.map.values().step_by(step).map(|s| s.signed).collect();
            sample.sort_unstable();
            let cut = sample[sample.len() / 4];
            self.horizon = self.horizon.max(cut);
            let horizon = self.horizon;
            self.map.retain(|_, s| s.signed > horizon);
            tracing::warn!(
                horizon,
                remembered = self.map.len(),
                "replay cache full: requests signed at or before the horizon are refused until load falls"
            );
        }
        if self.map.capacity() > 4 * self.map.len().max(4096) {
            self.map.shrink_to(2 * self.map.len());
        }
        self.prune_at = (self.map.len() * 2).min(cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn second_use_is_refused() {
        let c = NonceCache::default();
        let w = Duration::from_secs(60);
        let now = Utc::now();
        assert_eq!(c.first_use("k", "n1", now, w), NonceUse::First);
        assert_eq!(c.first_use("k", "n1", now, w), NonceUse::Reused);
        // the same nonce with a later time is still a reuse inside the window
        assert_eq!(c.first_use("k", "n1", now + chrono::Duration::seconds(5), w), NonceUse::Reused);
        assert_eq!(c.first_use("other", "n1", now, w), NonceUse::First);
        assert_eq!(c.first_use("k", "n2", now, w), NonceUse::First);
        // key and nonce are hashed as a pair, not concatenated
        assert_eq!(c.first_use("k:", "n3", now, w), NonceUse::First);
        assert_eq!(c.first_use("k", ":n3", now, w), NonceUse::First);
    }

    #[test]
    fn remembered_until_the_window_closes_then_forgotten() {
        let c = NonceCache::default();
        let w = Duration::from_secs(60);
        for i in 0..10_000 {
            assert_eq!(c.first_use_at("k", &i.to_string(), at(0), w, at(0), MAX_ENTRIES), NonceUse::First);
        }
        // still inside the window: every one refused
        assert_eq!(c.first_use_at("k", "9999", at(0), w, at(60), MAX_ENTRIES), NonceUse::Reused);
        assert_eq!(c.first_use_at("k", "0", at(0), w, at(61), MAX_ENTRIES), NonceUse::Reused);
        // past the window the clock check refuses the request; the cache may forget it
        for i in 10_000..20_000 {
            assert_eq!(c.first_use_at("k", &i.to_string(), at(100), w, at(100), MAX_ENTRIES), NonceUse::First);
        }
        let len = c.seen.lock().unwrap().map.len();
        assert!(len < 20_000, "expired entries were pruned on the way ({len} kept)");
        assert_eq!(c.first_use_at("k", "19999", at(100), w, at(150), MAX_ENTRIES), NonceUse::Reused);
    }

    #[test]
    fn a_full_cache_moves_the_horizon_and_never_accepts_a_replay() {
        let c = NonceCache::default();
        let w = Duration::from_secs(900);
        let cap = 8_000;
        // 20 000 requests over 200 s, all inside the window: more than the cap holds
        for i in 0..20_000i64 {
            let t = at(i / 100);
            let got = c.first_use_at("k", &i.to_string(), t, w, t, cap);
            assert_eq!(got, NonceUse::First, "request {i}");
        }
        let (len, horizon) = {
            let s = c.seen.lock().unwrap();
            (s.map.len(), s.horizon)
        };
        assert!(len <= cap, "{len} entries kept, cap {cap}");
        assert!(horizon > secs(at(0)), "the horizon moved");
        // every earlier request replayed now: refused, either as reused or as past the horizon
        let now = at(200);
        for i in 0..20_000i64 {
            let got = c.first_use_at("k", &i.to_string(), at(i / 100), w, now, cap);
            assert_ne!(got, NonceUse::First, "replay of request {i} accepted");
            if i64::from(secs(at(i / 100))) <= i64::from(horizon) {
                assert!(matches!(got, NonceUse::PastHorizon(_)), "request {i}: {got:?}");
            }
        }
        // a fresh request signed now is accepted
        assert_eq!(c.first_use_at("k", "fresh", now, w, now, cap), NonceUse::First);
    }

    #[test]
    fn memory_is_given_back_after_a_burst() {
        let c = NonceCache::default();
        let w = Duration::from_secs(1);
        for i in 0..200_000 {
            c.first_use_at("k", &i.to_string(), at(0), w, at(0), MAX_ENTRIES);
        }
        let peak = c.seen.lock().unwrap().map.capacity();
        for i in 0..5_000 {
            c.first_use_at("k", &format!("later{i}"), at(100), w, at(100), MAX_ENTRIES);
        }
        let after = c.seen.lock().unwrap().map.capacity();
        assert!(after * 8 <= peak, "capacity {peak} -> {after}");
    }
}
