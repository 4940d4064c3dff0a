//! The `[ota]` section of `system.toml`: where update slots live, who may
//! sign a package, and what a new slot must show before it is kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

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

/// The most `reserve_mib` may ask to keep free, in bytes: 1 TiB, more than
/// any box's data partition holds.
const MAX_RESERVE_BYTES: u64 = 1 << 40;

impl OtaConfig {
    /// `reserve_mib` in bytes; `None` where that overflows a `u64`, which
    /// [`OtaConfig::validate`] refuses.
    pub fn reserve_bytes(&self) -> Option<u64> {
        self.reserve_mib.checked_mul(1 << 20)
    }

    /// The section's sizes: each must fit in bytes and stay within reason.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self
            .reserve_bytes()
            .is_none_or(|bytes| bytes > MAX_RESERVE_BYTES)
        {
            return Err(invalid(
                "ota.reserve_mib",
                format!(
                    "{} MiB is more than the {} MiB (1 TiB) a data partition could keep free",
                    self.reserve_mib,
                    MAX_RESERVE_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::SystemConfig;

    fn with_reserve_mib(reserve_mib: u64) -> Result<(), String> {
        let text = format!("[ota]\nreserve_mib = {reserve_mib}\n");
        SystemConfig::from_file_text(&text, Path::new("/etc/edgesort/system.toml"))
            .map(drop)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn a_reserve_near_u64_max_is_refused_naming_the_field() {
        // `reserve_mib << 20` of these wraps to 0 or to a small number:
        // a box would stage with no space kept free.
        for reserve_mib in [u64::MAX >> 1, u64::MAX >> 20, (u64::MAX >> 20) + 1, 1 << 44] {
            let error = with_reserve_mib(reserve_mib).expect_err("must be refused");
            assert!(error.contains("ota.reserve_mib"), "{error}");
            assert!(error.contains(&reserve_mib.to_string()), "{error}");
        }
    }

    #[test]
    fn a_reserve_up_to_one_tib_is_accepted_and_counted_in_bytes() {
        with_reserve_mib(1 << 20).expect("1 TiB is accepted");
        assert!(with_reserve_mib((1 << 20) + 1).is_err());
        let mut ota = super::OtaConfig {
            reserve_mib: 256,
            ..Default::default()
        };
        assert_eq!(ota.reserve_bytes(), Some(256 << 20));
        ota.reserve_mib = u64::MAX;
        assert_eq!(ota.reserve_bytes(), None);
    }
}
