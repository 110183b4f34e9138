//! The executable allow-list: which programs the agent may start, decided on the
//! canonical path (no symlink leads out of an allowed place) and on who could have
//! changed the file (nobody but root or the agent's own user).
//!
//! Entries come from the host's own configuration, never from the controller: an
//! operator who can edit a server's `executable_path` must not be able to name any
//! program on the host. A file entry allows exactly that file; a folder entry allows
//! the game adapters' executable names anywhere below it (a Steam install folder).
//!
//! Blocking (file system); call from `spawn_blocking` or at start-up.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::StartError;

/// One configured entry, canonicalised when the allow-list was built. An entry that
/// did not exist then (a game installed later) is resolved at each check instead.
#[derive(Clone, Debug)]
struct Entry {
    configured: PathBuf,
    canonical: Option<PathBuf>,
}

/// The resolved allow-list (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    entries: Vec<Entry>,
    /// File names a folder entry allows.
    names: Vec<String>,
    /// Besides root, the only owner an allowed file or folder may have.
    agent_uid: u32,
}

/// Which entry allowed a file.
enum Place {
    File,
    Folder(PathBuf),
}

impl AllowList {
    /// Builds the allow-list from absolute `entries` (validated by the configuration);
    /// `names` are the executable names a folder entry allows.
    pub fn new(entries: &[PathBuf], names: Vec<String>) -> Self {
        let entries = entries
            .iter()
            .map(|configured| {
                let canonical = fs::canonicalize(configured).ok();
                if canonical.is_none() {
                    tracing::warn!(entry = %configured.display(), "Allowed executable path does not exist (yet); it is resolved again at each start.");
                }
                Entry {
                    configured: configured.clone(),
                    canonical,
                }
            })
            .collect();
        Self {
            entries,
            names,
            agent_uid: nix::unistd::geteuid().as_raw(),
        }
    }

    /// Whether no entry is configured (every start is refused).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks `exe` and returns its canonical path, the one to spawn (so a symlink
    /// swapped in after the check changes nothing). Refusals do not say whether a
    /// path outside the allowed places exists; the details are logged here.
    pub(crate) fn check(&self, exe: &Path) -> Result<PathBuf, StartError> {
        if self.entries.is_empty() {
            return Err(StartError::NoAllowedExecutables);
        }
        let refuse = |why: &str| {
            tracing::warn!(executable = %exe.display(), reason = why, "Executable refused.");
            StartError::NotAllowed
        };
        if !exe.is_absolute() {
            return Err(refuse("not an absolute path"));
        }
        let real = fs::canonicalize(exe).map_err(|e| refuse(&e.to_string()))?;
        let place = self
            .place_of(&real)
            .ok_or_else(|| refuse("outside every allowed_executables entry"))?;
        let meta = fs::metadata(&real).map_err(|e| refuse(&e.to_string()))?;
        if !meta.is_file() {
            return Err(refuse("not a regular file"));
        }
        let unsafe_file = |reason: String| {
            tracing::warn!(executable = %real.display(), %reason, "Executable refused.");
            StartError::Executable { reason }
        };
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(unsafe_file("the file is not executable".into()));
        }
        self.check_owner(&meta, "the file").map_err(unsafe_file)?;
        // The folders someone could swap the file in: for a file entry its own folder,
        // for a folder entry every folder from the entry down to the file.
        let parent = real.parent().unwrap_or(Path::new("/"));
        let folders: Vec<&Path> = match &place {
            Place::File => vec![parent],
            Place::Folder(root) => parent
                .ancestors()
                .take_while(|a| a.starts_with(root))
                .collect(),
        };
        for folder in folders {
            let meta = fs::metadata(folder).map_err(|e| refuse(&e.to_string()))?;
            self.check_owner(&meta, "a folder on its path")
                .map_err(|reason| {
                    tracing::warn!(folder = %folder.display(), "Executable folder refused.");
                    unsafe_file(reason)
                })?;
        }
        Ok(real)
    }

    /// The entry that allows the canonical path `real`, if any.
    fn place_of(&self, real: &Path) -> Option<Place> {
        let name = real.file_name().and_then(|n| n.to_str())?;
        for entry in &self.entries {
            let Some(allowed) = entry
                .canonical
                .clone()
                .or_else(|| fs::canonicalize(&entry.configured).ok())
            else {
                continue;
            };
            if allowed == real {
                return Some(Place::File);
            }
            if real.starts_with(&allowed)
                && allowed.is_dir()
                && self.names.iter().any(|n| n == name)
            {
                return Some(Place::Folder(allowed));
            }
        }
        None
    }

    /// Only root or the agent's user may own it, and nobody else may write to it.
    fn check_owner(&self, meta: &fs::Metadata, what: &str) -> Result<(), String> {
        if meta.mode() & 0o022 != 0 {
            return Err(format!("{what} is writable by group or others"));
        }
        if meta.uid() != 0 && meta.uid() != self.agent_uid {
            return Err(format!(
                "{what} is owned by a user other than root or the agent's"
            ));
        }
        Ok(())
    }
}
