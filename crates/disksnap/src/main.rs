//! The `disksnap` binary: reads the config, wires the engine, metadata store and service
//! together, and either serves the APIs or runs one command against the data dir.

mod admin;
mod cli;
mod config;
mod conns;
mod console;
mod output;
mod serve;
mod tls;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A list page allocates thousands of small strings (rows in, JSON out) on every request;
/// glibc's allocator spent a third of the server's CPU on them under the API benchmark
/// (malloc, free, malloc_consolidate across worker threads). mimalloc's thread-local pages
/// make that a fraction. (Feature `system-alloc` turns this off for heaptrack.)
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// SQLite (the metadata store's C library) allocates with glibc's malloc, not mimalloc. glibc
/// gives each thread that meets a locked arena a new one, up to 8 per core, and keeps what is
/// freed in each: every pool connection's worker thread ended up with its own arena. Under the
/// API bench (issue 16, 100 000 snapshots) SQLite's live heap peaked at 24-26 MiB (heaptrack:
/// 18-20 MiB of it page cache, 4-7 MiB prepared statements) while its arenas held 41-46 MiB
/// of RSS over 15 mappings. One arena per core is as many as can be malloc'ing at once: with
/// them the same run held 33-38 MiB, main arena ([heap]) included (smaps at the end of the
/// run, 2026-12-04). Called before any thread starts.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a tunable of the allocator; no thread runs yet. A
        // MALLOC_ARENA_MAX in the environment is read by glibc first and then overridden here.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    }
}

/// mimalloc v3's option index of `mi_option_purge_delay` (mimalloc.h's `mi_option_e`;
/// libmimalloc-sys names no constant for it). Its default, 1000 ms, tells it from its
/// neighbours (`the_purge_delay_index_names_the_purge_delay` checks it).
#[cfg(not(feature = "system-alloc"))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// When freed memory goes back to the OS; mimalloc v3 waits 1 s. MIMALLOC_PURGE_DELAY in the
/// environment still wins.
/// - 10 ms (mimalloc v2's delay) by default. A burst of list renderings at 64 connections frees
///   tens of MiB at once; with 1 s the arena held 40-50 MiB of RSS at the API bench's peak, with
///   10 ms 17 MiB (issue 16, 2026-12-04).
/// - At once for `compact`. On S3 it moves 16 MiB packs and 4 MiB read batches between its
///   threads; with 10 ms its peak RSS was 105-113 MiB, with 0 78-80 MiB, for ~1 s more system
///   CPU per 4 GiB compacted. A capture to S3 kept its peak (93-95 MiB) with 0 but paid
///   1.1-1.4 s more system CPU per 4 GiB, so it keeps 10 ms (issue 12, 2026-12-04).
/// - At once for `verify` too. On S3 each ranged read's body (up to 2 MiB) is a new buffer,
///   made on the client's runtime threads and freed on a reader's: with 10 ms its peak RSS was
///   90-110 MiB over the 4 GiB bench store, with 0 70-71 MiB, in the same wall time (3.9-4.1 s)
///   for ~0.8 s more system CPU (issue 12, 2026-12-05).
#[cfg(not(feature = "system-alloc"))]
fn purge_delay_ms(command: &Command) -> std::ffi::c_long {
    if matches!(command, Command::Compact { .. } | Command::Verify { .. }) {
        0
    } else {
        10
    }
}

fn set_purge_delay(command: &Command) {
    #[cfg(not(feature = "system-alloc"))]
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        let ms = purge_delay_ms(command);
        // SAFETY: sets one of mimalloc's options; the index is checked by a test.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) };
    }
    #[cfg(feature = "system-alloc")]
    let _ = command;
}

/// Self-hosted cloud-disk snapshots: volumes are raw disk images, snapshots are
/// deduplicated, compressed, hash-checked copies of their bytes in full + incremental chains,
/// served through the QingCloud, Alibaba Cloud ECS, Tencent CBS, OpenStack Cinder and 51idc APIs.
///
/// Every command works on a data dir directly (the server may be running on it too). The
/// first use of a data dir creates it with a generated config and prints a dev account's
/// credentials once.
#[derive(Parser, Debug)]
#[command(name = "disksnap", version, propagate_version = true, after_help = EXAMPLES)]
pub struct Cli {
    /// Data dir: metadata, chunk store, volume and image files [default: the config's data_dir, else ./disksnap-data]
    #[arg(long, global = true, env = "DISKSNAP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file [default: DATA_DIR/disksnap.toml, generated on first start]
    #[arg(long, global = true, env = "DISKSNAP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Account to act as [default: the first account of the config]
    #[arg(long, global = true)]
    pub account: Option<String>,
    /// Print JSON instead of tables (one document per command)
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = "Examples:
  disksnap serve                                   # serve every API on 127.0.0.1:7480 (+ tls_listen)
  disksnap serve --tls-listen 127.0.0.1:7443       # and over HTTPS (dev CA in DATA_DIR/tls/ca.pem)
  disksnap volume create --size-gib 10 --name web  # a blank (sparse) 10 GiB volume
  disksnap volume import disk.img --type system    # an existing raw image as a volume
  disksnap volume path vol-k3x9a2bq                # the raw file: write to it, attach it to a VM
  disksnap snapshot create vol-k3x9a2bq            # full first, incremental after
  disksnap snapshot list --volume vol-k3x9a2bq --type incremental
  disksnap snapshot rollback ss-0a1b2c3d           # the volume's bytes become the point's bytes
  disksnap snapshot to-volume ss-0a1b2c3d --name restored
  disksnap verify && disksnap gc";

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the cloud APIs, /healthz and /metrics over HTTP and HTTPS
    Serve {
        /// Address to listen on [default: the config's listen, else 127.0.0.1:7480]
        #[arg(long)]
        listen: Option<String>,
        /// HTTPS address, same routes as --listen [default: the config's tls_listen; none when unset, unless --tls-cert is given: 127.0.0.1:7443]
        #[arg(long)]
        tls_listen: Option<String>,
        /// PEM certificate chain for HTTPS [default: a development CA and certificate generated into DATA_DIR/tls/, the CA path printed on start]
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Join the cluster of the config's database_url and [store] as this node [default: [node] name of the config]
        #[arg(long)]
        node: Option<String>,
    },
    /// Create the data dir (and its config) now, choosing the chunk size of its store
    Init {
        /// Chunk size in KiB for the new store (power of two, 4..=16384); fixed afterwards
        #[arg(long, default_value_t = 128)]
        chunk_size_kib: u32,
    },
    /// Volumes: raw disk image files
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Instances: named groups of volumes (one system disk, data disks)
    #[command(subcommand)]
    Instance(InstanceCmd),
    /// Snapshots: full and incremental points of a volume
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Images captured from system-disk snapshots
    #[command(subcommand)]
    Image(ImageCmd),
    /// Jobs: every byte-moving operation runs as one
    #[command(subcommand)]
    Job(JobCmd),
    /// Tags for volumes and snapshots
    #[command(subcommand)]
    Tag(TagCmd),
    /// Automatic snapshot policies: hours (UTC) on weekdays or every N days, a retention, the
    /// volumes bound; `disksnap serve` fires each slot once
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Snapshot groups: several volumes at one snapshot time, as one object; deleted and
    /// rolled back as a whole (all or nothing)
    #[command(subcommand)]
    Group(GroupCmd),
    /// Test control of a running server (its config's [admin] enabled = true and token): move
    /// the scheduler's clock, fire a policy's next slot, reset an account, make jobs fail or wait
    Admin {
        /// The server [default: http:// + the config's listen]
        #[arg(long)]
        url: Option<String>,
        #[command(subcommand)]
        cmd: AdminCmd,
    },
    /// Re-read every pack, check every chunk's hash, name the snapshots a bad chunk breaks (exit 1 if any)
    Verify {
        /// Check about this share of the packs, chosen at random (a cheap daily check; repeated runs cover the store)
        #[arg(long, value_name = "PERCENT", default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
        sample: u8,
    },
    /// Repair the store's bookkeeping
    Repair {
        /// Forget the chunk index and read it back from the packs' trailers
        #[arg(long, required = true)]
        rebuild_index: bool,
    },
    /// Move the chunk files of a store made before pack files into packs (reads work without it)
    MigrateStore,
    /// Free chunks no snapshot references (safe while jobs run)
    Gc {
        /// Keep unreferenced chunks younger than this, e.g. "10m" [default: the config's gc_grace]; "0s" frees everything unreferenced now, safe only while no job runs
        #[arg(long, value_parser = parse_duration)]
        grace: Option<std::time::Duration>,
    },
    /// Re-encode the store's compressed chunks with a dictionary trained on the store (smaller
    /// than a capture's fast compression; safe while jobs run; the old packs go with a later GC)
    Compact {
        /// Old packs stay readable this long for restores that looked them up, e.g. "10m"
        /// [default: the config's gc_grace]; "0s" deletes them at once, safe only while no job runs
        #[arg(long, value_parser = parse_duration)]
        grace: Option<std::time::Duration>,
    },
    /// Release snapshots whose recovery window or retention has passed (the server does this every 5 s)
    Maintain,
    /// The store's figures: pack files and bytes, the dedup and compression ratios
    Stats,
    /// A cluster of servers on one database: its nodes, zones, heartbeats and jobs
    #[command(subcommand)]
    Cluster(ClusterCmd),
}

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Nodes (zone, heartbeat, up or down, free space, running jobs), nodes up per zone, open jobs
    Status,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    config::duration_text::parse(s)
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    System,
    Data,
}

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create blank volumes (sparse raw files)
    Create {
        #[arg(long)]
        size_gib: u64,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long = "type", value_enum, default_value_t = KindArg::Data)]
        kind: KindArg,
        #[arg(long)]
        zone: Option<String>,
        /// Attach to this instance
        #[arg(long)]
        instance: Option<String>,
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Import a raw image file as a new volume (copied sparsely, size rounded up to whole GiB)
    Import {
        file: PathBuf,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long = "type", value_enum, default_value_t = KindArg::Data)]
        kind: KindArg,
        #[arg(long)]
        zone: Option<String>,
    },
    /// List volumes
    List {
        #[arg(long)]
        instance: Option<String>,
        #[arg(long)]
        search: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one volume
    Show { id: String },
    /// Print the raw file that holds the volume's bytes
    Path { id: String },
    /// Grow a volume
    Resize {
        id: String,
        #[arg(long)]
        size_gib: u64,
    },
    /// Rename or describe a volume
    Modify {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Attach volumes to an instance
    Attach {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        instance: String,
    },
    /// Detach volumes from their instance
    Detach {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete volumes (their snapshots stay)
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum InstanceCmd {
    Create {
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long)]
        zone: Option<String>,
    },
    List,
}

#[derive(Args, Debug, Clone)]
pub struct PageArgs {
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Page size (at most 100)
    #[arg(long, default_value_t = 20)]
    pub limit: u64,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SnapType {
    Full,
    Incremental,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCmd {
    /// Snapshot volumes and/or instances (one shared snapshot time); waits for the job
    Create {
        volumes: Vec<String>,
        /// Snapshot every volume of this instance (repeatable)
        #[arg(long = "instance")]
        instances: Vec<String>,
        /// Start a new chain instead of an incremental on the head chain
        #[arg(long)]
        full: bool,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Release the snapshot automatically after this many days
        #[arg(long)]
        retention_days: Option<u32>,
        /// Bind this tag (repeatable)
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// List snapshots, newest first, with filters and paging
    List {
        /// Only these ids (repeatable)
        #[arg(long = "id")]
        ids: Vec<String>,
        #[arg(long)]
        volume: Option<String>,
        #[arg(long)]
        instance: Option<String>,
        /// Only the chain with this full point
        #[arg(long)]
        root: Option<String>,
        #[arg(long = "type", value_enum)]
        kind: Option<SnapType>,
        /// Comma-separated statuses: creating, available, deleted, ceased
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        #[arg(long)]
        name: Option<String>,
        /// Word to find in id, name or description
        #[arg(long)]
        search: Option<String>,
        /// Tag id, or KEY=VALUE, or KEY (repeatable; all must match)
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Created at or after (RFC 3339, e.g. 2026-11-23T10:00:00Z)
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Created at or before (RFC 3339)
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        oldest_first: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one snapshot
    Show { id: String },
    /// Rename or describe a snapshot
    Modify {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete snapshots; a full point stays recoverable for the retention window
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
        /// Also delete the later points of each chain (QingCloud's rule)
        #[arg(long)]
        with_later: bool,
    },
    /// Bring back a deleted full snapshot within its retention window
    Recover { id: String },
    /// Roll the snapshot's volume back to it (writes only what differs)
    Rollback { id: String },
    /// Restore the snapshot into a new volume
    ToVolume {
        id: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Capture an image file from a system-disk snapshot
    Capture {
        id: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Set metadata keys (KEY=VALUE) or remove them (KEY=)
    Meta { id: String, pairs: Vec<String> },
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    Show {
        id: String,
    },
    /// Print the image's raw file
    Path {
        id: String,
    },
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum JobCmd {
    List {
        /// Comma-separated: pending, working, successful, failed
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    Show {
        id: String,
    },
    /// Wait until a job ends
    Wait {
        id: String,
    },
}

/// A policy's schedule and retention.
#[derive(Args, Debug, Default)]
pub struct PolicyArgs {
    /// Hours of the day (UTC, 0-23), comma-separated, e.g. 2,14
    #[arg(long, value_delimiter = ',')]
    pub hours: Vec<u8>,
    /// Days of the week, comma-separated: 1-7 (1 = Monday) or mon..sun [default on create: every day]
    #[arg(long, value_delimiter = ',', value_parser = parse_weekday, conflicts_with = "every_days")]
    pub weekdays: Vec<u8>,
    /// Every N days, counted from the day the policy was created
    #[arg(long)]
    pub every_days: Option<u32>,
    /// Keep automatic points this many days
    #[arg(long, conflicts_with_all = ["keep_count", "keep_forever"])]
    pub keep_days: Option<u32>,
    /// Keep the last N automatic points of each volume
    #[arg(long, conflicts_with_all = ["keep_days", "keep_forever"])]
    pub keep_count: Option<u32>,
    /// Never delete automatic points [default on create]
    #[arg(long)]
    pub keep_forever: bool,
}

fn parse_weekday(s: &str) -> Result<u8, String> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let t = s.trim().to_ascii_lowercase();
    if let Some(i) = NAMES.iter().position(|n| t.starts_with(n)) {
        return Ok(i as u8 + 1);
    }
    t.parse::<u8>().map_err(|_| format!("{s:?} is not a weekday: use 1-7 (1 = Monday) or mon..sun"))
}

#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        args: PolicyArgs,
        /// Create it disabled
        #[arg(long)]
        disabled: bool,
    },
    List,
    Show {
        id: String,
    },
    /// Change what is given; a new schedule applies from now
    Modify {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        args: PolicyArgs,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
    },
    /// Delete a policy (its automatic points stay)
    Delete {
        id: String,
    },
    /// Bind volumes (each leaves any policy it followed)
    Bind {
        id: String,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    Unbind {
        id: String,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Take the policy's automatic points now (a slot of its own) and prune past retention
    Run {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Take one point of each volume at one snapshot time, as one group
    Create {
        /// Volumes to take (with --instance: only that instance's)
        volumes: Vec<String>,
        /// Every volume attached to this instance (less --exclude), or the named ones of it
        #[arg(long)]
        instance: Option<String>,
        /// With --instance: volumes of it to leave out
        #[arg(long, requires = "instance", conflicts_with = "volumes")]
        exclude: Vec<String>,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    List,
    Show {
        id: String,
    },
    Modify {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete the group and its snapshots (those an image was made from stay)
    Delete {
        id: String,
    },
    /// Roll every member volume back to its point: all or nothing
    Rollback {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// The scheduler's clock, armed failures and holds
    State,
    /// Move the scheduler's clock forward (e.g. 2h, 3d, 90m); every slot on the way fires, in order
    Advance { by: String },
    /// Set the scheduler's clock (RFC 3339, e.g. 2026-12-07T02:00:00Z) and run a round there
    SetTime { at: String },
    /// Take a policy's next slot now (of --account's policy)
    Fire { policy: String },
    /// Empty an account: volumes, snapshots, images, jobs, tags, policies [default: --account]
    Reset { account: Option<String> },
    /// Make the next COUNT jobs of KIND fail with ERROR (COUNT 0 disarms). Kinds: create-snapshots,
    /// delete-snapshots, roll-back, restore-volume, capture-image, create-volumes, delete-volumes, resize-volume…
    Fail {
        kind: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long)]
        error: Option<String>,
    },
    /// Hold every job of KIND that starts from now on in `working` until released
    Hold { kind: String },
    /// Release held jobs of KIND [default: of every kind] and stop holding it
    Release { kind: Option<String> },
}

#[derive(Subcommand, Debug)]
pub enum TagCmd {
    Create {
        key: String,
        #[arg(default_value = "")]
        value: String,
    },
    List,
    /// Bind a tag to volumes or snapshots
    Attach {
        tag: String,
        #[arg(required = true)]
        resources: Vec<String>,
    },
    Detach {
        tag: String,
        #[arg(required = true)]
        resources: Vec<String>,
    },
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

fn init_logging(format: LogFormat, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("DISKSNAP_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() {
    // Owner-only files whatever umask we were started with: everything under the data dir is
    // customers' disk bytes, and SQLite's -wal/-shm, the images a capture writes and any file
    // a library call creates without an explicit mode follow the umask.
    // SAFETY: umask changes only this process's creation mask.
    unsafe { libc::umask(0o077) };
    limit_malloc_arenas();
    let cli = Cli::parse();
    set_purge_delay(&cli.command);
    if !matches!(cli.command, Command::Serve { .. }) {
        // `disksnap snapshot list | head` should end quietly, as Unix tools do.
        // SAFETY: restoring the default disposition of a signal.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    init_logging(cli.log_format, matches!(cli.command, Command::Serve { .. }));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = match rt.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    // Jobs end before commands return; nothing is left to wait for.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}

#[cfg(all(test, not(feature = "system-alloc")))]
mod alloc_tests {
    /// mimalloc v3's default purge delay is 1000 ms and no other option defaults to 1000: the
    /// index main sets is the purge delay's (an upgrade that moved it fails here).
    #[test]
    fn the_purge_delay_index_names_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads one of mimalloc's options.
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, 1000);
    }

    /// The batch commands that stream big buffers between threads free at once; the rest
    /// (the server above all) keep 10 ms.
    #[test]
    fn compact_and_verify_free_at_once_the_rest_after_10_ms() {
        use clap::Parser;
        let delay = |args: &[&str]| super::purge_delay_ms(&super::Cli::parse_from(args).command);
        assert_eq!(delay(&["disksnap", "compact"]), 0);
        assert_eq!(delay(&["disksnap", "verify"]), 0);
        assert_eq!(delay(&["disksnap", "serve"]), 10);
        assert_eq!(delay(&["disksnap", "snapshot", "list"]), 10);
    }
}
