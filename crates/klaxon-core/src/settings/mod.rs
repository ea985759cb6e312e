//! Configuration: the service settings (`default.toml` + environment), the ruleset (the grading
//! guide and the reporting rules), the registry and the input field mappings (`mappings/*.toml`,
//! see [`crate::decode::mapping`]). Loading reads files; everything after loading
//! is plain validated data the core can use without I/O.
//!
//! Validation reports every problem at once, each with its file and key, so that `klaxon
//! check-config` can be fixed in one pass.

pub mod delivery;
pub mod escalation;
pub mod registry;
pub mod ruleset;
pub mod service;

use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub use registry::Registry;
pub use ruleset::Ruleset;
pub use service::Settings;

use crate::decode::Mappings;

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub file: String,
    pub key: String,
    pub problem: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.problem)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.problem)
        }
    }
}

/// Every problem found, in file order.
#[derive(Debug, Error)]
pub struct SettingsError(pub Vec<Issue>);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration problem(s):", self.0.len())?;
        for i in &self.0 {
            writeln!(f, "  {i}")?;
        }
        Ok(())
    }
}

/// Collects issues for one file.
pub(crate) struct Issues<'a> {
    pub file: &'a str,
    pub list: &'a mut Vec<Issue>,
}

impl Issues<'_> {
    pub fn add(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.list.push(Issue {
            file: self.file.to_string(),
            key: key.into(),
            problem: problem.into(),
        });
    }
}

/// Everything loaded from a config directory.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub settings: Settings,
    pub ruleset: Ruleset,
    pub registry: Registry,
    /// The active input formats (`input.formats`) and their field mappings (`mappings/*.toml`).
    pub mappings: Mappings,
}

/// The config directory: `--config`, else `KLAXON_CONFIG`, else `config/`.
pub fn config_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os("KLAXON_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("config"),
    }
}

/// Loads and validates every file in `dir`, reporting all problems together.
pub fn load(dir: &Path) -> Result<Config, SettingsError> {
    let mut issues = Vec::new();
    let settings = service::load(dir, &mut issues);
    let ruleset = ruleset::load(dir, &mut issues);
    let registry = registry::load(dir, &mut issues);
    let escalation = escalation::load(dir, &mut issues);
    let formats = settings.as_ref().and_then(|s| s.input.formats.clone());
    let settings_file = dir.join(service::FILE).display().to_string();
    let mappings =
        crate::decode::mapping::load(dir, formats.as_deref(), &settings_file, &mut issues);
    match (settings, ruleset, registry, mappings) {
        (Some(settings), Some(mut ruleset), Some(registry), Some(mappings))
            if issues.is_empty() =>
        {
            ruleset.escalation = escalation.unwrap_or_default();
            let mut cross = Vec::new();
            registry.check_against(&ruleset, &mut cross);
            if cross.is_empty() {
                Ok(Config {
                    dir: dir.to_path_buf(),
                    settings,
                    ruleset,
                    registry,
                    mappings,
                })
            } else {
                Err(SettingsError(cross))
            }
        }
        _ => Err(SettingsError(issues)),
    }
}

/// Reads a TOML file into `T`, turning I/O and parse errors into issues.
pub(crate) fn read_toml<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
    issues: &mut Vec<Issue>,
) -> Option<T> {
    let path = dir.join(name);
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            issues.push(Issue {
                file,
                key: String::new(),
                problem: format!("cannot read: {e}"),
            });
            return None;
        }
    };
    match toml::from_str::<T>(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            let problem = e.message().to_string();
            let key = match e.span() {
                Some(span) => format!("line {}", line_of(&text, span.start)),
                None => String::new(),
            };
            issues.push(Issue { file, key, problem });
            None
        }
    }
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
