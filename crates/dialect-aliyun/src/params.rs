//! Reading Aliyun's parameters: empty values mean "not given", booleans `True`/`false` in any
//! case, id lists as JSON-array strings, repeated structures `Tag.N.Key` (1-based), paging by
//! `PageNumber`/`PageSize` or `NextToken`/`MaxResults`.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use disksnap_api_common::sign::{base64, base64_decode};

use crate::error::{invalid, vendor, AliyunError};

/// The request's decoded parameters (query, then form body), in order.
#[derive(Clone, Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

pub type Res<T> = Result<T, AliyunError>;

/// A creation-time range: from, to (either open).
pub type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The key and value given for one `Tag.N`.
type TagSlot = (Option<String>, Option<String>);

impl Params {
    /// A given, non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    pub fn required(&self, name: &str) -> Res<&str> {
        self.get(name).ok_or_else(|| AliyunError::MissingParameter(name.to_string()))
    }

    pub fn bool(&self, name: &str) -> Res<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(invalid(name, format!("\"{v}\" is not a boolean (true or false)"))),
        }
    }

    pub fn int(&self, name: &str, min: i64, max: i64) -> Res<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(invalid(name, format!("\"{v}\" must be an integer from {min} to {max}"))),
            },
        }
    }

    /// A JSON array of ids (≤ 100); `Some(vec![])` for `[]`, which matches nothing.
    pub fn id_list(&self, name: &str, malformed: &'static str, status: u16) -> Res<Option<Vec<String>>> {
        let Some(text) = self.get(name) else { return Ok(None) };
        let bad = |why: &str| {
            vendor(
                malformed,
                status,
                format!("The specified parameter \"{name}\" is not valid: {why}, e.g. [\"s-1\",\"s-2\"]."),
            )
        };
        let ids: Vec<String> = serde_json::from_str(text).map_err(|_| bad("it must be a JSON array of id strings"))?;
        if ids.len() > 100 {
            return Err(bad("it names more than 100 ids"));
        }
        Ok(Some(ids))
    }

    /// A repeated list `Name.N` (N from 1), in N order; empty values are skipped.
    pub fn repeated(&self, name: &str) -> Res<Vec<String>> {
        let mut items: std::collections::BTreeMap<u32, String> = Default::default();
        let prefix = format!("{name}.");
        for (k, v) in &self.0 {
            let Some(n) = k.strip_prefix(&prefix) else { continue };
            let n: u32 =
                n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| invalid(k, "the index must be a number from 1"))?;
            if !v.is_empty() {
                items.insert(n, v.clone());
            }
        }
        Ok(items.into_values().collect())
    }

    /// `Tag.N.Key` / `Tag.N.Value` pairs, N from 1 to 20, in N order. A value without its key
    /// is `InvalidTag.Mismatch`; an empty or absent value is None.
    pub fn tags(&self) -> Res<Vec<(String, Option<String>)>> {
        let mut keys: std::collections::BTreeMap<u32, TagSlot> = Default::default();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix("Tag.") else { continue };
            let Some((n, field)) = rest.split_once('.') else { continue };
            let n: u32 = n.parse().map_err(|_| invalid(k, "the tag index must be a number from 1 to 20"))?;
            if !(1..=20).contains(&n) {
                return Err(vendor("InvalidTagCount", 400, format!("The tag index in \"{k}\" must be from 1 to 20.")));
            }
            let slot = keys.entry(n).or_default();
            match field {
                "Key" => slot.0 = Some(v.clone()).filter(|v| !v.is_empty()),
                "Value" => slot.1 = Some(v.clone()).filter(|v| !v.is_empty()),
                _ => {}
            }
        }
        keys.into_iter()
            .filter(|(_, (k, v))| k.is_some() || v.is_some())
            .map(|(n, (k, v))| match k {
                Some(k) => Ok((k, v)),
                None => Err(vendor(
                    "InvalidTag.Mismatch",
                    400,
                    format!("The specified Tag.{n}.Key and Tag.{n}.Value are not match: a value needs its key."),
                )),
            })
            .collect()
    }

    /// `Filter.N.Key` = `CreationStartTime` / `CreationEndTime` with `Filter.N.Value`.
    pub fn creation_filters(&self) -> Res<TimeRange> {
        let (mut from, mut to) = (None, None);
        for n in 1..=2 {
            let key = self.get(&format!("Filter.{n}.Key"));
            let value = self.get(&format!("Filter.{n}.Value"));
            let Some(key) = key else {
                if value.is_some() {
                    return Err(vendor(
                        "InvalidFilterKey.NotFound",
                        404,
                        format!(
                            "Filter.{n}.Value is given without Filter.{n}.Key (CreationStartTime or CreationEndTime)."
                        ),
                    ));
                }
                continue;
            };
            let slot = match key {
                "CreationStartTime" => &mut from,
                "CreationEndTime" => &mut to,
                other => {
                    return Err(vendor(
                        "InvalidFilterKey.NotFound",
                        404,
                        format!(
                            "The filter key \"{other}\" is not supported; use CreationStartTime or CreationEndTime."
                        ),
                    ))
                }
            };
            let Some(value) = value else { continue };
            *slot = Some(parse_minute_time(value).ok_or_else(|| {
                vendor(
                    "InvalidFilterValue",
                    404,
                    format!("The filter value \"{value}\" of Filter.{n} is not a UTC time like 2017-12-05T22:40Z."),
                )
            })?);
        }
        Ok((from, to))
    }
}

/// `yyyy-MM-ddTHH:mmZ` as documented, or with seconds.
pub fn parse_minute_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    disksnap_api_common::clock::parse_iso(t)
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%MZ").ok().map(|n| Utc.from_utc_datetime(&n)))
}

/// Where a list starts and how long it is, and how the caller asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paging {
    pub offset: u64,
    pub limit: u64,
    pub page_number: u64,
}

impl Paging {
    /// `NextToken`/`MaxResults` when either is given, else `PageNumber`/`PageSize` (default 1
    /// and 10; sizes above 100 are clamped). `min_max_results` is the action's floor for
    /// MaxResults (DescribeSnapshotLinks raises values below 10 to 10).
    pub fn from_params(p: &Params, min_max_results: u64) -> Res<Paging> {
        if p.get("NextToken").is_some() || p.get("MaxResults").is_some() {
            let offset = match p.get("NextToken") {
                Some(t) => decode_token(t).ok_or_else(|| {
                    invalid("NextToken", "it is not a token this server returned; start again without NextToken")
                })?,
                None => 0,
            };
            let limit = p.int("MaxResults", 1, i64::MAX)?.unwrap_or(10) as u64;
            // A floor above the ceiling would make `clamp` panic: the ceiling wins.
            let limit = limit.clamp(min_max_results.clamp(1, 100), 100);
            return Ok(Paging { offset, limit, page_number: offset / limit + 1 });
        }
        let page_number = p.int("PageNumber", 1, i32::MAX as i64)?.unwrap_or(1) as u64;
        let limit = (p.int("PageSize", 1, i64::MAX)?.unwrap_or(10) as u64).min(100);
        Ok(Paging { offset: (page_number - 1) * limit, limit, page_number })
    }

    /// The token of the page after this one, `""` on the last page.
    pub fn next_token(&self, returned: usize, total: u64) -> String {
        let next = self.offset.saturating_add(returned as u64);
        if returned > 0 && next < total {
            encode_token(next)
        } else {
            String::new()
        }
    }
}

/// Tokens are opaque to clients: `base64("disksnap:<offset>")`.
pub fn encode_token(offset: u64) -> String {
    base64(format!("disksnap:{offset}").as_bytes())
}

/// The offset a NextToken carries. One past i64::MAX was never returned (offsets are below the
/// total), and would wrap to a negative SQL OFFSET: refused like any foreign token.
pub fn decode_token(token: &str) -> Option<u64> {
    let bytes = base64_decode(token)?;
    std::str::from_utf8(&bytes).ok()?.strip_prefix("disksnap:")?.parse().ok().filter(|o| *o <= i64::MAX as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        Params(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn values() {
        let q = p(&[("A", ""), ("B", "True"), ("C", "false"), ("D", "x"), ("N", "7")]);
        assert_eq!(q.get("A"), None);
        assert_eq!(q.bool("B").unwrap(), Some(true));
        assert_eq!(q.bool("C").unwrap(), Some(false));
        assert_eq!(q.bool("D").unwrap_err().code(), "InvalidParameter");
        assert_eq!(q.int("N", 1, 5).unwrap_err().code(), "InvalidParameter");
        assert_eq!(q.required("A").unwrap_err().code(), "MissingParameter");
        let r = p(&[("ResourceId.2", "b"), ("ResourceId.1", "a"), ("ResourceId.3", ""), ("ResourceIdX", "c")]);
        assert_eq!(r.repeated("ResourceId").unwrap(), vec!["a".to_string(), "b".to_string()]);
        assert_eq!(p(&[("ResourceId.x", "a")]).repeated("ResourceId").unwrap_err().code(), "InvalidParameter");
        assert_eq!(p(&[("ResourceId.0", "a")]).repeated("ResourceId").unwrap_err().code(), "InvalidParameter");
    }

    #[test]
    fn id_lists() {
        let q = p(&[("SnapshotIds", "[\"s-1\",\"s-2\"]"), ("Bad", "s-1,s-2"), ("Empty", "[]")]);
        assert_eq!(q.id_list("SnapshotIds", "X", 403).unwrap(), Some(vec!["s-1".into(), "s-2".into()]));
        let e = q.id_list("Bad", "InvalidSnapshotIds.Malformed", 403).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("InvalidSnapshotIds.Malformed", 403));
        assert_eq!(q.id_list("Empty", "X", 403).unwrap(), Some(vec![]));
        let many = format!("[{}]", (0..101).map(|i| format!("\"s-{i}\"")).collect::<Vec<_>>().join(","));
        assert!(p(&[("SnapshotIds", &many)]).id_list("SnapshotIds", "X", 403).is_err());
    }

    #[test]
    fn tags_and_filters() {
        let q = p(&[("Tag.2.Key", "b"), ("Tag.1.Key", "a"), ("Tag.1.Value", "1"), ("Tag.2.Value", "")]);
        assert_eq!(q.tags().unwrap(), vec![("a".into(), Some("1".into())), ("b".into(), None)]);
        assert_eq!(p(&[("Tag.1.Value", "v")]).tags().unwrap_err().code(), "InvalidTag.Mismatch");
        assert_eq!(p(&[("Tag.21.Key", "k")]).tags().unwrap_err().code(), "InvalidTagCount");
        let f = p(&[
            ("Filter.1.Key", "CreationStartTime"),
            ("Filter.1.Value", "2017-12-05T22:40Z"),
            ("Filter.2.Key", "CreationEndTime"),
            ("Filter.2.Value", "2017-12-06T22:40:10Z"),
        ]);
        let (from, to) = f.creation_filters().unwrap();
        assert_eq!(from.unwrap().to_rfc3339(), "2017-12-05T22:40:00+00:00");
        assert_eq!(to.unwrap().to_rfc3339(), "2017-12-06T22:40:10+00:00");
        let e = p(&[("Filter.1.Key", "Size")]).creation_filters().unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("InvalidFilterKey.NotFound", 404));
        let e = p(&[("Filter.1.Key", "CreationStartTime"), ("Filter.1.Value", "yesterday")])
            .creation_filters()
            .unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("InvalidFilterValue", 404));
    }

    #[test]
    fn paging_both_ways() {
        assert_eq!(Paging::from_params(&p(&[]), 1).unwrap(), Paging { offset: 0, limit: 10, page_number: 1 });
        let pg = Paging::from_params(&p(&[("PageNumber", "3"), ("PageSize", "500")]), 1).unwrap();
        assert_eq!((pg.offset, pg.limit), (200, 100));
        assert!(Paging::from_params(&p(&[("PageNumber", "0")]), 1).is_err());
        let t = Paging::from_params(&p(&[("MaxResults", "2")]), 1).unwrap();
        assert_eq!((t.offset, t.limit), (0, 2));
        let tok = t.next_token(2, 5);
        let t2 = Paging::from_params(&p(&[("NextToken", &tok), ("MaxResults", "2")]), 1).unwrap();
        assert_eq!(t2.offset, 2);
        assert_eq!(t2.next_token(2, 4), "");
        assert_eq!(Paging::from_params(&p(&[("MaxResults", "3")]), 10).unwrap().limit, 10);
        // Found by fuzz-smoke: a floor above 100 panicked in `clamp`; the ceiling of 100 wins.
        assert_eq!(Paging::from_params(&p(&[("MaxResults", "3")]), 101).unwrap().limit, 100);
        assert_eq!(Paging::from_params(&p(&[("MaxResults", "3")]), 0).unwrap().limit, 3);
        assert_eq!(Paging::from_params(&p(&[("NextToken", "garbage")]), 1).unwrap_err().code(), "InvalidParameter");
    }

    /// Found while writing fuzz/aliyun_rpc: a forged NextToken of offset u64::MAX with
    /// MaxResults=1 overflowed `offset / limit + 1` (a panic with overflow checks, PageNumber 0
    /// without), and any offset past i64::MAX reached SQLite as a negative OFFSET, which reads
    /// as 0: the first page again instead of an empty one.
    #[test]
    fn a_token_no_server_returned_is_refused() {
        for offset in [u64::MAX, i64::MAX as u64 + 1] {
            let tok = encode_token(offset);
            let e = Paging::from_params(&p(&[("NextToken", &tok), ("MaxResults", "1")]), 1).unwrap_err();
            assert_eq!(e.code(), "InvalidParameter", "{offset}");
        }
        let top = encode_token(i64::MAX as u64);
        let pg = Paging::from_params(&p(&[("NextToken", &top), ("MaxResults", "1")]), 1).unwrap();
        assert_eq!((pg.offset, pg.page_number), (i64::MAX as u64, i64::MAX as u64 + 1));
    }
}
