//! QingCloud-style parameters: decoded `key=value` pairs where lists are `key.1`, `key.2`, …
//! (a bare `key=value` counts as a one-element list), dicts are `key.N.sub`, and an empty value
//! means "not given" (the SDK and CLI send empty values for unset options).

use std::collections::{BTreeMap, HashMap, HashSet};

use disksnap_api_common::MAX_LIST_ITEMS;

use crate::error::QcError;

/// One integer parameter's value (both dialects of the family read integers this way, 51idc
/// from its JSON body too).
pub fn parse_int(key: &str, value: &str) -> Result<i64, QcError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| QcError::invalid(format!("parameter [{key}] should be an integer, not [{value}]")))
}

#[derive(Clone, Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// A non-empty value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == key && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    pub fn required(&self, key: &str) -> Result<&str, QcError> {
        self.get(key).ok_or_else(|| QcError::invalid(format!("parameter [{key}] is required")))
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, QcError> {
        self.get(key).map(|v| parse_int(key, v)).transpose()
    }

    /// An integer that must be one of `allowed`.
    pub fn flag(&self, key: &str, allowed: &[i64]) -> Result<Option<i64>, QcError> {
        match self.int(key)? {
            Some(v) if !allowed.contains(&v) => {
                Err(QcError::invalid(format!("parameter [{key}] should be one of {allowed:?}, not [{v}]")))
            }
            other => Ok(other),
        }
    }

    /// A non-negative integer, at most `max` when given.
    pub fn count(&self, key: &str, max: Option<u64>) -> Result<Option<u64>, QcError> {
        match self.int(key)? {
            None => Ok(None),
            Some(v) if v < 0 => Err(QcError::invalid(format!("parameter [{key}] should be >= 0, not [{v}]"))),
            Some(v) => Ok(Some(max.map_or(v as u64, |m| (v as u64).min(m)))),
        }
    }

    /// `key.1`, `key.2`, … in index order (plus a bare `key`), empty values dropped.
    pub fn list(&self, key: &str) -> Vec<String> {
        let prefix = format!("{key}.");
        let mut indexed: Vec<(u64, &str)> = Vec::new();
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            if v.is_empty() {
                continue;
            }
            if k == key {
                out.push(v.clone());
            } else if let Some(n) = k.strip_prefix(&prefix).and_then(|n| n.parse::<u64>().ok()) {
                indexed.push((n, v));
            }
        }
        indexed.sort_by_key(|(n, _)| *n);
        out.extend(indexed.into_iter().map(|(_, v)| v.to_string()));
        out
    }

    /// Refuse (1100, naming the parameter) a request whose list or dict parameter (`key.N`,
    /// `key.N.sub`) has more than [`MAX_LIST_ITEMS`] items, before any work is done for it.
    pub fn check_list_sizes(&self) -> Result<(), QcError> {
        let mut items: HashMap<&str, HashSet<&str>> = HashMap::new();
        for (k, _) in &self.0 {
            let Some((name, rest)) = k.split_once('.') else { continue };
            let n = rest.split('.').next().unwrap_or(rest);
            if n.parse::<u64>().is_ok() {
                items.entry(name).or_default().insert(n);
            }
        }
        match items.into_iter().find(|(_, ns)| ns.len() > MAX_LIST_ITEMS) {
            Some((name, ns)) => Err(QcError::invalid(format!(
                "parameter [{name}.n] has {} items; at most {MAX_LIST_ITEMS} are accepted in one request, send the rest in another",
                ns.len()
            ))),
            None => Ok(()),
        }
    }

    /// `key.N.sub=value` grouped by N, in index order.
    pub fn dicts(&self, key: &str) -> Vec<BTreeMap<String, String>> {
        let prefix = format!("{key}.");
        let mut by_n: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
        for (k, v) in &self.0 {
            if let Some((n, sub)) = k.strip_prefix(&prefix).and_then(|r| r.split_once('.')) {
                if let Ok(n) = n.parse::<u64>() {
                    by_n.entry(n).or_default().insert(sub.to_string(), v.clone());
                }
            }
        }
        by_n.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        Params(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn lists_follow_index_order_not_text_order() {
        let q = p(&[("snapshots.10", "c"), ("snapshots.2", "b"), ("snapshots.1", "a"), ("snapshots.3", "")]);
        assert_eq!(q.list("snapshots"), vec!["a", "b", "c"]);
        assert_eq!(p(&[("status", "x")]).list("status"), vec!["x"]);
        assert!(p(&[("verbose", "")]).get("verbose").is_none());
    }

    #[test]
    fn dicts_group_by_index() {
        let q = p(&[
            ("resource_tag_pairs.2.tag_id", "t2"),
            ("resource_tag_pairs.1.tag_id", "t1"),
            ("resource_tag_pairs.1.resource_id", "r1"),
        ]);
        let d = q.dicts("resource_tag_pairs");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0]["tag_id"], "t1");
        assert_eq!(d[0]["resource_id"], "r1");
        assert_eq!(d[1]["tag_id"], "t2");
    }

    #[test]
    fn lists_longer_than_the_maximum_are_1100() {
        let n = MAX_LIST_ITEMS;
        let list = |key: &str, count: usize| -> Vec<(String, String)> {
            (1..=count).map(|i| (format!("{key}.{i}"), format!("ss-{i}"))).collect()
        };
        assert!(Params(list("snapshots", n)).check_list_sizes().is_ok());
        let e = Params(list("snapshots", 34_000)).check_list_sizes().unwrap_err();
        assert_eq!(e.ret_code(), 1100);
        assert!(e.message("r").contains("snapshots.n") && e.message("r").contains("34000"), "{}", e.message("r"));
        let pairs: Vec<_> = (1..=n + 1).map(|i| (format!("resource_tag_pairs.{i}.tag_id"), "t".to_string())).collect();
        assert_eq!(Params(pairs).check_list_sizes().unwrap_err().ret_code(), 1100);
    }

    #[test]
    fn bad_integers_are_1100() {
        let q = p(&[("limit", "ten"), ("offset", "-1"), ("is_full", "2")]);
        assert_eq!(q.int("limit").unwrap_err().ret_code(), 1100);
        assert!(q.count("offset", None).is_err());
        assert!(q.flag("is_full", &[0, 1]).is_err());
        assert_eq!(p(&[("limit", "500")]).count("limit", Some(100)).unwrap(), Some(100));
    }
}
