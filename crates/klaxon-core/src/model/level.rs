//! The four levels of the grading guide, ordered so that `>` means "more severe".

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use strum::{EnumString, IntoStaticStr, VariantArray, VariantNames};

/// Incident level. `Ord` follows severity: `General < RelativelyMajor < Major < ParticularlyMajor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Level {
    /// 一般 — the residual level; no reporting duty under the Measures.
    General,
    /// 较大
    RelativelyMajor,
    /// 重大
    Major,
    /// 特别重大
    ParticularlyMajor,
}

impl Level {
    /// Highest first, the order the guide lists them in.
    pub const DESCENDING: [Level; 4] = [
        Level::ParticularlyMajor,
        Level::Major,
        Level::RelativelyMajor,
        Level::General,
    ];

    pub fn key(self) -> &'static str {
        self.into()
    }

    /// The guide's short Chinese name.
    pub fn zh(self) -> &'static str {
        match self {
            Level::General => "一般",
            Level::RelativelyMajor => "较大",
            Level::Major => "重大",
            Level::ParticularlyMajor => "特别重大",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl FromStr for Level {
    type Err = String;

    /// Accepts the keys and the Chinese names (with or without 网络安全事件).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s
            .trim()
            .trim_end_matches("网络安全事件")
            .trim_end_matches("范围传播");
        Ok(match s {
            "general" | "一般" => Level::General,
            "relatively_major" | "较大" => Level::RelativelyMajor,
            "major" | "重大" | "大" => Level::Major,
            "particularly_major" | "特别重大" | "特大" => Level::ParticularlyMajor,
            _ => {
                return Err(format!(
                    "unknown level {s:?} (expected particularly_major, major, relatively_major or general)"
                ))
            }
        })
    }
}

/// Which report a timer or command is about. Its names (`initial`, `follow_up`, …) are spelled
/// once, from the variants: serde and strum both use snake case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(IntoStaticStr, EnumString, VariantArray, VariantNames)]
#[strum(
    serialize_all = "snake_case",
    parse_err_ty = String,
    parse_err_fn = unknown_report_kind
)]
pub enum ReportKind {
    /// 初报: the first report, due within the route's window.
    Initial,
    /// 续报: an update after the level rose past a filed report.
    FollowUp,
    /// 总结报告: the summary after handling ended.
    Summary,
    /// 补报: the rest of a report filed with items （一）（二） only (art. 7: cause, impact or trend
    /// could not be established in time).
    Supplement,
}

fn unknown_report_kind(s: &str) -> String {
    super::command::unknown::<ReportKind>("report_kind", s)
}

impl ReportKind {
    pub fn key(self) -> &'static str {
        self.into()
    }

    /// Every kind, in index order (`kind as usize`).
    pub const ALL: &'static [ReportKind] = <Self as strum::VariantArray>::VARIANTS;
}

/// Operator class: decides the reporting route and window (Measures art. 4).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
#[derive(IntoStaticStr, EnumString, VariantNames)]
#[strum(
    serialize_all = "snake_case",
    parse_err_ty = String,
    parse_err_fn = unknown_operator_class
)]
pub enum OperatorClass {
    Cii,
    CentralStateOrgan,
    #[default]
    Other,
}

fn unknown_operator_class(s: &str) -> String {
    super::command::unknown::<OperatorClass>("operator class", s)
}

impl OperatorClass {
    pub fn key(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_severity() {
        assert!(Level::ParticularlyMajor > Level::Major);
        assert!(Level::Major > Level::RelativelyMajor);
        assert!(Level::RelativelyMajor > Level::General);
    }

    #[test]
    fn parses_keys_and_chinese() {
        assert_eq!("重大".parse::<Level>().unwrap(), Level::Major);
        assert_eq!(
            "特大范围传播".parse::<Level>().unwrap(),
            Level::ParticularlyMajor
        );
        assert_eq!(
            "较大网络安全事件".parse::<Level>().unwrap(),
            Level::RelativelyMajor
        );
        assert!("huge".parse::<Level>().is_err());
        for l in Level::DESCENDING {
            assert_eq!(l.key().parse::<Level>(), Ok(l));
            assert_eq!(
                serde_json::to_string(&l).ok(),
                Some(format!("\"{}\"", l.key()))
            );
        }
    }
}
