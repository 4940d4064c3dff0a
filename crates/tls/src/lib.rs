//! HTTPS on the daemon's API, both ends of it.
//!
//! The daemon serves either the plant's certificate or, by default, one it
//! made itself at first start ([`ServerTls::load_or_create`], from the
//! files `[api.tls]` names). Nobody vouches for a self-signed certificate,
//! so clients trust it by its SHA-256 [`Fingerprint`], which the daemon
//! logs at start and reports in `/status`: [`pinned_agent`] is a ureq agent
//! that completes a handshake only with the certificate pinned
//! ([`PinnedVerifier`]).
//!
//! ```no_run
//! # fn main() -> Result<(), edgesort_tls::TlsError> {
//! let pin = edgesort_tls::Fingerprint::of_pem_file("/var/lib/edgesort/api-cert.pem".as_ref())?;
//! let agent = edgesort_tls::pinned_agent(ureq::config::Config::default(), pin);
//! let status = agent.get("https://127.0.0.1:8080/health").call();
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod client;
mod error;
mod fingerprint;
mod server;

pub use client::{PinnedTransport, PinnedVerifier, pinned_agent, pinned_client_config};
pub use error::TlsError;
pub use fingerprint::Fingerprint;
pub use server::ServerTls;
