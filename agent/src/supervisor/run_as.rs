//! Which user a game process runs as, and handing the files it needs to that user.
//!
//! A game loads third-party mods; running it as the agent's user would let a mod read
//! the agent's key (and connect as the agent), every stored spec with its passwords and
//! the other servers' folders. So a root agent starts games as an unprivileged game
//! user (std's `Command::uid`/`gid`: `setgid`, `setgroups(0)` — supplementary groups
//! cleared — then `setuid` in the child), and a non-root agent refuses to start games
//! unless its configuration accepts running them under its own user.
//!
//! `PR_SET_NO_NEW_PRIVS` is set on the agent process itself before the first spawn
//! (children inherit it and it cannot be unset): the workspace forbids `unsafe`, which
//! a `pre_exec` hook needs, and the agent never gains privileges through `exec` itself.

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid, User, fchown};

use crate::config::RunAsConfig;

/// Who the games of this agent run as, decided once at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// The agent is root: games run as this user and its primary group.
    User {
        /// The user's name (for `USER`/`LOGNAME`).
        name: String,
        /// Its uid.
        uid: u32,
        /// Its primary group.
        gid: u32,
    },
    /// A non-root agent whose configuration allows games under its own user.
    AgentUser,
    /// Every server start is refused, for this reason.
    Refused(String),
}

/// The configuration cannot work on this host.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RunAsError {
    /// A non-root agent cannot switch to another user.
    #[error(
        "run_as.user = {0:?} needs the agent to run as root (a normal user cannot start \
         processes as another user); run the agent as root, or unset run_as.user and set \
         run_as.allow_agent_user = true"
    )]
    NeedsRoot(String),
    /// The configured user does not exist.
    #[error(
        "run_as.user {0:?} does not exist on this host (create it, e.g. `useradd --system \
         --no-create-home {0}`)"
    )]
    UnknownUser(String),
    /// Games must not run as root.
    #[error("run_as.user {0:?} is root; games must run as an unprivileged user")]
    Root(String),
    /// The user database cannot be read.
    #[error("cannot look up user {user:?}: {errno}")]
    Lookup {
        /// The user.
        user: String,
        /// The cause.
        errno: Errno,
    },
}

fn lookup(name: &str) -> Result<Option<User>, RunAsError> {
    let err = |errno| RunAsError::Lookup {
        user: name.to_owned(),
        errno,
    };
    match User::from_name(name).map_err(err)? {
        Some(user) => Ok(Some(user)),
        None => match name.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)).map_err(err),
            Err(_) => Ok(None),
        },
    }
}

impl RunAs {
    /// Decides from the configuration and the agent's own user. An explicitly
    /// configured user that cannot be used is an error (the agent does not start); the
    /// default user missing, or a non-root agent without `allow_agent_user`, only
    /// refuses server starts, with a reason that says what to configure.
    pub fn resolve(config: &RunAsConfig) -> Result<Self, RunAsError> {
        Self::resolve_as(config, nix::unistd::geteuid().as_raw())
    }

    fn resolve_as(config: &RunAsConfig, euid: u32) -> Result<Self, RunAsError> {
        let name = config.user_name();
        if euid != 0 {
            if let Some(user) = &config.user {
                let own = lookup(user)?.is_some_and(|u| u.uid.as_raw() == euid);
                if !own {
                    return Err(RunAsError::NeedsRoot(user.clone()));
                }
            }
            return Ok(if config.allow_agent_user {
                Self::AgentUser
            } else {
                Self::Refused(format!(
                    "the agent does not run as root, so it cannot start games as another \
                     user, and games under the agent's own user could read its key and \
                     stored passwords; run the agent as root (games then run as {name}), \
                     or set run_as.allow_agent_user = true to accept that"
                ))
            });
        }
        match lookup(name)? {
            Some(user) if user.uid.is_root() => Err(RunAsError::Root(name.to_owned())),
            Some(user) => Ok(Self::User {
                name: user.name,
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            }),
            None if config.user.is_some() => Err(RunAsError::UnknownUser(name.to_owned())),
            None => Ok(Self::Refused(format!(
                "the game user {name} does not exist on this host: create it (e.g. \
                 `useradd --system --no-create-home {name}`) or set run_as.user"
            ))),
        }
    }

    /// (uid, gid) that files for the game must be owned by; `None` when games run as
    /// the agent's user (what the agent creates is already theirs).
    pub fn owner(&self) -> Option<(u32, u32)> {
        match self {
            Self::User { uid, gid, .. } => Some((*uid, *gid)),
            Self::AgentUser | Self::Refused(_) => None,
        }
    }
}

/// Sets `PR_SET_NO_NEW_PRIVS` on the agent process (inherited by every child): a game
/// cannot gain privileges through a setuid binary or file capabilities.
pub(crate) fn no_new_privs() -> std::io::Result<()> {
    nix::sys::prctl::set_no_new_privs().map_err(std::io::Error::from)
}

/// Hands the server folder itself to the game user, so the game can write what it
/// creates next to its configuration (profiles, logs, saves). `write_planned` already
/// gives the files and folders it creates to the game user; this covers a server folder
/// the admin created beforehand. The folder is opened with `O_NOFOLLOW` and changed
/// through its handle (`fchown`), so a link planted in its place is never followed.
pub(crate) fn give_folder_to_game(server_dir: &Path, (uid, gid): (u32, u32)) -> Result<(), String> {
    let root = nix::fcntl::open(
        server_dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open the server folder: {e}"))?;
    fchown(&root, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .map_err(|e| format!("cannot hand the server folder to the game user: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(user: Option<&str>, allow: bool) -> RunAsConfig {
        RunAsConfig {
            user: user.map(str::to_owned),
            allow_agent_user: allow,
        }
    }

    #[test]
    fn a_non_root_agent_refuses_its_own_user_unless_allowed() {
        let RunAs::Refused(reason) = RunAs::resolve_as(&config(None, false), 1000).unwrap() else {
            panic!("expected Refused");
        };
        assert!(reason.contains("run_as.allow_agent_user"), "{reason}");
        assert_eq!(
            RunAs::resolve_as(&config(None, true), 1000).unwrap(),
            RunAs::AgentUser
        );
        // Another user needs root, whatever allow_agent_user says.
        for allow in [false, true] {
            assert_eq!(
                RunAs::resolve_as(&config(Some("nobody"), allow), 1000),
                Err(RunAsError::NeedsRoot("nobody".into()))
            );
        }
    }

    #[test]
    fn a_root_agent_drops_to_the_game_user_and_never_to_root() {
        let RunAs::User { uid, name, .. } =
            RunAs::resolve_as(&config(Some("nobody"), false), 0).unwrap()
        else {
            panic!("expected User");
        };
        assert_eq!((uid, name.as_str()), (65534, "nobody"));
        // allow_agent_user does not make a root agent run games as root.
        assert!(matches!(
            RunAs::resolve_as(&config(Some("nobody"), true), 0),
            Ok(RunAs::User { .. })
        ));
        assert_eq!(
            RunAs::resolve_as(&config(Some("root"), false), 0),
            Err(RunAsError::Root("root".into()))
        );
        assert_eq!(
            RunAs::resolve_as(&config(Some("0"), false), 0),
            Err(RunAsError::Root("0".into()))
        );
        assert_eq!(
            RunAs::resolve_as(&config(Some("no-such-user-lg"), false), 0),
            Err(RunAsError::UnknownUser("no-such-user-lg".into()))
        );
    }
}
