//! File operations the controller may ask for (missions, mods' keys, logs), confined to
//! one server's folder: relative paths of plain names only, no `..`, no absolute paths.
//! The game owns that folder and may plant or swap symlinks and hard links in it at any
//! moment, so every operation goes through [`crate::fs_beneath`]: no symlink is ever
//! followed (not even one pointing back inside), hard-linked files are refused, and a
//! swap during an operation can only make it fail, never reach outside. Blocking; run in
//! `spawn_blocking`.
//!
//! Listings show folders and regular single-link files; symlinks, hard-linked files and
//! special files are left out. Deleting a symlink deletes the link itself, never its
//! target (so an operator can clean up one a mod planted).
//!
//! Files the launch plan marks secret (e.g. `server.cfg` with the admin password) and
//! the folders holding secret files other than the server folder itself (e.g.
//! `battleye/`, with the RCon password and what BattlEye writes) are [`Protected`]:
//! no request may list, read, write or delete them. Since no symlink is followed, the
//! name given is the only way to reach them (a hard link under another name is refused
//! as hard-linked). Names compare case-insensitively (a Windows game would read
//! `BattlEye/` as `battleye/`).
//!
//! Error messages echo the relative path the caller gave and a fixed reason ("not
//! found", "symlinks are not followed", …): no absolute path, no OS error text.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

use languard_shared::wire::request::{AgentError, ErrorCode, FileEntry};

use crate::fs_beneath::{self, Beneath, FsError};

/// Mode of files written through the API: the game must be able to read them.
const FILE_MODE: u32 = 0o644;

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

    /// Refuses `names` if they are or lie inside a protected path.
    fn check(&self, path: &str, names: &[&OsStr]) -> Result<(), AgentError> {
        let rel: PathBuf = names.iter().collect();
        if self.covers(&rel) {
            return Err(invalid(path, "managed file holding secrets"));
        }
        Ok(())
    }
}

fn invalid(path: &str, why: &str) -> AgentError {
    AgentError::new(ErrorCode::InvalidPath, format!("{path:?}: {why}"))
}

/// The controller-facing error: the caller's relative path and the fixed reason.
fn fs_error(path: &str, e: FsError) -> AgentError {
    let code = match e {
        FsError::Io(_) => ErrorCode::Io,
        _ => ErrorCode::InvalidPath,
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

/// Checks `path` and opens the server folder once: everything after resolves below
/// that handle.
fn prepare<'p>(
    root: &Path,
    path: &'p str,
    allow_empty: bool,
    protected: &Protected,
) -> Result<(Beneath, Vec<&'p OsStr>), AgentError> {
    let names = check_lexical(path, allow_empty)?;
    protected.check(path, &names)?;
    let folder = Beneath::open(root).map_err(|e| {
        tracing::warn!(folder = %root.display(), error = %e, "Cannot open a server folder.");
        AgentError::new(
            ErrorCode::Io,
            format!("the server folder cannot be opened: {e}"),
        )
    })?;
    Ok((folder, names))
}

/// Lists a folder (`""` is the server folder itself), folders first, then by name.
pub fn list(root: &Path, dir: &str, protected: &Protected) -> Result<Vec<FileEntry>, AgentError> {
    let (folder, names) = prepare(root, dir, true, protected)?;
    let mut entries: Vec<FileEntry> = folder
        .list(&names)
        .map_err(|e| fs_error(dir, e))?
        .into_iter()
        .map(|e| FileEntry {
            name: e.name.to_string_lossy().into_owned(),
            dir: e.dir,
            size: e.size,
            modified_ms: e.modified_ms,
        })
        .collect();
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
    let (folder, names) = prepare(root, path, false, protected)?;
    match folder
        .read(&names, max_bytes)
        .map_err(|e| fs_error(path, e))?
    {
        Ok(data) => Ok(data),
        Err(size) => Err(AgentError::new(
            ErrorCode::Io,
            format!("{path:?} is {size} bytes, more than the {max_bytes} allowed"),
        )),
    }
}

/// Writes a file atomically (mode 0644), creating folders inside the server folder.
pub fn write(
    root: &Path,
    path: &str,
    data: Vec<u8>,
    max_bytes: u64,
    protected: &Protected,
) -> Result<(), AgentError> {
    let (folder, names) = prepare(root, path, false, protected)?;
    if u64::try_from(data.len()).unwrap_or(u64::MAX) > max_bytes {
        return Err(AgentError::new(
            ErrorCode::Io,
            format!("{path:?}: more than the {max_bytes} bytes allowed"),
        ));
    }
    let Some((name, parents)) = names.split_last() else {
        return Err(invalid(path, "a file name is required"));
    };
    let dir = folder
        .create_dirs(parents, None)
        .map_err(|e| fs_error(path, e))?;
    fs_beneath::write_file(dir.as_fd(), name, &data, FILE_MODE, None).map_err(|e| fs_error(path, e))
}

/// Deletes a file (never a folder); a symlink is deleted itself, not its target.
pub fn delete(root: &Path, path: &str, protected: &Protected) -> Result<(), AgentError> {
    let (folder, names) = prepare(root, path, false, protected)?;
    folder.delete(&names).map_err(|e| fs_error(path, e))
}

#[cfg(test)]
mod tests {
    use std::fs;

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
    fn secret_files_and_folders_are_refused_and_symlinks_to_them_too() {
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
        fs::hard_link(dir.path().join("server.cfg"), dir.path().join("cfg-hard")).unwrap();
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
        // Through a symlink or a hard link the secret is not reached either.
        for (path, why) in [
            ("be-link/bans.txt", "symlinks are not followed"),
            ("cfg-link", "symlinks are not followed"),
            ("cfg-hard", "hard-linked files are refused"),
        ] {
            let err = read(root, path, 1024, &p).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidPath, "{path}: {err}");
            assert!(err.message.contains(why), "{path}: {err}");
        }
        for dir_path in ["battleye", "battleye/sub"] {
            let err = list(root, dir_path, &p).unwrap_err();
            assert!(err.message.contains("secrets"), "{dir_path}: {err}");
        }
        let err = list(root, "be-link", &p).unwrap_err();
        assert!(err.message.contains("symlinks are not followed"), "{err}");
        assert!(write(root, "battleye/new.txt", b"x".to_vec(), 1024, &p).is_err());
        assert!(!root.join("battleye/new.txt").exists());
        assert_eq!(
            fs::read_to_string(root.join("battleye/bans.txt")).unwrap(),
            "ban"
        );
        assert_eq!(
            fs::read_to_string(root.join("server.cfg")).unwrap(),
            "hostname = \"x\";"
        );
        // Everything else still works, and the root lists names only.
        assert!(list(root, "", &p).is_ok());
        assert!(read(root, "mpmissions", 1024, &p).is_err());
        write(root, "basic.cfg", b"ok".to_vec(), 1024, &p).unwrap();
        assert_eq!(read(root, "basic.cfg", 1024, &p).unwrap(), b"ok");
    }

    #[test]
    fn error_messages_carry_no_absolute_path_and_no_os_text() {
        let dir = root();
        let base = dir.path().to_string_lossy().into_owned();
        for err in [
            read(dir.path(), "missing.txt", 1024, &none()).unwrap_err(),
            list(dir.path(), "missing", &none()).unwrap_err(),
            delete(dir.path(), "missing/x", &none()).unwrap_err(),
            read(dir.path(), "server.cfg/x", 1024, &none()).unwrap_err(),
            read(Path::new("/nonexistent/languard"), "x", 1024, &none()).unwrap_err(),
        ] {
            assert!(!err.message.contains(&base), "{err}");
            assert!(!err.message.contains("/nonexistent"), "{err}");
            assert!(!err.message.contains("No such file"), "{err}");
            assert!(!err.message.contains("os error"), "{err}");
        }
        let err = read(dir.path(), "missing.txt", 1024, &none()).unwrap_err();
        assert_eq!(err.message, "\"missing.txt\": not found");
        assert_eq!(err.code, ErrorCode::InvalidPath);
        let err = read(dir.path(), "mpmissions", 1024, &none()).unwrap_err();
        assert_eq!(err.message, "\"mpmissions\": is a folder");
    }
}
