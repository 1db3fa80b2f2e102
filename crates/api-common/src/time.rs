//! Time renderings the vendors use.

use chrono::{DateTime, Utc};

/// `2014-03-11T15:47:34Z` (QingCloud, 51idc, Aliyun).
pub fn iso_z(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2016-05-17 19:58:48` (Tencent v2).
pub fn plain(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}
