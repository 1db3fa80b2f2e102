//! `OpenStack-API-Version: volume X.Y` (dialect-openstack.md §4.2).

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

pub const MIN: Version = Version { major: 3, minor: 0 };
pub const MAX: Version = Version { major: 3, minor: 71 };

impl Version {
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        self >= Version { major, minor }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum VersionError {
    /// 400: not `N.M`, or no `volume` entry.
    Malformed(String),
    /// 406: outside the served range.
    Unsupported(String),
}

/// The effective version of a `/v3` request from its header (absent → 3.0).
pub fn negotiate(header: Option<&str>) -> Result<Version, VersionError> {
    let Some(h) = header.map(str::trim).filter(|h| !h.is_empty()) else { return Ok(MIN) };
    let entry = h.split(',').map(str::trim).find_map(|e| {
        let (service, v) = e.split_once(char::is_whitespace)?;
        service.eq_ignore_ascii_case("volume").then(|| v.trim())
    });
    let Some(v) = entry else {
        return Err(VersionError::Malformed(format!("Invalid OpenStack-API-Version header {h:?}: no volume version.")));
    };
    if v.eq_ignore_ascii_case("latest") {
        return Ok(MAX);
    }
    let bad = || {
        VersionError::Malformed(format!(
            "API Version String {v} is of invalid format. Must be of format MajorNum.MinorNum."
        ))
    };
    let (a, b) = v.split_once('.').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return Err(bad());
    }
    let ver = Version { major: a.parse().map_err(|_| bad())?, minor: b.parse().map_err(|_| bad())? };
    if ver < MIN || ver > MAX {
        return Err(VersionError::Unsupported(format!(
            "Version {ver} is not supported by the API. Minimum is {MIN} and maximum is {MAX}."
        )));
    }
    Ok(ver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None), Ok(MIN));
        assert_eq!(negotiate(Some("volume 3.44")), Ok(Version { major: 3, minor: 44 }));
        assert_eq!(negotiate(Some("volume latest")), Ok(MAX));
        assert_eq!(negotiate(Some("compute 2.1, volume 3.40")), Ok(Version { major: 3, minor: 40 }));
        assert!(Version { major: 3, minor: 9 } < Version { major: 3, minor: 10 });
        assert!(matches!(negotiate(Some("volume 3")), Err(VersionError::Malformed(_))));
        assert!(matches!(negotiate(Some("volume 3.x")), Err(VersionError::Malformed(_))));
        assert!(matches!(negotiate(Some("compute 2.1")), Err(VersionError::Malformed(_))));
        assert!(matches!(negotiate(Some("volume 3.99")), Err(VersionError::Unsupported(_))));
        assert!(matches!(negotiate(Some("volume 2.0")), Err(VersionError::Unsupported(_))));
    }
}
