//! Packages that reach a box before an installer runs: downloads, and
//! uploads through the daemon's API. An upload is verified whole (the
//! signature and every payload) before it is queued, so the technician
//! who sent it hears at once what is wrong with it; the installer (a
//! systemd path unit watches the queue) takes it from there.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use edgesort_types::sync_folder;
use semver::Version;

use crate::keys::TrustedKeys;
use crate::package::VerifiedPackage;
use crate::slots::{OtaDir, State};
use crate::{OtaError, io_error};

/// A package larger than this is refused while it arrives.
pub const MAX_PACKAGE_BYTES: u64 = 4 << 30;

impl OtaDir {
    /// Where downloads and uploads land while they arrive.
    pub fn incoming(&self) -> PathBuf {
        self.root().join("incoming")
    }

    /// Verified packages waiting for the installer.
    pub fn queue(&self) -> PathBuf {
        self.incoming().join("queued")
    }

    /// A new file in [`OtaDir::incoming`] to receive a package into.
    pub fn receive(&self) -> Result<(PathBuf, File), OtaError> {
        let folder = self.incoming();
        std::fs::create_dir_all(&folder)
            .map_err(io_error(format!("creating {}", folder.display())))?;
        let file = tempfile::Builder::new()
            .prefix("upload-")
            .suffix(".partial")
            .tempfile_in(&folder)
            .map_err(io_error(format!("creating a file in {}", folder.display())))?;
        let (file, path) = file
            .keep()
            .map_err(|error| io_error(format!("keeping {}", folder.display()))(error.error))?;
        Ok((path, file))
    }

    /// Verifies the package received at `received` (signature, then every
    /// payload) and moves it into the queue; a package that fails is
    /// deleted and the error names why.
    pub fn enqueue(
        &self,
        received: &Path,
        keys: &TrustedKeys,
    ) -> Result<(PathBuf, VerifiedPackage), OtaError> {
        let checked =
            VerifiedPackage::open(received, keys, SystemTime::now()).and_then(|package| {
                package.check_payloads()?;
                Ok(package)
            });
        let package = match checked {
            Ok(package) => package,
            Err(error) => {
                let _ = std::fs::remove_file(received);
                return Err(error);
            }
        };
        let queue = self.queue();
        std::fs::create_dir_all(&queue)
            .map_err(io_error(format!("creating {}", queue.display())))?;
        File::open(received)
            .and_then(|file| file.sync_all())
            .map_err(io_error(format!("syncing {}", received.display())))?;
        let queued = queue.join(format!(
            "edgesort-{}-{}.esu",
            package.manifest.version,
            &package.manifest_sha256[..12]
        ));
        std::fs::rename(received, &queued)
            .map_err(io_error(format!("queueing {}", queued.display())))?;
        sync_folder(&queue).map_err(io_error(format!("syncing {}", queue.display())))?;
        Ok((queued.clone(), package.moved_to(queued)))
    }

    /// The queued packages, oldest first.
    pub fn queued(&self) -> Result<Vec<PathBuf>, OtaError> {
        let queue = self.queue();
        let entries = match std::fs::read_dir(&queue) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(OtaError::Io {
                    what: format!("listing {}", queue.display()),
                    source,
                });
            }
        };
        let mut packages = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(format!("listing {}", queue.display())))?;
            let modified = entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            packages.push((modified, entry.path()));
        }
        packages.sort();
        Ok(packages.into_iter().map(|(_, path)| path).collect())
    }

    /// Records in the history that a package was refused, so a refusal of
    /// a queued package nobody watched is seen in `edgesort ota status`.
    pub fn record_refusal(&self, version: Option<&Version>, reason: &str) -> Result<(), OtaError> {
        let lock = self.lock()?;
        let Some(mut state): Option<State> = self.state()? else {
            return Err(OtaError::NotInitialized);
        };
        state.record("refused", version.unwrap_or(&Version::new(0, 0, 0)), reason);
        self.write_state(&lock, &state)
    }
}
