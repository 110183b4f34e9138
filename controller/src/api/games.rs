//! `GET /games`: what each game Languard runs offers, so the console builds its forms and
//! buttons from the registry instead of knowing games itself.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::dto::{GameName, OperationName};
use super::error::ApiResult;
use super::security::ViewerAuth;
use super::tags::ApiTags;
use crate::games::{self, Game};

/// Game endpoints.
pub struct GamesApi;

/// One config section kind of a game.
#[derive(Debug, Object)]
pub struct SectionInfo {
    /// Its name (`/servers/{id}/config/sections/{name}`).
    pub name: String,
    /// What it configures.
    pub description: String,
    /// Fields holding secrets (shown only as `<field>_set`).
    pub secret_fields: Vec<String>,
}

/// A game Languard runs and what it offers.
#[derive(Debug, Object)]
pub struct GameInfo {
    /// The game's name in the API.
    pub game: GameName,
    /// A name for people.
    pub title: String,
    /// The admin operations its servers have (`say`, `say_to_player`, `kick`,
    /// `ban_player`, `ban_account`, `ban_address`, `save`, `console`, …); the others are
    /// refused with 422 `unsupported-operation`.
    pub operations: Vec<OperationName>,
    /// Its config sections.
    pub sections: Vec<SectionInfo>,
    /// File names `POST /servers/{id}/config/import` reads.
    pub importable_files: Vec<String>,
    /// Executable file names the agent starts.
    pub executables: Vec<String>,
}

fn info(g: &dyn Game) -> GameInfo {
    let kind = g.kind();
    GameInfo {
        game: GameName(kind),
        title: kind.title().into(),
        operations: kind
            .operations()
            .iter()
            .copied()
            .map(OperationName)
            .collect(),
        sections: g
            .sections()
            .iter()
            .map(|s| SectionInfo {
                name: s.name.into(),
                description: s.description.into(),
                secret_fields: s.secrets.iter().map(|f| (*f).to_owned()).collect(),
            })
            .collect(),
        importable_files: g.importable().iter().map(|f| (*f).to_owned()).collect(),
        executables: g.executables().iter().map(|e| (*e).to_owned()).collect(),
    }
}

#[OpenApi(tag = "ApiTags::Servers")]
impl GamesApi {
    /// The games Languard runs, with their operations and config sections.
    #[oai(path = "/games", method = "get", operation_id = "listGames")]
    async fn list(&self, _auth: ViewerAuth) -> ApiResult<Json<Vec<GameInfo>>> {
        Ok(Json(games::all().map(info).collect()))
    }
}
