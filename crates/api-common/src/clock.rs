//! Clock windows: a signed request carries the client's time; one too far from ours (either
//! way) is refused, so a captured request cannot be replayed later.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// Why a timestamp was refused; dialects put the reason in their message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skew {
    Unparsable(String),
    TooOld { by: Duration },
    TooNew { by: Duration },
}

impl std::fmt::Display for Skew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skew::Unparsable(t) => write!(f, "timestamp {t:?} is not a UTC time"),
            Skew::TooOld { by } => write!(f, "timestamp is {}s older than the allowed window", by.as_secs()),
            Skew::TooNew { by } => {
                write!(f, "timestamp is {}s ahead of the server clock beyond the allowed window", by.as_secs())
            }
        }
    }
}

/// Is `t` within `window` of now?
pub fn check(t: DateTime<Utc>, window: Duration) -> Result<(), Skew> {
    check_at(t, Utc::now(), window)
}

pub fn check_at(t: DateTime<Utc>, now: DateTime<Utc>, window: Duration) -> Result<(), Skew> {
    let diff = now.signed_duration_since(t);
    let w = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    if diff > w {
        Err(Skew::TooOld { by: (diff - w).to_std().unwrap_or_default() })
    } else if -diff > w {
        Err(Skew::TooNew { by: (-diff - w).to_std().unwrap_or_default() })
    } else {
        Ok(())
    }
}

/// `2013-08-27T14:30:10Z` (also with fractional seconds or an explicit offset).
pub fn parse_iso(text: &str) -> Result<DateTime<Utc>, Skew> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%SZ").map(|n| Utc.from_utc_datetime(&n))
        })
        .map_err(|_| Skew::Unparsable(text.to_string()))
}

/// Unix seconds, as Tencent sends them.
pub fn parse_unix(text: &str) -> Result<DateTime<Utc>, Skew> {
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .ok_or_else(|| Skew::Unparsable(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_both_ways() {
        let now = parse_iso("2024-01-01T00:10:00Z").unwrap();
        let w = Duration::from_secs(60);
        assert!(check_at(parse_iso("2024-01-01T00:09:30Z").unwrap(), now, w).is_ok());
        assert!(matches!(check_at(parse_iso("2024-01-01T00:08:00Z").unwrap(), now, w), Err(Skew::TooOld { .. })));
        assert!(matches!(check_at(parse_iso("2024-01-01T00:12:00Z").unwrap(), now, w), Err(Skew::TooNew { .. })));
        assert!(parse_iso("yesterday").is_err());
        assert_eq!(parse_unix("1700000000").unwrap().timestamp(), 1_700_000_000);
    }
}
