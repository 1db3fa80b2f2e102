//! A disksnap cluster: several `disksnap serve` processes ("nodes") on one metadata database
//! and one snapshot store (issue 13; README "Cluster").
//!
//! What the nodes share through the database, besides the rows: the replay nonces of signed
//! requests (so a request replayed to another node is refused as it would be by the first),
//! each node's heartbeat (its zone, free space and running jobs: `disksnap cluster status`,
//! /metrics), and the maintenance lead (ceasing, retention, GC, the policy scheduler run on
//! exactly one node at a time; see [`Service::leads_maintenance`]).

use std::time::Duration;

use disksnap_meta::NodeRow;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::model::now_ms;
use crate::service::Service;

/// A node's name and zone (`[node]` in the config, `disksnap serve --node NAME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    pub name: String,
    /// The canonical name of one of the configured zones.
    pub zone: String,
}

/// How often a serving node writes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// How long a job runner's lease lasts on PostgreSQL: a process renews its own every
/// [`HEARTBEAT_EVERY`]; once a lease is this old its jobs are taken over by a live process
/// (resumed or failed and undone, as after a restart).
pub const RUNNER_LEASE: Duration = Duration::from_secs(10);

/// A node whose heartbeat is older than this is reported down (several missed heartbeats, so
/// one slow write does not flap it).
pub const NODE_DOWN_AFTER: Duration = Duration::from_secs(10);

/// One node as `disksnap cluster status` and /metrics show it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub zone: String,
    pub address: String,
    pub up: bool,
    /// Unix ms of its latest heartbeat, and how long ago that was.
    pub heartbeat: i64,
    pub heartbeat_age_ms: i64,
    pub started: i64,
    pub free_bytes: i64,
    pub running_jobs: i64,
    /// Live volumes whose home it is.
    pub volumes: i64,
}

/// The whole cluster's view.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeStatus>,
    /// Zone → how many of its nodes are up.
    pub zones: Vec<(String, u64)>,
    /// Jobs pending or working, over every node.
    pub open_jobs: u64,
}

/// What `/healthz` reports: each part `Ok` or why not.
#[derive(Clone, Debug)]
pub struct Readiness {
    pub database: std::result::Result<(), String>,
    pub store: std::result::Result<(), String>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.database.is_ok() && self.store.is_ok()
    }
}

/// The digest a nonce is kept under: fixed length, and no client text (which may hold bytes
/// PostgreSQL's text refuses) reaches the database.
fn nonce_digest(key: &str, nonce: &str) -> String {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update([0x1f]);
    h.update(nonce.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Service {
    /// Whether request state that is still per process on one machine (replay nonces) must go
    /// through the database: with the metadata on PostgreSQL, other nodes may receive the
    /// replay. One SQLite file serves one machine's API, whose process keeps them in memory
    /// (a write and fsync per signed request would be the whole cost of a read).
    pub fn shares_nonces(&self) -> bool {
        self.inner.cfg.database_url.is_some()
    }

    /// Record the use of `nonce` under `key` (the dialect and access key) until `until`, when
    /// the clock check starts refusing its request: false when any process on this database
    /// recorded it and that time has not passed.
    pub async fn nonce_first_use(&self, key: &str, nonce: &str, until: chrono::DateTime<chrono::Utc>) -> Result<bool> {
        let now = now_ms();
        // A second of margin: the vendors' stamps are whole seconds.
        let expires = until.timestamp_millis().saturating_add(1000).max(now);
        Ok(self.meta().nonce_first_use(&nonce_digest(key, nonce), now, expires).await?)
    }

    /// Whether job runners prove they live by leases in the database (PostgreSQL: the runners
    /// of one database may be on several machines, whose lock files no other machine sees)
    /// rather than by lock files under DATA/runners/ alone (SQLite: one machine).
    pub(crate) fn uses_runner_leases(&self) -> bool {
        self.inner.cfg.database_url.is_some()
    }

    /// Keep this process's runner lease renewed for as long as the service lives (on
    /// PostgreSQL; see [`RUNNER_LEASE`]). Holds only a weak reference: the task ends with the
    /// last clone of the service.
    pub(crate) fn start_runner_lease(&self) {
        if !self.uses_runner_leases() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let weak = std::sync::Arc::downgrade(&self.inner);
        rt.spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let svc = Service { inner };
                if let Err(e) = svc.renew_runner_lease().await {
                    tracing::warn!(error = %e, "could not renew this process's job lease");
                }
            }
        });
    }

    async fn renew_runner_lease(&self) -> Result<()> {
        let node = self.node().map(|n| n.name.clone()).unwrap_or_default();
        let until = now_ms().saturating_add(RUNNER_LEASE.as_millis() as i64);
        Ok(self.meta().runner_lease(&self.inner.runner, &node, until).await?)
    }

    /// This process's node, if it is one of a cluster.
    pub fn node(&self) -> Option<&NodeConfig> {
        self.inner.cfg.node.as_ref()
    }

    /// Write this node's heartbeat (its zone, where it listens, free space where its volumes go,
    /// the jobs it runs). Nothing without a `[node]`.
    pub async fn heartbeat(&self, address: &str, started: i64) -> Result<()> {
        let Some(node) = self.node() else { return Ok(()) };
        let row = NodeRow {
            name: node.name.clone(),
            zone: node.zone.clone(),
            address: address.to_string(),
            // Where this node's new volumes of its zone go: what placing a volume compares.
            free_bytes: free_bytes(self.volume_path("x", &node.zone).parent().unwrap_or(self.data_dir())).unwrap_or(0),
            started,
            heartbeat: now_ms(),
            running_jobs: self.running_jobs() as i64,
        };
        Ok(self.meta().node_heartbeat(&row).await?)
    }

    /// Whether this process runs the cluster's maintenance now (taking the lead when the node
    /// that had it died). On SQLite always.
    pub async fn leads_maintenance(&self) -> Result<bool> {
        Ok(self.meta().maintenance_lead().await?)
    }

    /// Whether the metadata database and the snapshot store answer now (each within a few
    /// seconds): `/healthz` is ready only when both do. The store is asked whether an object
    /// exists (a HEAD on S3), which needs the endpoint, the credentials and the bucket.
    pub async fn readiness(&self) -> Readiness {
        const WITHIN: Duration = Duration::from_secs(3);
        let db = match tokio::time::timeout(WITHIN, self.meta().nodes()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", WITHIN.as_secs())),
        };
        let store = self.inner.store.clone();
        let probe = self.blocking(move || store.backend().exists("disksnap-readiness-probe"));
        let store = match tokio::time::timeout(WITHIN, probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", WITHIN.as_secs())),
        };
        Readiness { database: db, store }
    }

    /// Nodes, zones and open jobs as the database has them now.
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        let now = now_ms();
        let down_after = NODE_DOWN_AFTER.as_millis() as i64;
        let homes: std::collections::HashMap<String, i64> = self.meta().volumes_per_node().await?.into_iter().collect();
        let nodes: Vec<NodeStatus> = self
            .meta()
            .nodes()
            .await?
            .into_iter()
            .map(|n| NodeStatus {
                up: now - n.heartbeat <= down_after,
                heartbeat_age_ms: (now - n.heartbeat).max(0),
                volumes: homes.get(&n.name).copied().unwrap_or(0),
                name: n.name,
                zone: n.zone,
                address: n.address,
                heartbeat: n.heartbeat,
                started: n.started,
                free_bytes: n.free_bytes,
                running_jobs: n.running_jobs,
            })
            .collect();
        let zones = self
            .zones()
            .iter()
            .map(|z| (z.name.clone(), nodes.iter().filter(|n| n.up && n.zone == z.name).count() as u64))
            .collect();
        let open = self
            .meta()
            .jobs(&disksnap_meta::JobFilter {
                statuses: vec!["pending".into(), "working".into()],
                limit: 1,
                ..Default::default()
            })
            .await?;
        Ok(ClusterStatus { nodes, zones, open_jobs: open.total })
    }
}

/// Free bytes of the file system holding `dir` (for unprivileged users).
fn free_bytes(dir: &std::path::Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64).min(i64::MAX as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_digests_separate_the_key_from_the_nonce() {
        assert_ne!(nonce_digest("a:b", "c"), nonce_digest("a", "b:c"));
        assert_eq!(nonce_digest("k", "n").len(), 64);
        assert!(free_bytes(std::path::Path::new("/")).is_some_and(|b| b >= 0));
    }
}
