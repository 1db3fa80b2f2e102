//! disksnap's service layer: the rules of `shared/design/model.md`, one API for every dialect.
//!
//! Dialects call [`Service`] with a [`Caller`] (the authenticated account) and typed requests,
//! and render the neutral [`model`] types and [`ServiceError`] their vendor's way. Underneath,
//! the engine (`disksnap-engine`) moves bytes and the metadata store (`disksnap-meta`) keeps
//! rows; neither is visible from here up.
//!
//! Operations that move bytes (create, import, resize and delete volumes; create and delete
//! snapshots; roll back; restore to a new volume; capture an image) return a [`Job`] at once
//! and run in the background ([`jobs`] explains how they stay consistent across crashes).
//! Metadata-only operations (rename, tags, attach, recover) commit before they return.

#[macro_use]
mod retry; // first: the retrying! macro is used by the modules below
pub mod chain;
pub mod chunk_index;
pub mod cluster;
pub mod control;
pub mod error;
pub mod groups;
pub mod homes;
pub mod ids;
pub mod jobs;
pub mod maintenance;
pub mod model;
mod page_cache;
pub mod points;
pub mod policies;
mod progress;
pub mod restore;
pub mod scheduler;
pub mod service;
pub mod sessions;
pub mod snapshots;
pub mod state;
pub mod stats;
pub mod tags;
/// Test support: a fresh PostgreSQL database for a test (disksnap_meta::test_db).
pub mod testing {
    pub use disksnap_meta::test_db::fresh_pg_database;
}
pub mod volumes;
mod work;

pub use cluster::{ClusterStatus, NodeConfig, NodeStatus, Readiness};
/// List filters, the same from a dialect to SQL (see `disksnap_meta::filter`).
pub use disksnap_meta::{Order, Shown, SnapshotFilter, Sort, SortKey, VolumeFilter};
pub use error::{Result, ServiceError};
pub use groups::{CreateSnapshotGroup, GroupStatus, SnapshotGroup};
pub use maintenance::{CompactReport, GcReport, VerifyOutcome};
pub use model::*;
pub use page_cache::{CachedPage, PageCacheUsage};
pub use points::Consistency;
pub use policies::{Policy, PolicySpec, Retention, Schedule};
pub use scheduler::{Clock, Fired, ManualClock, OffsetClock, Scheduler, SystemClock};
pub use service::{Backends, Caller, Service, ServiceConfig, ZoneConfig, DEFAULT_JOB_RETENTION};
pub use sessions::ConsoleSession;
pub use snapshots::{CreateSnapshots, DeleteScope};
pub use state::StateKind;
pub use stats::StoreStats;
pub use volumes::{CreateVolumes, VolumeFromSnapshot, GIB};
