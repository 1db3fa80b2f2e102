//! Store dictionaries: zstd dictionaries trained on a store's own chunks, used by
//! [`Store::compact`](crate::store::Store) to re-encode packs written at capture speed.
//!
//! A 128 KiB chunk compressed alone gives zstd little history: on the bench's text, level 1
//! reaches 1.76:1 where restic's ~1 MiB blobs reach ~2.05:1. A dictionary of the store's
//! common strings lifts level 2 to ~2.3:1 at about a third of level 1's speed, too slow for a
//! capture (the full-snapshot targets) but affordable afterwards, in `disksnap compact`.
//!
//! A dictionary is an immutable object `dicts/<id as 8 hex>.zdict` whose id (the 32-bit field
//! zstd writes into every frame made with it) is derived from its content, so one id names one
//! content in every store and process: a frame names its dictionary, a reader loads it by id
//! from the stores it knows ([`register_source`]) the first time it meets it, and a damaged or
//! substituted dictionary object is refused (its content no longer gives its id).
//! The object is put before any pack that uses it, so a durable frame's dictionary is durable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use zstd::dict::DecoderDictionary;

use crate::backend::Backend;
use crate::error::{EngineError, Result};

/// What [`train`] aims for: larger dictionaries gained little more on the bench's text
/// (256 KiB: 2.33:1 at level 2; 1 MiB: 2.34:1) and cost more to load and to train.
const DICT_SIZE: usize = 256 << 10;
/// zstd's dictionary magic (the first 4 bytes of a trained dictionary); the id follows it.
const DICT_MAGIC: [u8; 4] = [0x37, 0xA4, 0x30, 0xEC];

/// A store dictionary ready to compress with (its bytes checked against its id).
pub struct StoreDict {
    pub id: u32,
    pub bytes: Vec<u8>,
}

/// The key of dictionary `id`.
pub fn dict_key(id: u32) -> String {
    format!("dicts/{id:08x}.zdict")
}

/// The id of a dictionary key, if it is one.
pub fn dict_id_of_key(key: &str) -> Option<u32> {
    let hex = key.strip_prefix("dicts/")?.strip_suffix(".zdict")?;
    (hex.len() == 8).then(|| u32::from_str_radix(hex, 16).ok()).flatten()
}

/// The id a dictionary's content gives: from BLAKE3 of everything but the id field, within
/// 32 768 ..= 2^31 - 1 (zstd reserves the ids below and above for public dictionaries).
fn content_id(dict: &[u8]) -> u32 {
    let mut h = blake3::Hasher::new();
    h.update(&dict[..4]);
    h.update(&dict[8..]);
    let n = u32::from_le_bytes(h.finalize().as_bytes()[..4].try_into().unwrap());
    32_768 + n % ((1 << 31) - 32_768)
}

/// The id a dictionary's bytes carry, if they are a zstd dictionary whose id is its content's.
pub fn checked_id(dict: &[u8]) -> Option<u32> {
    if dict.len() < 8 || dict[..4] != DICT_MAGIC {
        return None;
    }
    let id = u32::from_le_bytes(dict[4..8].try_into().unwrap());
    (id == content_id(dict)).then_some(id)
}

/// Train a dictionary on samples (raw chunks, one after another in `samples`, their lengths in
/// `sizes`: one buffer, where a list of them would be copied into one by zstd), its id set from
/// its content. None when zstd finds too little in common to build one.
pub fn train(samples: &[u8], sizes: &[usize]) -> Option<Vec<u8>> {
    let mut dict = zstd::dict::from_continuous(samples, sizes, DICT_SIZE.min(samples.len() / 8)).ok()?;
    if dict.len() < 8 || dict[..4] != DICT_MAGIC {
        return None;
    }
    let id = content_id(&dict);
    dict[4..8].copy_from_slice(&id.to_le_bytes());
    Some(dict)
}

/// Dictionaries ready to decode with, by id. Leaked on purpose: a process meets a handful
/// (one per store it opens), and a `'static` one can sit in a thread's reused decompressor.
fn loaded() -> &'static RwLock<HashMap<u32, &'static DecoderDictionary<'static>>> {
    static LOADED: OnceLock<RwLock<HashMap<u32, &'static DecoderDictionary<'static>>>> = OnceLock::new();
    LOADED.get_or_init(Default::default)
}

/// The backends of the stores this process opened, where a dictionary not loaded yet is
/// looked for (weak: a store that is dropped stops being one).
fn sources() -> &'static Mutex<Vec<Weak<dyn Backend>>> {
    static SOURCES: OnceLock<Mutex<Vec<Weak<dyn Backend>>>> = OnceLock::new();
    SOURCES.get_or_init(Default::default)
}

/// Look for dictionaries in `backend` when a frame names one not loaded yet.
pub fn register_source(backend: &Arc<dyn Backend>) {
    let mut s = sources().lock().unwrap_or_else(|p| p.into_inner());
    s.retain(|w| w.strong_count() > 0);
    s.push(Arc::downgrade(backend));
}

/// Make a newly trained dictionary the store's: loaded for decoders, then put in `backend`,
/// durably, before any frame names it.
pub fn publish(backend: &dyn Backend, dict: Vec<u8>) -> Result<StoreDict> {
    let id = load(&dict)?;
    backend.put(&dict_key(id), dict.clone())?;
    Ok(StoreDict { id, bytes: dict })
}

/// Make `dict` (checked) available to decoders.
pub fn load(dict: &[u8]) -> Result<u32> {
    let id = checked_id(dict)
        .ok_or_else(|| EngineError::Invalid("not a store dictionary (its id is not its content's)".into()))?;
    let mut map = loaded().write().unwrap_or_else(|p| p.into_inner());
    map.entry(id).or_insert_with(|| Box::leak(Box::new(DecoderDictionary::copy(dict))));
    Ok(id)
}

/// Forget every loaded dictionary, so the next frame that needs one loads it from a store
/// again (tests of that path; decoders already handed out stay valid).
pub fn forget_loaded() {
    loaded().write().unwrap_or_else(|p| p.into_inner()).clear();
}

/// The decoder for dictionary `id`: loaded, or fetched from a registered store now.
pub fn decoder(id: u32) -> std::result::Result<&'static DecoderDictionary<'static>, String> {
    if let Some(d) = loaded().read().unwrap_or_else(|p| p.into_inner()).get(&id) {
        return Ok(d);
    }
    let backends: Vec<Arc<dyn Backend>> =
        sources().lock().unwrap_or_else(|p| p.into_inner()).iter().filter_map(Weak::upgrade).collect();
    for b in backends {
        if let Ok(bytes) = b.get(&dict_key(id)) {
            if checked_id(&bytes) == Some(id) {
                load(&bytes).map_err(|e| e.to_string())?;
                return Ok(loaded().read().unwrap_or_else(|p| p.into_inner())[&id]);
            }
        }
    }
    Err(format!("the frame needs dictionary {id:08x}, which no open store holds intact ({})", dict_key(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn text_samples(n: usize) -> Vec<Vec<u8>> {
        let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"];
        let mut x = 7u64;
        (0..n)
            .map(|_| {
                let mut s = Vec::new();
                while s.len() < 32 << 10 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    s.extend_from_slice(words[(x >> 33) as usize % words.len()].as_bytes());
                    s.push(if x.is_multiple_of(13) { b'\n' } else { b' ' });
                }
                s
            })
            .collect()
    }

    #[test]
    fn a_dictionary_is_named_by_its_content() {
        let samples = text_samples(64);
        let sizes: Vec<usize> = samples.iter().map(Vec::len).collect();
        let dict = train(&samples.concat(), &sizes).expect("trained");
        let id = checked_id(&dict).expect("its own id");
        assert!((32_768..1 << 31).contains(&id));
        assert_eq!(dict_id_of_key(&dict_key(id)), Some(id));
        let mut bad = dict.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(checked_id(&bad), None, "a changed byte must change the id it should have");
        assert!(load(&bad).is_err());
        assert_eq!(load(&dict).unwrap(), id);
        assert!(decoder(id).is_ok());
        assert!(decoder(id ^ 1).is_err());
    }
}
