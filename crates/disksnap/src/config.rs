//! The TOML configuration: listeners, data dir, retention, zones and accounts with their
//! per-dialect credentials. A bad file fails start-up naming the file, line and key at fault.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use toml::Spanned;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7480";
pub const DEFAULT_TLS_LISTEN: &str = "127.0.0.1:7443";
pub const CONFIG_NAME: &str = "disksnap.toml";

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// HTTPS listener serving the same routes as `listen` (Tencent's SDK speaks only HTTPS).
    /// None: no TLS listener.
    pub tls_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// How long a deleted full snapshot stays recoverable, e.g. "2h", "90m", "30s".
    #[serde(default = "default_retention", with = "duration_text")]
    pub deleted_retention: Duration,
    /// GC keeps unreferenced chunks younger than this.
    #[serde(default = "default_grace", with = "duration_text")]
    pub gc_grace: Duration,
    /// Finished jobs are deleted this long after they were created, e.g. "30d" (the default);
    /// "0s" keeps every job forever.
    #[serde(default = "default_job_retention", with = "duration_text")]
    pub job_retention: Duration,
    /// How long an OAuth2 (51idc) or Keystone (OpenStack) token stays valid, e.g. "2h" (at least 1s).
    #[serde(default = "default_token_lifetime", with = "duration_text")]
    pub token_lifetime: Duration,
    /// Tests only: each rollback job waits this long before it starts (its snapshot shows as
    /// rolling back meanwhile). Leave unset in production.
    #[serde(default, with = "duration_text")]
    pub test_rollback_delay: Duration,
    /// Once a request's first byte (or a TLS handshake's) arrives, its headers must arrive
    /// within this, however slowly they trickle; else the connection is closed.
    #[serde(default = "default_header_read_timeout", with = "duration_text")]
    pub header_read_timeout: Duration,
    /// A request's whole body must arrive within this of its headers; else the dialect answers
    /// with its invalid-parameter error and the connection is closed.
    #[serde(default = "default_body_read_timeout", with = "duration_text")]
    pub body_read_timeout: Duration,
    /// A connection with no request in flight and nothing arriving is closed after this.
    #[serde(default = "default_idle_timeout", with = "duration_text")]
    pub idle_timeout: Duration,
    /// Most connections open at once over both listeners (default: 10 000, or fewer when the
    /// open-file limit needs it; never more than the limit allows). Beyond it a new connection
    /// closes the longest-idle one.
    pub max_connections: Option<usize>,
    /// Reverse proxies in front of the server (IP addresses, e.g. ["127.0.0.1"]): only a request
    /// from one of them has its `X-Forwarded-For` believed when the console limits sign-in
    /// attempts per client address. Empty (the default): the connection's peer is the client.
    #[serde(default)]
    pub console_trusted_proxies: Vec<std::net::IpAddr>,
    /// Chunk size of a new store, in KiB (power of two, 4 to 16384). Fixed once the store exists.
    pub chunk_size_kib: Option<u32>,
    /// The metadata database: `postgres://user[:password]@host[:port]/dbname` puts it on
    /// PostgreSQL (several nodes may share it); unset, it is SQLite at `DATA/meta.db`.
    pub database_url: Option<String>,
    /// Where snapshot bytes live: a local directory (default) or an S3-compatible bucket.
    #[serde(default)]
    pub store: StoreSection,
    /// This server's node of a cluster (README "Cluster"); `disksnap serve --node` overrides
    /// its name.
    pub node: Option<NodeSection>,
    #[serde(default)]
    pub zones: Vec<Zone>,
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// The test-control admin API (`/admin/v1/…`, `disksnap admin …`): off unless enabled.
    #[serde(default)]
    pub admin: AdminSection,
}

/// `[admin]`: the test-control API (move the scheduler's clock, reset an account, make jobs
/// fail or wait). For test rigs only: whoever has the token can empty any account.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    #[serde(default)]
    pub enabled: bool,
    /// The bearer token every admin call sends (at least 16 characters).
    pub token: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// `DATA/store` on this machine.
    #[default]
    Local,
    /// Any S3-compatible object store (AWS S3, Ceph RGW, MinIO, Garage, OSS, COS).
    S3,
}

/// `[store]`: which backend holds the packs and indexes, and how to reach an S3 bucket.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    #[serde(default)]
    pub backend: BackendKind,
    pub bucket: Option<String>,
    /// Key prefix inside the bucket, so several stores can share one (`"site-a/prod"`).
    pub prefix: Option<String>,
    /// Signing region (default `us-east-1`, what Ceph RGW, MinIO and Garage accept).
    pub region: Option<String>,
    /// `http(s)://host[:port]` of the store; unset means AWS S3 itself.
    pub endpoint: Option<String>,
    /// `endpoint/bucket/key` requests (Ceph RGW without wildcard DNS, MinIO, Garage) instead of
    /// `bucket.endpoint/key`. Default: true with an `endpoint`, false for AWS.
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Name of an environment variable holding the secret, to keep it out of this file.
    pub secret_access_key_env: Option<String>,
    /// Allow a plain-http `endpoint` (loopback or a trusted network only).
    #[serde(default)]
    pub allow_http: bool,
    /// Sign each upload's body (SHA-256) so the store refuses one altered on the way. Default:
    /// true over plain http to another host; false over https (TLS guards the body; the AWS
    /// SDKs' choice too) and to this machine (`is_loopback`).
    pub sign_payload: Option<bool>,
    /// Local read cache of ranges read from the bucket; relative paths are under the data dir.
    /// Unset: no cache.
    pub cache_dir: Option<PathBuf>,
    /// Size bound of the read cache in MiB (default 1024; 0 turns it off).
    pub cache_max_mib: Option<u64>,
    /// Captures compress with the store's own zstd dictionary, trained by the first capture
    /// (default true): the bench's text stored at 2.25:1 instead of 1.88:1, for ~30 % more
    /// capture CPU. false: plain level 1 at capture, and `disksnap compact` re-encodes later.
    pub capture_dictionary: Option<bool>,
    /// Deadline of one request to the bucket, body included (default "5m": a 16 MiB pack needs
    /// 55 KB/s). A store that stops answering holds a job this long per attempt, so lower it
    /// where the link is fast.
    #[serde(default, with = "duration_text::option", skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Duration>,
    /// Retries of a failed request (5xx, timeout, broken connection), with exponential backoff
    /// (default 10).
    pub max_retries: Option<usize>,
    /// No retry starts later than this after a request's first attempt (default "3m").
    #[serde(default, with = "duration_text::option", skip_serializing_if = "Option::is_none")]
    pub retry_timeout: Option<Duration>,
}

/// `[node]`: a node of a cluster (several servers on one `database_url` and one `[store]`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Unique in the cluster: letters, digits, `.`, `_`, `-` (shown by `disksnap cluster status`).
    pub name: Option<String>,
    /// A configured zone (name or alias); default: the first zone.
    pub zone: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub name: Spanned<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Where the zone's new volume files go (default `DATA/volumes/`): put it on XFS or btrfs
    /// for instant points and changed-block tracking (reflink clones; see README "Points").
    #[serde(default)]
    pub volumes_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub name: Spanned<String>,
    pub qingcloud: Option<QingCloudKeys>,
    pub aliyun: Option<AliyunKeys>,
    pub tencent: Option<TencentKeys>,
    pub openstack: Option<ProjectUser>,
    /// Huawei Cloud AK/SK for the EVS `cloudsnapshots` API (SDK-HMAC-SHA256).
    pub huawei: Option<HuaweiKeys>,
}

/// QingCloud IaaS keys; 51idc uses the same pair.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct QingCloudKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AliyunKeys {
    pub access_key_id: String,
    pub access_key_secret: String,
}

#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TencentKeys {
    pub secret_id: String,
    pub secret_key: String,
}

#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ProjectUser {
    pub project_id: String,
    pub project_name: String,
    pub user: String,
    pub password: String,
}

#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct HuaweiKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

fn default_listen() -> String {
    DEFAULT_LISTEN.into()
}
fn default_retention() -> Duration {
    Duration::from_secs(7200)
}
fn default_job_retention() -> Duration {
    disksnap_service::DEFAULT_JOB_RETENTION
}
fn default_token_lifetime() -> Duration {
    Duration::from_secs(7200)
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_body_read_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_grace() -> Duration {
    Duration::from_secs(600)
}

/// Durations written as "2h", "90m", "45s", "500ms" or a bare number of seconds.
pub mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration like \"2h\", \"90m\", \"30s\""))?;
        let secs = match unit.trim() {
            "" | "s" => n,
            "ms" => n / 1000.0,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            "d" => n * 86400.0,
            u => return Err(format!("unknown unit {u:?} in {s:?}: use ms, s, m, h or d")),
        };
        if !(0.0..=1e10).contains(&secs) {
            return Err(format!("{s:?} is out of range"));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", d.as_secs_f64()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }

    /// The same for an optional setting (`#[serde(default, with = "duration_text::option")]`).
    pub mod option {
        use serde::{Deserializer, Serializer};
        use std::time::Duration;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

/// A node's name is shown and compared as given: keep it to a plain, printable word.
fn check_node_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!("node name {name:?}: use 1 to 63 letters, digits, '.', '_' or '-'");
    }
    Ok(())
}

/// 1-based line of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        cfg.validate(text)?;
        Ok(cfg)
    }

    fn validate(&self, text: &str) -> anyhow::Result<()> {
        if self.admin.enabled && self.admin.token.as_deref().is_none_or(|t| t.trim().chars().count() < 16) {
            bail!("[admin] enabled = true needs a token of at least 16 characters (every admin call sends it)");
        }
        let mut names = std::collections::HashMap::new();
        for z in &self.zones {
            let at = line_of(text, z.name.span().start);
            if z.name.get_ref().trim().is_empty() {
                bail!("line {at}: zones.name must not be empty");
            }
            if z.volumes_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
                bail!("line {at}: zones.volumes_dir must be an absolute path (a directory on XFS or btrfs for instant points)");
            }
            for n in std::iter::once(z.name.get_ref()).chain(z.aliases.iter()) {
                if let Some(prev) = names.insert(n.to_ascii_lowercase(), at) {
                    bail!("line {at}: zone name or alias {n:?} is already used on line {prev}");
                }
            }
        }
        let mut accounts = std::collections::HashMap::new();
        let mut keys = std::collections::HashMap::new();
        for a in &self.accounts {
            let at = line_of(text, a.name.span().start);
            let name = a.name.get_ref();
            if name.trim().is_empty() {
                bail!("line {at}: accounts.name must not be empty");
            }
            if let Some(prev) = accounts.insert(name.clone(), at) {
                bail!("line {at}: account {name:?} is already defined on line {prev}");
            }
            let ids = [
                a.qingcloud.as_ref().map(|k| ("accounts.qingcloud.access_key_id", &k.access_key_id)),
                a.aliyun.as_ref().map(|k| ("accounts.aliyun.access_key_id", &k.access_key_id)),
                a.tencent.as_ref().map(|k| ("accounts.tencent.secret_id", &k.secret_id)),
                a.openstack.as_ref().map(|k| ("accounts.openstack.project_id", &k.project_id)),
                a.huawei.as_ref().map(|k| ("accounts.huawei.access_key_id", &k.access_key_id)),
            ];
            for (key, id) in ids.into_iter().flatten() {
                if id.trim().is_empty() {
                    bail!("account {name:?} (line {at}): {key} must not be empty");
                }
                if let Some(other) = keys.insert((key, id.clone()), name.clone()) {
                    bail!("account {name:?} (line {at}): {key} {id:?} is already used by account {other:?}");
                }
            }
        }
        if self.token_lifetime < Duration::from_secs(1) {
            bail!("token_lifetime must be at least 1s");
        }
        for (key, d) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if d < Duration::from_millis(100) {
                bail!("{key} must be at least 100ms");
            }
        }
        if self.max_connections == Some(0) {
            bail!("max_connections must be at least 1");
        }
        if let Some(cs) = self.chunk_size_kib {
            if !cs.is_power_of_two() || !(4..=16384).contains(&cs) {
                bail!("chunk_size_kib = {cs}: must be a power of two from 4 to 16384");
            }
        }
        if let Some(url) = &self.database_url {
            // The URL is not echoed: it may hold a password.
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                bail!("database_url must be a PostgreSQL URL like \"postgres://user:password@host:5432/disksnap\" (leave it out for SQLite in the data dir)");
            }
        }
        self.store.validate()?;
        if let Some(n) = &self.node {
            if let Some(name) = &n.name {
                check_node_name(name)?;
            }
            if let Some(z) = &n.zone {
                self.node_zone(Some(z))?;
            }
        }
        Ok(())
    }

    /// This server's node: `[node]` with `--node NAME` over its name; None without either.
    pub fn node_config(&self, name_arg: Option<&str>) -> anyhow::Result<Option<disksnap_service::NodeConfig>> {
        let section = self.node.as_ref();
        let Some(name) = name_arg.or(section.and_then(|n| n.name.as_deref())) else {
            if section.is_some() {
                bail!("[node] needs a name (or start the server with --node NAME)");
            }
            return Ok(None);
        };
        check_node_name(name)?;
        let zone = self.node_zone(section.and_then(|n| n.zone.as_deref()))?;
        Ok(Some(disksnap_service::NodeConfig { name: name.to_string(), zone }))
    }

    /// The canonical name of the node's zone (given by name or alias), else the first zone.
    fn node_zone(&self, given: Option<&str>) -> anyhow::Result<String> {
        let zones = self.zone_configs();
        let Some(z) = given else {
            return Ok(zones.first().map(|z| z.name.clone()).unwrap_or_else(|| "pek3a".into()));
        };
        zones
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(z) || c.aliases.iter().any(|a| a.eq_ignore_ascii_case(z)))
            .map(|c| c.name.clone())
            .ok_or_else(|| {
                let names: Vec<&str> = zones.iter().map(|c| c.name.as_str()).collect();
                anyhow::anyhow!("node.zone {z:?} is not a configured zone (zones: {})", names.join(", "))
            })
    }

    pub fn zone_configs(&self) -> Vec<disksnap_service::ZoneConfig> {
        self.zones
            .iter()
            .map(|z| disksnap_service::ZoneConfig { name: z.name.get_ref().clone(), aliases: z.aliases.clone() })
            .collect()
    }

    /// Zone name → the directory its volumes live in, for the zones that name one.
    pub fn volume_homes(&self) -> std::collections::HashMap<String, std::path::PathBuf> {
        self.zones.iter().filter_map(|z| Some((z.name.get_ref().clone(), z.volumes_dir.clone()?))).collect()
    }

    pub fn account_names(&self) -> Vec<String> {
        self.accounts.iter().map(|a| a.name.get_ref().clone()).collect()
    }

    /// Every account's credentials, by each dialect's key kind, for the dialects' signature checks.
    pub fn keyring(&self) -> disksnap_api_common::KeyRing {
        use disksnap_api_common::ProjectUser as User;
        let mut ring = disksnap_api_common::KeyRing::default();
        for a in &self.accounts {
            let name = a.name.get_ref();
            // validate() already refused duplicate key ids, so add() cannot fail here.
            if let Some(k) = &a.qingcloud {
                let _ = ring.add(disksnap_dialect_qingcloud::KEYS, &k.access_key_id, name, &k.secret_access_key);
            }
            if let Some(k) = &a.aliyun {
                let _ = ring.add(disksnap_dialect_aliyun::KEYS, &k.access_key_id, name, &k.access_key_secret);
            }
            if let Some(k) = &a.tencent {
                let _ = ring.add(disksnap_dialect_tencent::KEYS, &k.secret_id, name, &k.secret_key);
            }
            if let Some(k) = &a.huawei {
                let _ = ring.add(disksnap_dialect_openstack::HUAWEI_KEYS, &k.access_key_id, name, &k.secret_access_key);
            }
            if let Some(o) = &a.openstack {
                let _ = ring.add_user(
                    disksnap_dialect_openstack::USERS,
                    User {
                        account: name.clone(),
                        project_id: o.project_id.clone(),
                        project_name: o.project_name.clone(),
                        user: o.user.clone(),
                        password: o.password.clone(),
                    },
                );
            }
        }
        ring
    }

    /// A first-start config: one zone with the aliases every dialect's examples use, one dev
    /// account with fresh random credentials for every dialect.
    pub fn generated() -> (Config, String) {
        let key = |n: usize, upper: bool| -> String {
            let alphabet: &[u8] = if upper {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            } else {
                b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            };
            (0..n).map(|_| alphabet[rand::random::<usize>() % alphabet.len()] as char).collect()
        };
        let project: String = (0..32).map(|_| format!("{:x}", rand::random::<u8>() % 16)).collect();
        let text = format!(
            r#"# disksnap configuration, generated on first start. Edit freely; see README.md.
listen = "{DEFAULT_LISTEN}"
tls_listen = "{DEFAULT_TLS_LISTEN}"
deleted_retention = "2h"
gc_grace = "10m"
job_retention = "30d"

[[zones]]
name = "pek3a"
aliases = ["cn-hangzhou", "gz", "RegionOne", "ac1", "cn-north-4"]

[[accounts]]
name = "dev"
qingcloud = {{ access_key_id = "QY{qk}", secret_access_key = "{qs}" }}
aliyun = {{ access_key_id = "LTAI{ak}", access_key_secret = "{asec}" }}
tencent = {{ secret_id = "AKID{tk}", secret_key = "{ts}" }}
openstack = {{ project_id = "{project}", project_name = "dev", user = "dev", password = "{pw}" }}
huawei = {{ access_key_id = "{hk}", secret_access_key = "{hs}" }}
"#,
            qk = key(18, true),
            qs = key(40, false),
            ak = key(20, false),
            asec = key(30, false),
            tk = key(32, false),
            ts = key(32, false),
            pw = key(20, false),
            hk = key(20, true),
            hs = key(40, false),
        );
        (Config::parse(&text).expect("generated config parses"), text)
    }
}

/// Default bound of the S3 read cache when `cache_dir` is set.
pub const DEFAULT_CACHE_MAX_MIB: u64 = 1024;

impl StoreSection {
    fn validate(&self) -> anyhow::Result<()> {
        let s3_keys = [
            ("bucket", self.bucket.is_some()),
            ("prefix", self.prefix.is_some()),
            ("region", self.region.is_some()),
            ("endpoint", self.endpoint.is_some()),
            ("path_style", self.path_style.is_some()),
            ("access_key_id", self.access_key_id.is_some()),
            ("secret_access_key", self.secret_access_key.is_some()),
            ("secret_access_key_env", self.secret_access_key_env.is_some()),
            ("allow_http", self.allow_http),
            ("sign_payload", self.sign_payload.is_some()),
            ("cache_dir", self.cache_dir.is_some()),
            ("cache_max_mib", self.cache_max_mib.is_some()),
            ("request_timeout", self.request_timeout.is_some()),
            ("max_retries", self.max_retries.is_some()),
            ("retry_timeout", self.retry_timeout.is_some()),
        ];
        if self.backend == BackendKind::Local {
            // An S3 key under a local store is a forgotten `backend = "s3"`, not a harmless extra.
            if let Some((key, _)) = s3_keys.iter().find(|(_, set)| *set) {
                bail!("[store] {key} is an S3 setting, but backend is \"local\": add backend = \"s3\" or remove {key}");
            }
            return Ok(());
        }
        let need = |key: &str, v: &Option<String>| -> anyhow::Result<()> {
            match v {
                Some(v) if !v.trim().is_empty() => Ok(()),
                _ => bail!("[store] backend = \"s3\" needs {key}"),
            }
        };
        need("bucket", &self.bucket)?;
        let bucket = self.bucket.as_deref().unwrap_or_default();
        if bucket.len() > 255
            || !bucket.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            || !bucket.as_bytes()[0].is_ascii_alphanumeric()
        {
            bail!("[store] bucket {bucket:?} is not a bucket name: letters, digits, '.', '-' and '_', starting with a letter or digit");
        }
        if let Some(p) = &self.prefix {
            let ok = p.is_empty()
                || p.split('/').all(|seg| {
                    !seg.is_empty()
                        && seg != "."
                        && seg != ".."
                        && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                });
            if !ok {
                bail!("[store] prefix {p:?}: use '/'-separated names of letters, digits, '.', '_' and '-', without a leading or trailing '/'");
            }
        }
        if let Some(r) = &self.region {
            if r.trim().is_empty() || r.contains(char::is_whitespace) {
                bail!("[store] region {r:?} is not a region name (e.g. \"us-east-1\")");
            }
        }
        if let Some(ep) = &self.endpoint {
            let rest = ep.strip_prefix("https://").or_else(|| ep.strip_prefix("http://"));
            let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
            match host {
                Some(h) if !h.is_empty() && !h.contains(char::is_whitespace) => {}
                _ => bail!(
                    "[store] endpoint {ep:?} is not a URL like \"https://s3.example.com\" or \"http://127.0.0.1:7480\""
                ),
            }
            if rest.is_some_and(|r| r.trim_end_matches('/').contains('/')) {
                bail!(
                    "[store] endpoint {ep:?} has a path: give the server's URL only and the bucket in bucket = \"...\""
                );
            }
            if ep.starts_with("http://") && !self.allow_http {
                bail!("[store] endpoint {ep:?} is plain http: set allow_http = true (only for loopback or a trusted network) or use https");
            }
        }
        need("access_key_id", &self.access_key_id)?;
        match (&self.secret_access_key, &self.secret_access_key_env) {
            (Some(_), Some(_)) => {
                bail!("[store] give secret_access_key or secret_access_key_env, not both")
            }
            (None, None) => bail!(
                "[store] backend = \"s3\" needs secret_access_key, or secret_access_key_env naming an environment variable that holds it"
            ),
            (Some(s), None) if s.is_empty() => bail!("[store] secret_access_key must not be empty"),
            (None, Some(v)) if v.trim().is_empty() || v.contains('=') => {
                bail!("[store] secret_access_key_env {v:?} is not an environment variable name")
            }
            _ => {}
        }
        if let Some(t) = self.request_timeout {
            if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&t) {
                bail!("[store] request_timeout = {t:?}: give 1s to 1h (a whole 16 MiB pack must fit in it)");
            }
        }
        if self.max_retries.is_some_and(|n| n > 100) {
            bail!("[store] max_retries must be 100 or fewer (each waits longer than the one before)");
        }
        if self.retry_timeout.is_some_and(|t| t > Duration::from_secs(86400)) {
            bail!("[store] retry_timeout must be 1d or less");
        }
        Ok(())
    }

    /// The engine's S3 settings, with the secret read from the environment when the config
    /// names a variable. `None` for the local backend. For callers that want the concrete
    /// [`S3Backend`](disksnap_engine::backend::s3::S3Backend) (the benchmark reads its counters).
    pub fn s3_config(&self, data_dir: &Path) -> anyhow::Result<Option<disksnap_engine::backend::s3::S3Config>> {
        if self.backend == BackendKind::Local {
            return Ok(None);
        }
        let secret = match (&self.secret_access_key, &self.secret_access_key_env) {
            (Some(s), _) => s.clone(),
            (None, Some(var)) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => v,
                _ => bail!("[store] secret_access_key_env = {var:?}, but {var} is not set in disksnap's environment"),
            },
            (None, None) => bail!("[store] backend = \"s3\" needs secret_access_key or secret_access_key_env"),
        };
        let mut c = disksnap_engine::backend::s3::S3Config::new(
            self.bucket.as_deref().unwrap_or_default(),
            self.access_key_id.as_deref().unwrap_or_default(),
            &secret,
        );
        c.prefix = self.prefix.clone().unwrap_or_default();
        if let Some(r) = &self.region {
            c.region = r.clone();
        }
        c.endpoint = self.endpoint.as_ref().map(|e| e.trim_end_matches('/').to_string());
        c.path_style = self.path_style.unwrap_or(self.endpoint.is_some());
        c.allow_http = self.allow_http;
        // Unset endpoint: AWS itself, over https.
        let https = c.endpoint.as_deref().is_none_or(|e| e.starts_with("https://"));
        c.sign_payload = self.sign_payload.unwrap_or(!https && !c.endpoint.as_deref().is_some_and(is_loopback));
        if let Some(t) = self.request_timeout {
            c.request_timeout = t;
        }
        if let Some(n) = self.max_retries {
            c.max_retries = n;
        }
        if let Some(t) = self.retry_timeout {
            c.retry_timeout = t;
        }
        let max = self.cache_max_mib.unwrap_or(DEFAULT_CACHE_MAX_MIB);
        if let Some(dir) = &self.cache_dir {
            if max > 0 {
                c.cache_dir = Some(data_dir.join(dir));
                c.cache_max_bytes = max << 20;
            }
        }
        Ok(Some(c))
    }

    /// Open the backend `[store]` names: `DATA/store` or the S3 bucket. With `check`, one LIST
    /// (a few quick retries) proves the endpoint, credentials and bucket now, so a wrong setting
    /// stops start-up with what to fix instead of failing the first snapshot.
    pub fn open_backend(
        &self,
        data_dir: &Path,
        check: bool,
    ) -> anyhow::Result<std::sync::Arc<dyn disksnap_engine::backend::Backend>> {
        use disksnap_engine::backend::s3::S3Backend;
        let Some(c) = self.s3_config(data_dir)? else {
            let root = data_dir.join("store");
            let b = disksnap_engine::backend::local::LocalBackend::open(&root)
                .map_err(|e| anyhow::anyhow!("[store] local store {}: {e}", root.display()))?;
            return Ok(std::sync::Arc::new(b));
        };
        if check {
            let mut probe = c.clone();
            probe.cache_dir = None;
            probe.max_retries = 2;
            probe.retry_timeout = Duration::from_secs(15);
            S3Backend::open(&probe).and_then(|b| b.check()).map_err(|e| anyhow::anyhow!("[store] {e}"))?;
        }
        let b = S3Backend::open(&c).map_err(|e| anyhow::anyhow!("[store] {e}"))?;
        Ok(std::sync::Arc::new(b))
    }
}

/// Whether `endpoint` (`http(s)://host[:port]`) is this machine: `localhost`, 127.0.0.0/8 or
/// `::1`. A signed body guards against a body altered on its way over a network; on the
/// loopback interface there is no way to alter it (only this machine's root could, who could
/// as well read the keys), so the SHA-256 pass over every byte on both ends buys nothing there.
fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => hostport.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_is_valid() {
        let (cfg, _) = Config::generated();
        assert_eq!(cfg.accounts.len(), 1);
        assert_eq!(cfg.deleted_retention, Duration::from_secs(7200));
        assert_eq!(cfg.job_retention, Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn job_retention_defaults_to_a_month_and_zero_keeps_jobs() {
        let base = "[[accounts]]\nname = \"a\"\n";
        assert_eq!(Config::parse(base).unwrap().job_retention, Duration::from_secs(30 * 86_400));
        let cfg = Config::parse(&format!("job_retention = \"7d\"\n{base}")).unwrap();
        assert_eq!(cfg.job_retention, Duration::from_secs(7 * 86_400));
        assert!(Config::parse(&format!("job_retention = \"0s\"\n{base}")).unwrap().job_retention.is_zero());
        let e = Config::parse(&format!("job_retention = \"a month\"\n{base}")).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("job_retention"), "{e}");
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let e = Config::parse("listen = \"x\"\nbogus = 1\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("bogus"), "{e}");
        let e = Config::parse("deleted_retention = \"2 weeks\"\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("weeks"), "{e}");
        let two = "[[accounts]]\nname = \"a\"\n[[accounts]]\nname = \"a\"\n";
        let e = Config::parse(two).unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("line 2"), "{e}");
        let e = Config::parse("[[zones]]\nname = \"z\"\naliases = [\"Z\"]\n").unwrap_err().to_string();
        assert!(e.contains("already used"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_text::parse("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration_text::parse("2").unwrap(), Duration::from_secs(2));
        assert_eq!(duration_text::parse("500ms").unwrap(), Duration::from_millis(500));
        assert!(duration_text::parse("-1s").is_err());
        assert_eq!(Config::parse("token_lifetime = \"5s\"\n").unwrap().token_lifetime, Duration::from_secs(5));
        assert!(Config::parse("token_lifetime = \"0s\"\n").unwrap_err().to_string().contains("token_lifetime"));
    }

    const S3: &str = "[store]\nbackend = \"s3\"\nbucket = \"snaps\"\nendpoint = \"http://127.0.0.1:7480\"\nallow_http = true\naccess_key_id = \"AK\"\n";

    fn store_err(extra: &str) -> String {
        Config::parse(&format!("{S3}{extra}")).unwrap_err().to_string()
    }

    #[test]
    fn store_section_local_by_default_and_s3_when_asked() {
        let cfg = Config::parse("").unwrap();
        assert_eq!(cfg.store.backend, BackendKind::Local);
        assert!(cfg.store.s3_config(Path::new("/d")).unwrap().is_none());
        assert_eq!(cfg.store.capture_dictionary, None, "unset: on (cli.rs)");
        let cfg = Config::parse("[store]\ncapture_dictionary = false\n").unwrap();
        assert_eq!(cfg.store.capture_dictionary, Some(false), "a store setting, not an S3 one");

        let cfg =
            Config::parse(&format!("{S3}secret_access_key = \"SK\"\nprefix = \"site/a\"\ncache_dir = \"cache\"\n"))
                .unwrap();
        let c = cfg.store.s3_config(Path::new("/d")).unwrap().unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str(), c.region.as_str()), ("snaps", "site/a", "us-east-1"));
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:7480"));
        assert!(c.path_style && c.allow_http, "an endpoint means path-style by default");
        assert!(!c.sign_payload, "plain http to this machine: nothing on the way to guard against");
        for (endpoint, signed) in [
            ("http://10.0.0.5:7480", true),
            ("http://rgw.example.net", true),
            ("http://localhost:7480", false),
            ("http://[::1]:7480", false),
            ("http://127.1.2.3", false),
            ("https://10.0.0.5", false),
        ] {
            let cfg = S3.replace("http://127.0.0.1:7480", endpoint);
            let c = Config::parse(&format!("{cfg}secret_access_key = \"SK\"\n")).unwrap();
            assert_eq!(c.store.s3_config(Path::new("/d")).unwrap().unwrap().sign_payload, signed, "{endpoint}");
        }
        assert_eq!((c.access_key_id.as_str(), c.secret_access_key.as_str()), ("AK", "SK"));
        assert_eq!(c.cache_dir.as_deref(), Some(Path::new("/d/cache")));
        assert_eq!(c.cache_max_bytes, DEFAULT_CACHE_MAX_MIB << 20);
        let c = Config::parse(&format!("{S3}secret_access_key = \"SK\"\ncache_dir = \"/c\"\ncache_max_mib = 0\n"))
            .unwrap()
            .store
            .s3_config(Path::new("/d"))
            .unwrap()
            .unwrap();
        assert_eq!(c.cache_dir, None, "cache_max_mib = 0 turns the cache off");
        assert_eq!((c.request_timeout, c.max_retries), (Duration::from_secs(300), 10), "the engine's defaults");
        let c = Config::parse(&format!(
            "{S3}secret_access_key = \"SK\"\nrequest_timeout = \"20s\"\nmax_retries = 3\nretry_timeout = \"1m\"\n"
        ))
        .unwrap()
        .store
        .s3_config(Path::new("/d"))
        .unwrap()
        .unwrap();
        assert_eq!(
            (c.request_timeout, c.max_retries, c.retry_timeout),
            (Duration::from_secs(20), 3, Duration::from_secs(60))
        );
        for (bad, says) in [
            ("request_timeout = \"0s\"", "1s to 1h"),
            ("request_timeout = \"2h\"", "1s to 1h"),
            ("request_timeout = \"soon\"", "not a duration"),
            ("max_retries = 1000", "100 or fewer"),
            ("retry_timeout = \"2d\"", "1d or less"),
        ] {
            let e = Config::parse(&format!("{S3}secret_access_key = \"SK\"\n{bad}\n")).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = Config::parse("[store]\nrequest_timeout = \"20s\"\n").unwrap_err().to_string();
        assert!(e.contains("request_timeout is an S3 setting"), "{e}");

        // AWS: no endpoint, virtual-hosted, https only
        let aws = "[store]\nbackend = \"s3\"\nbucket = \"b\"\nregion = \"eu-west-1\"\naccess_key_id = \"A\"\nsecret_access_key = \"S\"\n";
        let c = Config::parse(aws).unwrap().store.s3_config(Path::new("/d")).unwrap().unwrap();
        assert!(c.endpoint.is_none() && !c.path_style && !c.allow_http);
        assert!(!c.sign_payload, "https (AWS): TLS guards the body");
        let c =
            Config::parse(&format!("{aws}sign_payload = true\n")).unwrap().store.s3_config(Path::new("/d")).unwrap();
        assert!(c.unwrap().sign_payload, "asked for");
        let c = Config::parse(&format!("{S3}secret_access_key = \"SK\"\nsign_payload = true\n")).unwrap();
        assert!(c.store.s3_config(Path::new("/d")).unwrap().unwrap().sign_payload, "asked for on loopback");
        let remote = S3.replace("http://127.0.0.1:7480", "http://10.0.0.5:7480");
        let c = Config::parse(&format!("{remote}secret_access_key = \"SK\"\nsign_payload = false\n")).unwrap();
        assert!(!c.store.s3_config(Path::new("/d")).unwrap().unwrap().sign_payload, "turned off over http");
    }

    #[test]
    fn store_secret_from_the_environment() {
        let var = format!("DISKSNAP_TEST_SECRET_{}", std::process::id());
        let cfg = Config::parse(&format!("{S3}secret_access_key_env = \"{var}\"\n")).unwrap();
        let e = cfg.store.s3_config(Path::new("/d")).unwrap_err().to_string();
        assert!(e.contains(&var) && e.contains("not set"), "{e}");
        std::env::set_var(&var, "from-env");
        assert_eq!(cfg.store.s3_config(Path::new("/d")).unwrap().unwrap().secret_access_key, "from-env");
        std::env::remove_var(&var);
    }

    #[test]
    fn store_errors_say_what_to_fix() {
        let cases: &[(&str, &str)] = &[
            ("", "needs secret_access_key"),
            ("secret_access_key = \"S\"\nsecret_access_key_env = \"V\"\n", "not both"),
            ("secret_access_key = \"\"\n", "must not be empty"),
            ("secret_access_key = \"S\"\nprefix = \"/lead\"\n", "prefix"),
            ("secret_access_key = \"S\"\nprefix = \"a//b\"\n", "prefix"),
            ("secret_access_key = \"S\"\nbogus = 1\n", "bogus"),
        ];
        for (extra, want) in cases {
            let e = store_err(extra);
            assert!(e.contains(want), "{extra:?}: {e}");
        }
        let e = Config::parse("[store]\nbackend = \"s4\"\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("s3"), "{e}");
        let e = Config::parse("[store]\nbackend = \"s3\"\n").unwrap_err().to_string();
        assert!(e.contains("needs bucket"), "{e}");
        let e = Config::parse("[store]\nbackend = \"s3\"\nbucket = \"b/c\"\n").unwrap_err().to_string();
        assert!(e.contains("not a bucket name"), "{e}");
        let e = Config::parse("[store]\nbackend = \"s3\"\nbucket = \"b\"\nendpoint = \"127.0.0.1:7480\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a URL"), "{e}");
        let e = Config::parse("[store]\nbackend = \"s3\"\nbucket = \"b\"\nendpoint = \"http://h:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_http = true"), "{e}");
        let e = Config::parse("[store]\nbackend = \"s3\"\nbucket = \"b\"\nendpoint = \"https://h/b\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("has a path"), "{e}");
        let e = Config::parse("[store]\nbackend = \"s3\"\nbucket = \"b\"\n").unwrap_err().to_string();
        assert!(e.contains("needs access_key_id"), "{e}");
        // S3 keys under the local backend: a forgotten backend = "s3"
        let e = Config::parse("[store]\nbucket = \"b\"\n").unwrap_err().to_string();
        assert!(e.contains("backend = \"s3\""), "{e}");
    }

    #[test]
    fn open_backend_local_and_s3_check() {
        let dir = tempfile::tempdir().unwrap();
        let b = Config::parse("").unwrap().store.open_backend(dir.path(), true).unwrap();
        assert!(b.describe().contains("store"), "{}", b.describe());
        assert!(dir.path().join("store").is_dir());
        // an S3 endpoint where nothing listens: the check fails fast, naming it
        let cfg = Config::parse(
            "[store]\nbackend = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:1\"\nallow_http = true\naccess_key_id = \"A\"\nsecret_access_key = \"S\"\n",
        )
        .unwrap();
        let t = std::time::Instant::now();
        let e = cfg.store.open_backend(dir.path(), true).err().expect("nothing listens on port 1").to_string();
        assert!(e.contains("cannot reach the S3 endpoint http://127.0.0.1:1"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
        // without the check it opens (the first request would fail the same way)
        let b = cfg.store.open_backend(dir.path(), false).unwrap();
        assert_eq!(b.describe(), "s3://b/ at http://127.0.0.1:1");
    }
}
