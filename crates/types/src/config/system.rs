//! `/etc/edgesort/system.toml`: the settings root acts on.
//!
//! Root's tools (`edgesort ota install`, `install-queued`, `recover`,
//! `rollback`) run commands and write where these settings say, so they
//! come from a file only root can change, never from `edgesort.toml`, which
//! the daemon rewrites for `PUT /config`. [`SystemConfig::load`] refuses a
//! file that is not owned by root (or by the user running the tool, so that
//! a developer's own copy works) or that its group or others may write.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, OtaConfig, invalid};

/// Where the packaged box keeps it.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/edgesort/system.toml";

/// Root's settings: the data partition and the update machinery.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// The data partition. The update slots (`ota.dir`, when relative) live
    /// under it, and root reads the daemon's API token from it.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The update slots, keys, commands and health criteria.
    #[serde(default)]
    pub ota: OtaConfig,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/edgesort")
}

impl SystemConfig {
    /// Reads `path` after checking who may have written it, then parses,
    /// resolves and validates it. The file is opened without following a
    /// symbolic link and checked through the open descriptor, so it cannot
    /// be swapped between the check and the read.
    pub fn load(path: &Path) -> Result<SystemConfig, ConfigError> {
        let file = super::open_config_file(path)?;
        let meta = file.metadata().map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        check_trusted(path, meta.uid(), meta.mode(), effective_uid())?;
        let text = super::read_config_text(&file, path)?;
        SystemConfig::from_file_text(&text, path)
    }

    /// What [`SystemConfig::load`] makes of `text` as the contents of
    /// `path`, without the ownership check.
    pub fn from_file_text(text: &str, path: &Path) -> Result<SystemConfig, ConfigError> {
        let mut config: SystemConfig =
            toml::from_str(text).map_err(|source| ConfigError::Parse {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        config.validate()?;
        Ok(config)
    }

    /// The settings a box without a system file runs its daemon with: the
    /// defaults, on `data_dir`. Only the daemon, which acts on nothing as
    /// root, may fall back to them.
    pub fn defaults_on(data_dir: &Path) -> SystemConfig {
        let mut config = SystemConfig {
            data_dir: data_dir.to_owned(),
            ota: OtaConfig::default(),
        };
        config.resolve_paths(Path::new("/"));
        config
    }

    fn resolve_paths(&mut self, base: &Path) {
        if self.data_dir.is_relative() {
            self.data_dir = base.join(&self.data_dir);
        }
        if self.ota.dir.is_relative() {
            self.ota.dir = self.data_dir.join(&self.ota.dir);
        }
        if self.ota.trusted_keys.is_relative() {
            self.ota.trusted_keys = base.join(&self.ota.trusted_keys);
        }
    }

    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ota = &self.ota;
        if ota.restart_command.is_empty() {
            return Err(invalid(
                "ota.restart_command",
                "is empty: an update could never restart the line",
            ));
        }
        for (field, command) in [
            ("ota.restart_command", &ota.restart_command),
            ("ota.os_update_command", &ota.os_update_command),
        ] {
            if let Some(program) = command.first()
                && !Path::new(program).is_absolute()
                && program.contains('/')
            {
                return Err(invalid(
                    field,
                    format!(
                        "{program:?} is a relative path: name a program on PATH or give an absolute path"
                    ),
                ));
            }
        }
        if ota.health_deadline_s < 10 {
            return Err(invalid(
                "ota.health_deadline_s",
                format!(
                    "{} s is too short for a daemon to start",
                    ota.health_deadline_s
                ),
            ));
        }
        if ota.health_min_frames == 0 {
            return Err(invalid(
                "ota.health_min_frames",
                "must be at least 1: a slot that processed nothing proved nothing",
            ));
        }
        ota.validate()
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A settings file root acts on must be owned by root or by
/// the user reading it (`euid`), that neither its group nor others may write.
fn check_trusted(path: &Path, owner: u32, mode: u32, euid: u32) -> Result<(), ConfigError> {
    let refuse = |reason: String| ConfigError::Untrusted {
        path: path.to_owned(),
        reason,
    };
    if owner != 0 && owner != euid {
        return Err(refuse(format!(
            "is owned by uid {owner}, not by root: only root may decide what root runs"
        )));
    }
    if mode & 0o022 != 0 {
        return Err(refuse(format!(
            "has mode {:04o}: its group or others may write it (chmod go-w)",
            mode & 0o7777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const TEXT: &str = r#"
data_dir = "/var/lib/edgesort"
[ota]
trusted_keys = "keys.toml"
restart_command = ["systemctl", "restart", "edgesortd.service"]
"#;

    fn written(mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("system.toml");
        std::fs::write(&path, TEXT).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn loads_a_file_only_its_owner_may_write_and_resolves_its_paths() {
        let (dir, path) = written(0o644);
        let config = SystemConfig::load(&path).unwrap();
        assert_eq!(config.ota.dir, Path::new("/var/lib/edgesort/ota"));
        assert_eq!(config.ota.trusted_keys, dir.path().join("keys.toml"));
    }

    #[test]
    fn refuses_a_file_its_group_or_others_may_write() {
        for mode in [0o664, 0o646, 0o666] {
            let (_dir, path) = written(mode);
            let error = SystemConfig::load(&path).unwrap_err().to_string();
            assert!(
                error.contains("its group or others may write it"),
                "{error}"
            );
            assert!(error.contains("system.toml"), "{error}");
        }
    }

    #[test]
    fn root_refuses_a_file_another_user_owns() {
        let path = Path::new("/etc/edgesort/system.toml");
        // Root (euid 0) reading a file the daemon's user (uid 998) owns.
        let error = check_trusted(path, 998, 0o100644, 0)
            .unwrap_err()
            .to_string();
        assert!(error.contains("owned by uid 998, not by root"), "{error}");
        // Root's own file; a developer's own file read by the developer.
        check_trusted(path, 0, 0o100644, 0).unwrap();
        check_trusted(path, 1000, 0o100644, 1000).unwrap();
    }

    #[test]
    fn refuses_a_symbolic_link() {
        let (dir, path) = written(0o644);
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let error = SystemConfig::load(&link).unwrap_err();
        assert!(matches!(error, ConfigError::Open { .. }), "{error}");
    }

    #[test]
    fn refuses_an_empty_restart_command() {
        let error = SystemConfig::from_file_text(
            "[ota]\nrestart_command = []\n",
            Path::new("/etc/edgesort/system.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("ota.restart_command"), "{error}");
    }
}
