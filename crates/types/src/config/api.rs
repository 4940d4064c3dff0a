//! The `[api]` section: the technician's local HTTP API and status page,
//! who may call it, and the limits that keep it from starving the line.

use std::net::SocketAddr;
use std::path::PathBuf;

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
        }
    }
}

/// The most connections a box may be told to keep: well under the
/// daemon's file limit (systemd's default soft limit is 1024).
const MAX_API_CONNECTIONS: u32 = 512;

impl ApiConfig {
    /// Checks every field; the first problem found is returned.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
}
