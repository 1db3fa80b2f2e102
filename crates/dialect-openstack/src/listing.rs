//! Cinder's list parameters (dialect-openstack.md §5.5, §6.3): filters, `sort` / `sort_key` +
//! `sort_dir`, `marker`, `offset`, `limit` and the next link. Every list is keyset queries on
//! the metadata store (cinder::list_page, volumes' list): the filters, the sort keys (see
//! [`sort_keys`]) and the status shown, overrides included, are SQL.

use disksnap_service::{Kind, Order, ServiceError, Sort, SortKey};

use crate::error::{OsError, OsResult};
use crate::microversion::Version;

/// Default and ceiling of a page (`osapi_max_limit`).
pub const MAX_LIMIT: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Snapshots,
    Volumes,
}

#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub limit: Option<usize>,
    pub marker: Option<String>,
    pub offset: usize,
    pub sort: Vec<(String, bool)>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub volume_id: Option<String>,
    pub zone: Option<String>,
    pub bootable: Option<bool>,
    pub size: Option<u64>,
    pub metadata: Vec<(String, String)>,
    pub name_like: Option<String>,
    pub description_like: Option<String>,
    pub with_count: bool,
    /// A filter that can match nothing here (e.g. `consumes_quota=false`).
    pub match_nothing: bool,
}

fn bad(m: impl Into<String>) -> OsError {
    OsError::BadRequest(m.into())
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// A Python-literal dict such as `{'k': 'v'}` or JSON (`{"k": "v"}`): string pairs only.
pub fn parse_metadata_filter(text: &str) -> OsResult<Vec<(String, String)>> {
    let t = text.trim();
    let fix: String = {
        // Turn single-quoted Python strings into JSON strings.
        let mut out = String::new();
        let mut quote: Option<char> = None;
        for c in t.chars() {
            match (quote, c) {
                (None, '\'') => {
                    quote = Some('\'');
                    out.push('"');
                }
                (Some('\''), '\'') => {
                    quote = None;
                    out.push('"');
                }
                (Some('\''), '"') => out.push_str("\\\""),
                (None, '"') => {
                    quote = Some('"');
                    out.push('"');
                }
                (Some('"'), '"') => {
                    quote = None;
                    out.push('"');
                }
                _ => out.push(c),
            }
        }
        out
    };
    let v: serde_json::Value = serde_json::from_str(&fix).map_err(|_| bad(format!("Invalid metadata filter {t}")))?;
    let obj = v.as_object().ok_or_else(|| bad(format!("Invalid metadata filter {t}")))?;
    obj.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
            other => Ok((k.clone(), other.to_string())),
        })
        .collect()
}

const SNAPSHOT_SORT_KEYS: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "display_name",
    "display_description",
    "status",
    "volume_id",
    "volume_size",
    "project_id",
    "user_id",
];
const VOLUME_SORT_KEYS: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "display_name",
    "display_description",
    "status",
    "size",
    "availability_zone",
    "bootable",
    "project_id",
    "user_id",
    "volume_type_id",
];

/// Parse the query. `strict` (Cinder ≥ 3.31): unknown filters → 400; else they are dropped.
pub fn parse(pairs: &[(String, String)], target: Target, version: Version, strict: bool) -> OsResult<ListParams> {
    let mut p = ListParams::default();
    let (mut sort, mut sort_key, mut sort_dir) = (None, None, None);
    let mut unknown = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "limit" => {
                let n: i64 = v.trim().parse().map_err(|_| bad("limit param must be an integer"))?;
                if n < 0 {
                    return Err(bad("limit param must be positive"));
                }
                p.limit = Some((n as usize).min(MAX_LIMIT));
            }
            "marker" => p.marker = Some(v.clone()),
            "offset" => {
                let n: i64 = v.trim().parse().map_err(|_| bad(format!("Invalid value '{v}' for offset")))?;
                if n < 0 {
                    return Err(bad(format!("Invalid value '{v}' for offset: must be >= 0")));
                }
                p.offset = n as usize;
            }
            "sort" => sort = Some(v.clone()),
            "sort_key" => sort_key = Some(v.clone()),
            "sort_dir" => sort_dir = Some(v.clone()),
            "all_tenants" | "project_id" | "is_public" => {}
            "with_count" if version.at_least(3, 45) => {
                p.with_count = parse_bool(v).ok_or_else(|| bad(format!("Invalid value '{v}' for with_count")))?
            }
            "name" | "display_name" => p.name = Some(v.clone()),
            "status" => p.status = Some(v.clone()),
            "availability_zone" => p.zone = Some(v.clone()),
            "volume_id" if target == Target::Snapshots => p.volume_id = Some(v.clone()),
            "bootable" if target == Target::Volumes => {
                p.bootable = Some(parse_bool(v).ok_or_else(|| bad(format!("Invalid value '{v}' for bootable")))?)
            }
            "size" if target == Target::Volumes => {
                p.size = Some(v.trim().parse().map_err(|_| bad(format!("Invalid value '{v}' for size")))?)
            }
            "metadata" if target == Target::Volumes || version.at_least(3, 22) || !strict => {
                p.metadata = parse_metadata_filter(v)?
            }
            "name~" | "display_name~" if version.at_least(3, 34) => p.name_like = Some(v.clone()),
            "description~" | "display_description~" if version.at_least(3, 34) => p.description_like = Some(v.clone()),
            "consumes_quota" if version.at_least(3, 65) => {
                if !parse_bool(v).ok_or_else(|| bad(format!("Invalid value '{v}' for consumes_quota")))? {
                    p.match_nothing = true;
                }
            }
            "group_id" | "migration_status" | "created_at" | "updated_at" if target == Target::Volumes => {}
            "offset_token" => {}
            _ => unknown.push(k.clone()),
        }
    }
    if strict && !unknown.is_empty() {
        return Err(bad(format!("Invalid filters {} are found in query options.", unknown.join(","))));
    }
    let keys = match target {
        Target::Snapshots => SNAPSHOT_SORT_KEYS,
        Target::Volumes => VOLUME_SORT_KEYS,
    };
    let key_ok = |k: &str| keys.contains(&k) || (k == "name" && (target == Target::Volumes || version.at_least(3, 30)));
    let dir = |d: &str| match d.trim().to_ascii_lowercase().as_str() {
        "asc" => Ok(true),
        "desc" => Ok(false),
        _ => Err(bad("Invalid input received: Unknown sort direction, must be 'desc' or 'asc'")),
    };
    match (sort, sort_key.is_some() || sort_dir.is_some()) {
        (Some(_), true) => {
            return Err(bad(
                "Invalid input received: The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.",
            ))
        }
        (Some(s), false) => {
            for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let (k, d) = item.split_once(':').unwrap_or((item, "desc"));
                if !key_ok(k.trim()) {
                    return Err(bad("Invalid input received: Invalid sort key"));
                }
                p.sort.push((k.trim().to_string(), dir(d)?));
            }
        }
        (None, _) => {
            let keys: Vec<&str> = sort_key.as_deref().unwrap_or("").split(',').filter(|k| !k.is_empty()).collect();
            let dirs: Vec<&str> = sort_dir.as_deref().unwrap_or("").split(',').filter(|d| !d.is_empty()).collect();
            for (i, k) in keys.iter().enumerate() {
                if !key_ok(k.trim()) {
                    return Err(bad("Invalid input received: Invalid sort key"));
                }
                let d = dirs.get(i).or(dirs.last()).copied().unwrap_or("desc");
                p.sort.push((k.trim().to_string(), dir(d)?));
            }
            if keys.is_empty() {
                if let Some(d) = dirs.first() {
                    p.sort.push(("created_at".into(), dir(d)?));
                }
            }
        }
    }
    Ok(p)
}

/// The store's key for a Cinder sort key; None for the keys every item shares (one project,
/// one user and no volume types per account), which sort as equal.
fn store_key(key: &str) -> Option<SortKey> {
    Some(match key {
        "created_at" => SortKey::CreateTime,
        "updated_at" => SortKey::StatusTime,
        "name" | "display_name" => SortKey::Name,
        "display_description" => SortKey::Description,
        "status" => SortKey::Shown,
        "volume_id" => SortKey::VolumeId,
        "volume_size" | "size" => SortKey::SizeGib,
        "availability_zone" => SortKey::Zone,
        "bootable" => SortKey::System,
        "id" => SortKey::Id,
        _ => return None, // project_id, user_id, volume_type_id ([`parse`] refuses the rest)
    })
}

/// The order of a list: the requested keys, then `created_at` and `id` as Cinder adds them
/// (`db/sqlalchemy/api.py::process_sort_params`): the default keys take the first requested
/// key's direction, descending when none was asked. `created_at` (then `id`) one way is the
/// list index's own order (`Order`, no sort); any other is a [`Sort`] the store computes.
pub fn sort_keys(p: &ListParams) -> (Order, Vec<Sort>) {
    let default_asc = p.sort.first().is_some_and(|(_, asc)| *asc);
    let mut keys: Vec<Sort> =
        p.sort.iter().filter_map(|(k, asc)| store_key(k).map(|key| Sort { key, ascending: *asc })).collect();
    for key in [SortKey::CreateTime, SortKey::Id] {
        if !keys.iter().any(|s| s.key == key) {
            keys.push(Sort { key, ascending: default_asc });
        }
    }
    match keys.as_slice() {
        [Sort { key: SortKey::CreateTime, ascending: a }, Sort { key: SortKey::Id, ascending: b }, ..] if a == b => {
            // (Keys after a unique `id` never decide: the index order is the same order.)
            (Order::oldest_first(*a), Vec::new())
        }
        _ => (Order::NewestFirst, keys),
    }
}

/// The keyset cursor `(create_time ms, bare id)` a list continues after, from its `marker`: the
/// account's live item it names, whatever the filters (as the scan, which looks for it in the
/// unfiltered order), else a 404 naming the marker as sent (`word`: `Snapshot`, `Volume`).
/// `find` reads an item by bare id; `live` is a live item's cursor, None for any other item.
pub async fn marker_cursor<T, Fut>(
    marker: Option<&str>,
    kind: Kind,
    word: &str,
    find: impl FnOnce(String) -> Fut,
    live: impl FnOnce(&T) -> Option<(i64, String)>,
) -> OsResult<Option<(i64, String)>>
where
    Fut: std::future::Future<Output = Result<T, ServiceError>>,
{
    let Some(m) = marker else { return Ok(None) };
    let unknown = || OsError::NotFound(format!("{word} {m} could not be found."));
    // Any rendering of the id (dialects.md, the ID rule), as the filters read them.
    let Ok(bare) = disksnap_service::ids::read(kind, m) else { return Err(unknown()) };
    match find(bare).await {
        Ok(item) => live(&item).map(Some).ok_or_else(unknown),
        Err(ServiceError::NotFound { .. }) => Err(unknown()),
        Err(e) => Err(e.into()),
    }
}

/// The paging part of a keyset query, for [`keyset_page`]'s reader to put on its filter.
#[derive(Clone, Debug)]
pub struct Window {
    /// `(create_time ms, bare id)` the page continues strictly after.
    pub after: Option<(i64, String)>,
    pub offset: u64,
    pub limit: u64,
    pub skip_count: bool,
}

/// A page of a list read as keyset queries of at most `max_page` items each (the service's page
/// bound), continuing after `marker`: the items, the id a next link continues after (set when
/// the page is full, as Cinder's `_get_collection_links` does: a full last page still gets a
/// link; the next one is empty), and the count of matches (0 unless `with_count`; only the first
/// query counts). `read` runs one query; `cursor` is an item's `(create_time ms, bare id)`,
/// `shown` its id as the next link shows it.
pub async fn keyset_page<T, Fut>(
    p: &ListParams,
    marker: Option<(i64, String)>,
    nothing: bool,
    max_page: usize,
    mut read: impl FnMut(Window) -> Fut,
    cursor: impl Fn(&T) -> (i64, String),
    shown: impl Fn(&T) -> String,
) -> OsResult<(Vec<T>, Option<String>, usize)>
where
    Fut: std::future::Future<Output = OsResult<(Vec<T>, u64)>>,
{
    let limit = p.limit.unwrap_or(MAX_LIMIT);
    if nothing || (limit == 0 && !p.with_count) {
        return Ok((Vec::new(), None, 0));
    }
    let mut w = Window { after: marker, offset: p.offset as u64, limit: 0, skip_count: !p.with_count };
    let mut items: Vec<T> = Vec::new();
    let mut count = 0;
    loop {
        // A limit above the service's page continues with a keyset query after the last item,
        // never with an offset.
        let want = (limit - items.len()).clamp(1, max_page);
        w.limit = want as u64;
        let (page, total) = read(w.clone()).await?;
        if !w.skip_count {
            count = total as usize;
            w.skip_count = true;
        }
        let got = page.len();
        if limit == 0 {
            break; // a count only
        }
        items.extend(page);
        if got < want || items.len() >= limit {
            break;
        }
        w.after = items.last().map(&cursor);
        w.offset = 0;
    }
    items.truncate(limit);
    let next_marker = (limit > 0 && items.len() == limit).then(|| items.last().map(&shown)).flatten();
    Ok((items, next_marker, count))
}

/// The next link: the request's URL with `marker` replaced (§5.5).
pub fn next_href(base: &str, path: &str, raw_query: &str, marker: &str) -> String {
    let mut parts: Vec<String> = raw_query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some("marker"))
        .map(str::to_string)
        .collect();
    parts.push(format!("marker={marker}"));
    format!("{base}{path}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::microversion::{MAX, MIN};

    fn q(s: &str) -> Vec<(String, String)> {
        disksnap_api_common::encode::parse_pairs(s, |_| false)
    }

    #[test]
    fn params() {
        let p = parse(&q("limit=100000&sort=display_name:asc,id"), Target::Snapshots, MIN, false).unwrap();
        assert_eq!(p.limit, Some(1000));
        assert_eq!(p.sort, vec![("display_name".into(), true), ("id".into(), false)]);
        assert!(parse(&q("limit=x"), Target::Snapshots, MIN, false).is_err());
        assert!(parse(&q("limit=-1"), Target::Snapshots, MIN, false).is_err());
        assert!(parse(&q("sort_key=bogus"), Target::Snapshots, MIN, false).is_err());
        assert!(parse(&q("sort=id&sort_dir=asc"), Target::Snapshots, MIN, false).is_err());
        assert!(parse(&q("sort_key=name"), Target::Snapshots, MIN, false).is_err());
        assert!(parse(&q("sort_key=name"), Target::Snapshots, MAX, true).is_ok());
        assert!(parse(&q("bogus=1"), Target::Snapshots, MIN, false).is_ok());
        assert!(parse(&q("bogus=1&all_tenants=1"), Target::Snapshots, MAX, true).is_err());
        assert!(parse(&q("all_tenants=1"), Target::Snapshots, MAX, true).is_ok());
        let m = parse(&q("metadata=%7B%27Type%27%3A+%27work%27%7D"), Target::Volumes, MIN, false).unwrap();
        assert_eq!(m.metadata, vec![("Type".to_string(), "work".to_string())]);
    }

    #[test]
    fn cinder_sort_order() {
        let keys = |query: &str, target| sort_keys(&parse(&q(query), target, MAX, true).unwrap());
        let s = |key, ascending| Sort { key, ascending };
        assert_eq!(keys("", Target::Snapshots), (Order::NewestFirst, vec![]));
        assert_eq!(keys("sort=created_at:asc", Target::Snapshots), (Order::OldestFirst, vec![]));
        assert_eq!(keys("sort_dir=asc", Target::Snapshots), (Order::OldestFirst, vec![]));
        assert_eq!(keys("sort=created_at:desc,id:desc,name", Target::Snapshots), (Order::NewestFirst, vec![]));
        assert_eq!(
            keys("sort=created_at:desc,id:asc", Target::Snapshots).1,
            vec![s(SortKey::CreateTime, false), s(SortKey::Id, true)]
        );
        // The default keys follow the first key's direction; shared keys sort as equal.
        assert_eq!(
            keys("sort=project_id:asc,volume_size:desc,status", Target::Snapshots).1,
            vec![
                s(SortKey::SizeGib, false),
                s(SortKey::Shown, false),
                s(SortKey::CreateTime, true),
                s(SortKey::Id, true)
            ]
        );
        assert_eq!(
            keys("sort_key=bootable,size&sort_dir=desc,asc", Target::Volumes).1,
            vec![
                s(SortKey::System, false),
                s(SortKey::SizeGib, true),
                s(SortKey::CreateTime, false),
                s(SortKey::Id, false)
            ]
        );
        assert_eq!(keys("sort=id:asc", Target::Snapshots).1, vec![s(SortKey::Id, true), s(SortKey::CreateTime, true)]);
        assert_eq!(
            next_href("http://h", "/v3/p/snapshots/detail", "limit=2&marker=a&status=available", "b"),
            "http://h/v3/p/snapshots/detail?limit=2&status=available&marker=b"
        );
    }
}
