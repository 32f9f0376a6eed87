//! The dev CA: a throwaway certificate authority made with rcgen, and one server
//! certificate per dev domain (`mail.<domain>`, the domain's IP, `localhost`).
//!
//! Layout under the directory given (e.g. `var/tls`): `ca.pem`, `ca-key.pem`, and
//! `<domain>.pem` / `<domain>-key.pem` for each domain. Existing files are kept, so
//! a client that trusted `ca.pem` keeps trusting the stack across restarts.

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

fn write(path: &Path, contents: &str) -> Result<(), DevPkiError> {
    std::fs::write(path, contents).map_err(|source| DevPkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<String, DevPkiError> {
    std::fs::read_to_string(path).map_err(|source| DevPkiError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Make (or keep) the dev CA in `dir` and a server certificate for each `(domain, ip)`.
pub fn ensure(dir: &Path, domains: &[(&str, IpAddr)]) -> Result<Vec<ServerCert>, DevPkiError> {
    std::fs::create_dir_all(dir).map_err(|source| DevPkiError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let ca_cert = dir.join("ca.pem");
    let ca_key = dir.join("ca-key.pem");
    let key = if ca_cert.exists() && ca_key.exists() {
        KeyPair::from_pem(&read(&ca_key)?)?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params().self_signed(&key)?;
        write(&ca_key, &key.serialize_pem())?;
        write(&ca_cert, &cert.pem())?;
        key
    };
    // Re-creating the issuer from the same name and key signs certificates that
    // chain to the `ca.pem` already on disk.
    let issuer = Issuer::new(ca_params(), key);
    let mut out = Vec::new();
    for (domain, ip) in domains {
        let cert = dir.join(format!("{domain}.pem"));
        let key_path = dir.join(format!("{domain}-key.pem"));
        if !(cert.exists() && key_path.exists()) {
            let host = format!("mail.{domain}");
            let mut params = CertificateParams::new(vec![host.clone(), "localhost".to_owned()])?;
            params.subject_alt_names.push(SanType::IpAddress(*ip));
            params
                .subject_alt_names
                .push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
            params.distinguished_name.push(DnType::CommonName, host);
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let leaf_key = KeyPair::generate()?;
            let leaf = params.signed_by(&leaf_key, &issuer)?;
            write(&key_path, &leaf_key.serialize_pem())?;
            write(&cert, &format!("{}{}", leaf.pem(), read(&ca_cert)?))?;
        }
        out.push(ServerCert {
            cert,
            key: key_path,
        });
    }
    Ok(out)
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
}
