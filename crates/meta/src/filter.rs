//! List filters: the one vocabulary of a list, from a dialect through the service to SQL. Every
//! field is an indexed SQL condition in the backends, never a scan in memory.
//!
//! A dialect fills a filter with what its caller asked (ids in any rendering the service
//! accepts, the service's state words); the service sets `account` from the caller, resolves
//! ids, chain and zone to what rows hold and bounds the page, and hands the same filter to the
//! store.

use crate::rows::Millis;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Newest `create_time` first, ties by id (the default every dialect documents or implies).
    #[default]
    NewestFirst,
    OldestFirst,
}

impl Order {
    pub fn oldest_first(yes: bool) -> Order {
        if yes {
            Order::OldestFirst
        } else {
            Order::NewestFirst
        }
    }
}

/// One key of a list's order (Cinder's `sort`), on the column or value a dialect shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Id,
    CreateTime,
    /// When the row's status last changed (Cinder's `updated_at`).
    StatusTime,
    Name,
    Description,
    /// The status word the dialect shows ([`Shown`]).
    Shown,
    /// The snapshot's volume (snapshots; volumes have none and sort it as equal).
    VolumeId,
    /// The size in GiB, rounded up: a snapshot's volume size, a volume's size.
    SizeGib,
    Zone,
    /// The volume is a system disk, false before true (volumes; Cinder's `bootable`).
    System,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub ascending: bool,
}

/// The status word a dialect shows for a row, given so that filtering and sorting by it run in
/// SQL like every other field (issue 11: one list path).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shown {
    /// `(status, transition, word)` rules, the first that matches a row giving its word (None:
    /// any value); a row no rule matches shows the empty word.
    pub words: Vec<(Option<String>, Option<String>, String)>,
    /// Words a dialect set on single rows, `(bare id, word, set at)`: shown instead of the
    /// rule's while set at or after the row's `status_time`, its last real change (Cinder's
    /// `os-reset_status`). They live in the dialect's request state, read with the list.
    pub overrides: Vec<(String, String, Millis)>,
}

#[derive(Clone, Debug, Default)]
pub struct SnapshotFilter {
    pub account: String,
    pub ids: Vec<String>,
    pub volume_ids: Vec<String>,
    pub instance_ids: Vec<String>,
    /// The chain, by its full point's id (or the chain's rendering, to the service).
    pub root_id: Option<String>,
    pub is_full: Option<bool>,
    /// Any of these statuses; empty means every status except `ceased`.
    pub statuses: Vec<String>,
    /// Any of these transitions (empty: any). Lets a dialect whose status words mix status and
    /// transition (Cinder's `deleting`, `restoring`) filter in SQL.
    pub transitions: Vec<String>,
    /// None of these transitions.
    pub not_transitions: Vec<String>,
    pub zone: Option<String>,
    pub name: Option<String>,
    /// Any of these names (empty: any; Tencent's `snapshot-name` values).
    pub names: Vec<String>,
    /// Substring of id, name or description (empty: none).
    pub search: Option<String>,
    /// The name holds this text, case-sensitively (Cinder's `name~`).
    pub name_contains: Option<String>,
    /// The description holds this text, case-sensitively (Cinder's `description~`).
    pub description_contains: Option<String>,
    /// The point's metadata holds every one of these key/value pairs (Cinder's `metadata`).
    pub metadata: Vec<(String, String)>,
    /// Bound to every one of these tag ids.
    pub tag_ids: Vec<String>,
    /// Bound to a tag with this key (and value, when given), for each pair.
    pub tag_pairs: Vec<(String, Option<String>)>,
    /// For each set, bound to at least one of its tag ids (an empty set: nothing matches).
    /// Tencent's `tag-key`, `tag-value` and `tag:<key>` filters, whose values are alternatives.
    pub tag_any: Vec<Vec<String>>,
    pub created_from: Option<Millis>,
    pub created_to: Option<Millis>,
    pub origin: Option<String>,
    pub volume_kind: Option<String>,
    pub encrypted: Option<bool>,
    /// Only points some image or volume was made from (`Some(true)`) or none was (`Some(false)`).
    pub in_use: Option<bool>,
    /// Some image was made from the point (`Some(true)`) or none was (`Some(false)`).
    pub used_by_images: Option<bool>,
    /// Some volume was made from the point (`Some(true)`) or none was (`Some(false)`).
    pub used_by_volumes: Option<bool>,
    /// How the status words of `shown_in` and [`SortKey::Shown`] are made.
    pub shown: Shown,
    /// The shown status is any of these words (empty: any).
    pub shown_in: Vec<String>,
    pub order: Order,
    /// When not empty, the order instead of `order`: these keys in turn, then `id` ascending
    /// if they do not name it. No index has such an order; the matches are sorted.
    pub sort: Vec<Sort>,
    /// Keyset cursor: only rows strictly after this `(create_time, id)` in `order` (Cinder's
    /// `marker`). Unlike `offset`, the page reads only its own index entries however deep it
    /// is. It narrows the page, not `total`, which counts every match of the other fields.
    /// With `sort`, the row with this id gives the values to continue after.
    pub after: Option<(Millis, String)>,
    /// Skip the `COUNT(*)` (its cost grows with the matches; a keyset page's does not): `total`
    /// is then 0. For callers that do not show a total (Cinder without `with_count`).
    pub skip_count: bool,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Clone, Debug, Default)]
pub struct VolumeFilter {
    pub account: String,
    pub ids: Vec<String>,
    pub instance_ids: Vec<String>,
    pub zone: Option<String>,
    pub kind: Option<String>,
    /// Exactly this name.
    pub name: Option<String>,
    /// Any of these; empty means every status except `deleted`.
    pub statuses: Vec<String>,
    pub search: Option<String>,
    /// The name holds this text, case-sensitively (Cinder's `name~`).
    pub name_contains: Option<String>,
    /// The description holds this text, case-sensitively (Cinder's `description~`).
    pub description_contains: Option<String>,
    /// The size in GiB, rounded up, is this (Cinder's `size`).
    pub size_gib: Option<u64>,
    pub tag_ids: Vec<String>,
    /// Made from any of these snapshots (`volumes.source_snapshot`, bare ids; empty: any).
    pub source_snapshots: Vec<String>,
    /// As [`SnapshotFilter::shown`].
    pub shown: Shown,
    /// As [`SnapshotFilter::shown_in`].
    pub shown_in: Vec<String>,
    pub order: Order,
    /// As [`SnapshotFilter::sort`].
    pub sort: Vec<Sort>,
    /// Keyset cursor, as [`SnapshotFilter::after`].
    pub after: Option<(Millis, String)>,
    /// As [`SnapshotFilter::skip_count`].
    pub skip_count: bool,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub account: Option<String>,
    pub ids: Vec<String>,
    pub statuses: Vec<String>,
    /// Any of these actions (empty: any).
    pub actions: Vec<String>,
    pub offset: u64,
    pub limit: u64,
}

/// One page and the total count of matches.
#[derive(Clone, Debug, Default)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}
