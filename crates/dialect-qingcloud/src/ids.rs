//! Small helpers both QingCloud-family dialects read requests with.

/// `i-…` / `ins-…` name an instance; anything else given as a resource is a volume.
pub fn is_instance_id(id: &str) -> bool {
    let l = id.trim().to_ascii_lowercase();
    l.starts_with("i-") || l.starts_with("ins-")
}
