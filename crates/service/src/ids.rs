//! Resource ids: one 8-character lowercase base-36 suffix per resource, shown by each dialect
//! with its own prefix (`vol-`, `d-`, `disk-`, …). Stored bare; any known prefix is accepted on
//! input, so an id copied from one client works in another.

use crate::model::Kind;

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
pub const SUFFIX_LEN: usize = 8;

/// A fresh random suffix (36^8 ≈ 2.8e12: collisions are checked by the primary key anyway).
pub fn new_id() -> String {
    (0..SUFFIX_LEN).map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char).collect()
}

/// The prefixes each vendor uses for a kind of resource.
pub fn prefixes(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Volume => &["vol-", "vom-", "d-", "disk-"],
        Kind::Snapshot => &["ss-", "s-", "snap-"],
        Kind::Instance => &["i-", "ins-"],
        Kind::Image => &["img-", "m-"],
        Kind::Job => &["j-"],
        Kind::Tag => &["tag-"],
        Kind::Chain => &["sl-", "ss-", "s-", "snap-"],
    }
}

/// The canonical display form used by disksnap's own CLI (QingCloud's prefixes).
pub fn display(kind: Kind, suffix: &str) -> String {
    format!("{}{suffix}", prefixes(kind)[0])
}

/// Accept `vol-k3x9a2bq`, `d-k3x9a2bq`, `K3X9A2BQ`… and return the bare suffix, or None when the
/// text cannot name a resource of this kind.
pub fn parse(kind: Kind, text: &str) -> Option<String> {
    let t = text.trim().to_ascii_lowercase();
    let bare = prefixes(kind).iter().find_map(|p| t.strip_prefix(p)).unwrap_or(&t);
    (bare.len() == SUFFIX_LEN && bare.bytes().all(|b| ALPHABET.contains(&b))).then(|| bare.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rendering_names_the_same_resource() {
        let id = new_id();
        for p in prefixes(Kind::Volume) {
            assert_eq!(parse(Kind::Volume, &format!("{p}{id}")), Some(id.clone()));
        }
        assert_eq!(parse(Kind::Volume, &id.to_uppercase()), Some(id.clone()));
        assert_eq!(parse(Kind::Volume, "vol-short"), None);
        assert_eq!(parse(Kind::Volume, "vol-abc/../x"), None);
        assert_eq!(display(Kind::Snapshot, &id), format!("ss-{id}"));
    }
}
