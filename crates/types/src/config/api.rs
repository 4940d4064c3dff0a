//! The `[api]` section: the technician's local HTTP API and status page,
//! who may call it, and the limits that keep it from starving the line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// Where the daemon listens, where its access tokens live, and how much
/// the API may take from the box.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address and port. Loopback by default: a box is reachable from the
    /// plant network only when its configuration says so.
    pub bind: SocketAddr,
    /// The admin token: every call may carry it, and every call that
    /// changes something (configuration, uploads, test pulses, e-stop
    /// resets) must. Created with a random value at first start when
    /// missing. Relative to `engine.data_dir` when relative, so it lives on
    /// the data partition and survives updates.
    pub token_file: PathBuf,
    /// The read-only token, for dashboards: it may read (`GET`) and
    /// nothing else. Made and kept like `token_file`.
    pub read_token_file: PathBuf,
    /// Whether `POST /ejectors/{lane}/test` may fire a valve. Off by
    /// default: a pulse fired from the network moves machinery nobody at
    /// the line asked to move.
    pub allow_test_pulse: bool,
    /// A connection that has not sent a whole request head (its request
    /// line and headers) this long after it opened, or after its last
    /// answer, is closed. Seconds.
    pub header_timeout_s: u64,
    /// A request (other than an upload) not answered this long after its
    /// head arrived is answered 408. Seconds.
    pub request_timeout_s: u64,
    /// An update package upload must have arrived whole this long after
    /// it started, or it is cut off and its partial file deleted. Seconds.
    pub upload_timeout_s: u64,
    /// Connections open at once, at most; more are closed as they arrive.
    /// Each holds a file descriptor, which the camera and the store need
    /// too.
    pub max_connections: u32,
    /// Connections open at once from one client address, at most; more are
    /// closed as they arrive. IPv6 clients count by their /64.
    pub max_connections_per_address: u32,
    /// Calls with a missing or wrong token one client address may make in
    /// a minute; the calls after them, right token or not, get 429 until
    /// the oldest failure is a minute old.
    pub auth_failures_per_minute: u32,
    /// `[api.tls]`: HTTPS, and with which certificate.
    pub tls: ApiTlsConfig,
}

/// `[api.tls]`: whether the API speaks HTTPS, and with whose certificate.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiTlsConfig {
    /// HTTPS. On by default; off (plain HTTP) only where `api.bind` is a
    /// loopback address, because plain HTTP would carry the token across
    /// the plant network for anyone on it to read.
    pub enabled: bool,
    /// The plant's certificate (PEM, the server's own first, then its
    /// chain), with `key_file`. Read, never written. Relative to
    /// `engine.data_dir` when relative, like `token_file`. Left out (both),
    /// the box serves its own self-signed certificate
    /// ([`ApiCertificate::SelfSigned`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The plant certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

impl Default for ApiTlsConfig {
    fn default() -> Self {
        ApiTlsConfig {
            enabled: true,
            cert_file: None,
            key_file: None,
        }
    }
}

/// The self-signed certificate's file in `engine.data_dir`.
pub const SELF_SIGNED_CERT_FILE: &str = "api-cert.pem";
/// The self-signed certificate's private key in `engine.data_dir`.
pub const SELF_SIGNED_KEY_FILE: &str = "api-key.pem";

/// The certificate the API serves, and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiCertificate {
    /// The box's own: made at first start where absent, the key readable
    /// by the daemon's user only, and kept on the data partition so that
    /// its fingerprint (what clients pin) survives updates.
    SelfSigned {
        /// [`SELF_SIGNED_CERT_FILE`] in `engine.data_dir`.
        cert: PathBuf,
        /// [`SELF_SIGNED_KEY_FILE`] in `engine.data_dir`.
        key: PathBuf,
    },
    /// The plant's, named by `api.tls.cert_file` and `key_file`: the daemon
    /// reads them and never writes them.
    Plant {
        /// `api.tls.cert_file`.
        cert: PathBuf,
        /// `api.tls.key_file`.
        key: PathBuf,
    },
}

impl ApiCertificate {
    /// The certificate file.
    pub fn cert(&self) -> &Path {
        match self {
            ApiCertificate::SelfSigned { cert, .. } | ApiCertificate::Plant { cert, .. } => cert,
        }
    }

    /// The private key file.
    pub fn key(&self) -> &Path {
        match self {
            ApiCertificate::SelfSigned { key, .. } | ApiCertificate::Plant { key, .. } => key,
        }
    }
}

impl ApiTlsConfig {
    /// The files served from, on the data partition `data_dir`: the
    /// plant's where both `cert_file` and `key_file` are set (validation
    /// refuses one without the other), the self-signed pair otherwise.
    pub fn certificate(&self, data_dir: &Path) -> ApiCertificate {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => ApiCertificate::Plant {
                cert: data_dir.join(cert),
                key: data_dir.join(key),
            },
            _ => ApiCertificate::SelfSigned {
                cert: data_dir.join(SELF_SIGNED_CERT_FILE),
                key: data_dir.join(SELF_SIGNED_KEY_FILE),
            },
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token_file: PathBuf::from("api-token"),
            read_token_file: PathBuf::from("api-read-token"),
            allow_test_pulse: false,
            header_timeout_s: 10,
            request_timeout_s: 30,
            upload_timeout_s: 1800,
            max_connections: 128,
            max_connections_per_address: 16,
            auth_failures_per_minute: 10,
            tls: ApiTlsConfig::default(),
        }
    }
}

/// The most connections a box may be told to keep: well under the
/// daemon's file limit (systemd's default soft limit is 1024).
const MAX_API_CONNECTIONS: u32 = 512;

impl ApiConfig {
    /// Whether the API may listen on `bind` (`api.bind`, or the daemon's
    /// `--bind` in its place): plain HTTP only on a loopback address, where
    /// nothing off the box can read the token.
    pub fn check_bind(&self, bind: SocketAddr) -> Result<(), ConfigError> {
        if !self.tls.enabled && !bind.ip().to_canonical().is_loopback() {
            return Err(invalid(
                "api.tls.enabled",
                format!(
                    "is false, but api.bind {bind} is not a loopback address: plain HTTP would carry \
                     the API token across the network in clear; turn TLS on, or bind 127.0.0.1"
                ),
            ));
        }
        Ok(())
    }

    /// Checks every field; the first problem found is returned.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.check_bind(self.bind)?;
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => {
                return Err(invalid(
                    "api.tls.key_file",
                    "is missing: api.tls.cert_file names the plant's certificate, which needs its key",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "api.tls.cert_file",
                    "is missing: api.tls.key_file names a key, which needs its certificate",
                ));
            }
            _ => {}
        }
        if self.token_file == self.read_token_file {
            return Err(invalid(
                "api.read_token_file",
                "is api.token_file: the read-only token must be a different one",
            ));
        }
        if !(1..=300).contains(&self.header_timeout_s) {
            return Err(invalid(
                "api.header_timeout_s",
                format!("{} s is outside 1..=300", self.header_timeout_s),
            ));
        }
        if !(1..=3600).contains(&self.request_timeout_s) {
            return Err(invalid(
                "api.request_timeout_s",
                format!("{} s is outside 1..=3600", self.request_timeout_s),
            ));
        }
        if !(self.request_timeout_s..=86_400).contains(&self.upload_timeout_s) {
            return Err(invalid(
                "api.upload_timeout_s",
                format!(
                    "{} s is outside api.request_timeout_s ({} s)..=86400",
                    self.upload_timeout_s, self.request_timeout_s
                ),
            ));
        }
        if !(1..=MAX_API_CONNECTIONS).contains(&self.max_connections) {
            return Err(invalid(
                "api.max_connections",
                format!(
                    "{} is outside 1..={MAX_API_CONNECTIONS}",
                    self.max_connections
                ),
            ));
        }
        if !(1..=self.max_connections).contains(&self.max_connections_per_address) {
            return Err(invalid(
                "api.max_connections_per_address",
                format!(
                    "{} is outside 1..=api.max_connections ({})",
                    self.max_connections_per_address, self.max_connections
                ),
            ));
        }
        if !(1..=1000).contains(&self.auth_failures_per_minute) {
            return Err(invalid(
                "api.auth_failures_per_minute",
                format!("{} is outside 1..=1000", self.auth_failures_per_minute),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(change: impl FnOnce(&mut ApiConfig)) -> String {
        let mut api = ApiConfig::default();
        change(&mut api);
        api.validate().unwrap_err().to_string()
    }

    #[test]
    fn the_defaults_are_valid() {
        ApiConfig::default().validate().unwrap();
    }

    #[test]
    fn limits_out_of_range_are_refused_by_field() {
        type Change = fn(&mut ApiConfig);
        let cases: [(&str, Change); 8] = [
            ("api.header_timeout_s", |api| api.header_timeout_s = 0),
            ("api.request_timeout_s", |api| api.request_timeout_s = 0),
            ("api.upload_timeout_s", |api| api.upload_timeout_s = 5),
            ("api.max_connections", |api| api.max_connections = 0),
            ("api.max_connections", |api| api.max_connections = 100_000),
            ("api.max_connections_per_address", |api| {
                api.max_connections_per_address = 129
            }),
            ("api.auth_failures_per_minute", |api| {
                api.auth_failures_per_minute = 0
            }),
            ("api.read_token_file", |api| {
                api.read_token_file = api.token_file.clone()
            }),
        ];
        for (field, change) in cases {
            let error = refused(change);
            assert!(error.contains(field), "{field}: {error}");
        }
    }

    /// Issue 23: plain HTTP only where nothing off the box can listen in.
    #[test]
    fn plain_http_is_refused_on_any_but_a_loopback_bind() {
        let plain = |bind: &str| {
            let mut api = ApiConfig::default();
            api.tls.enabled = false;
            api.bind = bind.parse().unwrap();
            api.validate()
        };
        for bind in [
            "127.0.0.1:8080",
            "127.3.0.1:80",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:8080",
        ] {
            plain(bind).unwrap_or_else(|error| panic!("{bind}: {error}"));
        }
        for bind in [
            "0.0.0.0:8080",
            "10.0.0.7:8080",
            "[::]:8080",
            "[fe80::1]:8080",
        ] {
            let error = plain(bind).unwrap_err().to_string();
            assert!(
                error.contains("api.tls.enabled")
                    && error.contains("api.bind")
                    && error.contains(bind),
                "{error}"
            );
        }
        let open = ApiConfig {
            bind: "0.0.0.0:8080".parse().unwrap(),
            ..ApiConfig::default()
        };
        open.validate().unwrap();
    }

    #[test]
    fn a_plant_certificate_needs_both_files_and_is_read_where_it_is_named() {
        let data = Path::new("/var/lib/edgesort");
        let mut tls = ApiTlsConfig::default();
        assert_eq!(
            tls.certificate(data),
            ApiCertificate::SelfSigned {
                cert: data.join("api-cert.pem"),
                key: data.join("api-key.pem"),
            }
        );
        tls.cert_file = Some("plant.pem".into());
        tls.key_file = Some("/etc/edgesort/plant.key".into());
        assert_eq!(
            tls.certificate(data),
            ApiCertificate::Plant {
                cert: data.join("plant.pem"),
                key: "/etc/edgesort/plant.key".into(),
            }
        );
        let error = refused(|api| api.tls.cert_file = Some("plant.pem".into()));
        assert!(error.contains("api.tls.key_file"), "{error}");
        let error = refused(|api| api.tls.key_file = Some("plant.key".into()));
        assert!(error.contains("api.tls.cert_file"), "{error}");
    }
}
