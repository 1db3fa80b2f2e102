//! Cluster state (0012_cluster.sql) on both backends: shared replay nonces, node heartbeats,
//! the maintenance lead.

use crate::rows::NodeRow;
use crate::testing::{backends, Kind};

#[tokio::test]
async fn a_nonce_is_used_once_by_all_processes_until_it_expires() {
    for first in backends().await {
        eprintln!("backend: {:?}", first.kind);
        assert!(first.nonce_first_use("d1", 0, 100).await.unwrap());
        assert!(!first.nonce_first_use("d1", 10, 110).await.unwrap(), "a replay in the same process");
        let other = first.reopen().await;
        assert!(!other.nonce_first_use("d1", 20, 120).await.unwrap(), "a replay to another process");
        assert!(other.nonce_first_use("d2", 20, 120).await.unwrap());
        // once expired it may be used again (the clock check refuses such old requests anyway)
        assert!(other.nonce_first_use("d1", 100, 200).await.unwrap());
        assert!(!first.nonce_first_use("d1", 150, 250).await.unwrap());
        // the purge deletes what expired, nothing live
        assert_eq!(first.state_purge(150).await.unwrap(), 1, "d2 expired at 120");
        assert!(!first.nonce_first_use("d1", 150, 250).await.unwrap());
    }
}

#[tokio::test]
async fn racing_uses_of_one_nonce_have_exactly_one_winner() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let m = m.arc();
            tasks.push(tokio::spawn(async move { m.nonce_first_use("same", 0, 1000).await.unwrap() }));
        }
        let mut won = 0;
        for t in tasks {
            won += t.await.unwrap() as u32;
        }
        assert_eq!(won, 1);
    }
}

fn node(name: &str, heartbeat: i64) -> NodeRow {
    NodeRow {
        name: name.into(),
        zone: "pek3a".into(),
        address: "127.0.0.1:7480".into(),
        free_bytes: 1 << 30,
        started: 1,
        heartbeat,
        running_jobs: 2,
    }
}

#[tokio::test]
async fn heartbeats_replace_a_nodes_row() {
    for m in backends().await {
        m.node_heartbeat(&node("b", 10)).await.unwrap();
        m.node_heartbeat(&node("a", 10)).await.unwrap();
        m.node_heartbeat(&node("b", 20)).await.unwrap();
        let all = m.nodes().await.unwrap();
        assert_eq!(all, vec![node("a", 10), node("b", 20)]);
    }
}

#[tokio::test]
async fn one_process_leads_maintenance_and_the_lead_moves_when_it_goes() {
    for first in backends().await {
        assert!(first.maintenance_lead().await.unwrap());
        assert!(first.maintenance_lead().await.unwrap(), "the leader keeps the lead");
        if first.kind != Kind::Pg {
            continue; // one machine: every process may do the upkeep
        }
        let second = first.reopen().await;
        assert!(!second.maintenance_lead().await.unwrap(), "a second leader while the first lives");
        drop(first);
        // the database ends the session of the dropped connection, which frees the lock
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !second.maintenance_lead().await.unwrap() {
            assert!(std::time::Instant::now() < deadline, "the lead did not move");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn runner_leases_are_extended_listed_and_purged() {
    for m in backends().await {
        m.runner_lease("1-a", "node-a", 100).await.unwrap();
        m.runner_lease("2-b", "node-b", 100).await.unwrap();
        m.runner_lease("1-a", "node-a", 300).await.unwrap();
        let all = m.runner_leases().await.unwrap();
        assert_eq!(all, vec![("1-a".into(), "node-a".into(), 300), ("2-b".into(), "node-b".into(), 100)]);
        assert_eq!(m.runner_leases_purge(200).await.unwrap(), 1);
        assert_eq!(m.runner_leases().await.unwrap().len(), 1);
    }
}

fn volume(id: &str, home: Option<&str>, status: &str) -> crate::rows::VolumeRow {
    crate::rows::VolumeRow {
        id: id.into(),
        account: "acct".into(),
        zone: "pek3a".into(),
        name: String::new(),
        description: String::new(),
        size: 1 << 30,
        kind: "data".into(),
        status: status.into(),
        transition: String::new(),
        instance_id: None,
        path: String::new(),
        head_root: None,
        create_time: 1,
        status_time: 1,
        source_snapshot: None,
        home_node: home.map(Into::into),
        version: 0,
    }
}

/// A volume's home node and a job's node are stored and read back on both backends, and live
/// volumes are counted per home (`disksnap cluster status`).
#[tokio::test]
async fn homes_of_volumes_and_nodes_of_jobs_round_trip_and_are_counted() {
    for m in backends().await {
        eprintln!("backend: {:?}", m.kind);
        let b = crate::Batch {
            put_volumes: vec![
                volume("v1", Some("node-a"), "available"),
                volume("v2", Some("node-a"), "in-use"),
                volume("v3", Some("node-b"), "deleted"),
                volume("v4", None, "available"),
            ],
            put_jobs: vec![crate::rows::JobRow {
                id: "j1".into(),
                account: "acct".into(),
                action: "CreateVolumes".into(),
                status: "pending".into(),
                resources: "[\"v1\"]".into(),
                params: "null".into(),
                error: None,
                runner: None,
                create_time: 1,
                status_time: 1,
                node: Some("node-a".into()),
            }],
            ..Default::default()
        };
        m.commit(b).await.unwrap();
        assert_eq!(m.volume("acct", "v1").await.unwrap().unwrap().home_node.as_deref(), Some("node-a"));
        assert_eq!(m.volume("acct", "v4").await.unwrap().unwrap().home_node, None);
        assert_eq!(m.job("acct", "j1").await.unwrap().unwrap().node.as_deref(), Some("node-a"));
        assert_eq!(
            m.volumes_per_node().await.unwrap(),
            vec![("node-a".to_string(), 2)],
            "deleted and homeless not counted"
        );
    }
}
