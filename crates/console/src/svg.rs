//! A volume's snapshots drawn as its chains: one row per chain, its full point first and each
//! incremental after its parent, in the order they were taken. Every point links to its page
//! (where roll back, new volume, capture, rename, tag, delete and recover are).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use disksnap_service::{Kind, Snapshot, SnapshotStatus};

use crate::html::{bytes, esc, id, span, time};

const ROW: i64 = 96;
/// Room for a point's longest label ("deleted · 1 h 59 min left") beside the next one's.
const STEP: i64 = 150;
const LEFT: i64 = 24;
const TOP: i64 = 34;

/// When a deleted point is ceased: its deletion time plus the retention window.
pub fn ceases_at(s: &Snapshot, retention: Duration) -> Option<DateTime<Utc>> {
    s.deleted_time.map(|d| d + chrono::Duration::from_std(retention).unwrap_or_default())
}

/// The chains of `points` (one volume's, any order) as an SVG timeline.
pub fn chains(points: &[Snapshot], retention: Duration, now: DateTime<Utc>) -> String {
    // Chains by root, each in snapshot order; chains ordered by their first point.
    let mut by_root: BTreeMap<&str, Vec<&Snapshot>> = BTreeMap::new();
    for p in points {
        by_root.entry(p.root_id.as_str()).or_default().push(p);
    }
    let mut rows: Vec<Vec<&Snapshot>> = by_root.into_values().collect();
    for r in &mut rows {
        r.sort_by(|a, b| (a.snapshot_time, &a.id).cmp(&(b.snapshot_time, &b.id)));
    }
    rows.sort_by_key(|r| r[0].snapshot_time);
    let widest = rows.iter().map(|r| r.len() as i64).max().unwrap_or(1);
    // Wide enough for the chain labels even with few points.
    let width = (LEFT * 2 + widest * STEP).max(520);
    let height = TOP + rows.len() as i64 * ROW;
    let mut out = format!(
        "<div class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chains\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"snapshot chains\">"
    );
    for (ri, row) in rows.iter().enumerate() {
        let y0 = TOP + ri as i64 * ROW;
        let cy = y0 + 30;
        let root = row[0];
        let head_chain = row.iter().any(|p| p.head_chain);
        out.push_str(&format!(
            "<text class=\"chain-label\" x=\"{LEFT}\" y=\"{}\">chain {}{}</text>",
            y0 - 8,
            esc(&id(Kind::Snapshot, &root.root_id)),
            if head_chain { " · head chain" } else { "" }
        ));
        // The first point's labels are centred on it: half a step in keeps them on the picture.
        let xs: Vec<i64> = (0..row.len()).map(|i| LEFT + STEP / 2 + i as i64 * STEP).collect();
        // Links first, so points are drawn over them: each point to its parent when it is on
        // this page (an incremental's parent is always in its own chain).
        for (i, p) in row.iter().enumerate() {
            if let Some(parent) = &p.parent_id {
                if let Some(j) = row.iter().position(|q| &q.id == parent) {
                    out.push_str(&format!(
                        "<line class=\"link\" x1=\"{}\" y1=\"{cy}\" x2=\"{}\" y2=\"{cy}\"/>",
                        xs[j], xs[i]
                    ));
                }
            }
        }
        for (i, p) in row.iter().enumerate() {
            out.push_str(&point(p, xs[i], cy, retention, now));
        }
    }
    out.push_str("</svg></div>");
    out
}

fn point(p: &Snapshot, x: i64, cy: i64, retention: Duration, now: DateTime<Utc>) -> String {
    let shown = id(Kind::Snapshot, &p.id);
    let status = match p.status {
        SnapshotStatus::Available => "available",
        SnapshotStatus::Creating => "creating",
        SnapshotStatus::Deleted => "deleted",
        SnapshotStatus::Ceased => "ceased",
    };
    let kind = if p.full { "full" } else { "incremental" };
    let left = match p.status {
        SnapshotStatus::Deleted => ceases_at(p, retention).map(|t| (t - now).num_seconds()),
        _ => None,
    };
    let mut note = match (p.status, left) {
        (SnapshotStatus::Deleted, Some(s)) => format!("deleted · {} left", span(s)),
        (SnapshotStatus::Available, _) => String::new(),
        (s, _) => s.as_str().to_string(),
    };
    if !p.transition.as_str().is_empty() {
        note = if note.is_empty() { p.transition.as_str().to_string() } else { format!("{note} · {}", p.transition) };
    }
    let shape = if p.full {
        format!("<rect class=\"pt\" x=\"{}\" y=\"{}\" width=\"24\" height=\"24\" rx=\"4\"/>", x - 12, cy - 12)
    } else {
        format!("<circle class=\"pt\" cx=\"{x}\" cy=\"{cy}\" r=\"9\"/>")
    };
    let head = if p.is_head {
        format!(
            "<circle class=\"head-ring\" cx=\"{x}\" cy=\"{cy}\" r=\"17\"/><text class=\"head\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">HEAD</text>",
            cy - 21
        )
    } else {
        String::new()
    };
    let name = if p.name.is_empty() { shown.clone() } else { p.name.clone() };
    format!(
        "<a href=\"/console/snapshots/{sid}\" class=\"point {kind} {status}{headc}\" data-snapshot=\"{sid}\" data-status=\"{status}\" data-kind=\"{kind}\">\
<title>{sid} · {kind} · {status} · {size} · taken {when}</title>{head}{shape}\
<text class=\"name\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
<text class=\"size\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{size}</text>\
<text class=\"note\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text></a>",
        cy + 28,
        esc(&short(&name, 16)),
        cy + 41,
        cy + 54,
        esc(&note),
        sid = esc(&shown),
        headc = if p.is_head { " is-head" } else { "" },
        size = esc(&bytes(p.size)),
        when = esc(&time(p.snapshot_time)),
    )
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}
