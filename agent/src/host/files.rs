//! File operations the controller may ask for (missions, mods' keys, logs), confined to
//! one server's folder: relative paths of plain names only, no `..`, no absolute paths,
//! and never through a symlink that leads outside. Blocking; run in `spawn_blocking`.
//!
//! Files the launch plan marks secret (e.g. `server.cfg` with the admin password) and
//! the folders holding secret files other than the server folder itself (e.g.
//! `battleye/`, with the RCon password and what BattlEye writes) are [`Protected`]:
//! no request may list, read, write or delete them, whether named directly or reached
//! through a symlink inside the folder. Names compare case-insensitively (a Windows
//! game would read `BattlEye/` as `battleye/`).

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use languard_shared::wire::request::{AgentError, ErrorCode, FileEntry};

use crate::supervisor::PlannedFile;

/// Paths (relative to the server folder) no file request may touch.
#[derive(Debug, Clone, Default)]
pub struct Protected {
    /// Folders protected with everything inside.
    dirs: Vec<PathBuf>,
    /// Single files.
    files: Vec<PathBuf>,
}

fn lower(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().to_lowercase()),
            _ => None,
        })
        .collect()
}

impl Protected {
    /// From a plan's secret files: each file, and its folder unless that is the server
    /// folder itself.
    pub fn from_secrets(secrets: &[PathBuf]) -> Self {
        let mut out = Self::default();
        for secret in secrets {
            out.files.push(secret.clone());
            if let Some(parent) = secret.parent()
                && !lower(parent).is_empty()
            {
                out.dirs.push(parent.to_path_buf());
            }
        }
        out
    }

    /// Whether `rel` (relative to the server folder) is or lies inside a protected path.
    fn covers(&self, rel: &Path) -> bool {
        let rel = lower(rel);
        self.dirs.iter().any(|d| rel.starts_with(&lower(d)))
            || self.files.iter().any(|f| rel == lower(f))
    }

    /// Refuses `path` if it, or what any existing prefix of it resolves to, is
    /// protected.
    fn check(&self, root: &Path, path: &str) -> Result<(), AgentError> {
        let refuse = || invalid(path, "managed file holding secrets");
        let names = check_lexical(path, true)?;
        let rel: PathBuf = names.iter().collect();
        if self.covers(&rel) {
            return Err(refuse());
        }
        let Ok(root) = fs::canonicalize(root) else {
            return Ok(());
        };
        let mut current = root.clone();
        for name in names {
            current.push(name);
            if fs::symlink_metadata(&current).is_err() {
                break;
            }
            if let Ok(real) = fs::canonicalize(&current)
                && let Ok(inside) = real.strip_prefix(&root)
                && self.covers(inside)
            {
                return Err(refuse());
            }
        }
        Ok(())
    }
}

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
pub fn list(root: &Path, dir: &str, protected: &Protected) -> Result<Vec<FileEntry>, AgentError> {
    protected.check(root, dir)?;
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
pub fn read(
    root: &Path,
    path: &str,
    max_bytes: u64,
    protected: &Protected,
) -> Result<Vec<u8>, AgentError> {
    protected.check(root, path)?;
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
pub fn write(
    root: &Path,
    path: &str,
    data: Vec<u8>,
    max_bytes: u64,
    protected: &Protected,
) -> Result<(), AgentError> {
    check_lexical(path, false)?;
    protected.check(root, path)?;
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
pub fn delete(root: &Path, path: &str, protected: &Protected) -> Result<(), AgentError> {
    let names = check_lexical(path, false)?;
    protected.check(root, path)?;
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

    fn none() -> Protected {
        Protected::default()
    }

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("mpmissions")).unwrap();
        fs::write(dir.path().join("server.cfg"), "hostname = \"x\";").unwrap();
        dir
    }

    #[test]
    fn write_read_list_delete_inside_the_folder() {
        let dir = root();
        write(
            dir.path(),
            "mpmissions/co10.Altis.pbo",
            vec![1, 2, 3],
            1024,
            &none(),
        )
        .unwrap();
        assert_eq!(
            read(dir.path(), "mpmissions/co10.Altis.pbo", 1024, &none()).unwrap(),
            vec![1, 2, 3]
        );
        let names: Vec<_> = list(dir.path(), "", &none())
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["mpmissions", "server.cfg"]);
        delete(dir.path(), "mpmissions/co10.Altis.pbo", &none()).unwrap();
        assert!(list(dir.path(), "mpmissions", &none()).unwrap().is_empty());
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
            let err = write(dir.path(), bad, b"evil".to_vec(), 1024, &none()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidPath, "{bad:?}: {err}");
            assert!(read(dir.path(), bad, 1024, &none()).is_err(), "{bad:?}");
            assert!(delete(dir.path(), bad, &none()).is_err(), "{bad:?}");
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
            read(dir.path(), "link/secret", 1024, &none())
                .unwrap_err()
                .code,
            ErrorCode::InvalidPath
        );
        assert!(write(dir.path(), "link/new", b"x".to_vec(), 1024, &none()).is_err());
        assert!(!outside.path().join("new").exists());
        assert!(list(dir.path(), "link", &none()).is_err());
        // Deleting the link itself removes the link, never the target.
        delete(dir.path(), "link", &none()).unwrap();
        assert!(outside.path().join("secret").exists());
    }

    #[test]
    fn size_limits_apply() {
        let dir = root();
        assert!(write(dir.path(), "big.bin", vec![0; 11], 10, &none()).is_err());
        assert!(!dir.path().join("big.bin").exists());
        fs::write(dir.path().join("big.bin"), vec![0; 11]).unwrap();
        assert!(read(dir.path(), "big.bin", 10, &none()).is_err());
    }

    #[test]
    fn secret_files_and_folders_are_refused_even_through_symlinks() {
        let dir = root();
        fs::create_dir_all(dir.path().join("battleye")).unwrap();
        fs::write(
            dir.path().join("battleye/beserver_x64.cfg"),
            "RConPassword x",
        )
        .unwrap();
        fs::write(dir.path().join("battleye/bans.txt"), "ban").unwrap();
        std::os::unix::fs::symlink("battleye", dir.path().join("be-link")).unwrap();
        std::os::unix::fs::symlink("server.cfg", dir.path().join("cfg-link")).unwrap();
        let p = Protected::from_secrets(&[
            PathBuf::from("server.cfg"),
            PathBuf::from("battleye/beserver_x64.cfg"),
        ]);
        let root = dir.path();
        for path in [
            "server.cfg",
            "./server.cfg",
            "SERVER.CFG",
            "battleye/beserver_x64.cfg",
            "battleye/bans.txt",
            "BattlEye/bans.txt",
            "be-link/bans.txt",
            "cfg-link",
        ] {
            for err in [
                read(root, path, 1024, &p).unwrap_err(),
                write(root, path, b"x".to_vec(), 1024, &p).unwrap_err(),
                delete(root, path, &p).unwrap_err(),
            ] {
                assert_eq!(err.code, ErrorCode::InvalidPath, "{path}: {err}");
                assert!(err.message.contains("secrets"), "{path}: {err}");
            }
        }
        for dir_path in ["battleye", "be-link", "battleye/sub"] {
            let err = list(root, dir_path, &p).unwrap_err();
            assert!(err.message.contains("secrets"), "{dir_path}: {err}");
        }
        assert!(write(root, "battleye/new.txt", b"x".to_vec(), 1024, &p).is_err());
        assert!(!root.join("battleye/new.txt").exists());
        assert_eq!(
            fs::read_to_string(root.join("battleye/bans.txt")).unwrap(),
            "ban"
        );
        // Everything else still works, and the root lists names only.
        assert!(list(root, "", &p).is_ok());
        assert!(read(root, "mpmissions", 1024, &p).is_err());
        write(root, "basic.cfg", b"ok".to_vec(), 1024, &p).unwrap();
        assert_eq!(read(root, "basic.cfg", 1024, &p).unwrap(), b"ok");
    }
}
