//! The game registry: everything the controller knows about one game, behind one
//! [`Game`] trait, so services, API and link stay game-neutral (DESIGN.md, "Games").
//! A game owns its config section kinds (and which of their fields are secret), their
//! validation, the preview and real files, the import of existing files, the
//! [`GameSpec`] sent to the agent, the ports a server occupies and the executable names
//! the agent accepts. What a game can be asked to do while running (its operations) is
//! shared with the agent: [`GameKind::operations`].
//!
//! # Adding a game
//! 1. In `shared`: the config model and spec (`crate::<game>`), a [`GameKind`] variant
//!    with its operations and a [`GameSpec`] variant (the agent gets its adapter).
//! 2. Here: a module `games/<game>.rs` implementing [`Game`] (sections, validation with
//!    field paths, files through the shared planner, import, spec, ports, executables)
//!    and its line in [`REGISTERED`].
//! 3. Tests: its sections round-trip through the API (`tests/api.rs`), `GET /games`
//!    lists it, and the role matrix still covers every operation.
//!
//! Nothing else in the controller changes: a game without an entry here is refused
//! with a clear 422 wherever a server of it would be created or started.

pub mod arma3;
pub mod fields;

use std::collections::BTreeMap;

pub use languard_shared::games::{FileView, GameKind, GameSpec};
use serde_json::Value;

use crate::error::{Error, FieldError, Result};
use crate::store::Server;

/// The games Languard can run: one line per game.
static REGISTERED: &[&dyn Game] = &[&arma3::Arma3];

/// The registry entry of `kind`; `None` for a game Languard cannot run yet.
pub fn get(kind: GameKind) -> Option<&'static dyn Game> {
    REGISTERED.iter().copied().find(|g| g.kind() == kind)
}

/// Every registered game.
pub fn all() -> impl Iterator<Item = &'static dyn Game> {
    REGISTERED.iter().copied()
}

/// The registry entry of `kind`, or the 422 saying that Languard cannot run it.
pub fn require(kind: GameKind) -> Result<&'static dyn Game> {
    get(kind).ok_or_else(|| Error::Unsupported {
        problem: "unsupported-game",
        detail: format!("Languard cannot run {} servers yet", kind.title()),
    })
}

/// The registry entry of a stored server's game.
pub fn of(server: &Server) -> Result<&'static dyn Game> {
    require(server.game)
}

/// The ports a server occupies on its host. Games without a registry entry (rows
/// written before their entry went away) reserve their two configured ports, so port
/// checks still see them.
pub fn reserved_ports(game: GameKind, game_port: i64, rcon_port: i64) -> Vec<u16> {
    match get(game) {
        Some(g) => g.ports(game_port, rcon_port).unwrap_or_default(),
        None => [game_port, rcon_port]
            .into_iter()
            .filter_map(|p| u16::try_from(p).ok())
            .collect(),
    }
}

/// One config section kind of a game.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// The name in the API and the store (`/config/sections/{name}`).
    pub name: &'static str,
    /// Fields holding secrets: sealed at rest, shown only as `<field>_set` flags.
    pub secrets: &'static [&'static str],
    /// What it configures, for people.
    pub description: &'static str,
}

/// The sections of a server with their secrets merged in (in memory only), by name.
pub type Sections = BTreeMap<String, Value>;

/// A file as the preview (masked) or the download (clear) shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Path relative to the server folder.
    pub name: String,
    /// Content.
    pub content: String,
}

/// The content may hold secrets in clear; only its size is shown.
impl std::fmt::Debug for RenderedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedFile")
            .field("name", &self.name)
            .field(
                "content",
                &format_args!("<{} bytes redacted>", self.content.len()),
            )
            .finish()
    }
}

/// An existing file read back as the content of one section (not validated yet).
#[derive(Debug, Clone)]
pub struct Imported {
    /// The section it fills.
    pub section: &'static str,
    /// Its content, secrets included.
    pub content: Value,
    /// What the importer kept, dropped or merged, prefixed with the file name.
    pub warnings: Vec<String>,
}

/// Everything the controller knows about one game.
pub trait Game: Send + Sync + 'static {
    /// Which game.
    fn kind(&self) -> GameKind;

    /// Its config section kinds.
    fn sections(&self) -> &'static [Section];

    /// One section kind by name.
    fn section(&self, name: &str) -> Option<&'static Section> {
        self.sections().iter().find(|s| s.name == name)
    }

    /// Validates one section (`merged`: content with its secrets) and returns its
    /// canonical form. Field paths start with the section name (`server.motd[2]`).
    fn validate(
        &self,
        section: &Section,
        merged: &Value,
        server: &Server,
    ) -> std::result::Result<Value, Vec<FieldError>>;

    /// The game part of the spec sent to the agent; a missing setting the game cannot
    /// run without is a field error.
    fn spec(&self, server: &Server, sections: &Sections) -> Result<GameSpec>;

    /// The files (and launch parameters) the agent would write for these sections,
    /// computed by the planner the agent uses. [`FileView::Masked`] hides every secret.
    fn files(
        &self,
        server: &Server,
        sections: &Sections,
        view: FileView,
    ) -> Result<Vec<RenderedFile>>;

    /// The file names [`Game::import`] reads.
    fn importable(&self) -> &'static [&'static str];

    /// Reads an existing file (one of [`Game::importable`]) as section content.
    fn import(&self, file: &str, text: &str) -> std::result::Result<Imported, FieldError>;

    /// The ports a server with these settings occupies on its host, or why they are
    /// invalid (fields `game_port`, `rcon_port`).
    fn ports(
        &self,
        game_port: i64,
        rcon_port: i64,
    ) -> std::result::Result<Vec<u16>, Vec<FieldError>>;

    /// The executable file names the agent starts by default (its allow-list).
    fn executables(&self) -> &'static [&'static str];

    /// Whether `file_name` (the executable's last path component) is one the agent
    /// would start.
    fn accepts_executable(&self, file_name: &str) -> bool {
        self.executables().contains(&file_name)
    }
}

/// A port number from the API's integer, or the field error.
pub fn port(field: &str, v: i64) -> std::result::Result<u16, FieldError> {
    u16::try_from(v)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| FieldError {
            field: field.into(),
            message: "must be 1..=65535".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_game_is_found_by_its_kind_and_has_sections() {
        for g in all() {
            assert!(std::ptr::addr_eq(get(g.kind()).unwrap(), g));
            assert!(!g.sections().is_empty(), "{}", g.kind());
            assert!(!g.executables().is_empty(), "{}", g.kind());
            for f in g.importable() {
                assert!(!f.is_empty());
            }
        }
    }

    #[test]
    fn a_game_without_an_entry_is_a_clear_refusal() {
        assert!(get(GameKind::Palworld).is_none());
        match require(GameKind::Palworld) {
            Err(Error::Unsupported { problem, detail }) => {
                assert_eq!(problem, "unsupported-game");
                assert_eq!(detail, "Languard cannot run Palworld servers yet");
            }
            Err(other) => panic!("{other:?}"),
            Ok(g) => panic!("{} is registered", g.kind()),
        }
    }

    #[test]
    fn unregistered_games_still_reserve_their_ports() {
        assert_eq!(
            reserved_ports(GameKind::Palworld, 8211, 25575),
            [8211, 25575]
        );
    }
}
