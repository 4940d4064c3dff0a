//! The update folder itself, as root's tools and the daemon reach it.
//!
//! The data partition above it is the daemon's user's, so that user can
//! rename the folder away and put its own in its place. Root's tools
//! therefore open it once with [`OtaDir::open_as_owner`], check that it is
//! theirs alone, and keep the descriptor: every later call goes through
//! `/proc/<pid>/fd/<n>`, which the kernel resolves to the folder that was
//! opened, while messages keep naming the configured path. The daemon's
//! side, which only reads and writes `incoming/`, uses
//! [`OtaDir::unchecked`].

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgesort_types::{BeneathError, Folder};

use crate::{OtaError, io_error};

/// The update folder on the data partition: held open and checked for
/// root's tools ([`OtaDir::open_as_owner`]), reached by its path for the
/// daemon's side ([`OtaDir::unchecked`]).
#[derive(Clone, Debug)]
pub struct OtaDir {
    /// The folder's path: what messages name, and what the daemon and a
    /// configuration's `.../current/...` reach it by.
    root: PathBuf,
    /// What this process's calls go through: `root` itself, or for a folder
    /// held open, `/proc/<pid>/fd/<n>`, which the kernel resolves to the
    /// folder that was opened whatever has since become of its name.
    work: PathBuf,
    /// The folder held open, for one opened with [`OtaDir::open_as_owner`].
    pinned: Option<Arc<Pinned>>,
}

/// A folder held open and who must own what is in it.
#[derive(Debug)]
struct Pinned {
    folder: Folder,
    owner: u32,
}

impl OtaDir {
    /// The folder at `root`, reached by its path at every call and made on
    /// first use; nothing about it is checked. For the daemon's side, which
    /// reads the state and slots and writes only `incoming/`; root's tools
    /// use [`OtaDir::open_as_owner`].
    pub fn unchecked(root: &Path) -> OtaDir {
        OtaDir {
            root: root.to_owned(),
            work: root.to_owned(),
            pinned: None,
        }
    }

    /// The folder at `path` as root's tools must use it: made 0755 if
    /// absent (relative to its parent, whose path is trusted as
    /// configured), opened without following a link, refused unless it is
    /// owned by the effective user (root on a box) and neither its group
    /// nor others may write it, and then held open: every later call works
    /// in the folder that was checked, whatever happens to its name.
    pub fn open_as_owner(path: &Path) -> Result<OtaDir, OtaError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(OtaError::Damaged(format!(
                "{} does not name a folder inside another",
                path.display()
            )));
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        std::fs::create_dir_all(parent)
            .map_err(io_error(format!("creating {}", parent.display())))?;
        let folder = Folder::open_following(parent)?.create_folder(name, 0o755)?;
        let metadata = folder.metadata()?;
        let owner = effective_uid();
        refuse_unless_owned(path, &metadata, owner)?;
        let work = PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            folder.as_fd().as_raw_fd()
        ));
        // Without /proc the path above would not reach the folder; say so
        // rather than work somewhere else.
        let reached = std::fs::metadata(&work).map_err(io_error(format!(
            "reaching {} through {} (is /proc mounted?)",
            path.display(),
            work.display()
        )))?;
        if (reached.dev(), reached.ino()) != (metadata.dev(), metadata.ino()) {
            return Err(OtaError::Damaged(format!(
                "{} does not lead to the folder {} that was opened",
                work.display(),
                path.display()
            )));
        }
        Ok(OtaDir {
            root: path.to_owned(),
            work,
            pinned: Some(Arc::new(Pinned { folder, owner })),
        })
    }

    /// The folder's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `text` with every path that goes through the folder held open named
    /// by the folder's own path, as messages must name it.
    pub(crate) fn shown(&self, text: &str) -> String {
        if self.pinned.is_none() {
            return text.to_owned();
        }
        let work = self.work.to_string_lossy();
        let root = self.root.to_string_lossy();
        // With its slash, `/proc/1/fd/5/` is never part of `/proc/1/fd/51/`.
        let text = text.replace(&format!("{work}/"), &format!("{root}/"));
        if text == work {
            root.into_owned()
        } else {
            text
        }
    }

    /// `error` with its paths named as [`OtaDir::shown`] names them.
    /// Errors are made deep in helpers that take plain paths (`std::fs`,
    /// the package's extraction, the engine builder), so the folder's
    /// public calls rename the one prefix they can contain rather than
    /// thread two names through each.
    pub(crate) fn shown_error(&self, error: OtaError) -> OtaError {
        if self.pinned.is_none() {
            return error;
        }
        let show = |text: String| self.shown(&text);
        match error {
            OtaError::Io { what, source } => {
                let text = source.to_string();
                let source = if text.contains(&*self.work.to_string_lossy()) {
                    std::io::Error::new(source.kind(), self.shown(&text))
                } else {
                    source
                };
                OtaError::Io {
                    what: show(what),
                    source,
                }
            }
            OtaError::BadManifest(text) => OtaError::BadManifest(show(text)),
            OtaError::UnexpectedEntry(text) => OtaError::UnexpectedEntry(show(text)),
            OtaError::Truncated(text) => OtaError::Truncated(show(text)),
            OtaError::Refused(text) => OtaError::Refused(show(text)),
            OtaError::Engine(text) => OtaError::Engine(show(text)),
            OtaError::Damaged(text) => OtaError::Damaged(show(text)),
            other => other,
        }
    }

    /// Runs `work`, naming the folder by its own path in any error.
    pub(crate) fn named<T>(
        &self,
        work: impl FnOnce() -> Result<T, OtaError>,
    ) -> Result<T, OtaError> {
        work().map_err(|error| self.shown_error(error))
    }

    /// The folder held open, for one opened with [`OtaDir::open_as_owner`].
    pub(crate) fn pinned_folder(&self) -> Option<&Folder> {
        self.pinned.as_ref().map(|pinned| &pinned.folder)
    }

    /// The folder, open: the one held open, or for an unchecked folder, the
    /// one at its path, made if absent.
    pub(crate) fn folder(&self) -> Result<Folder, OtaError> {
        match self.pinned_folder() {
            Some(folder) => Ok(folder.try_clone()?),
            None => {
                std::fs::create_dir_all(&self.root)
                    .map_err(io_error(format!("creating {}", self.root.display())))?;
                Ok(Folder::open(&self.root)?)
            }
        }
    }

    /// For a folder opened with [`OtaDir::open_as_owner`]: refuses the
    /// entry at `path` (a path this process reaches) unless it is what it
    /// must be (`folder` or not), not a link, owned by the folder's owner
    /// and writable by nobody else. Inside a folder only its owner may
    /// write, nobody else can have put it there; this keeps a tree chowned
    /// or loosened by hand from being used as root's. Whether it exists.
    pub(crate) fn check_owned(&self, path: &Path, folder: bool) -> Result<bool, OtaError> {
        let Some(pinned) = &self.pinned else {
            return Ok(path.exists());
        };
        let metadata = match std::fs::symlink_metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(OtaError::Io {
                    what: format!("reading {}", self.shown(&path.to_string_lossy())),
                    source,
                });
            }
        };
        let shown = PathBuf::from(self.shown(&path.to_string_lossy()));
        let kind = metadata.file_type();
        let (is, wanted) = if folder {
            (kind.is_dir(), "folder")
        } else {
            (kind.is_file(), "regular file")
        };
        if !is {
            return Err(OtaError::OpenBeneath(BeneathError::Refused {
                path: shown,
                found: if kind.is_symlink() {
                    "symbolic link"
                } else if kind.is_dir() {
                    "folder"
                } else {
                    "special file"
                },
                wanted,
            }));
        }
        refuse_unless_owned(&shown, &metadata, pinned.owner)?;
        Ok(true)
    }

    /// What this process's calls reach the folder by: its path, or for a
    /// folder held open, `/proc/<pid>/fd/<n>`.
    pub(crate) fn work(&self) -> &Path {
        &self.work
    }

    /// Who must own what is in the folder, for one opened with
    /// [`OtaDir::open_as_owner`].
    pub(crate) fn owner(&self) -> Option<u32> {
        self.pinned.as_ref().map(|pinned| pinned.owner)
    }
}

/// Refuses what `metadata` describes, at `path`, unless `owner` owns it
/// and neither its group nor others may write it.
pub(crate) fn refuse_unless_owned(
    path: &Path,
    metadata: &std::fs::Metadata,
    owner: u32,
) -> Result<(), OtaError> {
    if metadata.uid() != owner || metadata.mode() & 0o022 != 0 {
        return Err(OtaError::Untrusted {
            path: path.to_owned(),
            owner: metadata.uid(),
            mode: metadata.mode() & 0o7777,
            expected_owner: owner,
        });
    }
    Ok(())
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
