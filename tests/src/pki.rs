//! The test PKI: certificate authorities made per run, and certificates they sign, written as
//! PEM files for the servers and clients that read them (kcp's shards, Keycloak).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate authority of this run.
pub type Ca = CertifiedIssuer<'static, KeyPair>;

/// A certificate and its key, as files.
#[derive(Debug)]
pub struct Creds {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// A new key pair.
pub fn key() -> KeyPair {
    KeyPair::generate().unwrap_or_else(|e| panic!("generating a key: {e}"))
}

/// A new self-signed CA named `name`.
pub fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    CertifiedIssuer::self_signed(params, key()).unwrap_or_else(|e| panic!("CA {name}: {e}"))
}

/// A serving certificate for 127.0.0.1 and localhost named `common_name`, signed by `issuer`
/// and written as `<stem>.crt` and `<stem>.key` into `dir`.
pub fn serving(dir: &Path, stem: &str, common_name: &str, issuer: &Ca) -> Creds {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap_or_else(|e| panic!("serving certificate parameters: {e}"));
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf(dir, stem, &params, issuer)
}

/// Signs `params` with `issuer`, and writes the certificate and its new key into `dir`.
pub fn leaf(dir: &Path, stem: &str, params: &CertificateParams, issuer: &Ca) -> Creds {
    let key = key();
    let cert = params
        .signed_by(&key, issuer)
        .unwrap_or_else(|e| panic!("signing {stem}: {e}"));
    Creds {
        cert: write(dir, &format!("{stem}.crt"), &cert.pem()),
        key: write(dir, &format!("{stem}.key"), &key.serialize_pem()),
    }
}
