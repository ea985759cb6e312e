//! The operator and asset registry (`registry.toml`): alerts may name an operator or asset by id,
//! and inline fields override what the registry says.

use super::{read_toml, Issue, Issues};
use crate::model::OperatorClass;
use crate::settings::ruleset::Ruleset;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const FILE: &str = "registry.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(default)]
    pub operators: BTreeMap<String, OperatorEntry>,
    #[serde(default)]
    pub assets: BTreeMap<String, AssetEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorEntry {
    pub name: Option<String>,
    /// None: not given (the operator is treated as `other`, and grading says the class is unknown
    /// where it matters).
    #[serde(default)]
    pub class: Option<OperatorClass>,
    pub province: Option<String>,
    pub sector: Option<String>,
    pub organ: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetEntry {
    pub name: Option<String>,
    pub operator: Option<String>,
    pub kind: Option<String>,
    pub level: Option<String>,
    pub size: Option<String>,
}

pub(crate) fn load(dir: &Path, issues: &mut Vec<Issue>) -> Option<Registry> {
    if !dir.join(FILE).exists() {
        return Some(Registry::default());
    }
    read_toml(dir, FILE, issues)
}

impl Registry {
    /// Checks references: asset → operator, asset kinds and qualifiers against the ruleset's
    /// vocabulary, provinces against the recipient directory.
    pub fn check_against(&self, ruleset: &Ruleset, out: &mut Vec<Issue>) {
        let file = FILE.to_string();
        let mut issues = Issues {
            file: &file,
            list: out,
        };
        for (id, a) in &self.assets {
            let key = format!("assets.{id}");
            if let Some(op) = &a.operator {
                if !self.operators.contains_key(op) {
                    issues.add(
                        format!("{key}.operator"),
                        format!("unknown operator {op:?}"),
                    );
                }
            }
            if let Some(kind) = &a.kind {
                match ruleset.asset_kinds.get(kind) {
                    None => issues.add(
                        format!("{key}.kind"),
                        format!("unknown asset kind {kind:?} (see grading.toml [asset_kinds])"),
                    ),
                    Some(quals) => {
                        for q in [&a.level, &a.size].into_iter().flatten() {
                            if !quals.contains(q) {
                                issues.add(key.clone(), format!("{q:?} is not a level or size of kind {kind:?} (allowed: {quals:?})"));
                            }
                        }
                    }
                }
            }
        }
        for (id, o) in &self.operators {
            if let Some(p) = &o.province {
                if !ruleset.knows_province(p) {
                    issues.add(
                        format!("operators.{id}.province"),
                        format!(
                            "no recipient directory entry for province {p:?} (see recipients.toml)"
                        ),
                    );
                }
            }
        }
    }
}
