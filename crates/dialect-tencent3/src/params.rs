//! An action's parameters as one JSON object, whichever way they came: a TC3 POST's JSON body
//! as sent, or the flattened pairs of a GET query / v1 form (`Filters.0.Name=disk-id`,
//! `Filters.0.Values.0=…`, as the SDK's `_format_params` writes them) unflattened. Values from
//! pairs are strings, so the typed reads accept a number or a boolean either way.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::Tc3Error;

type Result<T> = std::result::Result<T, Tc3Error>;

/// Most items one list parameter may hold: CBS documents 100 for the id lists it takes
/// (`SnapshotIds`, `DiskIds`) and for `Limit`.
pub const MAX_ITEMS: usize = 100;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(pub Map<String, Value>);

/// A node while unflattening: a leaf string or children by path segment.
#[derive(Default)]
struct Node {
    leaf: Option<String>,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn into_value(self, path: &str) -> Result<Value> {
        if let Some(v) = self.leaf {
            if !self.children.is_empty() {
                return Err(Tc3Error::InvalidParameter(format!(
                    "parameter {path} is given both as a value and as a list or structure"
                )));
            }
            return Ok(Value::String(v));
        }
        let indexed = !self.children.is_empty() && self.children.keys().all(|k| k.bytes().all(|b| b.is_ascii_digit()));
        if indexed {
            let mut items: Vec<(usize, Value)> = Vec::new();
            for (k, child) in self.children {
                let i: usize = k
                    .parse()
                    .map_err(|_| Tc3Error::InvalidParameter(format!("list index {path}.{k} is not a small integer")))?;
                items.push((i, child.into_value(&format!("{path}.{k}"))?));
            }
            if items.len() > crate::params::MAX_ITEMS * 10 {
                return Err(Tc3Error::InvalidParameter(format!("{path} has {} items", items.len())));
            }
            items.sort_by_key(|(i, _)| *i);
            return Ok(Value::Array(items.into_iter().map(|(_, v)| v).collect()));
        }
        let mut map = Map::new();
        for (k, child) in self.children {
            let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            map.insert(k, child.into_value(&p)?);
        }
        Ok(Value::Object(map))
    }
}

impl Params {
    /// From decoded pairs, skipping the common parameters named in `skip`.
    pub fn from_pairs(pairs: &[(String, String)], skip: &[&str]) -> Result<Params> {
        let mut root = Node::default();
        for (k, v) in pairs {
            if skip.contains(&k.as_str()) {
                continue;
            }
            let mut node = &mut root;
            for seg in k.split('.') {
                if seg.is_empty() {
                    return Err(Tc3Error::InvalidParameter(format!("parameter name {k:?} has an empty part")));
                }
                node = node.children.entry(seg.to_string()).or_default();
            }
            if node.leaf.replace(v.clone()).is_some() {
                return Err(Tc3Error::InvalidParameter(format!(
                    "parameter {k} is given more than once; give each parameter once"
                )));
            }
        }
        match root.into_value("")? {
            Value::Object(m) => Ok(Params(m)),
            // Top-level keys that are all digits: not parameters of any action.
            _ => Err(Tc3Error::InvalidParameter("parameter names must start with a letter".into())),
        }
    }

    /// A TC3 POST's JSON body (an object; an empty body is no parameters).
    pub fn from_json(body: &[u8]) -> Result<Params> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params::default());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Params(m)),
            Ok(_) => Err(Tc3Error::InvalidParameter("the JSON body must be an object of parameters".into())),
            Err(e) => Err(Tc3Error::InvalidParameter(format!("the body is not valid JSON: {e}"))),
        }
    }

    pub fn args(&self) -> Args<'_> {
        Args(&self.0)
    }
}

/// Typed reads of one object's parameters (the request's, or a nested structure's).
#[derive(Clone, Copy)]
pub struct Args<'a>(pub &'a Map<String, Value>);

fn type_error(key: &str, want: &str, got: &Value) -> Tc3Error {
    Tc3Error::InvalidParameter(format!("parameter `{key}` must be {want}, got {got}"))
}

impl<'a> Args<'a> {
    /// A string; absent and JSON null read as not given.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(type_error(key, "a string", other)),
        }
    }

    pub fn required_str(&self, key: &str) -> Result<&'a str> {
        match self.str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(Tc3Error::MissingParameter(key.to_string())),
        }
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().map(Some).ok_or_else(|| type_error(key, "an integer", &n.clone().into()))
            }
            Some(Value::String(s)) => {
                s.trim().parse::<i64>().map(Some).map_err(|_| type_error(key, "an integer", &Value::String(s.clone())))
            }
            Some(other) => Err(type_error(key, "an integer", other)),
        }
    }

    /// A boolean: JSON true/false, or (from pairs) `true`/`false` in any case (Python's
    /// `urlencode` writes `True`), `1`/`0`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(type_error(key, "a boolean", &Value::String(s.clone()))),
            },
            Some(other) => Err(type_error(key, "a boolean", other)),
        }
    }

    /// A list of strings (at most [`MAX_ITEMS`]).
    pub fn str_list(&self, key: &str) -> Result<Vec<String>> {
        let items = match self.0.get(key) {
            None | Some(Value::Null) => return Ok(vec![]),
            Some(Value::Array(a)) => a,
            Some(other) => return Err(type_error(key, "a list of strings", other)),
        };
        if items.len() > MAX_ITEMS {
            return Err(Tc3Error::LimitExceeded {
                name: key.to_string(),
                reason: format!("{} items given; at most {MAX_ITEMS} in one request", items.len()),
            });
        }
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(type_error(&format!("{key}.{i}"), "a string", other)),
            })
            .collect()
    }

    /// A nested structure (`Placement`), or None.
    pub fn object(&self, key: &str) -> Result<Option<Args<'a>>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Args(m))),
            Some(other) => Err(type_error(key, "a structure", other)),
        }
    }

    /// A list of structures (`Filters`, `Tags`).
    pub fn objects(&self, key: &str) -> Result<Vec<Args<'a>>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(m) => Ok(Args(m)),
                    other => Err(type_error(&format!("{key}.{i}"), "a structure", other)),
                })
                .collect(),
            Some(other) => Err(type_error(key, "a list of structures", other)),
        }
    }

    /// `Filters`: (Name, Values) pairs, in order.
    pub fn filters(&self) -> Result<Vec<(String, Vec<String>)>> {
        let list = self.objects("Filters")?;
        if list.len() > MAX_ITEMS {
            return Err(Tc3Error::LimitExceeded { name: "Filters".into(), reason: format!("at most {MAX_ITEMS}") });
        }
        list.iter()
            .enumerate()
            .map(|(i, f)| {
                let name = f.str("Name")?.ok_or_else(|| Tc3Error::MissingParameter(format!("Filters.{i}.Name")))?;
                let values = f.str_list("Values")?;
                if values.is_empty() {
                    return Err(Tc3Error::MissingParameter(format!("Filters.{i}.Values")));
                }
                Ok((name.to_string(), values))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn flattened_pairs_read_as_the_json_body_would() {
        let got = Params::from_pairs(
            &pairs(&[
                ("Filters.0.Name", "disk-id"),
                ("Filters.0.Values.1", "disk-b"),
                ("Filters.0.Values.0", "disk-a"),
                ("Filters.1.Name", "zone"),
                ("Filters.1.Values.0", "pek3a"),
                ("Limit", "10"),
                ("Placement.Zone", "pek3a"),
                ("Action", "DescribeSnapshots"),
            ]),
            &["Action"],
        )
        .unwrap();
        let json = Params::from_json(
            br#"{"Filters":[{"Name":"disk-id","Values":["disk-a","disk-b"]},{"Name":"zone","Values":["pek3a"]}],"Limit":"10","Placement":{"Zone":"pek3a"}}"#,
        )
        .unwrap();
        assert_eq!(got, json);
        let a = got.args();
        assert_eq!(a.int("Limit").unwrap(), Some(10));
        assert_eq!(
            a.filters().unwrap(),
            vec![("disk-id".into(), vec!["disk-a".into(), "disk-b".into()]), ("zone".into(), vec!["pek3a".into()])]
        );
        assert_eq!(a.object("Placement").unwrap().unwrap().str("Zone").unwrap(), Some("pek3a"));
    }

    #[test]
    fn bad_shapes_are_refused_with_the_parameter_named() {
        assert!(Params::from_pairs(&pairs(&[("A", "1"), ("A.0", "2")]), &[]).is_err());
        assert!(Params::from_pairs(&pairs(&[("A..B", "1")]), &[]).is_err());
        assert!(Params::from_json(b"[1]").is_err());
        assert!(Params::from_json(b"{").is_err());
        assert_eq!(Params::from_json(b"").unwrap(), Params::default());
        let p =
            Params::from_json(br#"{"Limit":"x","IsPermanent":"True","SnapshotIds":"snap-1","Filters":[{"Name":"a"}]}"#)
                .unwrap();
        let a = p.args();
        assert!(matches!(a.int("Limit"), Err(Tc3Error::InvalidParameter(m)) if m.contains("Limit")));
        assert_eq!(a.bool("IsPermanent").unwrap(), Some(true));
        assert!(a.str_list("SnapshotIds").is_err());
        assert!(matches!(a.filters(), Err(Tc3Error::MissingParameter(m)) if m == "Filters.0.Values"));
        let many = format!(r#"{{"DiskIds":[{}]}}"#, vec!["\"disk-a\""; 101].join(","));
        let p = Params::from_json(many.as_bytes()).unwrap();
        assert!(matches!(p.args().str_list("DiskIds"), Err(Tc3Error::LimitExceeded { .. })));
    }
}
