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
    /// Chunk size of a new store, in KiB (power of two, 4 to 16384). Fixed once the store exists.
    pub chunk_size_kib: Option<u32>,
    #[serde(default)]
    pub zones: Vec<Zone>,
    #[serde(default)]
    pub accounts: Vec<Account>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub name: Spanned<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub name: Spanned<String>,
    pub qingcloud: Option<QingCloudKeys>,
    pub aliyun: Option<AliyunKeys>,
    pub tencent: Option<TencentKeys>,
    pub openstack: Option<OpenStackUser>,
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
pub struct OpenStackUser {
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
        let mut names = std::collections::HashMap::new();
        for z in &self.zones {
            let at = line_of(text, z.name.span().start);
            if z.name.get_ref().trim().is_empty() {
                bail!("line {at}: zones.name must not be empty");
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
        Ok(())
    }

    pub fn zone_configs(&self) -> Vec<disksnap_service::ZoneConfig> {
        self.zones
            .iter()
            .map(|z| disksnap_service::ZoneConfig { name: z.name.get_ref().clone(), aliases: z.aliases.clone() })
            .collect()
    }

    pub fn account_names(&self) -> Vec<String> {
        self.accounts.iter().map(|a| a.name.get_ref().clone()).collect()
    }

    /// Every account's credentials, by each dialect's key kind, for the dialects' signature checks.
    pub fn keyring(&self) -> disksnap_api_common::KeyRing {
        use disksnap_api_common::OpenStackUser as User;
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
                let _ = ring.add_openstack(User {
                    account: name.clone(),
                    project_id: o.project_id.clone(),
                    project_name: o.project_name.clone(),
                    user: o.user.clone(),
                    password: o.password.clone(),
                });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_is_valid() {
        let (cfg, _) = Config::generated();
        assert_eq!(cfg.accounts.len(), 1);
        assert_eq!(cfg.deleted_retention, Duration::from_secs(7200));
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
}
