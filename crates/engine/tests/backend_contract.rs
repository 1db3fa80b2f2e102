//! The backend contract on a local directory and on S3Backend over object_store's in-memory
//! store (the same function runs against Ceph RGW in s3_rgw.rs).

mod contract;

use std::sync::Arc;

use disksnap_engine::backend::local::LocalBackend;
use disksnap_engine::backend::s3::{S3Backend, S3Config};
use object_store::memory::InMemory;

#[test]
fn local_backend_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let b = LocalBackend::open(dir.path()).unwrap();
    contract::contract(&b, 12 << 20);
}

fn mem_config(prefix: &str) -> S3Config {
    let mut c = S3Config::new("mem", "unused", "unused");
    c.prefix = prefix.into();
    // small enough that the 12 MiB object goes multipart in three parts
    c.multipart_threshold = 6 << 20;
    c.part_size = 5 << 20;
    c
}

#[test]
fn s3_backend_on_in_memory_store_passes_the_contract() {
    let b = S3Backend::from_store(Arc::new(InMemory::new()), &mem_config("")).unwrap();
    contract::contract(&b, 12 << 20);
    assert_eq!(b.stats().multipart_uploads, 1);
    assert_eq!(b.stats().multipart_parts, 3);
}

#[test]
fn s3_backend_with_prefix_and_cache_passes_the_contract() {
    let cache = tempfile::tempdir().unwrap();
    let mut c = mem_config("tenant-a/store1");
    c.cache_dir = Some(cache.path().to_path_buf());
    c.cache_max_bytes = 1 << 20;
    let b = S3Backend::from_store(Arc::new(InMemory::new()), &c).unwrap();
    contract::contract(&b, 12 << 20);
}
