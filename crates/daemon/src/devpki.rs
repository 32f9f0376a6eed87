//! The dev and deployment CA: a certificate authority made with rcgen, one server
//! certificate per dev domain (`mail.<domain>`, the domain's IP, `localhost`), and
//! one certificate per agent for gRPC mutual TLS.
//!
//! Layout under the directory given (e.g. `var/tls`): `ca.pem`, `ca-key.pem`, and
//! `<domain>.pem` / `<domain>-key.pem` for each domain. Existing files are kept, so
//! a client that trusted `ca.pem` keeps trusting the stack across restarts.
//! [`Ca::issue`] also makes the deployment CA's per-agent certificates for gRPC
//! mutual TLS (`cargo xtask pki`); keys are written 0600.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum DevPkiError {
    #[error("dev CA: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("dev CA: {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Paths of one domain's server certificate, as written by [`ensure`].
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "facteur dev CA");
    dn.push(DnType::OrganizationName, "facteur");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DevPkiError + '_ {
    move |source| DevPkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write(path: &Path, contents: &str) -> Result<(), DevPkiError> {
    std::fs::write(path, contents).map_err(io_err(path))
}

/// Write a private key readable by its owner only (0600 from creation on).
fn write_private(path: &Path, contents: &str) -> Result<(), DevPkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(contents.as_bytes()).map_err(io_err(path))
}

fn read(path: &Path) -> Result<String, DevPkiError> {
    std::fs::read_to_string(path).map_err(io_err(path))
}

/// The CA of `dir` (`ca.pem`, `ca-key.pem`), made when either file is missing.
pub struct Ca {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// Open (or make) the CA in `dir`, creating the directory.
    pub fn ensure(dir: &Path) -> Result<Self, DevPkiError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let ca_cert = dir.join("ca.pem");
        let ca_key = dir.join("ca-key.pem");
        let key = if ca_cert.exists() && ca_key.exists() {
            KeyPair::from_pem(&read(&ca_key)?)?
        } else {
            let key = KeyPair::generate()?;
            let cert = ca_params().self_signed(&key)?;
            write_private(&ca_key, &key.serialize_pem())?;
            write(&ca_cert, &cert.pem())?;
            key
        };
        // Re-creating the issuer from the same name and key signs certificates that
        // chain to the `ca.pem` already on disk.
        Ok(Self {
            dir: dir.to_owned(),
            issuer: Issuer::new(ca_params(), key),
        })
    }

    /// `ca.pem`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `<name>.pem` (leaf then CA) and `<name>-key.pem` (0600), valid for server
    /// and client authentication, for the DNS names and IP addresses in `sans`
    /// (the common name is `name`). Existing files are kept as they are.
    pub fn issue(&self, name: &str, sans: &[String]) -> Result<ServerCert, DevPkiError> {
        let cert = self.dir.join(format!("{name}.pem"));
        let key = self.dir.join(format!("{name}-key.pem"));
        if cert.exists() && key.exists() {
            return Ok(ServerCert { cert, key });
        }
        let mut params = CertificateParams::default();
        for san in sans {
            params.subject_alt_names.push(match san.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(san.as_str().try_into()?),
            });
        }
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let leaf_key = KeyPair::generate()?;
        let leaf = params.signed_by(&leaf_key, &self.issuer)?;
        write_private(&key, &leaf_key.serialize_pem())?;
        write(
            &cert,
            &format!("{}{}", leaf.pem(), read(&self.cert_path())?),
        )?;
        Ok(ServerCert { cert, key })
    }
}

/// The SANs of an agent's certificate for `cargo xtask pki DIR --agent NAME[=SAN,…]`:
/// the SANs given (`NAME` itself when none), then `localhost` and `127.0.0.1`
/// so that admin commands on the agent's own host can dial its gRPC listener.
pub fn agent_sans(name: &str, given: &[String]) -> Vec<String> {
    let mut sans: Vec<String> = if given.is_empty() {
        vec![name.to_owned()]
    } else {
        given.to_vec()
    };
    for extra in ["localhost", "127.0.0.1"] {
        if !sans.iter().any(|s| s == extra) {
            sans.push(extra.to_owned());
        }
    }
    sans
}

/// Make (or keep) the dev CA in `dir` and a server certificate for each `(domain, ip)`.
pub fn ensure(dir: &Path, domains: &[(&str, IpAddr)]) -> Result<Vec<ServerCert>, DevPkiError> {
    let ca = Ca::ensure(dir)?;
    domains
        .iter()
        .map(|(domain, ip)| {
            let sans = [
                format!("mail.{domain}"),
                "localhost".to_owned(),
                ip.to_string(),
                "127.0.0.1".to_owned(),
            ];
            ca.issue(domain, &sans)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{TlsFiles, client_config, server_config};

    #[test]
    fn dev_certs_load_into_rustls_and_survive_a_second_run() {
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let certs = ensure(dir.path(), &[("paris.test", ip)]).unwrap();
        let files = TlsFiles {
            cert: certs[0].cert.clone(),
            key: certs[0].key.clone(),
        };
        server_config(&files).unwrap();
        client_config(&dir.path().join("ca.pem")).unwrap();
        let before = std::fs::read(dir.path().join("ca.pem")).unwrap();
        ensure(dir.path(), &[("paris.test", ip), ("lyon.test", ip)]).unwrap();
        assert_eq!(before, std::fs::read(dir.path().join("ca.pem")).unwrap());
        assert!(dir.path().join("lyon.test.pem").exists());
    }

    #[test]
    fn agent_certificates_keep_their_files_and_keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::ensure(dir.path()).unwrap();
        let sans = agent_sans("lyon-mda", &["mda.lyon.test".into(), "10.0.0.4".into()]);
        assert_eq!(
            sans,
            ["mda.lyon.test", "10.0.0.4", "localhost", "127.0.0.1"]
        );
        let first = ca.issue("lyon-mda", &sans).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&first.key), 0o600);
        assert_eq!(mode(&dir.path().join("ca-key.pem")), 0o600);
        let pem = std::fs::read(&first.cert).unwrap();
        let again = Ca::ensure(dir.path())
            .unwrap()
            .issue("lyon-mda", &sans)
            .unwrap();
        assert_eq!(pem, std::fs::read(&again.cert).unwrap());
        assert_eq!(agent_sans("msa", &[]), ["msa", "localhost", "127.0.0.1"]);
    }
}
