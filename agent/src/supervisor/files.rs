//! Writing planned files (server.cfg, basic.cfg, beserver.cfg with the RCon password…)
//! before every start: paths confined to the server folder, atomic replacement.
//!
//! The game owns its server folder and may plant or swap symlinks and hard links there
//! between two starts or during one, so every step goes through [`crate::fs_beneath`]:
//! the folder is opened once, no symlink below it is followed, a hard-linked or
//! symlinked target file is refused, folders are created and files replaced on
//! directory handles only, and the mode of a secret file's folder is set on its handle.
//!
//! Blocking; call from `spawn_blocking`.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

use thiserror::Error;

use super::PlannedFile;
use crate::fs_beneath::{self, Beneath, FsError, Owner};

/// Mode of a secret file: only its owner (the game user, when one is given) reads it.
const SECRET_MODE: u32 = 0o600;
/// Mode of other files.
const FILE_MODE: u32 = 0o644;
/// Mode of the folder of a secret file: BattlEye writes bans and RCon logs next to it.
const SECRET_DIR_MODE: u32 = 0o700;

/// Why the planned files were not (all) written. The texts name only relative paths.
#[derive(Debug, Error)]
pub(crate) enum PlanError {
    /// A planned path is not a plain relative path.
    #[error("{0}")]
    Path(String),
    /// The server folder cannot be created or opened.
    #[error("server folder: {0}")]
    Folder(FsError),
    /// One file (or its folder) was refused or failed.
    #[error("{path}: {source}")]
    File {
        /// The planned relative path.
        path: String,
        /// What went wrong.
        source: FsError,
    },
}

/// Lexical check: relative, no `..`, at least one normal component.
pub(crate) fn validate_relative(p: &Path) -> Result<(), String> {
    let mut normal = 0usize;
    for c in p.components() {
        match c {
            Component::Normal(_) => normal += 1,
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("{}: `..` is not allowed", p.display())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{}: absolute paths are not allowed", p.display()));
            }
        }
    }
    if normal == 0 {
        return Err(format!("{:?}: empty file path", p));
    }
    Ok(())
}

fn names(p: &Path) -> Vec<&OsStr> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// Writes every file atomically inside `cwd` (created if missing). All paths are
/// checked, and all folders opened or created, before the first file is written.
/// With `owner = Some((uid, gid))` every folder and file this creates (the server
/// folder too, when it was missing) is given to that user, on its handle and before
/// the file gets its name, so the game can read its own config; secret files stay
/// 0600 either way.
pub(crate) fn write_planned(
    cwd: &Path,
    files: &[PlannedFile],
    owner: Owner,
) -> Result<(), PlanError> {
    for f in files {
        validate_relative(&f.path).map_err(PlanError::Path)?;
    }
    let folder = open_server_folder(cwd, owner)?;
    let mut targets: Vec<(OwnedFd, &OsStr, &PlannedFile)> = Vec::with_capacity(files.len());
    for f in files {
        let file_error = |source| PlanError::File {
            path: f.path.display().to_string(),
            source,
        };
        let all = names(&f.path);
        let Some((name, dirs)) = all.split_last() else {
            return Err(PlanError::Path(format!("{:?}: empty file path", f.path)));
        };
        let dir = folder.create_dirs(dirs, owner).map_err(file_error)?;
        fs_beneath::check_replaceable(dir.as_fd(), name).map_err(file_error)?;
        if f.secret && !dirs.is_empty() {
            // What the game writes there itself (bans, RCon logs) is private too.
            fs_beneath::set_mode(dir.as_fd(), SECRET_DIR_MODE).map_err(file_error)?;
        }
        targets.push((dir, name, f));
    }
    for (dir, name, f) in targets {
        let mode = if f.secret { SECRET_MODE } else { FILE_MODE };
        fs_beneath::write_file(dir.as_fd(), name, &f.contents, mode, owner).map_err(|source| {
            PlanError::File {
                path: f.path.display().to_string(),
                source,
            }
        })?;
    }
    Ok(())
}

/// Creates the server folder if missing (its parents belong to the agent, so a path
/// is fine here) and opens it once.
fn open_server_folder(cwd: &Path, owner: Owner) -> Result<Beneath, PlanError> {
    let missing = std::fs::symlink_metadata(cwd).is_err();
    let folder_error = |e: FsError| {
        tracing::warn!(folder = %cwd.display(), error = %e, "Cannot prepare a server folder.");
        PlanError::Folder(e)
    };
    std::fs::create_dir_all(cwd).map_err(|e| folder_error(FsError::from_io(&e)))?;
    let folder = Beneath::open(cwd).map_err(folder_error)?;
    if missing && let Some((uid, gid)) = owner {
        fs_beneath::set_owner(folder.root(), uid, gid).map_err(folder_error)?;
    }
    Ok(folder)
}

/// Writes `name` in the agent's own folder `dir` atomically (temp file, fsync,
/// rename, fsync of the folder), on the folder's handle like every other write.
pub(crate) fn atomic_write(dir: &Path, name: &OsStr, contents: &[u8], mode: u32) -> io::Result<()> {
    let folder = Beneath::open(dir)?;
    fs_beneath::write_file(folder.root(), name, contents, mode, None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    use std::path::PathBuf;

    use super::*;

    fn planned(path: &str, contents: &str, secret: bool) -> PlannedFile {
        PlannedFile {
            path: PathBuf::from(path),
            contents: contents.as_bytes().to_vec(),
            secret,
        }
    }

    /// The files an Arma plan writes, the RCon password among them.
    fn arma_files() -> Vec<PlannedFile> {
        vec![
            planned("server.cfg", "passwordAdmin = \"a\";", true),
            planned("basic.cfg", "MaxMsgSend = 128;", false),
            planned("battleye/beserver_x64.cfg", "RConPassword hunter2", true),
        ]
    }

    /// `base/server` is the server folder, `base/outside` stands for the rest of the
    /// host (same file system, so hard links work).
    fn layout() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let base = tempfile::tempdir().unwrap();
        let server = base.path().join("server");
        let outside = base.path().join("outside");
        fs::create_dir_all(&server).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("shadow"), "root:x:0").unwrap();
        (base, server, outside)
    }

    fn untouched(outside: &Path) {
        assert_eq!(
            fs::read_to_string(outside.join("shadow")).unwrap(),
            "root:x:0"
        );
        let names: Vec<_> = fs::read_dir(outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("shadow")]);
    }

    #[test]
    fn writes_files_and_folders_with_their_modes() {
        let (_base, server, _) = layout();
        write_planned(&server, &arma_files(), None).unwrap();
        let mode = |p: &str| fs::metadata(server.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("server.cfg"), 0o600);
        assert_eq!(mode("basic.cfg"), 0o644);
        assert_eq!(mode("battleye"), 0o700);
        assert_eq!(mode("battleye/beserver_x64.cfg"), 0o600);
        assert_eq!(
            fs::read_to_string(server.join("battleye/beserver_x64.cfg")).unwrap(),
            "RConPassword hunter2"
        );
        // Again over the existing files: replaced, no temporary files left.
        write_planned(&server, &arma_files(), None).unwrap();
        let left: Vec<_> = fs::read_dir(server.join("battleye"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    #[test]
    fn a_planted_symlink_as_the_secret_file_writes_nothing_outside() {
        let (_base, server, outside) = layout();
        fs::create_dir_all(server.join("battleye")).unwrap();
        symlink(
            outside.join("shadow"),
            server.join("battleye/beserver_x64.cfg"),
        )
        .unwrap();
        let err = write_planned(&server, &arma_files(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "battleye/beserver_x64.cfg: symlinks are not followed"
        );
        untouched(&outside);
        assert!(
            !server.join("server.cfg").exists(),
            "nothing written at all"
        );
    }

    #[test]
    fn a_planted_symlinked_folder_writes_nothing_outside() {
        let (_base, server, outside) = layout();
        symlink(&outside, server.join("battleye")).unwrap();
        let err = write_planned(&server, &arma_files(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "battleye/beserver_x64.cfg: symlinks are not followed"
        );
        untouched(&outside);
        let mode = fs::metadata(&outside).unwrap().permissions().mode() & 0o777;
        assert_ne!(mode, 0o700, "the folder mode is not set through the link");
        assert!(!server.join("server.cfg").exists());
    }

    #[test]
    fn a_planted_hard_link_is_refused_and_keeps_its_content() {
        let (_base, server, outside) = layout();
        fs::hard_link(outside.join("shadow"), server.join("basic.cfg")).unwrap();
        let err = write_planned(&server, &arma_files(), None).unwrap_err();
        assert_eq!(err.to_string(), "basic.cfg: hard-linked files are refused");
        untouched(&outside);
    }

    #[test]
    fn the_server_folder_must_be_a_folder() {
        let (_base, server, _) = layout();
        fs::write(server.join("file"), "").unwrap();
        let err = write_planned(&server.join("file/srv"), &arma_files(), None).unwrap_err();
        assert!(err.to_string().starts_with("server folder: "), "{err}");
        assert!(!err.to_string().contains('/'), "no path in {err}");
    }

    #[test]
    fn created_files_and_folders_belong_to_the_owner() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: changing owners needs root");
            return;
        }
        let nobody = nix::unistd::User::from_name("nobody")
            .ok()
            .flatten()
            .map_or((65534, 65534), |u| (u.uid.as_raw(), u.gid.as_raw()));
        let (_base, server, _) = layout();
        let cwd = server.join("alpha");
        let mut files = arma_files();
        files.push(planned(
            "profiles/home/server/server.Arma3Profile",
            "x",
            false,
        ));
        write_planned(&cwd, &files, Some(nobody)).unwrap();
        for p in [
            "",
            "server.cfg",
            "basic.cfg",
            "battleye",
            "battleye/beserver_x64.cfg",
            "profiles",
            "profiles/home",
            "profiles/home/server",
            "profiles/home/server/server.Arma3Profile",
        ] {
            let meta = fs::symlink_metadata(cwd.join(p)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), nobody, "{p:?}");
        }
        let meta = fs::metadata(cwd.join("battleye/beserver_x64.cfg")).unwrap();
        assert_eq!(
            meta.mode() & 0o777,
            0o600,
            "secret stays private to the owner"
        );
        // Without an owner, new files are the agent's.
        write_planned(&cwd, &[planned("new.cfg", "x", false)], None).unwrap();
        assert_eq!(fs::metadata(cwd.join("new.cfg")).unwrap().uid(), 0);
    }
}
