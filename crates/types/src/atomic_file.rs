use std::io::Write;
use std::path::{Path, PathBuf};

/// Prefix of the temporary files [`write_atomically`] leaves behind when the
/// process dies before the rename; whoever owns the folder may sweep them.
pub const PARTIAL_PREFIX: &str = ".partial-";

/// Writes `bytes` to `path` so that a power cut or a killed process leaves
/// either the old file or the new one, never a part: a temporary file in the
/// same folder, flushed to disk, renamed over `path`, then the folder flushed
/// so that the rename itself survives.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(PARTIAL_PREFIX)
        .tempfile_in(&folder)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    sync_folder(&folder)
}

/// Flushes a folder's entries (renames, removals) to disk.
pub fn sync_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::File::open(folder)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, b"first version, rather long").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
    }
}
