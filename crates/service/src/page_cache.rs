//! Rendered list pages, kept while the metadata store's page generation stands (issue 16).
//!
//! A page of 100 snapshots costs the store a page query, its lookups and a count, and the
//! dialect the rendering of 100 items: ~2-4 ms of CPU, against a budget of 0.2 ms a request.
//! Most list calls ask again what was asked before with nothing changed in between. The store
//! keeps a generation that every write to what a page shows moves in the write's own
//! transaction, whichever process or node writes (`MetaStore::page_generation`); a page
//! rendered at one generation is therefore exact while the generation reads the same, and the
//! cache serves it only then. What a page holds per request (request ids, the envelope) is
//! never in it: the dialects cache the list's items and total and wrap them per request, or the
//! whole body with a placeholder where the request id goes (Aliyun, Tencent 3.0).
//!
//! The generation is one number for the whole store, so entries of older generations can never
//! be served again: a newer generation empties the cache. Bounded by bytes: full, it is
//! emptied too (the next requests fill it again from the store).
//!
//! After a write every list is a miss, and a miss is milliseconds of CPU (store reads on the
//! pool's threads, rendering on the runtime's): with dozens of connections listing, a write's
//! own request then queued behind all of them, in the runtime's run queue, for the pool's
//! connections and for the cores (issue 16's write stream: p99 280 ms at 16 listing
//! connections). Misses render at most [`renders`](PageCache) at a time (the cores but one: one
//! is left to writes, jobs and cached answers, which a burst of misses otherwise took): the others
//! wait parked on a semaphore, where they hold nothing a write needs, and look in the cache
//! again when their turn comes (the same page is often rendered by then, at the generation that
//! stands: one render serves all who waited for it).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::error::ServiceError;
use crate::service::Service;

/// Bytes of rendered pages kept at most: a page of 100 QingCloud items is ~70 KB, so a few
/// hundred distinct pages (the API bench's mix per dialect is ~200).
const MAX_BYTES: usize = 32 << 20;

/// A rendered page: the items as the dialect wrote them, and the list's total.
pub type CachedPage = (Arc<[u8]>, u64);

pub(crate) struct PageCache {
    state: Mutex<State>,
    /// One permit per page rendered at a time.
    renders: tokio::sync::Semaphore,
}

impl Default for PageCache {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PageCache { state: Mutex::default(), renders: tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1)) }
    }
}

tokio::task_local! {
    /// Set while a page renders: a rendering that asks for another page (none does today) takes
    /// no second permit, which could leave every permit waiting on another.
    static RENDERING: ();
}

#[derive(Default)]
struct State {
    gen: i64,
    bytes: usize,
    pages: HashMap<String, CachedPage>,
    /// The most `bytes` ever held, and how often the cache was emptied for want of room.
    peak_bytes: usize,
    full: u64,
}

/// What the page cache holds (the `page_cache_*` metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageCacheUsage {
    pub pages: usize,
    pub bytes: usize,
    pub peak_bytes: usize,
    /// Times it was emptied because a page did not fit.
    pub full: u64,
}

impl PageCache {
    /// The page kept under `key` if it was rendered at generation `gen`.
    pub(crate) fn get(&self, gen: i64, key: &str) -> Option<CachedPage> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.gen != gen {
            return None;
        }
        state.pages.get(key).cloned()
    }

    /// Keep `page`, rendered from a store whose page generation read `gen` both before and
    /// after every read the page made.
    pub(crate) fn put(&self, gen: i64, key: String, page: CachedPage) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if gen < state.gen {
            return; // rendered before a write another request has already seen
        }
        let full = state.bytes + page.0.len() + key.len() > MAX_BYTES;
        if gen > state.gen || full {
            state.full += u64::from(full && gen == state.gen);
            state.pages.clear();
            state.bytes = 0;
            state.gen = gen;
        }
        state.bytes += page.0.len() + key.len();
        if let Some(old) = state.pages.insert(key, page) {
            state.bytes -= old.0.len();
        }
        state.peak_bytes = state.peak_bytes.max(state.bytes);
    }

    pub(crate) fn usage(&self) -> PageCacheUsage {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        PageCacheUsage { pages: state.pages.len(), bytes: state.bytes, peak_bytes: state.peak_bytes, full: state.full }
    }
}

impl Service {
    /// What the rendered-page cache holds now.
    pub fn page_cache_usage(&self) -> PageCacheUsage {
        self.inner.pages.usage()
    }

    /// The page `make` renders, served from the page cache under `key` while the store's page
    /// generation stands. `make` reads only through this service (so only what the generation
    /// covers) and says whether its page may be kept: false when it also read something the
    /// generation does not cover. `key` must name everything the rendering depends on besides
    /// the store (account, filter, page, view); None: nothing is cached.
    pub async fn page_cached<E, Fut>(&self, key: Option<String>, make: impl FnOnce() -> Fut) -> Result<CachedPage, E>
    where
        E: From<ServiceError>,
        Fut: Future<Output = Result<(CachedPage, bool), E>>,
    {
        let generation = || async {
            match &key {
                Some(_) => self.meta().page_generation().await.map_err(ServiceError::from),
                None => Ok(None),
            }
        };
        let mut gen = generation().await?;
        if let (Some(gen), Some(key)) = (gen, &key) {
            if let Some(page) = self.inner.pages.get(gen, key) {
                return Ok(page);
            }
        }
        let nested = RENDERING.try_with(|_| ()).is_ok();
        let _permit = match nested {
            true => None,
            false => {
                let permit = self.inner.pages.renders.acquire().await.expect("the semaphore is never closed");
                // Rendered by another request while this one waited?
                gen = generation().await?;
                if let (Some(gen), Some(key)) = (gen, &key) {
                    if let Some(page) = self.inner.pages.get(gen, key) {
                        return Ok(page);
                    }
                }
                Some(permit)
            }
        };
        let (page, keep) = RENDERING.scope((), make()).await?;
        if let (true, Some(gen), Some(key)) = (keep, gen, key) {
            // The generation read the same before and after the page's reads: no write landed
            // in between, so every read saw that generation's state (a write in between could
            // leave a page of one state and a total of another: served once, not kept).
            if self.meta().page_generation().await.map_err(ServiceError::from)? == Some(gen) {
                self.inner.pages.put(gen, key, page.clone());
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(text: &str, total: u64) -> CachedPage {
        (Arc::from(text.as_bytes()), total)
    }

    #[test]
    fn a_page_is_served_only_at_its_generation() {
        let c = PageCache::default();
        c.put(3, "k".into(), page("[1]", 1));
        assert_eq!(c.get(3, "k").map(|p| p.1), Some(1));
        assert!(c.get(4, "k").is_none());
        assert!(c.get(2, "k").is_none());
        // a newer generation empties it; an older one is refused
        c.put(4, "j".into(), page("[2]", 2));
        assert!(c.get(3, "k").is_none() && c.get(4, "k").is_none());
        c.put(3, "k".into(), page("[1]", 1));
        assert!(c.get(3, "k").is_none() && c.get(4, "k").is_none());
        assert_eq!(c.get(4, "j").map(|p| p.1), Some(2));
    }

    #[test]
    fn it_stays_within_its_bytes() {
        let c = PageCache::default();
        let big = "x".repeat(MAX_BYTES / 3);
        for i in 0..10 {
            c.put(1, format!("k{i}"), page(&big, i));
            let state = c.state.lock().unwrap();
            assert!(state.bytes <= MAX_BYTES, "{} bytes", state.bytes);
        }
        assert_eq!(c.get(1, "k9").map(|p| p.1), Some(9));
    }
}
