//! The TLS listener's certificate: the operator's own (`--tls-cert/--tls-key`, PEM), or a dev CA
//! and a server certificate generated into `DATA_DIR/tls/` on first start. Clients trust the dev
//! CA through its file (`SSL_CERT_FILE=DATA_DIR/tls/ca.pem` for Python), so it is kept across
//! restarts; the server certificate is re-issued (by the same CA) when the names it must carry
//! change, e.g. a new listen host.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where a generated dev CA and server certificate live.
pub struct DevPaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The names the current server certificate carries, one a line.
    names: PathBuf,
}

impl DevPaths {
    pub fn in_data_dir(data_dir: &Path) -> Self {
        let d = data_dir.join("tls");
        DevPaths {
            ca_cert: d.join("ca.pem"),
            ca_key: d.join("ca-key.pem"),
            cert: d.join("server.pem"),
            key: d.join("server-key.pem"),
            names: d.join("server.names"),
        }
    }
}

/// The names a generated server certificate carries: localhost, the loopback addresses and the
/// listen host (when it is a specific name or address).
pub fn server_names(listen_host: &str) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let host = listen_host.trim_start_matches('[').trim_end_matches(']');
    let wildcard = matches!(host, "" | "0.0.0.0" | "::");
    if !wildcard && !names.iter().any(|n| n == host) {
        names.push(host.to_string());
    }
    names
}

/// The CA's fixed identity: re-created the same on every start so a kept CA key can sign anew.
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "disksnap");
    dn.push(DnType::CommonName, "disksnap development CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p
}

/// Write `path` durably, mode 0600: certificates too, as nothing in the data dir is for other
/// users (clients that trust the CA run as its owner, or are given a copy).
fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(disksnap_engine::private::FILE_MODE)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Make sure a dev CA and a server certificate for `names` exist; returns whether anything was
/// (re)generated.
pub fn ensure_dev_certificate(paths: &DevPaths, names: &[String]) -> anyhow::Result<bool> {
    let dir = paths.ca_cert.parent().expect("tls dir");
    disksnap_engine::private::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut changed = false;
    let ca_key = if paths.ca_cert.exists() && paths.ca_key.exists() {
        let pem = std::fs::read_to_string(&paths.ca_key)
            .with_context(|| format!("cannot read {}", paths.ca_key.display()))?;
        KeyPair::from_pem(&pem).map_err(|e| anyhow!("{}: {e}", paths.ca_key.display()))?
    } else {
        let key = KeyPair::generate().map_err(|e| anyhow!("generate a CA key: {e}"))?;
        let cert = ca_params().self_signed(&key).map_err(|e| anyhow!("self-sign the dev CA: {e}"))?;
        write_file(&paths.ca_key, &key.serialize_pem())?;
        write_file(&paths.ca_cert, &cert.pem())?;
        let _ = std::fs::remove_file(&paths.names); // a new CA: re-issue the server certificate
        changed = true;
        key
    };
    let wanted = names.join("\n");
    let current = std::fs::read_to_string(&paths.names).unwrap_or_default();
    if changed || current != wanted || !paths.cert.exists() || !paths.key.exists() {
        let issuer = Issuer::new(ca_params(), &ca_key);
        let key = KeyPair::generate().map_err(|e| anyhow!("generate a server key: {e}"))?;
        let mut p = CertificateParams::new(names.to_vec()).map_err(|e| anyhow!("certificate names {names:?}: {e}"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "disksnap");
        dn.push(DnType::CommonName, names.first().cloned().unwrap_or_else(|| "localhost".into()));
        p.distinguished_name = dn;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &issuer).map_err(|e| anyhow!("sign the server certificate: {e}"))?;
        write_file(&paths.key, &key.serialize_pem())?;
        write_file(&paths.cert, &cert.pem())?;
        write_file(&paths.names, &wanted)?;
        changed = true;
    }
    Ok(changed)
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, HTTP/1.1 and h2 by ALPN) from
/// PEM files: a certificate chain and its private key.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("TLS certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("TLS certificate {} holds no PEM certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow!("TLS key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS protocol versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| anyhow!("TLS certificate {} and its key do not fit: {e}", cert.display()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_include_the_listen_host_once() {
        assert_eq!(server_names("127.0.0.1"), vec!["localhost", "127.0.0.1", "::1"]);
        assert_eq!(server_names("0.0.0.0"), vec!["localhost", "127.0.0.1", "::1"]);
        assert_eq!(server_names("snap.example"), vec!["localhost", "127.0.0.1", "::1", "snap.example"]);
        assert_eq!(server_names("[::1]"), vec!["localhost", "127.0.0.1", "::1"]);
    }

    #[test]
    fn dev_certificate_is_generated_once_and_reissued_for_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DevPaths::in_data_dir(dir.path());
        assert!(ensure_dev_certificate(&paths, &server_names("127.0.0.1")).unwrap());
        let ca = std::fs::read_to_string(&paths.ca_cert).unwrap();
        assert!(!ensure_dev_certificate(&paths, &server_names("127.0.0.1")).unwrap());
        server_config(&paths.cert, &paths.key).unwrap();
        // A new host: a new server certificate, the same CA (clients keep trusting it).
        let before = std::fs::read_to_string(&paths.cert).unwrap();
        assert!(ensure_dev_certificate(&paths, &server_names("10.1.2.3")).unwrap());
        assert_eq!(std::fs::read_to_string(&paths.ca_cert).unwrap(), ca);
        assert_ne!(std::fs::read_to_string(&paths.cert).unwrap(), before);
        server_config(&paths.cert, &paths.key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&paths.key).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
