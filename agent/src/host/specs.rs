//! The last spec the controller sent for each server, plus whether it should run, kept
//! on disk so the agent keeps (re)starting servers while the controller is away and
//! after its own restart.

use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use languard_shared::wire::{ServerId, ServerSpec};
use serde::{Deserialize, Serialize};
use tracing::warn;

/// A persisted spec. It holds the game's admin passwords (e.g. the RCon password),
/// so the file is mode 0600.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSpec {
    /// The spec.
    pub spec: ServerSpec,
    /// Started by request and not stopped since: restart after an agent restart.
    pub desired_running: bool,
}

/// The folder of persisted specs.
#[derive(Debug, Clone)]
pub struct SpecStore {
    dir: PathBuf,
}

impl SpecStore {
    /// Uses (and creates, mode 0700) `dir`.
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Self { dir })
    }

    fn path(&self, id: &ServerId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Every readable spec; unreadable files are reported and skipped.
    pub fn load_all(&self) -> Vec<StoredSpec> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<StoredSpec>(&b).map_err(|e| e.to_string()))
            {
                Ok(stored) => out.push(stored),
                Err(e) => warn!(file = %path.display(), error = %e, "Stored spec skipped."),
            }
        }
        out.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
        out
    }

    /// Writes atomically (temp file, fsync, rename).
    pub fn save(&self, stored: &StoredSpec) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(stored).map_err(io::Error::other)?;
        let target = self.path(&stored.spec.id);
        let tmp = target.with_extension("json.tmp");
        write_private(&tmp, &bytes)?;
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Forgets a server's spec.
    pub fn remove(&self, id: &ServerId) -> io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}
