//! Files in folders that a less trusted user can write to, as root's tools
//! must reach them: through a folder held open, one name at a time, never
//! through a symbolic link, and only as the kind of file expected.
//!
//! The daemon's user can put a link, a FIFO or a socket where root expects
//! a plain file. Opened by path, a link would make root read, truncate or
//! write its target, and a FIFO would block root's open for ever. A
//! [`Folder`] resolves each name with `openat(O_NOFOLLOW | O_NONBLOCK)`
//! relative to the folder's descriptor, checks what it opened with `fstat`,
//! creates with `O_EXCL`, and removes and renames with `unlinkat` and
//! `renameat`, which act on a link itself, never on its target.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Why a file or folder could not be reached safely.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// What is there is not what was asked for: a symbolic link, a FIFO,
    /// a socket or a device where a plain file or a folder must be.
    #[error("{path} is a {found}, not a {wanted}: refused, and not followed")]
    Refused {
        /// The entry.
        path: PathBuf,
        /// What it is.
        found: &'static str,
        /// What it had to be.
        wanted: &'static str,
    },
    /// A name that is not one plain component (a `/`, `.`, `..`, NUL).
    #[error("{path}: {name:?} is not a single file name")]
    BadName {
        /// The folder.
        path: PathBuf,
        /// The name.
        name: OsString,
    },
    /// Opening or creating failed.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The entry.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading the folder's entries failed.
    #[error("cannot list {path}: {source}")]
    List {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Removing an entry failed.
    #[error("cannot remove {path}: {source}")]
    Remove {
        /// The entry.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading what an open folder is (its owner, its mode) failed.
    #[error("cannot read the owner and mode of {path}: {source}")]
    Stat {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Renaming an entry failed.
    #[error("cannot rename {from} to {to}: {source}")]
    Rename {
        /// The entry.
        from: PathBuf,
        /// Its new name.
        to: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl BeneathError {
    /// Whether the entry was simply absent.
    pub fn is_not_found(&self) -> bool {
        matches!(self, BeneathError::Open { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// One entry of a [`Folder`], as it is (a link is a link).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderEntry {
    /// Its name in the folder.
    pub name: OsString,
    /// What it is: `regular file`, `folder`, `symbolic link`, `FIFO`, ...
    pub kind: &'static str,
    /// Its modification time.
    pub modified: SystemTime,
}

impl FolderEntry {
    /// A plain file.
    pub fn is_regular(&self) -> bool {
        self.kind == REGULAR
    }
}

const REGULAR: &str = "regular file";
const FOLDER: &str = "folder";

/// A folder held open; names are resolved against it, never through a link.
#[derive(Debug)]
pub struct Folder {
    fd: OwnedFd,
    path: PathBuf,
}

impl Folder {
    /// Opens the folder at `path`. Its last component must be a folder, not
    /// a link to one; the components above it are the caller's to trust.
    pub fn open(path: &Path) -> Result<Folder, BeneathError> {
        let fd = open_checked(CWD, path, path, OFlags::DIRECTORY, Mode::empty(), FOLDER)?;
        Ok(Folder {
            fd,
            path: path.to_owned(),
        })
    }

    /// Opens the folder at `path` following links in every component, the
    /// last one included: for a folder whose path is trusted as configured
    /// (one in root's settings), below which names are then resolved without
    /// following links.
    pub fn open_following(path: &Path) -> Result<Folder, BeneathError> {
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(CWD, path, flags, Mode::empty()).map_err(|errno| {
            BeneathError::Open {
                path: path.to_owned(),
                source: errno.into(),
            }
        })?;
        Ok(Folder {
            fd,
            path: path.to_owned(),
        })
    }

    /// A second handle on the same open folder: whatever happens to the
    /// folder's name, both reach the folder that was opened.
    pub fn try_clone(&self) -> Result<Folder, BeneathError> {
        let fd = self.fd.try_clone().map_err(|source| BeneathError::Open {
            path: self.path.clone(),
            source,
        })?;
        Ok(Folder {
            fd,
            path: self.path.clone(),
        })
    }

    /// What the open folder is now (owner, mode, device and inode), read
    /// from its descriptor rather than its path.
    pub fn metadata(&self) -> Result<std::fs::Metadata, BeneathError> {
        self.fd
            .try_clone()
            .map(File::from)
            .and_then(|folder| folder.metadata())
            .map_err(|source| BeneathError::Stat {
                path: self.path.clone(),
                source,
            })
    }

    /// The folder's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this folder, for messages.
    pub fn join(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.path.join(name.as_ref())
    }

    /// Opens the folder `name` inside this one.
    pub fn folder(&self, name: impl AsRef<OsStr>) -> Result<Folder, BeneathError> {
        let name = self.check_name(name.as_ref())?;
        let path = self.join(name);
        let fd = open_checked(
            &self.fd,
            name,
            &path,
            OFlags::DIRECTORY,
            Mode::empty(),
            FOLDER,
        )?;
        Ok(Folder { fd, path })
    }

    /// Opens the folder `name` inside this one, making it with `mode` first
    /// when it is absent.
    pub fn create_folder(
        &self,
        name: impl AsRef<OsStr>,
        mode: u32,
    ) -> Result<Folder, BeneathError> {
        let name = self.check_name(name.as_ref())?;
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(Errno::EXIST) => self.folder(name),
            Err(errno) => Err(BeneathError::Open {
                path: self.join(name),
                source: errno.into(),
            }),
        }
    }

    /// Opens the plain file `name` for reading.
    pub fn open_regular(&self, name: impl AsRef<OsStr>) -> Result<File, BeneathError> {
        let name = self.check_name(name.as_ref())?;
        let fd = open_checked(
            &self.fd,
            name,
            &self.join(name),
            OFlags::RDONLY,
            Mode::empty(),
            REGULAR,
        )?;
        Ok(File::from(fd))
    }

    /// Opens the plain file `name` for reading and writing, making it with
    /// `mode` when it is absent. Never truncates: what it holds is the
    /// caller's to replace once it knows the file is its own.
    pub fn open_or_create(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<File, BeneathError> {
        let name = self.check_name(name.as_ref())?;
        let fd = open_checked(
            &self.fd,
            name,
            &self.join(name),
            OFlags::RDWR | OFlags::CREATE,
            Mode::from_raw_mode(mode),
            REGULAR,
        )?;
        Ok(File::from(fd))
    }

    /// Makes the plain file `name` for writing; fails when anything, a link
    /// included, already has that name.
    pub fn create_new(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<File, BeneathError> {
        let name = self.check_name(name.as_ref())?;
        let fd = open_checked(
            &self.fd,
            name,
            &self.join(name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(mode),
            REGULAR,
        )?;
        Ok(File::from(fd))
    }

    /// What the folder holds, `.` and `..` left out, each as it is.
    pub fn entries(&self) -> Result<Vec<FolderEntry>, BeneathError> {
        let list_error = |source: Errno| BeneathError::List {
            path: self.path.clone(),
            source: source.into(),
        };
        let mut entries = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd).map_err(list_error)? {
            let entry = entry.map_err(list_error)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let stat = match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                // Removed since it was listed.
                Err(Errno::NOENT) => continue,
                Err(errno) => return Err(list_error(errno)),
            };
            let modified = u64::try_from(stat.st_mtime)
                .ok()
                .and_then(|seconds| {
                    let nanos = u32::try_from(stat.st_mtime_nsec).unwrap_or(0);
                    SystemTime::UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
                })
                .unwrap_or(SystemTime::UNIX_EPOCH);
            entries.push(FolderEntry {
                name: name.to_owned(),
                kind: kind_name(FileType::from_raw_mode(stat.st_mode)),
                modified,
            });
        }
        Ok(entries)
    }

    /// Removes the entry `name`: a link itself, never its target; an empty
    /// folder too. `false` when there was nothing by that name.
    pub fn remove(&self, name: impl AsRef<OsStr>) -> Result<bool, BeneathError> {
        let name = self.check_name(name.as_ref())?;
        let removed = match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Err(Errno::ISDIR) => rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR),
            other => other,
        };
        match removed {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(errno) => Err(BeneathError::Remove {
                path: self.join(name),
                source: errno.into(),
            }),
        }
    }

    /// Renames the entry `from` to `to` in the folder `into` (this one, or
    /// another on the same file system); a link moves as a link.
    pub fn rename(
        &self,
        from: impl AsRef<OsStr>,
        into: &Folder,
        to: impl AsRef<OsStr>,
    ) -> Result<(), BeneathError> {
        let from = self.check_name(from.as_ref())?;
        let to = into.check_name(to.as_ref())?;
        rustix::fs::renameat(&self.fd, from, &into.fd, to).map_err(|errno| BeneathError::Rename {
            from: self.join(from),
            to: into.join(to),
            source: errno.into(),
        })
    }

    /// Flushes the folder's entries (creations, renames, removals) to disk.
    pub fn sync(&self) -> std::io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(Into::into)
    }

    fn check_name<'a>(&self, name: &'a OsStr) -> Result<&'a OsStr, BeneathError> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || name == "." || name == ".." || bytes.contains(&b'/') {
            return Err(BeneathError::BadName {
                path: self.path.clone(),
                name: name.to_owned(),
            });
        }
        Ok(name)
    }
}

impl AsFd for Folder {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Opens the plain file at `path` for reading without following a link in
/// its last component and without blocking on a FIFO; anything but a plain
/// file is refused by name.
pub fn open_regular_file(path: &Path) -> Result<File, BeneathError> {
    let fd = open_checked(CWD, path, path, OFlags::RDONLY, Mode::empty(), REGULAR)?;
    Ok(File::from(fd))
}

/// `openat` that never follows a link in the last component nor blocks on
/// a FIFO, then checks with `fstat` that it opened a `wanted`.
fn open_checked<Fd: std::os::fd::AsFd>(
    folder: Fd,
    name: impl AsRef<OsStr>,
    path: &Path,
    flags: OFlags,
    mode: Mode,
    wanted: &'static str,
) -> Result<OwnedFd, BeneathError> {
    let name = name.as_ref();
    let flags = flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let open_error = |errno: Errno| BeneathError::Open {
        path: path.to_owned(),
        source: errno.into(),
    };
    let fd = match rustix::fs::openat(folder.as_fd(), name, flags, mode) {
        Ok(fd) => fd,
        // A link (ELOOP under O_NOFOLLOW), a socket or a FIFO without a
        // reader (ENXIO), a file where a folder must be (ENOTDIR), or a
        // folder opened for writing (EISDIR): name what is there.
        Err(errno @ (Errno::LOOP | Errno::NXIO | Errno::NOTDIR | Errno::ISDIR)) => {
            return Err(
                match rustix::fs::statat(folder.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => BeneathError::Refused {
                        path: path.to_owned(),
                        found: kind_name(FileType::from_raw_mode(stat.st_mode)),
                        wanted,
                    },
                    Err(_) => open_error(errno),
                },
            );
        }
        Err(errno) => return Err(open_error(errno)),
    };
    let stat = rustix::fs::fstat(&fd).map_err(open_error)?;
    let found = kind_name(FileType::from_raw_mode(stat.st_mode));
    if found != wanted {
        return Err(BeneathError::Refused {
            path: path.to_owned(),
            found,
            wanted,
        });
    }
    Ok(fd)
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => REGULAR,
        FileType::Directory => FOLDER,
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice | FileType::BlockDevice => "device",
        FileType::Unknown => "special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A file outside the folder, with content that must survive.
    fn outside(dir: &Path) -> PathBuf {
        let target = dir.join("outside.txt");
        std::fs::write(&target, b"root's file").unwrap();
        target
    }

    fn mkfifo(path: &Path) {
        let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_link_is_refused_by_name_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = outside(dir.path());
        std::fs::create_dir(dir.path().join("inbox")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("inbox/lock")).unwrap();
        let folder = Folder::open(&dir.path().join("inbox")).unwrap();

        for error in [
            folder.open_regular("lock").unwrap_err(),
            folder.open_or_create("lock", 0o644).unwrap_err(),
            folder.create_new("lock", 0o644).unwrap_err(),
            open_regular_file(&dir.path().join("inbox/lock")).unwrap_err(),
        ] {
            let message = error.to_string();
            assert!(message.contains("inbox/lock"), "{message}");
            if let BeneathError::Refused { found, .. } = &error {
                assert_eq!(*found, "symbolic link");
            } else {
                // create_new fails on any name taken.
                assert!(message.contains("exists"), "{message}");
            }
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"root's file");
        assert!(folder.remove("lock").unwrap());
        assert_eq!(std::fs::read(&target).unwrap(), b"root's file");
    }

    #[test]
    fn a_fifo_is_refused_at_once_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        mkfifo(&dir.path().join("queued.esu"));
        let folder = Folder::open(dir.path()).unwrap();
        for error in [
            folder.open_regular("queued.esu").unwrap_err(),
            folder.open_or_create("queued.esu", 0o644).unwrap_err(),
        ] {
            assert!(
                matches!(&error, BeneathError::Refused { found: "FIFO", .. }),
                "{error:?}"
            );
            assert!(error.to_string().contains("queued.esu"), "{error}");
        }
    }

    #[test]
    fn a_linked_folder_is_not_entered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join("queued"))
            .unwrap();
        let error = Folder::open(&dir.path().join("queued")).unwrap_err();
        assert!(
            matches!(
                &error,
                BeneathError::Refused {
                    found: "symbolic link",
                    ..
                }
            ),
            "{error:?}"
        );
        let parent = Folder::open(dir.path()).unwrap();
        let error = parent.folder("queued").unwrap_err();
        assert!(error.to_string().contains("queued"), "{error}");
        let error = parent.create_folder("queued", 0o755).unwrap_err();
        assert!(
            matches!(
                &error,
                BeneathError::Refused {
                    found: "symbolic link",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn a_clone_reaches_the_folder_opened_whatever_becomes_of_its_name() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("configured")).unwrap();
        // A configured path may be a link; the names below it are not followed.
        let folder = Folder::open_following(&dir.path().join("configured")).unwrap();
        let clone = folder.try_clone().unwrap();
        std::fs::rename(dir.path().join("real"), dir.path().join("moved")).unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();

        clone.create_new("note", 0o600).unwrap();

        assert!(dir.path().join("moved/note").exists());
        assert!(!dir.path().join("real/note").exists());
        let moved = std::fs::metadata(dir.path().join("moved")).unwrap();
        let opened = folder.metadata().unwrap();
        assert_eq!((opened.dev(), opened.ino()), (moved.dev(), moved.ino()));
        assert_eq!(clone.path(), dir.path().join("configured"));
    }

    #[test]
    fn files_are_made_read_listed_renamed_and_removed_inside_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Folder::open(dir.path()).unwrap();
        let sub = folder.create_folder("queued", 0o755).unwrap();
        folder
            .create_new("a.partial", 0o600)
            .unwrap()
            .write_all(b"package")
            .unwrap();
        assert!(folder.create_new("a.partial", 0o600).is_err());
        folder.rename("a.partial", &sub, "a.esu").unwrap();
        let mut text = String::new();
        sub.open_regular("a.esu")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "package");
        let entries = sub.entries().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "a.esu");
        assert!(entries[0].is_regular());
        assert_eq!(folder.entries().unwrap()[0].kind, "folder");
        assert!(matches!(
            folder.open_regular("../x"),
            Err(BeneathError::BadName { .. })
        ));
        assert!(sub.remove("a.esu").unwrap());
        assert!(!sub.remove("a.esu").unwrap());
        assert!(folder.remove("queued").unwrap());
    }
}
