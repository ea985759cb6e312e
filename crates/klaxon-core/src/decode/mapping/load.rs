//! Loading mapping files: the TOML shapes, their validation (every problem with file and key),
//! and the check that no record fits two active formats.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    recognise: RecogniseFile,
    #[serde(default)]
    require: BTreeMap<String, Vec<Value>>,
    fields: BTreeMap<String, FieldFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecogniseFile {
    #[serde(default)]
    all: Vec<String>,
    #[serde(default)]
    any: Vec<String>,
    #[serde(default)]
    none: Vec<String>,
    #[serde(default)]
    envelope: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    #[serde(default)]
    from: Vec<String>,
    #[serde(default)]
    default: Option<Value>,
    #[serde(default)]
    transform: Option<String>,
    /// The zone of times the source writes without an offset: `+08:00`, `+0800`, `Z`, `UTC`.
    #[serde(default)]
    zone: Option<String>,
}

/// Parses and validates one mapping file's text; problems are reported with their keys.
pub fn parse(name: &str, file: &str, text: &str) -> Result<Mapping, Vec<Issue>> {
    let mut list = Vec::new();
    let raw = match toml::from_str::<MappingFile>(text) {
        Ok(r) => r,
        Err(e) => {
            let key = e
                .span()
                .map(|s| format!("line {}", line_of(text, s.start)))
                .unwrap_or_default();
            return Err(vec![Issue {
                file: file.to_string(),
                key,
                problem: e.message().to_string(),
            }]);
        }
    };
    let mapping = validate(
        name,
        raw,
        &mut Issues {
            file,
            list: &mut list,
        },
    );
    match mapping {
        Some(m) if list.is_empty() => Ok(m),
        _ => Err(list),
    }
}

fn paths(list: &[String], key: &str, issues: &mut Issues<'_>) -> Vec<SourcePath> {
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        match SourcePath::parse(p) {
            Ok(p) => out.push(p),
            Err(e) => issues.add(format!("{key}[{i}]"), e),
        }
    }
    out
}

fn validate(name: &str, raw: MappingFile, issues: &mut Issues<'_>) -> Option<Mapping> {
    if name == NATIVE
        || name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        issues.add(
            "",
            format!("the file name {name:?} must be a format name: lower-case letters, digits, _ or -, and not \"native\""),
        );
    }
    let all = paths(&raw.recognise.all, "recognise.all", issues);
    let any = paths(&raw.recognise.any, "recognise.any", issues);
    let none = paths(&raw.recognise.none, "recognise.none", issues);
    let envelope = paths(&raw.recognise.envelope, "recognise.envelope", issues);
    if raw.recognise.all.is_empty() && raw.recognise.any.is_empty() {
        issues.add(
            "recognise",
            "name at least one path in `all` or `any`: a mapping must be able to tell its shape",
        );
    }
    let mut require = Vec::new();
    for (p, values) in raw.require {
        match SourcePath::parse(&p) {
            Ok(path) if !values.is_empty() => require.push((path, values)),
            Ok(_) => issues.add(format!("require.{p}"), "list at least one accepted value"),
            Err(e) => issues.add(format!("require.{p}"), e),
        }
    }
    let mut fields = Vec::new();
    for (target, f) in raw.fields {
        let key = format!("fields.{target}");
        if !targets().any(|t| t == target) {
            issues.add(
                &key,
                format!(
                    "{target:?} is not a native alert field (known: {})",
                    targets().collect::<Vec<_>>().join(", ")
                ),
            );
            continue;
        }
        let transform = match f.transform.as_deref().map(Transform::parse).transpose() {
            Ok(t) => t,
            Err(e) => {
                issues.add(format!("{key}.transform"), e);
                None
            }
        };
        let zone = match (&f.zone, transform) {
            (None, _) => None,
            (Some(z), Some(Transform::Timestamp)) => match parse_zone(z) {
                Ok(z) => Some(z),
                Err(e) => {
                    issues.add(format!("{key}.zone"), e);
                    None
                }
            },
            (Some(_), _) => {
                issues.add(
                    format!("{key}.zone"),
                    "a zone applies to times: use it with transform = \"timestamp\"",
                );
                None
            }
        };
        let mut sources = Vec::new();
        for (i, s) in f.from.iter().enumerate() {
            match Source::parse(s) {
                Ok(s) => sources.push(s),
                Err(e) => issues.add(format!("{key}.from[{i}]"), e),
            }
        }
        let default = match f.default {
            None => None,
            Some(d @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => match transform {
                Some(t) => match t.apply(&d, zone) {
                    Ok(v) => Some(v),
                    Err(Problem::Type(p) | Problem::Value(p)) => {
                        issues.add(format!("{key}.default"), p);
                        None
                    }
                },
                None => Some(d),
            },
            Some(_) => {
                issues.add(
                    format!("{key}.default"),
                    "must be a string, a number or a boolean",
                );
                None
            }
        };
        if f.from.is_empty() && default.is_none() {
            issues.add(&key, "give `from` (source paths), a `default`, or both");
        }
        fields.push(FieldRule {
            target,
            sources,
            default,
            transform,
            zone,
        });
    }
    for r in REQUIRED {
        if !fields.iter().any(|f| f.target == r) {
            issues.add(
                format!("fields.{r}"),
                "missing: the native alert requires it, so every mapping must say where it comes from",
            );
        }
    }
    Some(Mapping {
        name: name.to_string(),
        all,
        any,
        none,
        envelope,
        require,
        fields,
    })
}

/// Loads every `<dir>/mappings/*.toml` and activates those named by `input.formats` (`formats`;
/// `None` when the key is absent: native plus every mapping found). `settings_file` is where
/// `input.formats` lives, for its issues.
pub(crate) fn load(
    dir: &Path,
    formats: Option<&[String]>,
    settings_file: &str,
    issues: &mut Vec<Issue>,
) -> Option<Mappings> {
    let before = issues.len();
    let mdir = dir.join(DIR);
    let mut loaded: Vec<Mapping> = Vec::new();
    if mdir.is_dir() {
        let entries = match std::fs::read_dir(&mdir) {
            Ok(e) => e,
            Err(e) => {
                issues.push(Issue {
                    file: mdir.display().to_string(),
                    key: String::new(),
                    problem: format!("cannot read: {e}"),
                });
                return None;
            }
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let (Some(stem), Some(fname)) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.file_name().and_then(|s| s.to_str()),
            ) else {
                issues.push(Issue {
                    file: path.display().to_string(),
                    key: String::new(),
                    problem: "the file name is not UTF-8".into(),
                });
                continue;
            };
            let file = path.display().to_string();
            let Some(raw) = read_toml::<MappingFile>(&mdir, fname, issues) else {
                continue;
            };
            if let Some(m) = validate(
                stem,
                raw,
                &mut Issues {
                    file: &file,
                    list: issues,
                },
            ) {
                loaded.push(m);
            }
        }
    }
    let (native, active) = match formats {
        None => (true, std::mem::take(&mut loaded)),
        Some(list) => {
            let mut native = false;
            let mut active = Vec::new();
            let mut add = |key: String, problem: String| {
                issues.push(Issue {
                    file: settings_file.to_string(),
                    key,
                    problem,
                })
            };
            if list.is_empty() {
                add(
                    "input.formats".into(),
                    "name at least one format (native, or a file in mappings/)".into(),
                );
            }
            for (i, name) in list.iter().enumerate() {
                let key = format!("input.formats[{i}]");
                if list[..i].contains(name) {
                    add(key, format!("{name:?} is listed twice"));
                } else if name == NATIVE {
                    native = true;
                } else if let Some(m) = loaded.iter().find(|m| m.name == *name) {
                    active.push(m.clone());
                } else {
                    let mut known: Vec<&str> = loaded.iter().map(|m| m.name.as_str()).collect();
                    known.push(NATIVE);
                    add(
                        key,
                        format!(
                            "unknown format {name:?}: no {} (available: {})",
                            mdir.join(format!("{name}.toml")).display(),
                            known.join(", ")
                        ),
                    );
                }
            }
            (native, active)
        }
    };
    // Detection must not depend on the order formats are tried in: any two active mappings
    // must exclude each other, by a path one requires and the other lists in recognise.none.
    for (i, a) in active.iter().enumerate() {
        for b in &active[i + 1..] {
            if let Some(both) = a.may_overlap(b) {
                issues.push(Issue {
                    file: mdir.join(format!("{}.toml", b.name)).display().to_string(),
                    key: "recognise.none".into(),
                    problem: format!(
                        "one record could be taken for both {both}: list in one mapping's \
                         recognise.none a path the other's recognise.all requires (or all \
                         of its recognise.any)"
                    ),
                });
            }
        }
    }
    if issues.len() > before {
        return None;
    }
    let inactive = loaded
        .into_iter()
        .filter(|m| !active.iter().any(|a| a.name == m.name))
        .collect();
    Some(Mappings {
        native,
        active,
        inactive,
    })
}
