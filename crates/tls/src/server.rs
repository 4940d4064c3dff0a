use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use edgesort_types::config::ApiCertificate;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::fingerprint::read_pem;
use crate::{Fingerprint, TlsError};

/// Names the self-signed certificate is good for. Only loopback ones:
/// a box's address on the plant network is not known when it is made and
/// may change, and clients trust the certificate by its fingerprint, not
/// by a name.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The API's certificate, loaded and ready to serve.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    fingerprint: Fingerprint,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServerTls")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The certificate `files` names, for TLS 1.2 and 1.3 with ring.
    ///
    /// A plant certificate is only read. The self-signed one is made at
    /// first start, when its certificate file is absent: its key first
    /// (readable by the daemon's user only), then the certificate, each
    /// written whole or not at all, so that a power cut between the two
    /// leaves a key the next start makes the certificate for. A
    /// certificate whose key is gone is refused ([`TlsError::KeyMissing`]).
    pub fn load_or_create(files: &ApiCertificate) -> Result<ServerTls, TlsError> {
        if let ApiCertificate::SelfSigned { cert, key } = files {
            match (is_there(cert)?, is_there(key)?) {
                (true, true) => {}
                (true, false) => {
                    return Err(TlsError::KeyMissing {
                        cert: cert.clone(),
                        key: key.clone(),
                    });
                }
                (false, key_there) => make_self_signed(cert, key, key_there)?,
            }
        }
        ServerTls::load(files.cert(), files.key())
    }

    /// The certificate chain in `cert` with the private key in `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let parse_error = |what, path: &Path| {
            let path = path.to_owned();
            move |source| TlsError::Parse { what, path, source }
        };
        let chain_pem = read_pem(cert, "certificate")?;
        let chain = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(parse_error("certificate", cert))?;
        let Some(own) = chain.first() else {
            return Err(parse_error("certificate", cert)(
                rustls_pki_types::pem::Error::NoItemsFound,
            ));
        };
        let fingerprint = Fingerprint::of(own);
        let key_pem = read_pem(key, "private key")?;
        let key_der =
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(parse_error("private key", key))?;
        let pair_error = |source| TlsError::UsePair {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(pair_error)?
            .with_no_client_auth()
            // Checks too that the key is the certificate's.
            .with_single_cert(chain, key_der)
            .map_err(pair_error)?;
        // The API speaks HTTP/1.1 only; saying so spares a browser trying h2.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            fingerprint,
        })
    }

    /// The server's rustls configuration.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// The SHA-256 fingerprint of the certificate served.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

/// Whether anything (a link included) has the name `path`.
fn is_there(path: &Path) -> Result<bool, TlsError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(TlsError::Read {
            what: "certificate",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes a self-signed certificate to `cert`, for the key in `key`,
/// made first unless `key_there`.
fn make_self_signed(cert: &Path, key: &Path, key_there: bool) -> Result<(), TlsError> {
    let make_error = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Make { path, source }
    };
    let pair = if key_there {
        let pem = read_pem(key, "private key")?;
        let pem = String::from_utf8_lossy(&pem);
        rcgen::KeyPair::from_pem(&pem).map_err(make_error(key))?
    } else {
        // ECDSA P-256: the cheapest handshake for the box's CPU.
        let pair = rcgen::KeyPair::generate().map_err(make_error(key))?;
        write_new(key, pair.serialize_pem().as_bytes(), 0o600)?;
        tracing::info!(path = %key.display(), "made the API's private key");
        pair
    };
    let names = SELF_SIGNED_NAMES.map(str::to_owned).to_vec();
    let mut params = rcgen::CertificateParams::new(names).map_err(make_error(cert))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "edgesort API (self-signed)");
    // rcgen's default validity (1975 to 4096): a box whose clock is wrong
    // after a power cut still serves a certificate that is valid, and
    // clients trust it by its pinned fingerprint, not by dates.
    let made = params.self_signed(&pair).map_err(make_error(cert))?;
    write_new(cert, made.pem().as_bytes(), 0o644)?;
    tracing::info!(path = %cert.display(), "made the API's self-signed certificate");
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all, with `mode`: the
/// certificate readable by all (technicians on the box pin it from
/// there), the key by the daemon's user only.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let write_error = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(write_error)?;
    }
    // The temporary file is made 0600, so the key is never readable by
    // others, not even for a moment.
    edgesort_types::write_atomically(path, bytes).map_err(write_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(write_error)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn self_signed(dir: &Path) -> ApiCertificate {
        ApiCertificate::SelfSigned {
            cert: dir.join("data/api-cert.pem"),
            key: dir.join("data/api-key.pem"),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_first_start_makes_a_pair_later_ones_serve_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let files = self_signed(dir.path());
        let first = ServerTls::load_or_create(&files).unwrap();
        assert_eq!(mode(files.key()), 0o600);
        assert_eq!(mode(files.cert()), 0o644);
        let again = ServerTls::load_or_create(&files).unwrap();
        assert_eq!(again.fingerprint(), first.fingerprint());
        assert_eq!(
            Fingerprint::of_pem_file(files.cert()).unwrap(),
            first.fingerprint()
        );
        let names: Vec<_> = std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "no temporary left: {names:?}");
    }

    #[test]
    fn a_key_left_alone_by_a_power_cut_gets_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let files = self_signed(dir.path());
        let first = ServerTls::load_or_create(&files).unwrap();
        let key = std::fs::read(files.key()).unwrap();
        std::fs::remove_file(files.cert()).unwrap();
        let remade = ServerTls::load_or_create(&files).unwrap();
        assert_eq!(std::fs::read(files.key()).unwrap(), key, "the key kept");
        // A new certificate over the same key: a new fingerprint.
        assert_ne!(remade.fingerprint(), first.fingerprint());
    }

    #[test]
    fn a_certificate_without_its_key_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let files = self_signed(dir.path());
        ServerTls::load_or_create(&files).unwrap();
        let cert = std::fs::read(files.cert()).unwrap();
        std::fs::remove_file(files.key()).unwrap();
        let error = ServerTls::load_or_create(&files).unwrap_err().to_string();
        assert!(
            error.contains("api-cert.pem") && error.contains("api-key.pem is not"),
            "{error}"
        );
        assert_eq!(std::fs::read(files.cert()).unwrap(), cert);
        assert!(!files.key().exists());
    }

    #[test]
    fn a_plant_certificate_is_never_written_and_its_faults_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let made = self_signed(dir.path());
        ServerTls::load_or_create(&made).unwrap();
        let other = self_signed(&dir.path().join("other"));
        ServerTls::load_or_create(&other).unwrap();

        let plant = |cert: &Path, key: &Path| ApiCertificate::Plant {
            cert: cert.to_owned(),
            key: key.to_owned(),
        };
        let absent = dir.path().join("plant/cert.pem");
        let error = format!(
            "{:#}",
            ServerTls::load_or_create(&plant(&absent, made.key())).unwrap_err()
        );
        assert!(error.contains("plant/cert.pem"), "{error}");
        assert!(!absent.exists(), "a plant certificate is never made");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let error = ServerTls::load_or_create(&plant(&garbage, made.key()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("garbage.pem") && error.contains("certificate"),
            "{error}"
        );
        let error = ServerTls::load_or_create(&plant(made.cert(), &garbage))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("garbage.pem") && error.contains("private key"),
            "{error}"
        );

        let error = ServerTls::load_or_create(&plant(made.cert(), other.key()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&made.cert().display().to_string())
                && error.contains(&other.key().display().to_string()),
            "{error}"
        );

        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(made.cert(), &link).unwrap();
        let error = ServerTls::load_or_create(&plant(&link, made.key()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("link.pem"), "{error}");
    }
}
