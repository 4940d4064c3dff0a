//! The `[ota]` section of `system.toml`: where update slots live, who may
//! sign a package, and what a new slot must show before it is kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Over-the-air updates of the application (binaries, model, calibration
/// set, configuration defaults, board files).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtaConfig {
    /// The A/B slots and the update state; relative to the system file's `data_dir`, so
    /// they live on the data partition and outlast a rootfs update.
    pub dir: PathBuf,
    /// The public keys a package may be signed with, each with an expiry.
    /// The image bakes this file in; the signing keys never reach a box.
    pub trusted_keys: PathBuf,
    /// This box's board (`orin-nano`, `orin-nx`, `agx-orin`) where the
    /// device tree cannot tell, as on a test machine.
    pub board: Option<String>,
    /// Restarts the line onto the slot just switched to: provisioning first
    /// (it puts the engine prepared for the slot's model in service), then
    /// the daemon. Blocks until both have started, as `systemctl restart`
    /// of a oneshot and a notify unit does.
    pub restart_command: Vec<String>,
    /// A new slot that is not healthy this long after the switch is rolled
    /// back.
    pub health_deadline_s: u64,
    /// Frames the new slot must process before it is committed.
    pub health_min_frames: u64,
    /// Stage restarts the new slot may show and still be committed; more is
    /// a crash loop.
    pub health_max_restarts: u64,
    /// Hands an OS payload (JetPack, kernel, bootloader) to the image's
    /// updater, e.g. `["swupdate", "-i"]`; the payload's path is appended.
    /// Empty: packages with an OS payload are refused.
    pub os_update_command: Vec<String>,
    /// Space the data partition must keep free after staging, MiB.
    pub reserve_mib: u64,
}

impl Default for OtaConfig {
    fn default() -> Self {
        OtaConfig {
            dir: PathBuf::from("ota"),
            trusted_keys: PathBuf::from("/usr/share/edgesort/ota-keys.toml"),
            board: None,
            restart_command: [
                "systemctl",
                "restart",
                "edgesort-provision.service",
                "edgesortd.service",
            ]
            .map(String::from)
            .to_vec(),
            health_deadline_s: 180,
            health_min_frames: 300,
            health_max_restarts: 1,
            os_update_command: Vec::new(),
            reserve_mib: 256,
        }
    }
}
