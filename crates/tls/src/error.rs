use std::path::PathBuf;

use crate::Fingerprint;

/// Why the API's certificate could not be had, or a server not trusted.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate or key file could not be opened (a link, a FIFO,
    /// absent, not readable) or read.
    #[error("cannot read the API {what} {path}")]
    Read {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no PEM item of the kind needed, or a malformed one.
    #[error("cannot parse the API {what} {path} (PEM)")]
    Parse {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused the pair: a key it cannot use, or one that is not
    /// the certificate's.
    #[error("cannot serve the certificate {cert} with the key {key}")]
    UsePair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The self-signed certificate's key is gone while the certificate is
    /// still there: making a new key would change the fingerprint every
    /// client pins, so that is left to a person.
    #[error(
        "the API certificate {cert} is there but its key {key} is not: restore the key, or delete \
         {cert} to have a new self-signed pair made (clients then need its new fingerprint)"
    )]
    KeyMissing {
        /// The certificate file.
        cert: PathBuf,
        /// The missing key file.
        key: PathBuf,
    },
    /// Making the self-signed certificate (or its key) failed.
    #[error("cannot make the API's self-signed certificate {path}")]
    Make {
        /// The file it was for.
        path: PathBuf,
        /// What rcgen said.
        #[source]
        source: rcgen::Error,
    },
    /// Writing the self-signed certificate or its key failed.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Text that is no SHA-256 fingerprint.
    #[error(
        "{text:?} is not a SHA-256 fingerprint: 64 hex digits, colons allowed, as `edgesort status` \
         and the status page show it"
    )]
    ParseFingerprint {
        /// The text.
        text: String,
    },
    /// The server's certificate is not the pinned one.
    #[error(
        "the server's certificate has SHA-256 fingerprint {found}, not the pinned {expected}: \
         another server, or the daemon's certificate has changed"
    )]
    FingerprintMismatch {
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// The certificate's.
        found: Fingerprint,
    },
}
