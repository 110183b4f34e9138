//! Race-free file access below one folder that someone else may write to.
//!
//! Game processes own their server folder (they run under an unprivileged user) while
//! the agent may run as root. A game or mod can plant symlinks and hard links there and
//! swap them while the agent works, to make the agent read, write, list or delete files
//! elsewhere (`/etc/shadow`, the agent's `identity.key`; see CVE-2023-25152,
//! CVE-2023-25168, CVE-2024-27102 of a competitor). Checking a path and then opening it
//! by path loses that race, so nothing here opens a path below the folder from `/`:
//!
//! - The folder is opened once as a directory handle ([`Beneath::open`]). Its own path
//!   comes from the agent's configuration and is trusted (an admin may symlink it);
//!   everything below it is not.
//! - Every path below it is resolved relative to that handle by `openat2` with
//!   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, or, where the kernel
//!   has no `openat2` (before Linux 5.6, or a seccomp filter answering `ENOSYS`), by a
//!   walk that opens one name at a time with `openat(O_NOFOLLOW | O_DIRECTORY)`
//!   ([`Resolver`]). No symlink is ever followed, not even one pointing back inside: its
//!   target can change between two calls, only "never follow" is race-free.
//! - What was opened is checked on the handle (`fstat`), never again by path: a file
//!   must be a regular file with exactly one link (a hard link shares its inode with a
//!   name elsewhere, maybe a file the game could not read itself), a folder a folder.
//! - A write goes to a fresh temporary file (`O_CREAT | O_EXCL | O_NOFOLLOW`) in the
//!   parent's handle, is fsynced and `renameat`ed within that same handle, so a link
//!   swapped in at the last moment is replaced, never written through. A delete is an
//!   `unlinkat` in the parent's handle: it removes a name in the folder, never anything
//!   a name points to.
//!
//! What remains possible: the game can move a folder the agent holds open to another
//! place it can write to itself; the agent then works in a folder the game controls
//! anyway, never in one the game could not reach.
//!
//! Blocking; call from `spawn_blocking`. Errors are [`FsError`]s whose texts carry no
//! path and no OS message, so they can go to the controller as they are.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use thiserror::Error;

/// Why a file operation below the folder was refused or failed. The texts are what
/// the controller's callers see: no path, no OS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FsError {
    /// Nothing by that name (or a parent folder is missing).
    #[error("not found")]
    NotFound,
    /// A file was expected; this is a folder, a FIFO, a socket or a device.
    #[error("not a regular file")]
    NotAFile,
    /// A folder was expected (as the listed folder or as a parent).
    #[error("not a folder")]
    NotAFolder,
    /// A file operation named a folder.
    #[error("is a folder")]
    IsAFolder,
    /// A symlink sits somewhere on the path.
    #[error("symlinks are not followed")]
    Symlink,
    /// The file has more than one link: it is also a file elsewhere.
    #[error("hard-linked files are refused")]
    HardLinked,
    /// Resolution would leave the folder.
    #[error("outside the server folder")]
    Outside,
    /// Empty, `.`, `..`, or a name holding `/` or NUL.
    #[error("not a plain file name")]
    BadName,
    /// Any other OS error, by its symbolic name only (e.g. `EACCES`, `ENOSPC`).
    #[error("file system error ({0:?})")]
    Io(Errno),
}

impl From<Errno> for FsError {
    fn from(e: Errno) -> Self {
        match e {
            Errno::ENOENT => Self::NotFound,
            Errno::ELOOP => Self::Symlink,
            Errno::EXDEV => Self::Outside,
            Errno::ENOTDIR => Self::NotAFolder,
            Errno::EISDIR => Self::IsAFolder,
            other => Self::Io(other),
        }
    }
}

impl FsError {
    /// Classifies an `std::io::Error` the same way as an [`Errno`].
    pub fn from_io(e: &std::io::Error) -> Self {
        e.raw_os_error()
            .map_or(Self::Io(Errno::EIO), |raw| Errno::from_raw(raw).into())
    }
}

impl From<FsError> for std::io::Error {
    fn from(e: FsError) -> Self {
        match e {
            FsError::Io(errno) => errno.into(),
            FsError::NotFound => std::io::Error::new(std::io::ErrorKind::NotFound, e),
            other => std::io::Error::other(other),
        }
    }
}

/// How paths below the folder are resolved. Both refuse every symlink and every way
/// out; [`Resolver::Walk`] exists for kernels without `openat2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// One `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`.
    Openat2,
    /// `openat(O_NOFOLLOW)` per name, each parent opened with `O_DIRECTORY`.
    Walk,
}

impl Resolver {
    /// `openat2` when this kernel has it (probed once), else the walk.
    fn best(probe_dir: BorrowedFd<'_>) -> Self {
        static HAS_OPENAT2: OnceLock<bool> = OnceLock::new();
        let has = *HAS_OPENAT2.get_or_init(|| openat2_works(probe_dir));
        if has { Self::Openat2 } else { Self::Walk }
    }
}

/// Whether `openat2` answers at all. `EPERM` on `.` of a folder we hold open can only
/// come from a seccomp filter (older container runtimes answered unknown syscalls so).
#[cfg(target_os = "linux")]
fn openat2_works(dir: BorrowedFd<'_>) -> bool {
    let how = nix::fcntl::OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(beneath_flags());
    !matches!(
        nix::fcntl::openat2(dir, ".", how),
        Err(Errno::ENOSYS | Errno::EPERM)
    )
}

#[cfg(not(target_os = "linux"))]
fn openat2_works(_dir: BorrowedFd<'_>) -> bool {
    false
}

#[cfg(target_os = "linux")]
fn beneath_flags() -> nix::fcntl::ResolveFlag {
    use nix::fcntl::ResolveFlag;
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// One entry of a listing: only folders and single-link regular files are shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name as stored.
    pub name: OsString,
    /// A folder rather than a file.
    pub dir: bool,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Last modification, milliseconds since the Unix epoch.
    pub modified_ms: i64,
}

/// Who should own what a write creates: `(uid, gid)`, or the agent's own user.
pub type Owner = Option<(u32, u32)>;

/// An open folder; every operation resolves below it and nowhere else.
#[derive(Debug)]
pub struct Beneath {
    root: OwnedFd,
    resolver: Resolver,
}

/// Flags every open here carries: no descriptor leaks into a game process we spawn.
fn base() -> OFlag {
    OFlag::O_CLOEXEC | OFlag::O_NOCTTY
}

fn dir_flags() -> OFlag {
    base() | OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW
}

/// `O_NONBLOCK` so a FIFO planted under a file's name cannot hang the open; it is
/// then refused as not a regular file.
fn file_flags() -> OFlag {
    base() | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK
}

/// What an entry is, from its `st_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    /// FIFO, socket, device.
    Other,
}

fn kind(st: &FileStat) -> Kind {
    let t = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if t == SFlag::S_IFDIR {
        Kind::Dir
    } else if t == SFlag::S_IFREG {
        Kind::File
    } else if t == SFlag::S_IFLNK {
        Kind::Symlink
    } else {
        Kind::Other
    }
}

/// A single plain name: not empty, not `.` or `..`, no `/` or NUL.
fn check_name(name: &OsStr) -> Result<(), FsError> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.iter().any(|&c| c == b'/' || c == 0) {
        return Err(FsError::BadName);
    }
    Ok(())
}

impl Beneath {
    /// Opens `folder` (following symlinks in its own, trusted path) and picks the best
    /// [`Resolver`] this kernel offers.
    pub fn open(folder: &Path) -> Result<Self, FsError> {
        let root = nix::fcntl::open(
            folder,
            base() | OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )?;
        let resolver = Resolver::best(root.as_fd());
        Ok(Self { root, resolver })
    }

    /// Like [`Beneath::open`], with the resolver chosen by the caller (tests of the walk).
    pub fn open_with(folder: &Path, resolver: Resolver) -> Result<Self, FsError> {
        let mut this = Self::open(folder)?;
        this.resolver = resolver;
        Ok(this)
    }

    /// The resolver in use.
    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// The folder itself.
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Opens `names` (relative to the folder) with `flags`, refusing symlinks anywhere.
    fn resolve(&self, names: &[&OsStr], flags: OFlag) -> Result<OwnedFd, FsError> {
        for name in names {
            check_name(name)?;
        }
        if names.is_empty() {
            // `.` of an open folder cannot be a symlink.
            return Ok(nix::fcntl::openat(&self.root, ".", flags, Mode::empty())?);
        }
        match self.resolver {
            Resolver::Openat2 => self.resolve_openat2(names, flags),
            Resolver::Walk => walk(self.root.as_fd(), names, flags),
        }
    }

    #[cfg(target_os = "linux")]
    fn resolve_openat2(&self, names: &[&OsStr], flags: OFlag) -> Result<OwnedFd, FsError> {
        let mut path = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
        }
        let path = OsStr::from_bytes(&path);
        // RESOLVE_NO_SYMLINKS covers the last name too; O_NOFOLLOW would only turn
        // its ELOOP into ENOTDIR for folders and blur the message.
        let how = nix::fcntl::OpenHow::new()
            .flags(flags.difference(OFlag::O_NOFOLLOW))
            .resolve(beneath_flags());
        // EAGAIN means the kernel saw a concurrent rename it could not rule out; it
        // asks the caller to retry.
        let mut tries = 0;
        loop {
            match nix::fcntl::openat2(&self.root, path, how) {
                Err(Errno::EAGAIN) if tries < 8 => tries += 1,
                other => return Ok(other?),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn resolve_openat2(&self, names: &[&OsStr], flags: OFlag) -> Result<OwnedFd, FsError> {
        walk(self.root.as_fd(), names, flags)
    }

    /// Opens the folder at `names` (`[]` is the folder itself).
    pub fn open_dir(&self, names: &[&OsStr]) -> Result<OwnedFd, FsError> {
        let fd = self.resolve(names, dir_flags())?;
        if kind(&nix::sys::stat::fstat(&fd)?) != Kind::Dir {
            return Err(FsError::NotAFolder);
        }
        Ok(fd)
    }

    /// Opens the regular, single-link file at `names` for reading; returns it and its
    /// size.
    pub fn open_file(&self, names: &[&OsStr]) -> Result<(File, u64), FsError> {
        if names.is_empty() {
            return Err(FsError::BadName);
        }
        let fd = self.resolve(names, file_flags())?;
        let st = nix::sys::stat::fstat(&fd)?;
        check_file(&st)?;
        Ok((File::from(fd), u64::try_from(st.st_size).unwrap_or(0)))
    }

    /// Reads the file at `names` if it holds at most `max_bytes`; `Ok(Err(size))`
    /// when it is larger.
    pub fn read(&self, names: &[&OsStr], max_bytes: u64) -> Result<Result<Vec<u8>, u64>, FsError> {
        let (file, size) = self.open_file(names)?;
        if size > max_bytes {
            return Ok(Err(size));
        }
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        // The file may grow after the fstat; never read past the limit.
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(io_errno)?;
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if len > max_bytes {
            return Ok(Err(len));
        }
        Ok(Ok(data))
    }

    /// Lists the folder at `names`: folders and single-link regular files, each typed
    /// by `fstatat(AT_SYMLINK_NOFOLLOW)` on the folder's handle. Symlinks, hard-linked
    /// files and special files are left out: no operation here would follow or touch
    /// them, and their metadata may describe a file outside.
    pub fn list(&self, names: &[&OsStr]) -> Result<Vec<Entry>, FsError> {
        let dir = self.open_dir(names)?;
        let mut stream = Dir::openat(
            &dir,
            ".",
            base() | OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )?;
        let mut found = Vec::new();
        for entry in stream.iter() {
            let entry = entry?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name != "." && name != ".." {
                found.push(name.to_owned());
            }
        }
        let mut out = Vec::with_capacity(found.len());
        for name in found {
            let st =
                match nix::sys::stat::fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                {
                    Ok(st) => st,
                    // Removed while we listed.
                    Err(Errno::ENOENT) => continue,
                    Err(e) => return Err(e.into()),
                };
            let is_dir = match kind(&st) {
                Kind::Dir => true,
                Kind::File if st.st_nlink == 1 => false,
                _ => continue,
            };
            out.push(Entry {
                name,
                dir: is_dir,
                size: if is_dir {
                    0
                } else {
                    u64::try_from(st.st_size).unwrap_or(0)
                },
                modified_ms: st
                    .st_mtime
                    .saturating_mul(1000)
                    .saturating_add(st.st_mtime_nsec / 1_000_000),
            });
        }
        Ok(out)
    }

    /// Opens the folder at `names`, creating missing folders (mode 0755, owned by
    /// `owner` when given) one name at a time. Never follows a symlink: each step is an
    /// `openat(O_NOFOLLOW | O_DIRECTORY)` on the previous step's handle.
    pub fn create_dirs(&self, names: &[&OsStr], owner: Owner) -> Result<OwnedFd, FsError> {
        let mut cur = nix::fcntl::openat(&self.root, ".", dir_flags(), Mode::empty())?;
        for name in names {
            check_name(name)?;
            let next = match nix::fcntl::openat(&cur, *name, dir_flags(), Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    let created =
                        match nix::sys::stat::mkdirat(&cur, *name, Mode::from_bits_truncate(0o755))
                        {
                            Ok(()) => true,
                            // Created by someone else meanwhile: use it, it is not ours.
                            Err(Errno::EEXIST) => false,
                            Err(e) => return Err(e.into()),
                        };
                    // Whatever now has that name is opened without following it; a
                    // symlink swapped in meanwhile fails here.
                    let fd = open_step(cur.as_fd(), name, dir_flags())?;
                    if created && let Some((uid, gid)) = owner {
                        chown(fd.as_fd(), uid, gid)?;
                    }
                    fd
                }
                Err(e) => return Err(classify(cur.as_fd(), name, e)),
            };
            cur = next;
        }
        Ok(cur)
    }

    /// Deletes the file `names` (never a folder). A symlink is deleted itself (the
    /// link, not its target: `unlinkat` never follows); a hard-linked file is refused,
    /// so no operation here ever touches an inode that also has a name elsewhere. If
    /// the entry is swapped between the check and the `unlinkat`, what goes is still
    /// only a name in this folder.
    pub fn delete(&self, names: &[&OsStr]) -> Result<(), FsError> {
        let Some((name, parents)) = names.split_last() else {
            return Err(FsError::BadName);
        };
        check_name(name)?;
        let dir = self.open_dir(parents)?;
        let st = nix::sys::stat::fstatat(&dir, *name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        match kind(&st) {
            Kind::Symlink => {}
            Kind::Dir => return Err(FsError::IsAFolder),
            Kind::File if st.st_nlink > 1 => return Err(FsError::HardLinked),
            Kind::File => {}
            _ => return Err(FsError::NotAFile),
        }
        nix::unistd::unlinkat(&dir, *name, UnlinkatFlags::NoRemoveDir)?;
        Ok(())
    }
}

/// A file handle's metadata: a regular file with one link.
fn check_file(st: &FileStat) -> Result<(), FsError> {
    match kind(st) {
        Kind::Dir => Err(FsError::IsAFolder),
        Kind::File if st.st_nlink > 1 => Err(FsError::HardLinked),
        Kind::File => Ok(()),
        _ => Err(FsError::NotAFile),
    }
}

fn io_errno(e: std::io::Error) -> FsError {
    FsError::from_io(&e)
}

fn chown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), FsError> {
    Ok(nix::unistd::fchown(
        fd,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
    )?)
}

/// The fallback resolver: opens `names` below `root` one name at a time, each parent
/// with `O_DIRECTORY | O_NOFOLLOW` on the previous handle, the last one with `flags`
/// plus `O_NOFOLLOW`. `..` never reaches here ([`check_name`]), so every step stays a
/// child of the previous one.
pub fn walk(root: BorrowedFd<'_>, names: &[&OsStr], flags: OFlag) -> Result<OwnedFd, FsError> {
    let Some((last, parents)) = names.split_last() else {
        return Err(FsError::BadName);
    };
    let mut held: Option<OwnedFd> = None;
    for name in parents {
        check_name(name)?;
        let cur = held.as_ref().map_or(root, AsFd::as_fd);
        held = Some(open_step(cur, name, dir_flags())?);
    }
    check_name(last)?;
    let cur = held.as_ref().map_or(root, AsFd::as_fd);
    open_step(cur, last, flags | OFlag::O_NOFOLLOW)
}

/// One `openat(O_NOFOLLOW)` step; a failure is told apart by what the name is.
fn open_step(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag) -> Result<OwnedFd, FsError> {
    nix::fcntl::openat(dir, name, flags | OFlag::O_NOFOLLOW, Mode::empty())
        .map_err(|e| classify(dir, name, e))
}

/// `O_NOFOLLOW | O_DIRECTORY` on a symlink fails with `ELOOP` or `ENOTDIR` depending on
/// the flags; look at the entry itself to say which it was (for the message only).
fn classify(dir: BorrowedFd<'_>, name: &OsStr, e: Errno) -> FsError {
    if matches!(e, Errno::ELOOP | Errno::ENOTDIR)
        && let Ok(st) = nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        && kind(&st) == Kind::Symlink
    {
        return FsError::Symlink;
    }
    e.into()
}

/// Refuses to replace `name` in `dir` when it is a symlink, a folder or a hard-linked
/// file: each is a sign of tampering the operator should see. (Replacing would be safe
/// anyway: the rename swaps the name, never writes through it.)
pub fn check_replaceable(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), FsError> {
    check_name(name)?;
    match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(st) => match kind(&st) {
            Kind::Symlink => Err(FsError::Symlink),
            _ => check_file(&st),
        },
    }
}

/// Writes `contents` as `name` in `dir` atomically: a fresh temporary file
/// (`O_CREAT | O_EXCL | O_NOFOLLOW`, so nothing planted under its name is opened),
/// owned by `owner` and set to exactly `mode` on the handle before it gets its name,
/// fsynced, `renameat` within `dir`, then `dir` fsynced.
pub fn write_file(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    contents: &[u8],
    mode: u32,
    owner: Owner,
) -> Result<(), FsError> {
    check_replaceable(dir, name)?;
    let tmp = format!(
        ".languard-{}-{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    );
    let mode = Mode::from_bits_truncate(mode);
    let fd = nix::fcntl::openat(
        dir,
        tmp.as_str(),
        base() | OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW,
        // Group and others get nothing until the exact mode is set below.
        mode & Mode::S_IRWXU,
    )?;
    let written = (|| {
        if let Some((uid, gid)) = owner {
            chown(fd.as_fd(), uid, gid)?;
        }
        // After the chown (which may clear mode bits), and regardless of umask.
        nix::sys::stat::fchmod(&fd, mode)?;
        let mut file = File::from(fd);
        file.write_all(contents).map_err(io_errno)?;
        file.sync_all().map_err(io_errno)?;
        drop(file);
        nix::fcntl::renameat(dir, tmp.as_str(), dir, name)?;
        Ok::<(), FsError>(())
    })();
    if let Err(e) = written {
        let _ = nix::unistd::unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        return Err(e);
    }
    nix::unistd::fsync(dir)?;
    Ok(())
}

/// Sets a folder's mode on its handle (never by path).
pub fn set_mode(dir: BorrowedFd<'_>, mode: u32) -> Result<(), FsError> {
    Ok(nix::sys::stat::fchmod(dir, Mode::from_bits_truncate(mode))?)
}

/// Sets a handle's owner.
pub fn set_owner(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), FsError> {
    chown(fd, uid, gid)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    const BOTH: [Resolver; 2] = [Resolver::Openat2, Resolver::Walk];

    /// `base/in` is the folder, `base/out/shadow` what must stay out of reach.
    fn layout() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let base = tempfile::tempdir().unwrap();
        let inside = base.path().join("in");
        let outside = base.path().join("out");
        fs::create_dir_all(inside.join("sub")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(inside.join("sub/file"), "inside").unwrap();
        fs::write(outside.join("shadow"), "SHADOW").unwrap();
        (base, inside, outside)
    }

    fn n(path: &str) -> Vec<&OsStr> {
        path.split('/').map(OsStr::new).collect()
    }

    #[test]
    fn this_kernel_has_openat2() {
        // The tests of `Resolver::Openat2` below would silently test the walk twice.
        let (_base, inside, _) = layout();
        assert_eq!(
            Beneath::open(&inside).unwrap().resolver(),
            Resolver::Openat2
        );
    }

    #[test]
    fn the_walk_opens_plain_paths_and_refuses_every_link() {
        let (_base, inside, outside) = layout();
        symlink(&outside, inside.join("dirlink")).unwrap();
        symlink(outside.join("shadow"), inside.join("sub/filelink")).unwrap();
        symlink("file", inside.join("sub/innerlink")).unwrap();
        let root = File::open(&inside).unwrap();
        let read = |path: &str| {
            walk(root.as_fd(), &n(path), file_flags()).map(|fd| {
                let mut s = String::new();
                File::from(fd).read_to_string(&mut s).unwrap();
                s
            })
        };
        assert_eq!(read("sub/file").unwrap(), "inside");
        assert_eq!(read("dirlink/shadow"), Err(FsError::Symlink));
        assert_eq!(read("sub/filelink"), Err(FsError::Symlink));
        assert_eq!(read("sub/innerlink"), Err(FsError::Symlink));
        assert_eq!(read("sub/missing"), Err(FsError::NotFound));
        assert_eq!(read("sub/file/x"), Err(FsError::NotAFolder));
        assert_eq!(read("sub/../../out/shadow"), Err(FsError::BadName));
        assert_eq!(read(".."), Err(FsError::BadName));
        assert_eq!(
            walk(root.as_fd(), &n("dirlink"), dir_flags()).unwrap_err(),
            FsError::Symlink
        );
        assert_eq!(
            walk(root.as_fd(), &[], file_flags()).unwrap_err(),
            FsError::BadName
        );
    }

    #[test]
    fn both_resolvers_refuse_links_and_hard_links_alike() {
        for resolver in BOTH {
            let (_base, inside, outside) = layout();
            symlink(&outside, inside.join("dirlink")).unwrap();
            symlink(outside.join("shadow"), inside.join("filelink")).unwrap();
            fs::hard_link(outside.join("shadow"), inside.join("hard")).unwrap();
            let b = Beneath::open_with(&inside, resolver).unwrap();
            let r = |p: &str| b.read(&n(p), 1024).map(|r| r.unwrap());
            assert_eq!(r("sub/file").unwrap(), b"inside", "{resolver:?}");
            assert_eq!(r("dirlink/shadow"), Err(FsError::Symlink), "{resolver:?}");
            assert_eq!(r("filelink"), Err(FsError::Symlink), "{resolver:?}");
            assert_eq!(r("hard"), Err(FsError::HardLinked), "{resolver:?}");
            assert_eq!(r("sub"), Err(FsError::IsAFolder), "{resolver:?}");
            assert_eq!(b.list(&n("dirlink")), Err(FsError::Symlink), "{resolver:?}");
            assert_eq!(b.open_dir(&n("sub/file")).unwrap_err(), FsError::NotAFolder);
            let names: Vec<_> = b.list(&[]).unwrap().into_iter().map(|e| e.name).collect();
            assert_eq!(names, ["sub"], "{resolver:?}: links are not listed");
            assert_eq!(b.delete(&n("hard")), Err(FsError::HardLinked));
            assert_eq!(b.delete(&n("dirlink/shadow")), Err(FsError::Symlink));
            assert_eq!(b.delete(&n("sub")), Err(FsError::IsAFolder));
            assert_eq!(
                fs::read_to_string(outside.join("shadow")).unwrap(),
                "SHADOW"
            );
        }
    }

    #[test]
    fn create_dirs_stops_at_a_symlink() {
        let (_base, inside, outside) = layout();
        symlink(&outside, inside.join("link")).unwrap();
        let b = Beneath::open(&inside).unwrap();
        assert_eq!(
            b.create_dirs(&n("link/new"), None).unwrap_err(),
            FsError::Symlink
        );
        assert_eq!(
            b.create_dirs(&n("sub/file/new"), None).unwrap_err(),
            FsError::NotAFolder
        );
        assert!(!outside.join("new").exists());
        let dir = b.create_dirs(&n("a/b/c"), None).unwrap();
        write_file(dir.as_fd(), OsStr::new("f"), b"x", 0o640, None).unwrap();
        assert_eq!(fs::read(inside.join("a/b/c/f")).unwrap(), b"x");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(inside.join("a/b/c/f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    /// The walk under the same race as the files_race tests: a folder flipped between
    /// a real folder and a symlink to the outside while it opens through it.
    #[test]
    fn the_walk_never_crosses_a_symlink_swapped_in_during_the_walk() {
        let (_base, inside, outside) = layout();
        symlink(&outside, inside.join("swap")).unwrap();
        fs::write(outside.join("file"), "SHADOW").unwrap();
        let folder = File::open(&inside).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let flipper = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                nix::fcntl::renameat2(
                    &folder,
                    "sub",
                    &folder,
                    "swap",
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .unwrap();
            }
        });
        let b = Beneath::open_with(&inside, Resolver::Walk).unwrap();
        for _ in 0..2_000 {
            match b.read(&n("sub/file"), 1024) {
                Ok(data) => assert_eq!(data.unwrap(), b"inside"),
                Err(e) => assert!(
                    matches!(
                        e,
                        FsError::Symlink | FsError::NotFound | FsError::NotAFolder
                    ),
                    "{e:?}"
                ),
            }
        }
        stop.store(true, Ordering::Relaxed);
        flipper.join().unwrap();
        assert_eq!(fs::read_to_string(outside.join("file")).unwrap(), "SHADOW");
    }

    #[test]
    fn errors_carry_no_os_text() {
        assert_eq!(
            FsError::Io(Errno::EACCES).to_string(),
            "file system error (EACCES)"
        );
        assert_eq!(FsError::from(Errno::ENOENT).to_string(), "not found");
    }
}
