//! The `[api]` section: the technician's local HTTP API and status page.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the daemon listens and where its access token lives.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address and port. Loopback by default: a box is reachable from the
    /// plant network only when its configuration says so.
    pub bind: SocketAddr,
    /// The bearer token every call must carry; created with a random value
    /// at first start when missing. Relative to `engine.data_dir` when
    /// relative, so it lives on the data partition and survives updates.
    pub token_file: PathBuf,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token_file: PathBuf::from("api-token"),
        }
    }
}
