//! Packages that reach a box before an installer runs: downloads, and
//! uploads through the daemon's API. An upload is verified whole (the
//! signature and every payload) before it is queued, so the technician
//! who sent it hears at once what is wrong with it; the installer (a
//! systemd path unit watches the queue) takes it from there.
//!
//! `incoming/` and its queue are the daemon's to write, and root's
//! installer reads from them: root reaches them through folders held open,
//! never through a link, opens only plain files (a FIFO is refused at
//! once, not waited on), creates only new files, and removes entries by
//! name, a link as a link.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use edgesort_types::{BeneathError, Folder, sync_folder};
use semver::Version;

use crate::folder::OtaDir;
use crate::install::Outcome;
use crate::keys::TrustedKeys;
use crate::package::VerifiedPackage;
use crate::state::State;
use crate::{OtaError, io_error};

/// A package larger than this is refused while it arrives.
pub const MAX_PACKAGE_BYTES: u64 = 4 << 30;

/// A queued entry [`OtaDir::install_queued`] took, and what became of it.
pub type Dequeued<E> = (PathBuf, Result<Outcome, E>);

/// The last component of a path [`OtaDir::queued`] or
/// [`OtaDir::receive_download`] gave out.
fn entry_name(path: &Path) -> &std::ffi::OsStr {
    path.file_name().unwrap_or(path.as_os_str())
}

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

    /// Verifies the package received at `received` (signature, judged by
    /// the box's trust as the state records it, then every payload) and
    /// moves it into the queue; a package that fails is deleted and the
    /// error names why. The installer verifies it again, by root's state.
    pub fn enqueue(
        &self,
        received: &Path,
        keys: &TrustedKeys,
    ) -> Result<(PathBuf, VerifiedPackage), OtaError> {
        let checked = self
            .trust(SystemTime::now())
            .and_then(|trust| VerifiedPackage::open(received, keys, &trust))
            .and_then(|package| {
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

    /// Everything in the queue, oldest first, whatever it is: a link or a
    /// FIFO is listed too, and refused by [`OtaDir::open_queued`].
    pub fn queued(&self) -> Result<Vec<PathBuf>, OtaError> {
        let Some(queue) = self.queue_folder()? else {
            return Ok(Vec::new());
        };
        let mut entries = queue.entries()?;
        entries.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
        Ok(entries
            .into_iter()
            .map(|entry| queue.join(entry.name))
            .collect())
    }

    /// Opens a queued package that [`OtaDir::queued`] listed, for reading:
    /// inside the queue folder, never through a link, and only a plain
    /// file; a link, FIFO, socket or folder is refused by name, at once.
    pub fn open_queued(&self, package: &Path) -> Result<File, OtaError> {
        let queue = self
            .queue_folder()?
            .ok_or_else(|| OtaError::Damaged(format!("{} is gone", self.queue().display())))?;
        Ok(queue.open_regular(entry_name(package))?)
    }

    /// Takes a package out of the queue, installed or refused: the entry
    /// itself goes (a link as a link, an empty folder too), never what it
    /// points at.
    pub fn unqueue(&self, package: &Path) -> Result<(), OtaError> {
        if let Some(queue) = self.queue_folder()? {
            queue.remove(entry_name(package))?;
            queue
                .sync()
                .map_err(io_error(format!("syncing {}", queue.path().display())))?;
        }
        Ok(())
    }

    /// Installs the queue oldest first, as `edgesort ota install-queued`
    /// does: each entry is opened with [`OtaDir::open_queued`] and handed to
    /// `install`. An entry that is not a plain file (a link, FIFO, socket,
    /// folder) is refused at once, and the queue goes on. A refusal is
    /// recorded in the history, and every entry leaves the queue. Returns
    /// each entry with what became of it.
    pub fn install_queued<E: From<OtaError> + std::fmt::Display>(
        &self,
        keys: &TrustedKeys,
        mut install: impl FnMut(File, &Path) -> Result<Outcome, E>,
    ) -> Result<Vec<Dequeued<E>>, OtaError> {
        let mut done = Vec::new();
        for package in self.queued()? {
            let (version, result) = match self.open_queued(&package) {
                Ok(file) => {
                    let trust = self.trust(SystemTime::now())?;
                    let version = file
                        .try_clone()
                        .ok()
                        .and_then(|file| {
                            VerifiedPackage::from_file(file, &package, keys, &trust).ok()
                        })
                        .map(|verified| verified.manifest.version);
                    (version, install(file, &package))
                }
                Err(error) => (None, Err(E::from(error))),
            };
            if let Err(error) = &result {
                self.record_refusal(version.as_ref(), &format!("{error:#}"))?;
            }
            let result = match (self.unqueue(&package), result) {
                (Err(error), Ok(_)) => Err(E::from(error)),
                (Err(error), Err(refused)) => {
                    tracing::error!(%error, "a refused package stays in the queue");
                    Err(refused)
                }
                (Ok(()), result) => result,
            };
            done.push((package, result));
        }
        Ok(done)
    }

    /// Receives a download into `incoming/<name>`: `body` goes into
    /// `incoming/<name>.partial`, created new (a name already taken, by a
    /// link or by a leftover, is refused and left as it is), synced, and
    /// renamed once whole. A body over [`MAX_PACKAGE_BYTES`] is refused.
    /// Returns the package's path and the package opened for reading.
    pub fn receive_download(
        &self,
        name: &str,
        body: &mut dyn Read,
    ) -> Result<(PathBuf, File), OtaError> {
        let incoming = self.folder()?.create_folder("incoming", 0o755)?;
        let partial = format!("{name}.partial");
        let mut file = incoming.create_new(&partial, 0o600)?;
        let written = std::io::copy(&mut body.take(MAX_PACKAGE_BYTES + 1), &mut file)
            .and_then(|copied| file.sync_all().map(|()| copied))
            .map_err(io_error(format!("downloading into {}", incoming.join(&partial).display())))
            .and_then(|copied| {
                if copied > MAX_PACKAGE_BYTES {
                    return Err(OtaError::Refused(format!(
                        "the download is larger than the {MAX_PACKAGE_BYTES} bytes a package may have"
                    )));
                }
                incoming.rename(&partial, &incoming, name)?;
                Ok(())
            });
        if let Err(error) = written {
            // Ours: made new above, so removing it removes nobody else's.
            let _ = incoming.remove(&partial);
            return Err(error);
        }
        incoming
            .sync()
            .map_err(io_error(format!("syncing {}", incoming.path().display())))?;
        Ok((incoming.join(name), incoming.open_regular(name)?))
    }

    /// Removes a download that [`OtaDir::receive_download`] kept, by name
    /// inside `incoming/`, never through a link.
    pub fn discard_download(&self, package: &Path) -> Result<(), OtaError> {
        let incoming = self.folder()?.folder("incoming")?;
        incoming.remove(entry_name(package))?;
        Ok(())
    }

    /// `incoming/queued/`, when it is there; reached without following a
    /// link at any step.
    fn queue_folder(&self) -> Result<Option<Folder>, OtaError> {
        let absent = |error: BeneathError| -> Result<Option<Folder>, OtaError> {
            if error.is_not_found() {
                Ok(None)
            } else {
                Err(error.into())
            }
        };
        let root = match self.pinned_folder() {
            Some(root) => root.try_clone(),
            None => Folder::open(self.root()),
        };
        let incoming = match root.and_then(|root| root.folder("incoming")) {
            Ok(folder) => folder,
            Err(error) => return absent(error),
        };
        match incoming.folder("queued") {
            Ok(folder) => Ok(Some(folder)),
            Err(error) => absent(error),
        }
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
