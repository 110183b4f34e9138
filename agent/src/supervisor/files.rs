//! Writing planned files: paths confined to the server folder, atomic replacement.
//!
//! Blocking; call from `spawn_blocking`. Races with a hostile local user swapping
//! directories between check and write are out of scope (the agent owns the folder).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::PlannedFile;

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

/// Writes every file atomically inside `cwd` (created if missing). All paths are checked
/// before anything is written.
pub(crate) fn write_planned(cwd: &Path, files: &[PlannedFile]) -> Result<(), String> {
    for f in files {
        validate_relative(&f.path)?;
    }
    fs::create_dir_all(cwd).map_err(|e| format!("server folder {}: {e}", cwd.display()))?;
    let root =
        fs::canonicalize(cwd).map_err(|e| format!("server folder {}: {e}", cwd.display()))?;
    if !root.is_dir() {
        return Err(format!(
            "server folder {} is not a directory",
            cwd.display()
        ));
    }
    let mut targets = Vec::with_capacity(files.len());
    for f in files {
        targets.push(prepare_parent(&root, &f.path)?);
    }
    for (f, (dir, name)) in files.iter().zip(targets) {
        let mode = if f.secret { 0o600 } else { 0o644 };
        if f.secret && dir != root {
            // The folder of a secret file (e.g. `battleye/`) also gets what the game
            // writes there itself (bans, RCon logs): private to the agent's user.
            fs::set_permissions(&dir, Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        atomic_write(&dir, &name, &f.contents, mode)
            .map_err(|e| format!("{}: {e}", f.path.display()))?;
    }
    Ok(())
}

/// Walks (creating) the directories of `rel` below `root` without ever leaving it.
/// Returns the real directory and the file name.
fn prepare_parent(root: &Path, rel: &Path) -> Result<(PathBuf, OsString), String> {
    let comps: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    let Some((name, dirs)) = comps.split_last() else {
        return Err(format!("{:?}: empty file path", rel));
    };
    let show = rel.display();
    let mut cur = root.to_path_buf();
    for d in dirs {
        let next = cur.join(d);
        match fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                let real = fs::canonicalize(&next).map_err(|e| format!("{show}: {e}"))?;
                if !real.starts_with(root) {
                    return Err(format!(
                        "{show}: symlink {} leads outside the server folder",
                        next.display()
                    ));
                }
                if !real.is_dir() {
                    return Err(format!("{show}: {} is not a directory", next.display()));
                }
                cur = real;
            }
            Ok(m) if m.is_dir() => cur = next,
            Ok(_) => return Err(format!("{show}: {} is not a directory", next.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&next)
                    .map_err(|e| format!("{show}: creating {}: {e}", next.display()))?;
                cur = next;
            }
            Err(e) => return Err(format!("{show}: {}: {e}", next.display())),
        }
    }
    let target = cur.join(name);
    match fs::symlink_metadata(&target) {
        Ok(m) if m.file_type().is_symlink() => {
            Err(format!("{show}: is a symlink; refusing to replace it"))
        }
        Ok(m) if m.is_dir() => Err(format!("{show}: is a directory")),
        Ok(_) => Ok((cur, (*name).to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((cur, (*name).to_owned())),
        Err(e) => Err(format!("{show}: {e}")),
    }
}

/// Temp file in the same directory, fsync, rename over the target, fsync the directory.
pub(crate) fn atomic_write(dir: &Path, name: &OsStr, contents: &[u8], mode: u32) -> io::Result<()> {
    let tmp = dir.join(format!(
        ".{}.{}-{:08x}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // Exact mode regardless of umask.
        f.set_permissions(Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, dir.join(name))?;
        File::open(dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}
