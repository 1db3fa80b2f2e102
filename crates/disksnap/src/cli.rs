//! The commands: open the data dir, call the service, print the result.

use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use disksnap_dialect_qingcloud::ids::display;
use disksnap_service::*;

use crate::config::{Config, CONFIG_NAME};
use crate::output::{action_word, human_bytes, job_json, json_of, print_fields, print_json, Table};
use crate::*;

mod groups;

const DEFAULT_DATA_DIR: &str = "./disksnap-data";

/// Find or create the config, and settle the data dir.
fn load_config(cli: &Cli) -> anyhow::Result<(Config, PathBuf)> {
    if let Some(path) = &cli.config {
        let cfg = Config::load(path)?;
        let dir = cli.data_dir.clone().or_else(|| cfg.data_dir.clone()).unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        return Ok((cfg, dir));
    }
    let dir = cli.data_dir.clone().unwrap_or_else(|| DEFAULT_DATA_DIR.into());
    let path = dir.join(CONFIG_NAME);
    if path.exists() {
        return Ok((Config::load(&path)?, dir));
    }
    disksnap_engine::private::create_dir_all(&dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    let (cfg, text) = Config::generated();
    write_private(&path, &text)?;
    let a = &cfg.accounts[0];
    eprintln!("disksnap: new data dir {} with a generated config {}", dir.display(), path.display());
    eprintln!("disksnap: credentials of account {:?} (shown once; they stay in the config file):", a.name.get_ref());
    if let Some(k) = &a.qingcloud {
        eprintln!("  QingCloud / 51idc  access_key_id={} secret_access_key={}", k.access_key_id, k.secret_access_key);
    }
    if let Some(k) = &a.aliyun {
        eprintln!("  Alibaba Cloud ECS  access_key_id={} access_key_secret={}", k.access_key_id, k.access_key_secret);
    }
    if let Some(k) = &a.tencent {
        eprintln!("  Tencent Cloud CBS  secret_id={} secret_key={}", k.secret_id, k.secret_key);
    }
    if let Some(k) = &a.openstack {
        eprintln!(
            "  OpenStack          user={} password={} project={} ({})",
            k.user, k.password, k.project_name, k.project_id
        );
    }
    if let Some(k) = &a.huawei {
        eprintln!("  Huawei Cloud EVS   access_key_id={} secret_access_key={}", k.access_key_id, k.secret_access_key);
    }
    Ok((cfg, dir))
}

/// Write a file only its owner can read (it holds secrets), durably.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("toml.tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let (cfg, data_dir) = load_config(&cli)?;
    let mut scfg = ServiceConfig::new(&data_dir);
    scfg.deleted_retention = cfg.deleted_retention;
    scfg.gc_grace = cfg.gc_grace;
    scfg.job_retention = cfg.job_retention;
    scfg.test_rollback_delay = cfg.test_rollback_delay;
    scfg.chunk_size = cfg.chunk_size_kib.map(|k| k as usize * 1024);
    scfg.capture_dictionary = cfg.store.capture_dictionary.unwrap_or(true);
    if !cfg.zones.is_empty() {
        scfg.zones = cfg.zone_configs();
        scfg.volume_homes = cfg.volume_homes();
    }
    scfg.accounts = cfg.account_names();
    scfg.database_url = cfg.database_url.clone();
    if let Command::Serve { node, .. } = &cli.command {
        scfg.node = cfg.node_config(node.as_deref())?;
    }
    if scfg.accounts.is_empty() {
        bail!("the config names no [[accounts]]; add one (see README.md)");
    }
    if let Command::Init { chunk_size_kib } = &cli.command {
        if !chunk_size_kib.is_power_of_two() || !(4..=16384).contains(chunk_size_kib) {
            bail!("--chunk-size-kib {chunk_size_kib}: must be a power of two from 4 to 16384");
        }
        scfg.chunk_size = Some(*chunk_size_kib as usize * 1024);
    }
    let account = match &cli.account {
        Some(a) if scfg.accounts.contains(a) => a.clone(),
        Some(a) => bail!("account {a:?} is not in the config (accounts: {})", scfg.accounts.join(", ")),
        None => scfg.accounts[0].clone(),
    };
    if let Command::Admin { url, cmd } = &cli.command {
        return admin_command(&cfg, url.clone(), cmd, &account).await;
    }
    // The binary chooses the backends — SQLite (or PostgreSQL: database_url), and the pack store's objects in a local
    // directory or an S3 bucket ([store]) — and hands them to the service. A server proves its
    // S3 settings at start-up, so a wrong one stops it with what to fix.
    let objects = cfg.store.open_backend(&scfg.data_dir, matches!(cli.command, Command::Serve { .. }))?;
    let backends = disksnap_service::Backends::with_object_store(&scfg, objects).await.map_err(|e| anyhow!("{e}"))?;
    let svc = Service::with_backends(scfg, backends).map_err(|e| anyhow!("{e}"))?;
    let caller = Caller::new(account);
    if let Command::Serve { listen, tls_listen, tls_cert, tls_key, .. } = &cli.command {
        let listen = listen.clone().unwrap_or_else(|| cfg.listen.clone());
        let cert_and_key = tls_cert.clone().zip(tls_key.clone());
        let tls_addr = tls_listen
            .clone()
            .or_else(|| cfg.tls_listen.clone())
            .or_else(|| cert_and_key.as_ref().map(|_| crate::config::DEFAULT_TLS_LISTEN.to_string()));
        let tls = tls_addr.map(|addr| crate::serve::TlsListen { addr, cert_and_key });
        let mut api = disksnap_api_common::ApiContext::new(svc, cfg.keyring());
        api.token_lifetime = cfg.token_lifetime;
        let limits = crate::serve::ConnLimits {
            header_read_timeout: cfg.header_read_timeout,
            body_read_timeout: cfg.body_read_timeout,
            idle_timeout: cfg.idle_timeout,
            max_connections: cfg.max_connections,
        };
        let admin_token = if cfg.admin.enabled { cfg.admin.token.clone() } else { None };
        crate::serve::run(api, &listen, tls, limits, cfg.console_trusted_proxies.clone(), admin_token).await?;
        return Ok(0);
    }
    // A command is also a runner: finish what a crashed process left, before anything else,
    // whichever account it belongs to (the jobs are waited for, not shown as this caller's).
    let recovered = svc.recover().await.map_err(|e| anyhow!("{e}"))?;
    for job in &recovered {
        eprintln!(
            "disksnap: job {} ({}) was interrupted by a crash: {}",
            display(Kind::Job, &job.id),
            action_word(job.action),
            if job.is_done() { "failed, and undone" } else { "resuming" }
        );
    }
    if recovered.iter().any(|j| !j.is_done()) {
        svc.wait_idle().await;
        eprintln!("disksnap: interrupted jobs finished");
    }
    svc.cease_due().await.map_err(|e| anyhow!("{e}"))?;
    let cmd = Cmd { svc, caller, json: cli.json };
    cmd.dispatch(cli.command).await.map_err(|e| anyhow!("{e:#}"))
}

/// `disksnap admin …`: one call to the running server's admin API; prints its JSON answer.
async fn admin_command(
    cfg: &crate::config::Config,
    url: Option<String>,
    cmd: &crate::AdminCmd,
    account: &str,
) -> anyhow::Result<i32> {
    use crate::AdminCmd as A;
    let Some(token) = cfg.admin.token.clone().filter(|_| cfg.admin.enabled) else {
        bail!("the config has no [admin] section with enabled = true and a token: the server's admin API is off");
    };
    let url = url.unwrap_or_else(|| format!("http://{}", cfg.listen));
    let (method, path, body) = match cmd {
        A::State => ("GET", "/admin/v1/state".to_string(), None),
        A::Advance { by } => ("POST", "/admin/v1/clock".into(), Some(json!({ "advance": by }))),
        A::SetTime { at } => ("POST", "/admin/v1/clock".into(), Some(json!({ "set": at }))),
        A::Fire { policy } => {
            ("POST", format!("/admin/v1/policies/{policy}/fire"), Some(json!({ "account": account })))
        }
        A::Reset { account: a } => {
            ("POST", format!("/admin/v1/accounts/{}/reset", a.as_deref().unwrap_or(account)), None)
        }
        A::Fail { kind, count, error } => {
            ("POST", "/admin/v1/jobs/fail".into(), Some(json!({ "kind": kind, "count": count, "error": error })))
        }
        A::Hold { kind } => ("POST", "/admin/v1/jobs/hold".into(), Some(json!({ "kind": kind }))),
        A::Release { kind } => ("POST", "/admin/v1/jobs/release".into(), Some(json!({ "kind": kind }))),
    };
    let v = crate::admin::call(&url, &token, method, &path, body).await?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}

struct Cmd {
    svc: Service,
    caller: Caller,
    json: bool,
}

/// Service errors are already one clear line; keep them that way.
fn se(e: ServiceError) -> anyhow::Error {
    anyhow!("{e}")
}

/// Wait for a job with a progress bar on stderr (hidden when stderr is not a terminal).
async fn wait(svc: &Service, caller: &Caller, job: &Job, label: &str) -> anyhow::Result<Job> {
    let bar = Bar::new(label, true);
    let mut done = pin!(svc.wait_job(caller, &job.id));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let job = loop {
        tokio::select! {
            j = &mut done => break j.map_err(se)?,
            _ = tick.tick() => {
                if let Some((d, t)) = svc.job_progress(&job.id) {
                    disksnap_engine::Progress::start(&bar, t);
                    disksnap_engine::Progress::advance(&bar, d);
                }
            }
        }
    };
    bar.finish();
    if job.status == JobStatus::Failed {
        bail!(
            "job {} ({}) failed: {}",
            display(Kind::Job, &job.id),
            action_word(job.action),
            job.error.clone().unwrap_or_default()
        );
    }
    Ok(job)
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn policy_spec(a: &PolicyArgs) -> PolicySpec {
    PolicySpec {
        name: None,
        hours: (!a.hours.is_empty()).then(|| a.hours.clone()),
        schedule: match (a.every_days, a.weekdays.is_empty()) {
            (Some(n), _) => Some(Schedule::EveryDays(n)),
            (None, false) => Some(Schedule::Weekdays(a.weekdays.clone())),
            (None, true) => None,
        },
        retention: match (a.keep_days, a.keep_count, a.keep_forever) {
            (Some(d), _, _) => Some(Retention::Days(d)),
            (_, Some(c), _) => Some(Retention::Count(c)),
            (_, _, true) => Some(Retention::Forever),
            _ => None,
        },
        enabled: None,
    }
}

fn policy_json(p: &Policy) -> Value {
    let days = match &p.schedule {
        Schedule::Weekdays(d) if d.len() == 7 => "every day".to_string(),
        Schedule::Weekdays(d) => {
            let names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            d.iter().map(|n| names[(*n as usize - 1).min(6)]).collect::<Vec<_>>().join(",")
        }
        Schedule::EveryDays(1) => "every day".to_string(),
        Schedule::EveryDays(n) => format!("every {n} days"),
    };
    let retention = match p.retention {
        Retention::Forever => "forever".to_string(),
        Retention::Days(d) => format!("{d} days"),
        Retention::Count(c) => format!("last {c}"),
    };
    json!({
        "id": display(Kind::Policy, &p.id),
        "name": p.name,
        "hours": p.hours,
        "schedule": p.schedule,
        "days": days,
        "retention": retention,
        "retention_rule": p.retention,
        "enabled": p.enabled,
        "create_time": time(&p.create_time),
        "volumes": p.volumes.iter().map(|v| display(Kind::Volume, v)).collect::<Vec<_>>(),
    })
}

fn kind_of(k: KindArg) -> VolumeKind {
    match k {
        KindArg::System => VolumeKind::System,
        KindArg::Data => VolumeKind::Data,
    }
}

impl Cmd {
    async fn dispatch(&self, command: Command) -> anyhow::Result<i32> {
        match command {
            Command::Serve { .. } | Command::Admin { .. } => unreachable!("handled before"),
            Command::Init { .. } => {
                let out =
                    json!({"data_dir": self.svc.data_dir().display().to_string(), "chunk_size": self.svc.chunk_size()});
                if self.json {
                    print_json(&out);
                } else {
                    println!(
                        "data dir {} ready; chunk size {} KiB",
                        self.svc.data_dir().display(),
                        self.svc.chunk_size() / 1024
                    );
                }
                Ok(0)
            }
            Command::Volume(c) => self.volume(c).await,
            Command::Instance(c) => self.instance(c).await,
            Command::Snapshot(c) => self.snapshot(c).await,
            Command::Image(c) => self.image(c).await,
            Command::Job(c) => self.job(c).await,
            Command::Tag(c) => self.tag(c).await,
            Command::Policy(c) => self.policy(c).await,
            Command::Group(c) => self.group(c).await,
            Command::Verify { sample } => self.verify(sample).await,
            Command::Repair { rebuild_index: _ } => {
                let bar = Arc::new(Bar::new("reading packs", false));
                let r = self.svc.rebuild_chunk_index(bar.clone()).await.map_err(se)?;
                bar.finish();
                let bad: Vec<Value> = r.bad_packs.iter().map(|(p, why)| json!({"pack": p, "reason": why})).collect();
                if self.json {
                    print_json(&json!({"packs": r.packs, "chunks": r.chunks, "bad_packs": bad}));
                } else {
                    println!("chunk index rebuilt: {} chunks in {} packs", r.chunks, r.packs);
                    for (p, why) in &r.bad_packs {
                        println!("BAD pack {p}: {why} (its chunks are not indexed; run `disksnap verify`)");
                    }
                }
                Ok(if r.bad_packs.is_empty() { 0 } else { 1 })
            }
            Command::MigrateStore => {
                let bar = Arc::new(Bar::new("migrating", false));
                let r = self.svc.migrate_store(bar.clone()).await.map_err(se)?;
                bar.finish();
                let bad: Vec<Value> = r.bad_chunks.iter().map(|(d, why)| json!({"digest": d, "reason": why})).collect();
                if self.json {
                    print_json(&json!({"chunks": r.chunks, "bytes": r.bytes, "packs": r.packs, "bad_chunks": bad}));
                } else {
                    println!("moved {} chunk files ({}) into {} packs", r.chunks, human_bytes(r.bytes), r.packs);
                    for (d, why) in &r.bad_chunks {
                        println!("BAD chunk file {d}: {why} (left in place)");
                    }
                }
                Ok(if r.bad_chunks.is_empty() { 0 } else { 1 })
            }
            Command::Gc { grace } => self.gc(grace).await,
            Command::Compact { grace } => self.compact(grace).await,
            Command::Stats => {
                let st = self.svc.store_stats().await.map_err(se)?;
                if self.json {
                    print_json(&json!({
                        "packs": st.packs,
                        "pack_bytes": st.pack_bytes,
                        "logical_bytes": st.logical_bytes,
                        "unique_raw_bytes": st.unique_raw_bytes,
                        "unique_stored_bytes": st.unique_stored_bytes,
                        "dedup_ratio": st.dedup_ratio(),
                        "compression_ratio": st.compression_ratio(),
                    }));
                } else {
                    let size =
                        |b: Option<u64>| b.map(crate::output::human_bytes).unwrap_or_else(|| "not measured".into());
                    let ratio = |r: Option<f64>| r.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "not measured".into());
                    println!("packs               {} ({})", st.packs, crate::output::human_bytes(st.pack_bytes));
                    println!("points stand for    {}", size(st.logical_bytes));
                    println!(
                        "distinct chunks     {} raw, {} stored",
                        size(st.unique_raw_bytes),
                        size(st.unique_stored_bytes)
                    );
                    println!("dedup ratio         {}", ratio(st.dedup_ratio()));
                    println!("compression ratio   {}", ratio(st.compression_ratio()));
                }
                Ok(0)
            }
            Command::Maintain => {
                let n = self.svc.cease_due().await.map_err(se)?;
                if self.json {
                    print_json(&json!({ "ceased": n }));
                } else {
                    println!("{n} snapshots released");
                }
                Ok(0)
            }
            Command::Cluster(crate::ClusterCmd::Status) => self.cluster_status().await,
        }
    }

    /// `disksnap cluster status`: what the nodes' heartbeats left in the database.
    async fn cluster_status(&self) -> anyhow::Result<i32> {
        let st = self.svc.cluster_status().await.map_err(se)?;
        if self.json {
            print_json(&serde_json::to_value(&st)?);
            return Ok(0);
        }
        if st.nodes.is_empty() {
            println!("no node has sent a heartbeat (a server joins with [node] in its config or --node NAME)");
        } else {
            println!(
                "{:<16} {:<12} {:<5} {:>10} {:>12} {:>6} {:>8}  ADDRESS",
                "NODE", "ZONE", "STATE", "HEARTBEAT", "FREE", "JOBS", "VOLUMES"
            );
            for n in &st.nodes {
                println!(
                    "{:<16} {:<12} {:<5} {:>9.1}s {:>12} {:>6} {:>8}  {}",
                    n.name,
                    n.zone,
                    if n.up { "up" } else { "DOWN" },
                    n.heartbeat_age_ms as f64 / 1000.0,
                    human_bytes(n.free_bytes.max(0) as u64),
                    n.running_jobs,
                    n.volumes,
                    n.address
                );
            }
        }
        for (zone, up) in &st.zones {
            println!("zone {zone}: {up} node(s) up");
        }
        println!("open jobs (pending or working): {}", st.open_jobs);
        Ok(0)
    }

    /// Print in JSON (a page with its total, or one resource), or one resource as fields.
    /// Returns false when the caller should print a table.
    fn list_or_one<T: serde::Serialize>(&self, items: &[T], total: Option<u64>, kind: Kind, plural: &str) -> bool {
        if self.json {
            let values: Vec<Value> = items.iter().map(|v| json_of(v, kind)).collect();
            match total {
                Some(t) => print_json(&json!({"total_count": t, plural: values})),
                None if values.len() == 1 => print_json(&values[0]),
                None => print_json(&Value::Array(values)),
            }
            return true;
        }
        if total.is_none() && items.len() == 1 {
            print_fields(&json_of(&items[0], kind));
            return true;
        }
        false
    }

    fn show_volumes(&self, vols: &[Volume], total: Option<u64>) {
        if self.list_or_one(vols, total, Kind::Volume, "volumes") {
            return;
        }
        let mut t = Table::new(&["ID", "NAME", "SIZE", "TYPE", "STATUS", "INSTANCE", "CREATED"]);
        for v in vols {
            let status = if v.transition == VolumeTransition::None {
                v.status.to_string()
            } else {
                format!("{} ({})", v.status, v.transition)
            };
            t.row(vec![
                display(Kind::Volume, &v.id),
                v.name.clone(),
                format!("{} GiB", v.size_gib()),
                v.kind.to_string(),
                status,
                v.instance_id.as_deref().map(|i| display(Kind::Instance, i)).unwrap_or_default(),
                time(&v.create_time),
            ]);
        }
        t.print();
        if let Some(total) = total {
            println!("{} of {total} volumes", vols.len());
        }
    }

    async fn volume(&self, c: VolumeCmd) -> anyhow::Result<i32> {
        let (svc, who) = (&self.svc, &self.caller);
        match c {
            VolumeCmd::Create { size_gib, name, kind, zone, instance, count } => {
                let req = CreateVolumes {
                    zone,
                    name,
                    size_gib,
                    kind: Some(kind_of(kind)),
                    count,
                    instance_id: instance,
                    ..Default::default()
                };
                let (job, vols) = svc.create_volumes(who, req).await.map_err(se)?;
                wait(svc, who, &job, "creating").await?;
                let mut fresh = Vec::new();
                for v in &vols {
                    fresh.push(svc.volume(who, &v.id).await.map_err(se)?);
                }
                self.show_volumes(&fresh, None);
            }
            VolumeCmd::Import { file, name, kind, zone } => {
                let (job, v) =
                    svc.import_volume(who, zone.as_deref(), &name, kind_of(kind), &file).await.map_err(se)?;
                wait(svc, who, &job, "importing").await?;
                self.show_volumes(&[svc.volume(who, &v.id).await.map_err(se)?], None);
            }
            VolumeCmd::List { instance, search, page } => {
                let q = VolumeFilter {
                    instance_ids: instance.into_iter().collect(),
                    search,
                    offset: page.offset,
                    limit: page.limit.min(100),
                    ..Default::default()
                };
                let (vols, total) = svc.volumes(who, &q).await.map_err(se)?;
                self.show_volumes(&vols, Some(total));
            }
            VolumeCmd::Show { id } => {
                let v = svc.volume(who, &id).await.map_err(se)?;
                // In a cluster: whether the node holding its file is up, and what waits for it.
                let home = svc.home_status(who, &id).await.map_err(se)?;
                let mut out = json_of(&v, Kind::Volume);
                if let Some(h) = &home {
                    out["home"] = json!({
                        "node": h.node,
                        "up": h.up,
                        "heartbeat_age_ms": h.heartbeat_age_ms,
                        "waiting_jobs": h.waiting_jobs.iter().map(|j| display(Kind::Job, j)).collect::<Vec<_>>(),
                    });
                    if !h.up {
                        out["home"]["note"] = json!(format!(
                            "node {} is down; {} job(s) of this volume wait for it to come back",
                            h.node,
                            h.waiting_jobs.len()
                        ));
                    }
                }
                if self.json {
                    print_json(&out);
                } else {
                    print_fields(&out);
                }
            }
            VolumeCmd::Path { id } => {
                let v = svc.volume(who, &id).await.map_err(se)?;
                if self.json {
                    print_json(&json!({"id": display(Kind::Volume, &v.id), "path": v.path}));
                } else {
                    println!("{}", v.path);
                }
            }
            VolumeCmd::Resize { id, size_gib } => {
                let job = svc.resize_volume(who, &id, size_gib).await.map_err(se)?;
                wait(svc, who, &job, "resizing").await?;
                self.show_volumes(&[svc.volume(who, &id).await.map_err(se)?], None);
            }
            VolumeCmd::Modify { id, name, description } => {
                let v = svc.modify_volume(who, &id, name.as_deref(), description.as_deref()).await.map_err(se)?;
                self.show_volumes(&[v], None);
            }
            VolumeCmd::Attach { ids, instance } => {
                let vols = svc.attach_volumes(who, &ids, &instance).await.map_err(se)?;
                self.show_volumes(&vols, Some(vols.len() as u64));
            }
            VolumeCmd::Detach { ids } => {
                let vols = svc.detach_volumes(who, &ids).await.map_err(se)?;
                self.show_volumes(&vols, Some(vols.len() as u64));
            }
            VolumeCmd::Delete { ids } => {
                let job = svc.delete_volumes(who, &ids).await.map_err(se)?;
                let job = wait(svc, who, &job, "deleting").await?;
                self.done(&job, &format!("deleted {}", ids.join(" ")));
            }
        }
        Ok(0)
    }

    fn done(&self, job: &Job, what: &str) {
        if self.json {
            print_json(&json!({"job": job_json(job)}));
        } else {
            println!("{what} (job {})", display(Kind::Job, &job.id));
        }
    }

    async fn instance(&self, c: InstanceCmd) -> anyhow::Result<i32> {
        match c {
            InstanceCmd::Create { name, zone } => {
                let i = self.svc.create_instance(&self.caller, zone.as_deref(), &name).await.map_err(se)?;
                if self.json {
                    print_json(&json_of(&i, Kind::Instance));
                } else {
                    println!("{}", display(Kind::Instance, &i.id));
                }
            }
            InstanceCmd::List => {
                let list = self.svc.instances(&self.caller).await.map_err(se)?;
                if self.json {
                    print_json(&json_of(&list, Kind::Instance));
                } else {
                    let mut t = Table::new(&["ID", "NAME", "ZONE", "CREATED"]);
                    for i in &list {
                        t.row(vec![
                            display(Kind::Instance, &i.id),
                            i.name.clone(),
                            i.zone.clone(),
                            time(&i.create_time),
                        ]);
                    }
                    t.print();
                }
            }
        }
        Ok(0)
    }

    fn show_snapshots(&self, snaps: &[Snapshot], total: Option<u64>) {
        if self.list_or_one(snaps, total, Kind::Snapshot, "snapshots") {
            return;
        }
        let mut t =
            Table::new(&["ID", "NAME", "VOLUME", "TYPE", "POINT", "PARENT", "HEAD", "STATUS", "SIZE", "SNAPSHOT TIME"]);
        for s in snaps {
            let status = if s.transition == SnapshotTransition::None {
                s.status.to_string()
            } else {
                format!("{} ({})", s.status, s.transition)
            };
            t.row(vec![
                display(Kind::Snapshot, &s.id),
                s.name.clone(),
                display(Kind::Volume, &s.volume_id),
                if s.full { "full".into() } else { "incremental".into() },
                // instant (a reflink clone) or read-pass (no reflink where the volume lives)
                if s.consistency.is_empty() { "-".into() } else { s.consistency.clone() },
                s.parent_id.as_deref().map(|p| display(Kind::Snapshot, p)).unwrap_or_else(|| "self".into()),
                if s.is_head { "*".into() } else { String::new() },
                status,
                human_bytes(s.size),
                time(&s.snapshot_time),
            ]);
        }
        t.print();
        if let Some(total) = total {
            println!("{} of {total} snapshots", snaps.len());
        }
    }

    async fn snapshot(&self, c: SnapshotCmd) -> anyhow::Result<i32> {
        let (svc, who) = (&self.svc, &self.caller);
        match c {
            SnapshotCmd::Create { volumes, instances, full, name, description, retention_days, tags } => {
                if volumes.is_empty() && instances.is_empty() {
                    bail!("name at least one volume (or --instance) to snapshot");
                }
                let req = CreateSnapshots {
                    volumes,
                    instances,
                    full,
                    name,
                    description,
                    origin: None,
                    retention_days,
                    tag_ids: tags,
                };
                let (job, snaps) = svc.create_snapshots(who, req).await.map_err(se)?;
                let job = wait(svc, who, &job, "snapshotting").await?;
                let mut fresh = Vec::new();
                for s in &snaps {
                    fresh.push(svc.snapshot(who, &s.id).await.map_err(se)?);
                }
                if self.json {
                    let items: Vec<Value> = fresh.iter().map(|s| json_of(s, Kind::Snapshot)).collect();
                    print_json(&json!({"job": job_json(&job), "snapshots": items}));
                } else {
                    self.show_snapshots(&fresh, Some(fresh.len() as u64));
                }
            }
            SnapshotCmd::List {
                ids,
                volume,
                instance,
                root,
                kind,
                status,
                name,
                search,
                tags,
                since,
                until,
                oldest_first,
                page,
            } => {
                let mut statuses = Vec::new();
                for s in status.iter().filter(|s| !s.is_empty()) {
                    statuses.push(
                        SnapshotStatus::parse(s)
                            .ok_or_else(|| anyhow!("--status {s:?}: use creating, available, deleted or ceased"))?,
                    );
                }
                let (mut tag_ids, mut tag_pairs) = (Vec::new(), Vec::new());
                for t in tags {
                    match t.split_once('=') {
                        Some((k, v)) => tag_pairs.push((k.to_string(), Some(v.to_string()))),
                        None if ids::parse(Kind::Tag, &t).is_some() && t.starts_with("tag-") => tag_ids.push(t),
                        None => tag_pairs.push((t, None)),
                    }
                }
                if page.limit > 100 {
                    bail!("--limit {}: at most 100 per page", page.limit);
                }
                let q = SnapshotFilter {
                    ids,
                    volume_ids: volume.into_iter().collect(),
                    instance_ids: instance.into_iter().collect(),
                    root_id: root,
                    is_full: kind.map(|k| k == SnapType::Full),
                    statuses: statuses.into_iter().map(String::from).collect(),
                    name,
                    search,
                    tag_ids,
                    tag_pairs,
                    created_from: since.map(|t| t.timestamp_millis()),
                    created_to: until.map(|t| t.timestamp_millis()),
                    order: Order::oldest_first(oldest_first),
                    offset: page.offset,
                    limit: page.limit.max(1),
                    ..Default::default()
                };
                let (snaps, total) = svc.snapshots(who, &q).await.map_err(se)?;
                self.show_snapshots(&snaps, Some(total));
            }
            SnapshotCmd::Show { id } => self.show_snapshots(&[svc.snapshot(who, &id).await.map_err(se)?], None),
            SnapshotCmd::Modify { id, name, description } => {
                let s = svc.modify_snapshot(who, &id, name.as_deref(), description.as_deref()).await.map_err(se)?;
                self.show_snapshots(&[s], None);
            }
            SnapshotCmd::Delete { ids, with_later } => {
                let scope = if with_later { DeleteScope::PointAndLater } else { DeleteScope::Points };
                let job = svc.delete_snapshots(who, &ids, scope).await.map_err(se)?;
                let job = wait(svc, who, &job, "deleting").await?;
                let gone: Vec<String> = job.resources.iter().map(|r| display(Kind::Snapshot, r)).collect();
                self.done(&job, &format!("deleted {}", gone.join(" ")));
            }
            SnapshotCmd::Recover { id } => {
                self.show_snapshots(&[svc.recover_snapshot(who, &id).await.map_err(se)?], None)
            }
            SnapshotCmd::Rollback { id } => {
                let job = svc.apply_snapshot(who, &id).await.map_err(se)?;
                let job = wait(svc, who, &job, "rolling back").await?;
                let s = svc.snapshot(who, &id).await.map_err(se)?;
                self.done(
                    &job,
                    &format!(
                        "volume {} rolled back to {}",
                        display(Kind::Volume, &s.volume_id),
                        display(Kind::Snapshot, &s.id)
                    ),
                );
            }
            SnapshotCmd::ToVolume { id, name } => {
                let (job, v) = svc.create_volume_from_snapshot(who, &id, &name, None).await.map_err(se)?;
                wait(svc, who, &job, "restoring").await?;
                self.show_volumes(&[svc.volume(who, &v.id).await.map_err(se)?], None);
            }
            SnapshotCmd::Capture { id, name } => {
                let (job, img) = svc.capture_image(who, &id, &name).await.map_err(se)?;
                wait(svc, who, &job, "capturing").await?;
                self.show_image(&svc.image(who, &img.id).await.map_err(se)?);
            }
            SnapshotCmd::Meta { id, pairs } => {
                let mut changes = Vec::new();
                for p in pairs {
                    let (k, v) =
                        p.split_once('=').ok_or_else(|| anyhow!("{p:?}: write KEY=VALUE, or KEY= to remove"))?;
                    changes.push((k.to_string(), (!v.is_empty()).then(|| v.to_string())));
                }
                let meta = svc.set_snapshot_metadata(who, &id, &changes).await.map_err(se)?;
                let map: serde_json::Map<String, Value> =
                    meta.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
                if self.json {
                    print_json(&Value::Object(map));
                } else {
                    print_fields(&Value::Object(map));
                }
            }
        }
        Ok(0)
    }

    fn show_image(&self, img: &Image) {
        let v = json_of(img, Kind::Image);
        if self.json {
            print_json(&v);
        } else {
            print_fields(&v);
        }
    }

    async fn image(&self, c: ImageCmd) -> anyhow::Result<i32> {
        let (svc, who) = (&self.svc, &self.caller);
        match c {
            ImageCmd::List { page } => {
                let (imgs, total) = svc.images(who, page.offset, page.limit.min(100)).await.map_err(se)?;
                if self.json {
                    print_json(&json!({"total_count": total, "images": json_of(&imgs, Kind::Image)}));
                } else {
                    let mut t = Table::new(&["ID", "NAME", "SNAPSHOT", "SIZE", "STATUS", "CREATED"]);
                    for i in &imgs {
                        t.row(vec![
                            display(Kind::Image, &i.id),
                            i.name.clone(),
                            display(Kind::Snapshot, &i.snapshot_id),
                            human_bytes(i.size),
                            i.status.to_string(),
                            time(&i.create_time),
                        ]);
                    }
                    t.print();
                }
            }
            ImageCmd::Show { id } => self.show_image(&svc.image(who, &id).await.map_err(se)?),
            ImageCmd::Path { id } => println!("{}", svc.image(who, &id).await.map_err(se)?.path),
            ImageCmd::Delete { ids } => {
                let gone = svc.delete_images(who, &ids).await.map_err(se)?;
                if self.json {
                    print_json(&json_of(&gone, Kind::Image));
                } else {
                    println!(
                        "deleted {}",
                        gone.iter().map(|i| display(Kind::Image, &i.id)).collect::<Vec<_>>().join(" ")
                    );
                }
            }
        }
        Ok(0)
    }

    async fn job(&self, c: JobCmd) -> anyhow::Result<i32> {
        let (svc, who) = (&self.svc, &self.caller);
        let show = |jobs: &[Job]| {
            let mut t = Table::new(&["ID", "ACTION", "STATUS", "RESOURCES", "CREATED", "ERROR"]);
            for j in jobs {
                t.row(vec![
                    display(Kind::Job, &j.id),
                    action_word(j.action).to_string(),
                    j.status.to_string(),
                    j.resources.join(","),
                    time(&j.create_time),
                    j.error.clone().unwrap_or_default(),
                ]);
            }
            t.print();
        };
        match c {
            JobCmd::List { status, page } => {
                let mut statuses = Vec::new();
                for s in status.iter().filter(|s| !s.is_empty()) {
                    statuses.push(
                        JobStatus::parse(s)
                            .ok_or_else(|| anyhow!("--status {s:?}: use pending, working, successful or failed"))?,
                    );
                }
                let (jobs, total) =
                    svc.jobs(who, &[], &statuses, None, page.offset, page.limit.min(100)).await.map_err(se)?;
                if self.json {
                    let items: Vec<Value> = jobs.iter().map(job_json).collect();
                    print_json(&json!({"total_count": total, "jobs": items}));
                } else {
                    show(&jobs);
                }
            }
            JobCmd::Show { id } => {
                let j = svc.job(who, &id).await.map_err(se)?;
                if self.json {
                    print_json(&json_of(&j, Kind::Job));
                } else {
                    show(&[j]);
                }
            }
            JobCmd::Wait { id } => {
                let j = svc.job(who, &id).await.map_err(se)?;
                let j = wait(svc, who, &j, "waiting").await?;
                if self.json {
                    print_json(&json_of(&j, Kind::Job));
                } else {
                    show(&[j]);
                }
            }
        }
        Ok(0)
    }

    async fn tag(&self, c: TagCmd) -> anyhow::Result<i32> {
        let (svc, who) = (&self.svc, &self.caller);
        match c {
            TagCmd::Create { key, value } => {
                let t = svc.create_tag(who, &key, &value).await.map_err(se)?;
                if self.json {
                    print_json(&json_of(&t, Kind::Tag));
                } else {
                    println!("{}", display(Kind::Tag, &t.id));
                }
            }
            TagCmd::List => {
                let tags = svc.tags(who).await.map_err(se)?;
                if self.json {
                    print_json(&json_of(&tags, Kind::Tag));
                } else {
                    let mut t = Table::new(&["ID", "KEY", "VALUE"]);
                    for tag in &tags {
                        t.row(vec![display(Kind::Tag, &tag.id), tag.key.clone(), tag.value.clone()]);
                    }
                    t.print();
                }
            }
            TagCmd::Attach { tag, resources } => {
                let pairs: Vec<(String, String)> = resources.into_iter().map(|r| (tag.clone(), r)).collect();
                svc.attach_tags(who, &pairs).await.map_err(se)?;
            }
            TagCmd::Detach { tag, resources } => {
                let pairs: Vec<(String, String)> = resources.into_iter().map(|r| (tag.clone(), r)).collect();
                svc.detach_tags(who, &pairs).await.map_err(se)?;
            }
            TagCmd::Delete { ids } => svc.delete_tags(who, &ids).await.map_err(se)?,
        }
        Ok(0)
    }

    async fn policy(&self, c: PolicyCmd) -> anyhow::Result<i32> {
        let (svc, who) = (&self.svc, &self.caller);
        let listing = matches!(c, PolicyCmd::List);
        let shown = match c {
            PolicyCmd::Create { name, args, disabled } => {
                let mut spec = policy_spec(&args);
                spec.name = Some(name);
                spec.schedule.get_or_insert(Schedule::EveryDays(1));
                spec.enabled = Some(!disabled);
                vec![svc.create_policy(who, spec).await.map_err(se)?]
            }
            PolicyCmd::List => svc.policies(who).await.map_err(se)?,
            PolicyCmd::Show { id } => vec![svc.policy(who, &id).await.map_err(se)?],
            PolicyCmd::Modify { id, name, args, enable, disable } => {
                let mut spec = policy_spec(&args);
                spec.name = name;
                spec.enabled = if enable {
                    Some(true)
                } else if disable {
                    Some(false)
                } else {
                    None
                };
                vec![svc.modify_policy(who, &id, spec).await.map_err(se)?]
            }
            PolicyCmd::Delete { id } => {
                svc.delete_policy(who, &id).await.map_err(se)?;
                return Ok(0);
            }
            PolicyCmd::Bind { id, volumes } => vec![svc.bind_policy(who, &id, &volumes).await.map_err(se)?],
            PolicyCmd::Unbind { id, volumes } => vec![svc.unbind_policy(who, &id, &volumes).await.map_err(se)?],
            PolicyCmd::Run { id } => {
                let now = chrono::Utc::now();
                let f = svc.run_policy(who, &id, now).await.map_err(se)?;
                // Its points are taken before any pruning counts them.
                for j in &f.jobs {
                    svc.wait_job(who, j).await.map_err(se)?;
                }
                let pruned = Scheduler::new(svc.clone(), Arc::new(SystemClock)).prune().await.map_err(se)?;
                let snaps: Vec<String> = f.snapshots.iter().map(|s| display(Kind::Snapshot, s)).collect();
                let pruned: Vec<String> = pruned.iter().map(|s| display(Kind::Snapshot, s)).collect();
                if self.json {
                    let skipped: Vec<Value> = f
                        .skipped
                        .iter()
                        .map(|(v, why)| json!({"volume": display(Kind::Volume, v), "reason": why}))
                        .collect();
                    print_json(&json!({
                        "policy": display(Kind::Policy, &f.policy_id),
                        "slot": time(&f.slot),
                        "jobs": f.jobs.iter().map(|j| display(Kind::Job, j)).collect::<Vec<_>>(),
                        "snapshots": snaps,
                        "skipped": skipped,
                        "pruned": pruned,
                    }));
                } else {
                    println!(
                        "took {} ({})",
                        if snaps.is_empty() { "nothing".into() } else { snaps.join(" ") },
                        time(&f.slot)
                    );
                    for (v, why) in &f.skipped {
                        println!("left out {}: {why}", display(Kind::Volume, v));
                    }
                    if !pruned.is_empty() {
                        println!("pruned {}", pruned.join(" "));
                    }
                }
                return Ok(0);
            }
        };
        if self.json {
            let out: Vec<Value> = shown.iter().map(policy_json).collect();
            print_json(&if listing { Value::Array(out) } else { out[0].clone() });
        } else {
            let mut t = Table::new(&["ID", "NAME", "HOURS (UTC)", "DAYS", "RETENTION", "ENABLED", "VOLUMES"]);
            for p in &shown {
                let j = policy_json(p);
                t.row(vec![
                    display(Kind::Policy, &p.id),
                    p.name.clone(),
                    p.hours.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(","),
                    j["days"].as_str().unwrap_or("").to_string(),
                    j["retention"].as_str().unwrap_or("").to_string(),
                    p.enabled.to_string(),
                    p.volumes.iter().map(|v| display(Kind::Volume, v)).collect::<Vec<_>>().join(" "),
                ]);
            }
            t.print();
        }
        Ok(0)
    }

    async fn verify(&self, sample: u8) -> anyhow::Result<i32> {
        let bar = Arc::new(Bar::new("verifying", false));
        let r = self.svc.verify_sample(sample, bar.clone()).await.map_err(se)?;
        bar.finish();
        if self.json {
            let broken: Vec<Value> = r
                .broken_snapshots
                .iter()
                .map(|(id, why)| json!({"id": display(Kind::Snapshot, id), "reason": why}))
                .collect();
            let bad: Vec<Value> = r.bad_chunks.iter().map(|(d, why)| json!({"digest": d, "reason": why})).collect();
            print_json(
                &json!({"ok": r.ok(), "checked_chunks": r.checked_chunks, "checked_packs": r.checked_packs, "bad_chunks": bad, "bad_trailers": r.bad_trailers, "broken_snapshots": broken, "seconds": r.seconds}),
            );
        } else {
            println!("checked {} chunks in {} packs in {:.1} s", r.checked_chunks, r.checked_packs, r.seconds);
            for (d, why) in &r.bad_chunks {
                println!("BAD chunk {d}: {why} (dropped from the index: the next snapshot holding these bytes stores them again)");
            }
            for (p, why) in &r.bad_trailers {
                println!("damaged trailer in pack {p}: {why} (its chunks are fine)");
            }
            for (id, why) in &r.broken_snapshots {
                println!("BROKEN snapshot {}: {why}", display(Kind::Snapshot, id));
            }
            if r.ok() {
                println!("all chunks good");
            }
        }
        Ok(if r.ok() { 0 } else { 1 })
    }

    async fn compact(&self, grace: Option<Duration>) -> anyhow::Result<i32> {
        let bar = Arc::new(Bar::new("compacting", false));
        let r = self.svc.compact(grace, bar.clone()).await.map_err(se)?;
        bar.finish();
        if self.json {
            print_json(&serde_json::to_value(&r)?);
        } else {
            let dict = match (&r.dictionary, r.trained) {
                (Some(d), true) => format!("dictionary {d} (trained now)"),
                (Some(d), false) => format!("dictionary {d}"),
                (None, _) if r.too_few_to_train => "too few compressed chunks to train a dictionary yet".to_string(),
                (None, _) => "nothing to re-encode".to_string(),
            };
            println!(
                "{dict}; packs: {} rewritten, {} passed by of {}; chunks: {} re-encoded, {} copied; {} -> {}; {:.1} s",
                r.compacted_packs,
                r.skipped_packs,
                r.packs,
                r.reencoded_chunks,
                r.copied_chunks,
                human_bytes(r.bytes_before),
                human_bytes(r.bytes_after),
                r.seconds
            );
        }
        Ok(0)
    }

    async fn gc(&self, grace: Option<Duration>) -> anyhow::Result<i32> {
        let bar = Arc::new(Bar::new("collecting", false));
        let r = self.svc.gc(grace, bar.clone()).await.map_err(se)?;
        bar.finish();
        if self.json {
            print_json(&serde_json::to_value(&r)?);
        } else {
            println!(
                "removed {} chunks ({}), kept {} ({}), kept {} recent; {} orphan indexes removed; \
                 packs: {} emptied, {} deleted ({}), {} repacked; {:.1} s",
                r.removed_chunks,
                human_bytes(r.removed_bytes),
                r.kept_chunks,
                human_bytes(r.kept_bytes),
                r.kept_recent_chunks,
                r.removed_indexes,
                r.doomed_packs,
                r.deleted_packs,
                human_bytes(r.deleted_pack_bytes),
                r.repacked_packs,
                r.seconds
            );
            for id in &r.missing_indexes {
                println!(
                    "WARNING: snapshot {} has no index in the store; run `disksnap verify`",
                    display(Kind::Snapshot, id)
                );
            }
        }
        Ok(0)
    }
}

/// An indicatif bar driven by the engine's progress callbacks.
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new(label: &str, bytes: bool) -> Self {
        let bar = ProgressBar::new(0);
        let tpl = if bytes {
            "{msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg:12} [{bar:30}] {pos}/{len} eta {eta}"
        };
        bar.set_style(ProgressStyle::with_template(tpl).unwrap().progress_chars("=> "));
        bar.set_message(label.to_string());
        Bar { bar }
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl disksnap_engine::Progress for Bar {
    fn start(&self, total: u64) {
        self.bar.set_length(total);
    }
    fn advance(&self, done: u64) {
        self.bar.set_position(done);
    }
}
