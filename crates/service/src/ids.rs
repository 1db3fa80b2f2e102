//! Resource ids: one 8-character lowercase base-36 suffix per resource, stored bare. Each dialect
//! shows it with its own prefix (`vol-`, `d-`, `disk-`, a UUID…); those renderings are the
//! dialects' tables, not this crate's. On input the service reads any `<letters>-<suffix>` (and
//! the bare suffix), so an id copied from one client works in another, and a dialect added later
//! needs nothing here.

use crate::model::Kind;

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
pub const SUFFIX_LEN: usize = 8;

/// Longest prefix read before the `-` (QingCloud's `disk-`… are 2–5 letters; room to spare).
const MAX_PREFIX_LEN: usize = 8;

/// A fresh random suffix (36^8 ≈ 2.8e12: collisions are checked by the primary key anyway).
pub fn new_id() -> String {
    (0..SUFFIX_LEN).map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char).collect()
}

/// Accept `vol-k3x9a2bq`, `d-k3x9a2bq`, `K3X9A2BQ`… and return the bare suffix, or None when the
/// text cannot name a resource. `kind` is what the caller reads; every kind reads the same way
/// (which prefix a vendor gives which kind is the dialect's to check, if it cares).
pub fn parse(_kind: Kind, text: &str) -> Option<String> {
    let t = text.trim().to_ascii_lowercase();
    let bare = match t.split_once('-') {
        Some((prefix, rest))
            if (1..=MAX_PREFIX_LEN).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_lowercase()) =>
        {
            rest
        }
        _ => &t,
    };
    (bare.len() == SUFFIX_LEN && bare.bytes().all(|b| ALPHABET.contains(&b))).then(|| bare.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_prefix_names_the_same_resource() {
        let id = new_id();
        for p in ["vol-", "vom-", "d-", "disk-", "ss-", "snap-", "sl-", "ins-", "newvend-"] {
            assert_eq!(parse(Kind::Volume, &format!("{p}{id}")), Some(id.clone()), "{p}");
        }
        assert_eq!(parse(Kind::Volume, &id.to_uppercase()), Some(id.clone()));
        assert_eq!(parse(Kind::Volume, &format!(" {id} ")), Some(id.clone()));
        assert_eq!(parse(Kind::Volume, "vol-short"), None);
        assert_eq!(parse(Kind::Volume, "vol-abc/../x"), None);
        assert_eq!(parse(Kind::Volume, "not an id"), None);
        assert_eq!(parse(Kind::Volume, &format!("v0l-{id}")), None, "a prefix is letters only");
        assert_eq!(parse(Kind::Volume, &format!("-{id}")), None);
        assert_eq!(parse(Kind::Volume, &format!("toolongprefix-{id}")), None);
        assert_eq!(parse(Kind::Snapshot, &format!("ss-{id}-x")), None);
    }
}
