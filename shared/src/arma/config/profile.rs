//! The server profile `<name>.Arma3Profile`: the custom difficulty that
//! missions with `difficulty = "Custom"` (or `forcedDifficulty`) use.
//!
//! We render only `class DifficultyPresets`; Arma keeps its own state in the
//! same file, but a dedicated server's profile needs nothing else from us.

use std::path::{Path, PathBuf};

use super::HostOs;
use super::error::{ConfigError, FieldProblem, ImportWarning, WarningKind};
use super::escape;
use super::fields::typed_fields;
use super::syntax::{self, Body, Item};

const PREFIX: &str = "profile";

/// `class Options` inside `CustomDifficulty`. 0/1/2 mean never /
/// limited-or-fade / always; unset options are not written (Arma's default).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[allow(missing_docs)]
pub struct DifficultyOptions {
    pub reduced_damage: Option<i64>,
    pub group_indicators: Option<i64>,
    pub friendly_tags: Option<i64>,
    pub enemy_tags: Option<i64>,
    pub detected_mines: Option<i64>,
    pub commands: Option<i64>,
    pub waypoints: Option<i64>,
    /// 0 off, 1 3D, 2 map, 3 both.
    pub tactical_ping: Option<i64>,
    pub weapon_info: Option<i64>,
    pub stance_indicator: Option<i64>,
    pub stamina_bar: Option<i64>,
    pub weapon_crosshair: Option<i64>,
    pub vision_aid: Option<i64>,
    /// 0 off, 1 on, 2 vehicles only.
    pub third_person_view: Option<i64>,
    pub camera_shake: Option<i64>,
    pub score_table: Option<i64>,
    pub death_messages: Option<i64>,
    pub von_id: Option<i64>,
    pub map_content_friendly: Option<i64>,
    pub map_content_enemy: Option<i64>,
    pub map_content_mines: Option<i64>,
    pub auto_report: Option<i64>,
    pub multiple_saves: Option<i64>,
    pub squad_radar: Option<i64>,
}

typed_fields!(DifficultyOptions {
    reduced_damage: i64 => "reducedDamage" [Check::Int(0, 1)],
    group_indicators: i64 => "groupIndicators" [Check::Int(0, 2)],
    friendly_tags: i64 => "friendlyTags" [Check::Int(0, 2)],
    enemy_tags: i64 => "enemyTags" [Check::Int(0, 2)],
    detected_mines: i64 => "detectedMines" [Check::Int(0, 2)],
    commands: i64 => "commands" [Check::Int(0, 2)],
    waypoints: i64 => "waypoints" [Check::Int(0, 2)],
    tactical_ping: i64 => "tacticalPing" [Check::Int(0, 3)],
    weapon_info: i64 => "weaponInfo" [Check::Int(0, 2)],
    stance_indicator: i64 => "stanceIndicator" [Check::Int(0, 2)],
    stamina_bar: i64 => "staminaBar" [Check::Int(0, 1)],
    weapon_crosshair: i64 => "weaponCrosshair" [Check::Int(0, 1)],
    vision_aid: i64 => "visionAid" [Check::Int(0, 1)],
    third_person_view: i64 => "thirdPersonView" [Check::Int(0, 2)],
    camera_shake: i64 => "cameraShake" [Check::Int(0, 1)],
    score_table: i64 => "scoreTable" [Check::Int(0, 1)],
    death_messages: i64 => "deathMessages" [Check::Int(0, 1)],
    von_id: i64 => "vonID" [Check::Int(0, 1)],
    map_content_friendly: i64 => "mapContentFriendly" [Check::Int(0, 1)],
    map_content_enemy: i64 => "mapContentEnemy" [Check::Int(0, 1)],
    map_content_mines: i64 => "mapContentMines" [Check::Int(0, 1)],
    auto_report: i64 => "autoReport" [Check::Int(0, 1)],
    multiple_saves: i64 => "multipleSaves" [Check::Int(0, 1)],
    squad_radar: i64 => "squadRadar" [Check::Int(0, 1)],
});

/// `class CustomDifficulty`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CustomDifficulty {
    /// `class Options`.
    pub options: DifficultyOptions,
    /// `aiLevelPreset`: 0 Low, 1 Normal, 2 High, 3 Custom (uses [`CustomAiLevel`]).
    pub ai_level_preset: Option<i64>,
}

typed_fields!(CustomDifficulty {
    ai_level_preset: i64 => "aiLevelPreset" [Check::Int(0, 3)],
});

/// `class CustomAILevel`: AI skill and precision, 0.0..=1.0.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CustomAiLevel {
    /// `skillAI`.
    pub skill_ai: Option<f64>,
    /// `precisionAI`.
    pub precision_ai: Option<f64>,
}

typed_fields!(CustomAiLevel {
    skill_ai: f64 => "skillAI" [Check::Float(0.0, 1.0)],
    precision_ai: f64 => "precisionAI" [Check::Float(0.0, 1.0)],
});

/// The part of `<name>.Arma3Profile` we manage (`class DifficultyPresets`).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Arma3Profile {
    /// `class CustomDifficulty`.
    pub custom_difficulty: CustomDifficulty,
    /// `class CustomAILevel`.
    pub custom_ai_level: CustomAiLevel,
}

const PRESETS: &str = "DifficultyPresets";
const CUSTOM: &str = "CustomDifficulty";
const OPTIONS: &str = "Options";
const AI: &str = "CustomAILevel";

impl Arma3Profile {
    /// Checks the value ranges; errors name `profile.<path>`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.custom_difficulty
            .options
            .validate_typed(&format!("{PREFIX}.custom_difficulty.options"))?;
        self.custom_difficulty
            .validate_typed(&format!("{PREFIX}.custom_difficulty"))?;
        self.custom_ai_level
            .validate_typed(&format!("{PREFIX}.custom_ai_level"))
    }

    /// Renders the profile file.
    pub fn render(&self) -> Result<String, ConfigError> {
        self.validate()?;
        let mut options = Vec::new();
        self.custom_difficulty.options.emit_typed(&mut options);
        let mut custom = vec![Item::class(OPTIONS, options)];
        self.custom_difficulty.emit_typed(&mut custom);
        let mut ai = Vec::new();
        self.custom_ai_level.emit_typed(&mut ai);
        let items = vec![Item::class(
            PRESETS,
            vec![Item::class(CUSTOM, custom), Item::class(AI, ai)],
        )];
        syntax::render(&items, PREFIX)
    }

    /// Reads `class DifficultyPresets` from a profile; everything else in the
    /// file is ignored (real profiles hold much more), unknown keys inside the
    /// managed classes are reported as dropped.
    pub fn parse(text: &str) -> Result<(Self, Vec<ImportWarning>), ConfigError> {
        let items = syntax::parse(text)?;
        let mut profile = Self::default();
        let mut warnings = Vec::new();
        let drop = |w: &mut Vec<ImportWarning>, item: &Item, within: &str| {
            w.push(ImportWarning {
                pos: item.pos,
                kind: WarningKind::Dropped(format!("{within}.{}", item.name)),
            })
        };
        for presets in class_bodies(&items, PRESETS) {
            for item in presets {
                if item.name.eq_ignore_ascii_case(CUSTOM) {
                    let Some(body) = class_body(item) else {
                        continue;
                    };
                    for inner in body {
                        if inner.name.eq_ignore_ascii_case(OPTIONS) {
                            let Some(opts) = class_body(inner) else {
                                continue;
                            };
                            for o in opts {
                                let prefix = format!("{PREFIX}.custom_difficulty.options");
                                match profile.custom_difficulty.options.assign_typed(o, &prefix) {
                                    Some(r) => r?,
                                    None => drop(&mut warnings, o, OPTIONS),
                                }
                            }
                        } else {
                            match profile
                                .custom_difficulty
                                .assign_typed(inner, &format!("{PREFIX}.custom_difficulty"))
                            {
                                Some(r) => r?,
                                None => drop(&mut warnings, inner, CUSTOM),
                            }
                        }
                    }
                } else if item.name.eq_ignore_ascii_case(AI) {
                    let Some(body) = class_body(item) else {
                        continue;
                    };
                    for inner in body {
                        match profile
                            .custom_ai_level
                            .assign_typed(inner, &format!("{PREFIX}.custom_ai_level"))
                        {
                            Some(r) => r?,
                            None => drop(&mut warnings, inner, AI),
                        }
                    }
                } else {
                    drop(&mut warnings, item, PRESETS);
                }
            }
        }
        Ok((profile, warnings))
    }
}

fn class_body(item: &Item) -> Option<&[Item]> {
    match &item.body {
        Body::Class {
            items: Some(body), ..
        } => Some(body),
        _ => None,
    }
}

fn class_bodies<'a>(items: &'a [Item], name: &'a str) -> impl Iterator<Item = &'a [Item]> + 'a {
    items
        .iter()
        .filter(move |i| i.name.eq_ignore_ascii_case(name))
        .filter_map(class_body)
}

/// Where the server reads the profile: `<profiles>/home/<name>/<name>.Arma3Profile`
/// on Linux, `<profiles>/Users/<name>/<name>.Arma3Profile` on Windows, with
/// `<name>` from `-name=`. The name is checked so it cannot leave the folder
/// (no separators, no `..`, no control characters).
pub fn profile_path(profiles_dir: &Path, name: &str, os: HostOs) -> Result<PathBuf, ConfigError> {
    check_profile_name(name)?;
    let users = match os {
        HostOs::Linux => "home",
        HostOs::Windows => "Users",
    };
    Ok(profiles_dir
        .join(users)
        .join(name)
        .join(format!("{name}.Arma3Profile")))
}

/// A profile name (`-name=`) that is safe as one path component.
pub fn check_profile_name(name: &str) -> Result<(), ConfigError> {
    const FIELD: &str = "profile.name";
    escape::check_text(FIELD, name)?;
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.trim() != name
        || name
            .chars()
            .any(|c| matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|'));
    if bad {
        return Err(ConfigError::field(
            FIELD,
            FieldProblem::Invalid(format!("`{name}` is not usable as a profile folder name")),
        ));
    }
    Ok(())
}
