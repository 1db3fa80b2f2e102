//! `disksnap serve`: one HTTP listener and, when configured, one TLS listener, both serving the
//! same router: every dialect (routed by path), plus `/healthz` and Prometheus `/metrics`,
//! structured request logs, and the background duties (recovering interrupted jobs, ceasing
//! expired snapshots).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use disksnap_api_common::{ApiContext, Outcome, RequestId};
use disksnap_service::Service;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    status: u16,
}

/// A dialect's call, from the [`Outcome`] its pipeline put on the response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    dialect: String,
    endpoint: String,
    /// The vendor's error code; empty on success.
    error: String,
}

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    calls: Family<CallLabels, Counter>,
    latency: Histogram,
    jobs_running: Gauge,
    /// The cluster as the nodes' heartbeats show it (README "Cluster").
    node_up: Family<NodeLabels, Gauge>,
    node_heartbeat_age: Family<NodeLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    node_jobs: Family<NodeLabels, Gauge>,
    node_free: Family<NodeLabels, Gauge>,
    node_volumes: Family<NodeLabels, Gauge>,
    open_jobs: Gauge,
    /// The rendered-page cache (service page_cache.rs): bytes and pages held, the most bytes
    /// ever held, and how often it was emptied for want of room.
    page_cache_bytes: Gauge,
    page_cache_pages: Gauge,
    page_cache_peak_bytes: Gauge,
    page_cache_full: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
    zone: String,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("disksnap");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let jobs_running = Gauge::default();
        let calls = Family::<CallLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served, by method and status", requests.clone());
        registry.register(
            "api_calls",
            "Dialect API calls, by dialect, endpoint and vendor error code (empty: success)",
            calls.clone(),
        );
        registry.register("http_request_duration_seconds", "Time to answer an HTTP request", latency.clone());
        registry.register("jobs_running", "Jobs running in this process", jobs_running.clone());
        let node_up = Family::<NodeLabels, Gauge>::default();
        let node_heartbeat_age = Family::<NodeLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let node_jobs = Family::<NodeLabels, Gauge>::default();
        let node_free = Family::<NodeLabels, Gauge>::default();
        let node_volumes = Family::<NodeLabels, Gauge>::default();
        let open_jobs = Gauge::default();
        registry.register("cluster_node_up", "1 when the node's heartbeat is recent, else 0", node_up.clone());
        registry.register(
            "cluster_node_heartbeat_age_seconds",
            "Seconds since the node's latest heartbeat",
            node_heartbeat_age.clone(),
        );
        registry.register("cluster_node_jobs_running", "Jobs the node ran at its latest heartbeat", node_jobs.clone());
        registry.register(
            "cluster_node_free_bytes",
            "Free bytes where the node puts its zone's new volumes",
            node_free.clone(),
        );
        registry.register("cluster_node_volumes", "Live volumes whose home is the node", node_volumes.clone());
        registry.register("cluster_open_jobs", "Jobs pending or working, over every node", open_jobs.clone());
        let page_cache_bytes = Gauge::default();
        let page_cache_pages = Gauge::default();
        let page_cache_peak_bytes = Gauge::default();
        let page_cache_full = Gauge::default();
        registry.register("page_cache_bytes", "Bytes of rendered list pages kept", page_cache_bytes.clone());
        registry.register("page_cache_pages", "Rendered list pages kept", page_cache_pages.clone());
        registry.register(
            "page_cache_peak_bytes",
            "The most bytes of rendered list pages kept at once since start",
            page_cache_peak_bytes.clone(),
        );
        registry.register(
            "page_cache_full",
            "Times the rendered-page cache made room for a page since start",
            page_cache_full.clone(),
        );
        Metrics {
            registry,
            requests,
            calls,
            latency,
            jobs_running,
            node_up,
            node_heartbeat_age,
            node_jobs,
            node_free,
            node_volumes,
            open_jobs,
            page_cache_bytes,
            page_cache_pages,
            page_cache_peak_bytes,
            page_cache_full,
        }
    }
}

#[derive(Clone)]
struct AppState {
    service: Service,
    metrics: Arc<Metrics>,
    started: Instant,
}

/// Every dialect's routes (dialects.md §1.1 routes them by path), the console (believing
/// `X-Forwarded-For` from `proxies` only), plus our own endpoints.
pub fn router(api: ApiContext, proxies: Vec<std::net::IpAddr>) -> Router {
    let state = AppState { service: api.service.clone(), metrics: Arc::new(Metrics::new()), started: Instant::now() };
    let own: Router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state.clone());
    // `/` is shared: Tencent API 3.0, then Aliyun ECS when the request names an action (dialects.md §1.1), else
    // Cinder's version list (dialect-openstack.md §4.1).
    let root_ctx = api.clone();
    let root = Router::new().route(
        "/",
        any(move |req: Request| {
            let ctx = root_ctx.clone();
            let cinder = ctx.clone();
            // Tencent API 3.0 first: it names itself by `X-TC-Action` or `SecretId`.
            disksnap_dialect_tencent3::serve_root(ctx.clone(), req, move |req| {
                disksnap_dialect_aliyun::serve_root(ctx, req, move |req| {
                    disksnap_dialect_openstack::version_root(cinder, req)
                })
            })
        }),
    );
    Router::new()
        .merge(disksnap_dialect_qingcloud::routes(api.clone()))
        .merge(disksnap_dialect_openstack::routes(api.clone()))
        .merge(disksnap_dialect_tencent::routes(api.clone()))
        .merge(root)
        .merge(disksnap_console::router(crate::console::console(&api).with_trusted_proxies(proxies)))
        .merge(own)
        .layer(middleware::from_fn_with_state(state, observe))
}

/// Count, time and log every request (one structured line each, with a request id).
async fn observe(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let rid = RequestId::new();
    let request_id = rid.0.clone();
    req.extensions_mut().insert(rid);
    let mut resp = next.run(req).await;
    let status = resp.status().as_u16();
    let secs = started.elapsed().as_secs_f64();
    st.metrics.requests.get_or_create(&RequestLabels { method: method.clone(), status }).inc();
    st.metrics.latency.observe(secs);
    if let Ok(v) = request_id.parse() {
        resp.headers_mut().insert("x-request-id", v);
    }
    match resp.extensions().get::<Outcome>() {
        Some(o) => {
            let endpoint = o.endpoint.as_deref().unwrap_or("");
            let error = o.error.as_deref().unwrap_or("");
            st.metrics
                .calls
                .get_or_create(&CallLabels {
                    dialect: o.dialect.to_string(),
                    endpoint: endpoint.to_string(),
                    error: error.to_string(),
                })
                .inc();
            tracing::info!(target: "disksnap::http", request_id, method, path, status, micros = (secs * 1e6) as u64,
                dialect = o.dialect, endpoint, error, "request");
        }
        None => {
            tracing::info!(target: "disksnap::http", request_id, method, path, status, micros = (secs * 1e6) as u64, "request")
        }
    }
    resp
}

/// Unauthenticated: whether the server is ready (its metadata database and snapshot store both
/// answer: 200 `"status": "ok"`, else 503 `"unavailable"` with the part that does not), and
/// which build. Nothing about the host (the data dir's path is in the operator's own config
/// and start-up line), and a failure's text is logged, not shown.
async fn healthz(State(st): State<AppState>) -> Response {
    let r = st.service.readiness().await;
    let word = |p: &Result<(), String>| if p.is_ok() { "ok" } else { "unavailable" };
    for (part, p) in [("database", &r.database), ("store", &r.store)] {
        if let Err(e) = p {
            tracing::warn!(part, error = %e, "not ready");
        }
    }
    let body = Json(serde_json::json!({
        "status": if r.ready() { "ok" } else { "unavailable" },
        "database": word(&r.database),
        "store": word(&r.store),
        "node": st.service.node().map(|n| n.name.clone()),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": st.started.elapsed().as_secs(),
    }));
    let code = if r.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, body).into_response()
}

async fn metrics(State(st): State<AppState>) -> Response {
    st.metrics.jobs_running.set(st.service.running_jobs() as i64);
    let pages = st.service.page_cache_usage();
    st.metrics.page_cache_bytes.set(pages.bytes as i64);
    st.metrics.page_cache_pages.set(pages.pages as i64);
    st.metrics.page_cache_peak_bytes.set(pages.peak_bytes as i64);
    st.metrics.page_cache_full.set(pages.full as i64);
    // The cluster's figures, as `disksnap cluster status` shows them; a database that does not
    // answer leaves the last ones (and /healthz says so).
    if let Ok(c) = st.service.cluster_status().await {
        let m = &st.metrics;
        for n in &c.nodes {
            let l = NodeLabels { node: n.name.clone(), zone: n.zone.clone() };
            m.node_up.get_or_create(&l).set(n.up as i64);
            m.node_heartbeat_age.get_or_create(&l).set(n.heartbeat_age_ms as f64 / 1000.0);
            m.node_jobs.get_or_create(&l).set(n.running_jobs);
            m.node_free.get_or_create(&l).set(n.free_bytes);
            m.node_volumes.get_or_create(&l).set(n.volumes);
        }
        m.open_jobs.set(c.open_jobs.min(i64::MAX as u64) as i64);
    }
    let mut body = String::new();
    if encode(&mut body, &st.metrics.registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

async fn not_found(req: Request) -> Response {
    let body = serde_json::json!({
        "error": "not_found",
        "message": format!(
            "no API is served at {} {}: the dialects live at /iaas/ (QingCloud), /v2/zone/ (51idc), / with Action (Alibaba Cloud ECS), /v2/index.php (Tencent), /identity, /v2/{{project}}, /v3/ (OpenStack); also /healthz and /metrics",
            req.method(),
            req.uri().path()
        ),
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// The TLS listener: its address and, when the operator gives them, a PEM certificate chain and
/// key (otherwise a dev CA and certificate are generated into the data dir).
#[derive(Clone, Debug)]
pub struct TlsListen {
    pub addr: String,
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
}

fn bind_std(listen: &str, what: &str) -> anyhow::Result<std::net::TcpListener> {
    let addr: SocketAddr = listen.parse().map_err(|e| anyhow::anyhow!("{what} address {listen:?}: {e}"))?;
    let l = std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The rustls configuration for `tls`, generating the dev certificate when none is given.
fn tls_config(tls: &TlsListen, data_dir: &std::path::Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    match &tls.cert_and_key {
        Some((cert, key)) => crate::tls::server_config(cert, key),
        None => {
            let host = tls.addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(&tls.addr);
            let paths = crate::tls::DevPaths::in_data_dir(data_dir);
            if crate::tls::ensure_dev_certificate(&paths, &crate::tls::server_names(host))? {
                tracing::info!(cert = %paths.cert.display(), "generated a development TLS certificate");
            }
            eprintln!(
                "disksnap TLS uses a development certificate; trust its CA with SSL_CERT_FILE={}",
                paths.ca_cert.display()
            );
            crate::tls::server_config(&paths.cert, &paths.key)
        }
    }
}

/// Serve until SIGINT/SIGTERM, on `listen` (HTTP) and on `tls` when given; both stop gracefully
/// together. Interrupted jobs are recovered first; expired snapshots are ceased every few seconds.
/// Connections live under `limits` (see conns.rs); the open-file limit is raised first.
pub async fn run(
    api: ApiContext,
    listen: &str,
    tls: Option<TlsListen>,
    limits: ConnLimits,
    console_proxies: Vec<std::net::IpAddr>,
    admin_token: Option<String>,
) -> anyhow::Result<()> {
    let service = api.service.clone();
    let nofile = crate::conns::raise_open_file_limit();
    let limits = crate::conns::Limits {
        header_read_timeout: limits.header_read_timeout,
        body_read_timeout: limits.body_read_timeout,
        idle_timeout: limits.idle_timeout,
        max_connections: crate::conns::connection_cap(limits.max_connections, nofile),
    };
    tracing::info!(
        max_connections = limits.max_connections,
        open_file_limit = nofile,
        header_read_timeout_s = limits.header_read_timeout.as_secs_f64(),
        body_read_timeout_s = limits.body_read_timeout.as_secs_f64(),
        idle_timeout_s = limits.idle_timeout.as_secs_f64(),
        "connection limits"
    );
    let listener = tokio::net::TcpListener::from_std(bind_std(listen, "listen")?)?;
    let tls = match &tls {
        Some(t) => Some((bind_std(&t.addr, "TLS listen")?, tls_config(t, service.data_dir())?)),
        None => None,
    };
    match service.sweep_moved_volumes().await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(files = n, "removed the files of volumes that moved to other nodes while this one was down")
        }
        Err(e) => tracing::warn!(error = %e, "could not look for the files of volumes that moved to other nodes"),
    }
    let recovered = service.recover().await?;
    for j in &recovered {
        tracing::info!(job = %j.id, action = %j.action, status = %j.status, "recovered job");
    }
    // Jobs of a runner that died while this server runs (a killed CLI command on the same
    // data dir, another server) are taken over within seconds, not at the next start.
    let recoverer = service.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(2));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match recoverer.recover().await {
                Ok(jobs) => {
                    for j in jobs {
                        tracing::info!(job = %j.id, action = %j.action, status = %j.status, "took over a job whose runner died");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "recovering interrupted jobs failed"),
            }
        }
    });
    // A node of a cluster says it lives (its zone, free space, jobs) every few seconds, and
    // starts within a moment the jobs other nodes submit for its volumes.
    if service.node().is_some() {
        let starter = service.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(200));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = starter.start_handed_jobs().await {
                    tracing::warn!(error = %e, "could not start the jobs submitted for this node");
                }
            }
        });
        let beater = service.clone();
        let address = listen.to_string();
        let started = disksnap_service::now_ms();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(disksnap_service::cluster::HEARTBEAT_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = beater.heartbeat(&address, started).await {
                    tracing::warn!(error = %e, "could not write this node's heartbeat");
                }
            }
        });
    }
    // Ceasing, retention and the policy scheduler run on one node of a cluster at a time: the
    // one holding the maintenance lead (on SQLite, every server of the data dir, as before).
    let ticker = service.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        for round in 0u64.. {
            every.tick().await;
            if !leads(&ticker).await {
                continue;
            }
            if round % 120 == 119 {
                match ticker.maintain_metadata().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "deleted finished jobs past the job retention"),
                    Err(e) => tracing::warn!(error = %e, "metadata upkeep failed"),
                }
            }
            match ticker.tick().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(ceased = n, "released snapshots whose time was up"),
                Err(e) => tracing::warn!(error = %e, "maintenance tick failed"),
            }
        }
    });
    // Automatic snapshot policies: each due slot is claimed in the metadata store and fired
    // once, whichever server on this data dir gets to it first (see scheduler.rs).
    // With the admin API on, its clock is the wall clock moved by test control (a move is kept
    // in the metadata store, so a restart keeps it); off, the wall clock as it is.
    let clock: Arc<dyn disksnap_service::Clock> = match admin_token {
        Some(_) => Arc::new(disksnap_service::OffsetClock::default()),
        None => Arc::new(disksnap_service::SystemClock),
    };
    let scheduler = Arc::new(disksnap_service::Scheduler::new(service.clone(), clock));
    if admin_token.is_some() {
        scheduler.restore_clock().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::warn!(now = %scheduler.now(), "the test-control admin API is on (/admin/v1/); never in production");
    }
    let admin =
        admin_token.map(|token| crate::admin::Admin { service: service.clone(), scheduler: scheduler.clone(), token });
    let lead = service.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if !leads(&lead).await {
                continue;
            }
            if let Err(e) = scheduler.run_due().await {
                tracing::warn!(error = %e, "the policy scheduler failed a round");
            }
        }
    });
    let mut app = router(api, console_proxies);
    if let Some(a) = admin {
        app = app.merge(crate::admin::routes(a));
    }
    // One signal stops both listeners.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown().await;
        let _ = stop_tx.send(true);
    });
    let conns = crate::conns::Conns::new(limits);
    eprintln!("disksnap listening on http://{}  (data dir {})", listener.local_addr()?, service.data_dir().display());
    let plain = conns.clone().serve(listener, None, app.clone(), stop_rx.clone());
    match tls {
        None => plain.await,
        Some((tls_listener, cfg)) => {
            let tls_listener = tokio::net::TcpListener::from_std(tls_listener)?;
            eprintln!("disksnap listening on https://{}", tls_listener.local_addr()?);
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
            let app = app.layer(axum::Extension(disksnap_console::Https)); // the console's cookie is Secure here
            let secure = conns.clone().serve(tls_listener, Some(acceptor), app, stop_rx.clone());
            tokio::join!(plain, secure);
        }
    }
    // Both listeners stopped: let the connections finish what they are answering.
    conns.drained().await;
    Ok(())
}

/// The connection limits of the config (see conns.rs); `max_connections` None: derived from the
/// open-file limit.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: Option<usize>,
}

/// Whether this server does the cluster's maintenance now; a database that does not answer
/// means no (the node that can reach it does the work).
async fn leads(service: &Service) -> bool {
    match service.leads_maintenance().await {
        Ok(lead) => lead,
        Err(e) => {
            tracing::warn!(error = %e, "cannot learn whether this node leads maintenance");
            false
        }
    }
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
