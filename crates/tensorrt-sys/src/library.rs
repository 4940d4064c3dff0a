//! Finding TensorRT's shared libraries at run time.

use std::ffi::{CStr, OsStr, c_void};
use std::mem::ManuallyDrop;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use libloading::Library;

use crate::{LibraryInfo, TensorRtError, Version};

/// The names `probe` tries, newest first.
const PROBE_NAMES: [&str; 3] = ["libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so"];

const INSTALL_HINT: &str = "Install TensorRT (JetPack's nvidia-tensorrt, or the libnvinfer and \
                            libnvonnxparsers packages) or add its lib directory to LD_LIBRARY_PATH.";

/// `getInferLibVersion`, a plain C function of libnvinfer.
type GetVersion = unsafe extern "C" fn() -> i32;

/// A library that stays loaded for the rest of the process: TensorRT leaves
/// worker threads and exit handlers behind that would point into unmapped
/// code if it were closed.
pub(crate) struct Opened {
    pub(crate) library: ManuallyDrop<Library>,
    /// The name it was opened by.
    pub(crate) name: String,
}

/// Finds libnvinfer and asks it for its version. Needs no shim, so a build
/// without TensorRT headers can still say what the box has.
pub fn probe() -> Result<LibraryInfo, TensorRtError> {
    let names = PROBE_NAMES.map(String::from);
    let opened = open_first("TensorRT", &names)?;
    library_info(&opened)
}

/// Opens the first of `names` that loads; `what` names the component in the
/// error, which lists every name tried and says what to install.
pub(crate) fn open_first(what: &str, names: &[String]) -> Result<Opened, TensorRtError> {
    let mut failures = Vec::new();
    for name in names {
        // SAFETY: TensorRT's libraries have no initialisers that need more
        // than being loaded.
        match unsafe { Library::new(name) } {
            Ok(library) => {
                return Ok(Opened {
                    library: ManuallyDrop::new(library),
                    name: name.clone(),
                });
            }
            Err(error) => failures.push(describe(&error)),
        }
    }
    // "libnvinfer.so.10: cannot open shared object file" is the expected
    // failure for an absent name; any other (a missing libcudart, say) is the
    // one worth showing.
    let reason = names
        .iter()
        .zip(&failures)
        .find(|(name, failure)| {
            !failure.starts_with(&format!("{name}: cannot open shared object file"))
        })
        .or_else(|| names.iter().zip(&failures).next())
        .map_or_else(String::new, |(_, failure)| failure.clone());
    Err(TensorRtError::LoadLibrary {
        library: names.join(", "),
        message: format!(
            "{what} not found: could not load {} ({reason}). {INSTALL_HINT}",
            list_names(names)
        ),
    })
}

/// Reads the version and file of an opened libnvinfer.
pub(crate) fn library_info(opened: &Opened) -> Result<LibraryInfo, TensorRtError> {
    let get_version: GetVersion = symbol(opened, "getInferLibVersion")?;
    // SAFETY: a C function without arguments that returns a constant.
    let raw = unsafe { get_version() };
    Ok(LibraryInfo {
        version: decode_version(raw),
        path: loaded_path(get_version as *const c_void)
            .unwrap_or_else(|| PathBuf::from(&opened.name)),
    })
}

/// Looks up a function; `T` must be its exact C signature.
pub(crate) fn symbol<T: Copy>(opened: &Opened, name: &str) -> Result<T, TensorRtError> {
    // SAFETY: the caller names the symbol's true type; the library is never
    // unloaded, so the copied pointer stays valid.
    match unsafe { opened.library.get::<T>(name) } {
        Ok(symbol) => Ok(*symbol),
        Err(error) => Err(TensorRtError::LoadLibrary {
            library: opened.name.clone(),
            message: format!(
                "{} has no function {name} ({}); it is not a TensorRT 8.5+ library. {INSTALL_HINT}",
                opened.name,
                describe(&error)
            ),
        }),
    }
}

/// Decodes `getInferLibVersion()`: 10.x and later encode
/// `major * 10000 + minor * 100 + patch` (100300 is 10.3.0), 8.x encodes
/// `major * 1000 + minor * 100 + patch` (8601 is 8.6.1).
pub(crate) fn decode_version(raw: i32) -> Version {
    let raw = raw.max(0).unsigned_abs();
    if raw >= 10_000 {
        Version {
            major: raw / 10_000,
            minor: raw / 100 % 100,
            patch: raw % 100,
        }
    } else {
        Version {
            major: raw / 1000,
            minor: raw / 100 % 10,
            patch: raw % 100,
        }
    }
}

/// The file the dynamic loader mapped `address` from, as it resolved it.
fn loaded_path(address: *const c_void) -> Option<PathBuf> {
    // SAFETY: Dl_info is plain data, and dladdr only writes to it.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    if unsafe { libc::dladdr(address, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr succeeded, so dli_fname is a C string owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(OsStr::from_bytes(name.to_bytes())))
}

/// libloading's own message is just "dlopen failed"; dlerror's is the useful one.
fn describe(error: &libloading::Error) -> String {
    match std::error::Error::source(error) {
        Some(source) => source.to_string(),
        None => error.to_string(),
    }
}

/// "a", "a or b", "a, b or c".
fn list_names(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    #[test]
    fn both_version_encodings_decode() {
        assert_eq!(decode_version(8601), version(8, 6, 1));
        assert_eq!(decode_version(8502), version(8, 5, 2));
        assert_eq!(decode_version(8610), version(8, 6, 10));
        assert_eq!(decode_version(100_300), version(10, 3, 0));
        assert_eq!(decode_version(100_701), version(10, 7, 1));
        assert_eq!(decode_version(110_000), version(11, 0, 0));
    }

    #[test]
    fn names_are_listed_as_a_sentence() {
        let names = PROBE_NAMES.map(String::from);
        assert_eq!(
            list_names(&names),
            "libnvinfer.so.10, libnvinfer.so.8 or libnvinfer.so"
        );
        assert_eq!(list_names(&names[1..]), "libnvinfer.so.8 or libnvinfer.so");
    }

    /// This machine has no TensorRT; on one that does, the probe must find
    /// a version the shim supports.
    #[test]
    fn probe_names_libnvinfer_and_what_to_install() {
        match probe() {
            Err(error) => {
                assert!(
                    matches!(error, TensorRtError::LoadLibrary { .. }),
                    "{error:?}"
                );
                let message = error.to_string();
                assert!(
                    message.starts_with("TensorRT not found: could not load libnvinfer.so.10"),
                    "{message}"
                );
                assert!(
                    message.contains("libnvinfer.so.8 or libnvinfer.so ("),
                    "{message}"
                );
                assert!(message.contains("Install TensorRT"), "{message}");
                assert!(message.contains("LD_LIBRARY_PATH"), "{message}");
            }
            Ok(info) => {
                assert!(info.version >= version(8, 5, 0), "{info:?}");
                assert!(
                    info.path.to_string_lossy().contains("libnvinfer"),
                    "{info:?}"
                );
            }
        }
    }

    #[test]
    fn a_library_that_is_not_tensorrt_is_named_in_the_error() {
        let opened = open_first("libc", &["libc.so.6".to_owned()]).expect("libc is always there");
        let error = library_info(&opened).expect_err("libc has no getInferLibVersion");
        let message = error.to_string();
        assert!(
            message.contains("libc.so.6 has no function getInferLibVersion"),
            "{message}"
        );
    }
}
