//! Resource ids: one 8-character lowercase base-36 suffix per resource, stored bare. Each dialect
//! shows it its own way (`vol-`, `d-`, `disk-`… prefixes, or a UUID); the prefixes are the
//! dialects' tables, not this crate's. Every id a client sends is read here, whichever dialect
//! receives it (dialects.md, the ID rule: any dialect accepts any rendering), so an id copied
//! from one client works in another, and a dialect added later needs nothing here:
//!
//! - the bare suffix (`k3x9a2bq`, any case);
//! - any `<letters>-<suffix>` (`vol-k3x9a2bq`, `d-k3x9a2bq`, `disk-…`, a prefix not yet known);
//! - the UUID rendering [`uuid`] (`d15c0002-0000-4000-8000-016ee6771d0e`), which carries its
//!   kind; UUID-speaking APIs (Cinder, EVS) show ids this way and any dialect reads it back.
//!
//! A dialect that wants to refuse an id of the wrong kind (Tencent's `disk-…` given as a
//! snapshot) reads with [`read_with`] and its own prefix table.

use crate::model::Kind;

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
pub const SUFFIX_LEN: usize = 8;

/// Longest prefix read before the `-` (QingCloud's `disk-`… are 2–5 letters; room to spare).
const MAX_PREFIX_LEN: usize = 8;

/// Every kind, for walking a dialect's prefix table.
pub const KINDS: [Kind; 9] = [
    Kind::Volume,
    Kind::Snapshot,
    Kind::Instance,
    Kind::Image,
    Kind::Job,
    Kind::Tag,
    Kind::Chain,
    Kind::Policy,
    Kind::SnapshotGroup,
];

/// A fresh random suffix (36^8 ≈ 2.8e12: collisions are checked by the primary key anyway).
pub fn new_id() -> String {
    (0..SUFFIX_LEN).map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char).collect()
}

/// Why a text does not name a resource of the kind asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdError {
    /// It cannot be an id at all (wrong length, characters outside base 36, a UUID not ours).
    Malformed,
    /// It is recognisably an id of another kind: a UUID whose kind is another, or (with
    /// [`read_with`]) a prefix the dialect's own table gives another kind.
    WrongKind(Kind),
}

/// Does an id shown as a `named` id name a resource of `kind`? A snapshot chain is named by its
/// root point's id, so a chain accepts a snapshot's rendering too.
fn accepts(kind: Kind, named: Kind) -> bool {
    named == kind || (kind == Kind::Chain && named == Kind::Snapshot)
}

/// The first group of a UUID rendering: `d15c` (disc) and the kind's number.
fn uuid_tag(kind: Kind) -> &'static str {
    match kind {
        Kind::Volume => "d15c0001",
        Kind::Snapshot => "d15c0002",
        Kind::Instance => "d15c0003",
        Kind::Image => "d15c0004",
        Kind::Job => "d15c0005",
        Kind::Tag => "d15c0006",
        Kind::Chain => "d15c0007",
        Kind::Policy => "d15c0008",
        Kind::SnapshotGroup => "d15c0009",
    }
}

/// The UUID rendering of a bare id: `k3x9a0b2` as a snapshot → `d15c0002-0000-4000-8000-016ee6771d0e`
/// (the suffix as a base-36 number in the last group; reversible, so no table is kept).
pub fn uuid(kind: Kind, bare: &str) -> String {
    let n = bare
        .bytes()
        .try_fold(0u64, |acc, b| ALPHABET.iter().position(|&a| a == b).map(|d| acc * 36 + d as u64))
        .unwrap_or(0);
    format!("{}-0000-4000-8000-{n:012x}", uuid_tag(kind))
}

/// `Some` when `t` (lower case, trimmed) has the shape of a UUID: then the kind it carries and
/// the bare id, or Malformed when it is a UUID disksnap did not make.
fn read_uuid(t: &str) -> Option<Result<(Kind, String), IdError>> {
    let parts: Vec<&str> = t.split('-').collect();
    if parts.len() != 5 || !parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) {
        return None;
    }
    let decoded = (|| {
        let kind = KINDS.into_iter().find(|k| uuid_tag(*k) == parts[0])?;
        if parts[1..4] != ["0000", "4000", "8000"] {
            return None;
        }
        let mut n = u64::from_str_radix(parts[4], 16).ok()?;
        let mut out = [b'0'; SUFFIX_LEN];
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(n % 36) as usize];
            n /= 36;
        }
        // A number past 36^8 names no suffix.
        (n == 0).then(|| (kind, String::from_utf8_lossy(&out).into_owned()))
    })();
    Some(decoded.ok_or(IdError::Malformed))
}

/// The `<letters>` before the `-` of a prefixed id (`vol` of `vol-k3x9a2bq`), and the rest.
fn split_prefix(t: &str) -> Option<(&str, &str)> {
    t.split_once('-')
        .filter(|(p, _)| (1..=MAX_PREFIX_LEN).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase()))
}

fn bare_suffix(t: &str) -> Result<String, IdError> {
    let ok = t.len() == SUFFIX_LEN && t.bytes().all(|b| ALPHABET.contains(&b));
    if ok {
        Ok(t.to_string())
    } else {
        Err(IdError::Malformed)
    }
}

/// Read `text` as an id of `kind` in any rendering (see the module doc) and return the bare
/// suffix. Any `<letters>-` prefix is accepted: which prefix a vendor gives which kind is the
/// dialect's table ([`read_with`]).
pub fn read(kind: Kind, text: &str) -> Result<String, IdError> {
    let t = text.trim().to_ascii_lowercase();
    if let Some(u) = read_uuid(&t) {
        let (named, bare) = u?;
        return if accepts(kind, named) { Ok(bare) } else { Err(IdError::WrongKind(named)) };
    }
    match split_prefix(&t) {
        Some((_, rest)) => bare_suffix(rest),
        None => bare_suffix(&t),
    }
}

/// [`read`], and a prefix that a dialect's own table (`own`: the kind's prefix with its `-`,
/// empty for a kind shown bare) gives another kind is [`IdError::WrongKind`]: Tencent's
/// `disk-…` given as a snapshot, QingCloud's `vol-…` as a snapshot. Other vendors' prefixes are
/// read as any rendering.
pub fn read_with(kind: Kind, text: &str, own: impl Fn(Kind) -> &'static str) -> Result<String, IdError> {
    if let Some(named) = named_kind(text, &own) {
        if !accepts(kind, named) && !own_prefix_of(kind, text, &own) {
            return Err(IdError::WrongKind(named));
        }
    }
    read(kind, text)
}

/// Does `text` start with the prefix `own` gives `kind` (or a kind `kind` accepts)?
fn own_prefix_of(kind: Kind, text: &str, own: &impl Fn(Kind) -> &'static str) -> bool {
    let t = text.trim().to_ascii_lowercase();
    KINDS.into_iter().filter(|k| accepts(kind, *k)).any(|k| !own(k).is_empty() && t.starts_with(own(k)))
}

/// The kind `text` shows itself to be, if it does: a UUID's kind, or the kind whose prefix it
/// has in the dialect's own table `own` (None for a bare id or another vendor's prefix).
pub fn named_kind(text: &str, own: impl Fn(Kind) -> &'static str) -> Option<Kind> {
    let t = text.trim().to_ascii_lowercase();
    if let Some(u) = read_uuid(&t) {
        return u.ok().map(|(k, _)| k);
    }
    let (prefix, _) = split_prefix(&t)?;
    // Two kinds may share a prefix (Tencent's snapshot and chain): the first in KINDS.
    KINDS.into_iter().find(|k| own(*k).strip_suffix('-') == Some(prefix))
}

/// [`read`] as an Option: the bare suffix, or None when the text cannot name a `kind`.
pub fn parse(kind: Kind, text: &str) -> Option<String> {
    read(kind, text).ok()
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

    #[test]
    fn uuids_read_back_with_their_kind() {
        assert_eq!(uuid(Kind::Snapshot, "k3x9a0b2"), "d15c0002-0000-4000-8000-016ee6771d0e");
        assert_eq!(parse(Kind::Snapshot, "D15C0002-0000-4000-8000-016EE6771D0E").as_deref(), Some("k3x9a0b2"));
        for kind in KINDS {
            for bare in [new_id(), "00000000".into(), "zzzzzzzz".into()] {
                assert_eq!(read(kind, &uuid(kind, &bare)), Ok(bare.clone()), "{kind:?}");
            }
        }
        let vol = uuid(Kind::Volume, "k3x9a0b2");
        assert_eq!(read(Kind::Snapshot, &vol), Err(IdError::WrongKind(Kind::Volume)));
        assert_eq!(read(Kind::Chain, &uuid(Kind::Snapshot, "k3x9a0b2")).as_deref(), Ok("k3x9a0b2"));
        assert_eq!(read(Kind::Volume, "6d0b8a3e-8c1f-4bd2-9a1c-1b2c3d4e5f60"), Err(IdError::Malformed));
        assert_eq!(read(Kind::Snapshot, "d15c0002-0000-4000-8000-ffffffffffff"), Err(IdError::Malformed));
        assert_eq!(named_kind(&vol, |_| ""), Some(Kind::Volume));
    }

    #[test]
    fn a_dialect_refuses_its_own_prefix_of_another_kind() {
        let tencent = |k: Kind| match k {
            Kind::Snapshot | Kind::Chain => "snap-",
            Kind::Volume => "disk-",
            Kind::Instance => "ins-",
            Kind::Image => "img-",
            Kind::Job => "",
            Kind::Tag => "tag-",
            Kind::Policy => "asp-",
            Kind::SnapshotGroup => "ssg-",
        };
        let qingcloud = |k: Kind| match k {
            Kind::Volume => "vol-",
            Kind::Snapshot => "ss-",
            Kind::Chain => "sl-",
            _ => "x-",
        };
        let id = "k3x9a0b2";
        assert_eq!(read_with(Kind::Snapshot, &format!("disk-{id}"), tencent), Err(IdError::WrongKind(Kind::Volume)));
        assert_eq!(read_with(Kind::Snapshot, &format!("DISK-{id}"), tencent), Err(IdError::WrongKind(Kind::Volume)));
        assert_eq!(read_with(Kind::Snapshot, &format!("snap-{id}"), tencent).as_deref(), Ok(id));
        assert_eq!(read_with(Kind::Chain, &format!("snap-{id}"), tencent).as_deref(), Ok(id));
        // another vendor's prefix, the bare id and the UUID are any rendering
        for t in [format!("ss-{id}"), format!("vol-{id}"), id.to_string(), uuid(Kind::Snapshot, id)] {
            assert_eq!(read_with(Kind::Snapshot, &t, tencent).as_deref(), Ok(id), "{t}");
        }
        assert_eq!(read_with(Kind::Snapshot, &uuid(Kind::Volume, id), tencent), Err(IdError::WrongKind(Kind::Volume)));
        assert_eq!(read_with(Kind::Snapshot, &format!("vol-{id}"), qingcloud), Err(IdError::WrongKind(Kind::Volume)));
        assert_eq!(read_with(Kind::Chain, &format!("ss-{id}"), qingcloud).as_deref(), Ok(id));
        assert_eq!(read_with(Kind::Chain, &format!("sl-{id}"), qingcloud).as_deref(), Ok(id));
        assert_eq!(read_with(Kind::Snapshot, &format!("sl-{id}"), qingcloud), Err(IdError::WrongKind(Kind::Chain)));
        assert_eq!(read_with(Kind::Snapshot, "disk-short", tencent), Err(IdError::WrongKind(Kind::Volume)));
    }
}
