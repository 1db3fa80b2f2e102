//! Printing for people (aligned tables, human sizes) and for scripts (`--json`).

use serde::Serialize;
use serde_json::Value;

use disksnap_dialect_qingcloud::ids::display;
use disksnap_service::Kind;

/// Fields that hold ids, by the kind they name. The CLI shows every id with disksnap's own
/// (QingCloud-style) prefix, so one can be pasted into any command.
fn id_kind(field: &str, owner: Kind) -> Option<Kind> {
    Some(match field {
        "id" => owner,
        "root_id" | "parent_id" | "snapshot_id" | "head_root" => Kind::Snapshot,
        "volume_id" => Kind::Volume,
        "instance_id" => Kind::Instance,
        _ => return None,
    })
}

/// Serialize a model value with display ids.
pub fn json_of<T: Serialize>(value: &T, owner: Kind) -> Value {
    let mut v = serde_json::to_value(value).expect("model values serialize");
    prefix_ids(&mut v, owner);
    v
}

fn prefix_ids(v: &mut Value, owner: Kind) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                match (id_kind(k, owner), val) {
                    (Some(kind), Value::String(s)) => *s = display(kind, s),
                    (_, Value::Array(items)) if k == "tags" => items.iter_mut().for_each(|i| prefix_ids(i, Kind::Tag)),
                    _ => {}
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| prefix_ids(i, owner)),
        _ => {}
    }
}

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json prints"));
}

/// 1536 → "1.5 KiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A table with a header row; columns sized to their widest cell.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
            println!("{}", parts.join("  ").trim_end());
        };
        line(&self.header);
        for r in &self.rows {
            line(r);
        }
    }
}

/// Key/value lines for one resource.
pub fn print_fields(v: &Value) {
    if let Value::Object(map) = v {
        let w = map.keys().map(|k| k.len()).max().unwrap_or(0);
        for (k, val) in map {
            let shown = match val {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            println!("{k:<w$}  {shown}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(4 << 30), "4.0 GiB");
    }

    #[test]
    fn ids_get_prefixes() {
        let v = serde_json::json!({"id": "abcdefgh", "volume_id": "12345678", "parent_id": null, "tags": [{"id": "tttttttt"}]});
        let mut v2 = v.clone();
        prefix_ids(&mut v2, Kind::Snapshot);
        assert_eq!(v2["id"], "ss-abcdefgh");
        assert_eq!(v2["volume_id"], "vol-12345678");
        assert_eq!(v2["parent_id"], Value::Null);
        assert_eq!(v2["tags"][0]["id"], "tag-tttttttt");
    }
}
