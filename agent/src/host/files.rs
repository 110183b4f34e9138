//! File operations the controller may ask for (missions, mods' keys, logs), confined to
//! one server's folder: relative paths of plain names only, no `..`, no absolute paths,
//! and never through a symlink that leads outside. Blocking; run in `spawn_blocking`.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use languard_shared::wire::request::{AgentError, ErrorCode, FileEntry};

use crate::supervisor::PlannedFile;

fn invalid(path: &str, why: &str) -> AgentError {
    AgentError::new(ErrorCode::InvalidPath, format!("{path:?}: {why}"))
}

fn io_error(path: &str, e: &io::Error) -> AgentError {
    let code = if e.kind() == io::ErrorKind::NotFound {
        ErrorCode::InvalidPath
    } else {
        ErrorCode::Io
    };
    AgentError::new(code, format!("{path:?}: {e}"))
}

/// Checks a request path lexically: relative, only plain names, each a sensible file
/// name (no control characters, no backslash, which Windows would read as a separator).
fn check_lexical(path: &str, allow_empty: bool) -> Result<Vec<&OsStr>, AgentError> {
    if path.is_empty() {
        return if allow_empty {
            Ok(Vec::new())
        } else {
            Err(invalid(path, "a file name is required"))
        };
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(invalid(
            path,
            "control characters and backslashes are not allowed",
        ));
    }
    let mut names = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => names.push(name),
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid(path, "`..` is not allowed")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(path, "absolute paths are not allowed"));
            }
        }
    }
    if names.is_empty() && !allow_empty {
        return Err(invalid(path, "a file name is required"));
    }
    Ok(names)
}

/// Resolves an existing path inside `root`, refusing symlinks that lead outside.
fn resolve(root: &Path, path: &str, allow_empty: bool) -> Result<PathBuf, AgentError> {
    let names = check_lexical(path, allow_empty)?;
    let root = fs::canonicalize(root).map_err(|e| io_error("", &e))?;
    let mut current = root.clone();
    for name in names {
        current.push(name);
        let meta = fs::symlink_metadata(&current).map_err(|e| io_error(path, &e))?;
        if meta.file_type().is_symlink() {
            let real = fs::canonicalize(&current).map_err(|e| io_error(path, &e))?;
            if !real.starts_with(&root) {
                return Err(invalid(path, "leads outside the server folder"));
            }
            current = real;
        }
    }
    Ok(current)
}

/// Lists a folder (`""` is the server folder itself), folders first, then by name.
pub fn list(root: &Path, dir: &str) -> Result<Vec<FileEntry>, AgentError> {
    let path = resolve(root, dir, true)?;
    let mut entries = Vec::new();
    for entry in fs::read_dir(&path).map_err(|e| io_error(dir, &e))? {
        let entry = entry.map_err(|e| io_error(dir, &e))?;
        let meta = entry.metadata().map_err(|e| io_error(dir, &e))?;
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        entries.push(FileEntry {
            name: entry.file_name().to_string_lossy().into_owned(),
            dir: meta.is_dir(),
            size: if meta.is_dir() { 0 } else { meta.len() },
            modified_ms,
        });
    }
    entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    Ok(entries)
}

/// Reads a file of at most `max_bytes`.
pub fn read(root: &Path, path: &str, max_bytes: u64) -> Result<Vec<u8>, AgentError> {
    let resolved = resolve(root, path, false)?;
    let file = fs::File::open(&resolved).map_err(|e| io_error(path, &e))?;
    let meta = file.metadata().map_err(|e| io_error(path, &e))?;
    if !meta.is_file() {
        return Err(invalid(path, "not a file"));
    }
    if meta.len() > max_bytes {
        return Err(AgentError::new(
            ErrorCode::Io,
            format!(
                "{path:?} is {} bytes, more than the {max_bytes} allowed",
                meta.len()
            ),
        ));
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max_bytes)
        .read_to_end(&mut data)
        .map_err(|e| io_error(path, &e))?;
    Ok(data)
}

/// Writes a file atomically (mode 0644), creating folders inside the server folder.
pub fn write(root: &Path, path: &str, data: Vec<u8>, max_bytes: u64) -> Result<(), AgentError> {
    check_lexical(path, false)?;
    if u64::try_from(data.len()).unwrap_or(u64::MAX) > max_bytes {
        return Err(AgentError::new(
            ErrorCode::Io,
            format!("{path:?}: more than the {max_bytes} bytes allowed"),
        ));
    }
    let file = PlannedFile {
        path: PathBuf::from(path),
        contents: data,
        secret: false,
    };
    crate::supervisor::files::write_planned(root, std::slice::from_ref(&file))
        .map_err(|e| AgentError::new(ErrorCode::InvalidPath, e))
}

/// Deletes a file (never a folder).
pub fn delete(root: &Path, path: &str) -> Result<(), AgentError> {
    let names = check_lexical(path, false)?;
    // Resolve the parent (symlinks checked), then remove the entry itself without
    // following it: deleting a symlink removes the link, not its target.
    let (parent, name) = match names.split_last() {
        Some((name, dirs)) => {
            let dirs: PathBuf = dirs.iter().collect();
            let dirs = dirs.to_string_lossy().into_owned();
            (resolve(root, &dirs, true)?, *name)
        }
        None => return Err(invalid(path, "a file name is required")),
    };
    let target = parent.join(name);
    let meta = fs::symlink_metadata(&target).map_err(|e| io_error(path, &e))?;
    if meta.is_dir() {
        return Err(invalid(path, "is a folder"));
    }
    fs::remove_file(&target).map_err(|e| io_error(path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("mpmissions")).unwrap();
        fs::write(dir.path().join("server.cfg"), "hostname = \"x\";").unwrap();
        dir
    }

    #[test]
    fn write_read_list_delete_inside_the_folder() {
        let dir = root();
        write(dir.path(), "mpmissions/co10.Altis.pbo", vec![1, 2, 3], 1024).unwrap();
        assert_eq!(
            read(dir.path(), "mpmissions/co10.Altis.pbo", 1024).unwrap(),
            vec![1, 2, 3]
        );
        let names: Vec<_> = list(dir.path(), "")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["mpmissions", "server.cfg"]);
        delete(dir.path(), "mpmissions/co10.Altis.pbo").unwrap();
        assert!(list(dir.path(), "mpmissions").unwrap().is_empty());
    }

    #[test]
    fn traversal_and_absolute_paths_are_refused_and_change_nothing() {
        let dir = root();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let escape = format!(
            "../{}/victim",
            outside.path().file_name().unwrap().to_string_lossy()
        );
        for bad in [
            "../x",
            "mpmissions/../../x",
            escape.as_str(),
            "/etc/passwd",
            victim.to_str().unwrap(),
            "a\\..\\b",
            "bad\nname",
            "",
        ] {
            let err = write(dir.path(), bad, b"evil".to_vec(), 1024).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidPath, "{bad:?}: {err}");
            assert!(read(dir.path(), bad, 1024).is_err(), "{bad:?}");
            assert!(delete(dir.path(), bad).is_err(), "{bad:?}");
        }
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn symlinks_out_of_the_folder_are_refused() {
        let dir = root();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        assert_eq!(
            read(dir.path(), "link/secret", 1024).unwrap_err().code,
            ErrorCode::InvalidPath
        );
        assert!(write(dir.path(), "link/new", b"x".to_vec(), 1024).is_err());
        assert!(!outside.path().join("new").exists());
        assert!(list(dir.path(), "link").is_err());
        // Deleting the link itself removes the link, never the target.
        delete(dir.path(), "link").unwrap();
        assert!(outside.path().join("secret").exists());
    }

    #[test]
    fn size_limits_apply() {
        let dir = root();
        assert!(write(dir.path(), "big.bin", vec![0; 11], 10).is_err());
        assert!(!dir.path().join("big.bin").exists());
        fs::write(dir.path().join("big.bin"), vec![0; 11]).unwrap();
        assert!(read(dir.path(), "big.bin", 10).is_err());
    }
}
