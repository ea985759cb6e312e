//! Loading the ruleset: the TOML files' raw shapes and their validation into the typed
//! [`Ruleset`](super::Ruleset), every problem reported with file and key.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GradingFile {
    ruleset: RulesetHeader,
    asset_kinds: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    durations: Option<RawDurations>,
    indicator: Vec<RawIndicator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDurations {
    flap_gap: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesetHeader {
    id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndicator {
    id: String,
    figure: String,
    unit: String,
    source: String,
    /// Durations only: "longest_episode" (default) or "sum".
    episodes: Option<String>,
    threshold: Vec<RawThreshold>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    level: String,
    at_least: Option<f64>,
    any_of: Option<Vec<String>>,
    assets: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportingFile {
    floor: String,
    clock_starts: String,
    upgrade_warning_lead: String,
    #[serde(default)]
    cii_asset_kinds: Vec<String>,
    routes: BTreeMap<String, RawRoute>,
    reports: BTreeMap<String, RawReport>,
    channels: Vec<RawChannel>,
    draft: RawDraft,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    window: String,
    recipients: Vec<String>,
    onward: Option<RawOnward>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnward {
    from_level: String,
    within: String,
    to: Vec<String>,
    #[serde(default)]
    notify: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    window: Option<String>,
    #[serde(default)]
    reminders: Vec<String>,
    overdue_every: String,
    /// Later phases of the overdue repeat: `[{ after = "2h", every = "4h" }, …]`.
    #[serde(default)]
    overdue_then: Vec<RawPhase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    after: String,
    every: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    kind: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDraft {
    items: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientsFile {
    recipient: Vec<RawRecipient>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipient {
    id: String,
    name: String,
    role: String,
    province: Option<String>,
    sector: Option<String>,
    organ: Option<String>,
}

// ---------------------------------------------------------------- loading and validation

pub(crate) fn load(dir: &Path, issues: &mut Vec<Issue>) -> Option<Ruleset> {
    let grading: Option<GradingFile> = read_toml(dir, GRADING, issues);
    let reporting: Option<ReportingFile> = read_toml(dir, REPORTING, issues);
    let recipients: Option<RecipientsFile> = read_toml(dir, RECIPIENTS, issues);
    let (grading, reporting, recipients) = (grading?, reporting?, recipients?);
    let before = issues.len();
    let file = |name: &str| dir.join(name).display().to_string();
    let gfile = file(GRADING);
    let rfile = file(REPORTING);
    let dfile = file(RECIPIENTS);

    let recipients = validate_recipients(
        recipients,
        &mut Issues {
            file: &dfile,
            list: issues,
        },
    );
    let (indicators, flap_gap) = validate_grading(
        &grading,
        &mut Issues {
            file: &gfile,
            list: issues,
        },
    );
    let roles: BTreeSet<&str> = recipients.iter().map(|r| r.role.as_str()).collect();
    let reporting = validate_reporting(
        reporting,
        &grading.asset_kinds,
        &roles,
        &mut Issues {
            file: &rfile,
            list: issues,
        },
    );
    if issues.len() > before {
        return None;
    }
    let (floor, clock_starts, lead, cii_asset_kinds, routes, reports, channels, draft_titles) =
        reporting?;
    Some(Ruleset {
        id: grading.ruleset.id,
        name: grading.ruleset.name,
        asset_kinds: grading.asset_kinds,
        indicators,
        floor,
        clock_starts,
        upgrade_warning_lead: lead,
        flap_gap,
        cii_asset_kinds,
        routes,
        reports,
        channels,
        draft_titles,
        recipients,
        escalation: Default::default(),
    })
}

fn validate_recipients(file: RecipientsFile, issues: &mut Issues) -> Vec<RecipientEntry> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, r) in file.recipient.into_iter().enumerate() {
        let key = format!("recipient[{i}]");
        if r.id.trim().is_empty() || r.name.trim().is_empty() || r.role.trim().is_empty() {
            issues.add(&key, "id, name and role must be non-empty");
        }
        if !seen.insert(r.id.clone()) {
            issues.add(
                format!("{key}.id"),
                format!("duplicate recipient id {:?}", r.id),
            );
        }
        out.push(RecipientEntry {
            id: r.id,
            name: r.name,
            role: r.role,
            province: r.province,
            sector: r.sector,
            organ: r.organ,
        });
    }
    out
}

fn validate_grading(g: &GradingFile, issues: &mut Issues) -> (Vec<Indicator>, Millis) {
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    if g.ruleset.id.trim().is_empty() {
        issues.add("ruleset.id", "must be non-empty");
    }
    // Zero is allowed: then only overlapping or touching intervals merge.
    let flap_gap = match &g.durations {
        None => DEFAULT_FLAP_GAP,
        Some(d) => match Millis::parse_human(&d.flap_gap) {
            Ok(m) if m.0 >= 0 => m,
            Ok(_) => {
                issues.add("durations.flap_gap", "must not be negative");
                DEFAULT_FLAP_GAP
            }
            Err(e) => {
                issues.add("durations.flap_gap", e);
                DEFAULT_FLAP_GAP
            }
        },
    };
    for (i, raw) in g.indicator.iter().enumerate() {
        let key = format!("indicator[{i}] ({})", raw.id);
        if !ids.insert(raw.id.as_str()) {
            issues.add(format!("{key}.id"), "duplicate indicator id");
        }
        if raw.source.trim().is_empty() {
            issues.add(
                format!("{key}.source"),
                "cite the guide row this indicator encodes",
            );
        }
        let figure = match raw.figure.parse::<Figure>() {
            Ok(f) => Some(f),
            Err(e) => {
                issues.add(format!("{key}.figure"), e);
                None
            }
        };
        let unit = match (raw.unit.as_str(), figure) {
            ("hours", Some(Figure::Duration(_))) => Some(Unit::Hours),
            ("minutes", Some(Figure::Duration(_))) => Some(Unit::Minutes),
            ("count", Some(Figure::Amount(_))) => Some(Unit::Count),
            ("share", Some(Figure::Amount(_))) => Some(Unit::Share),
            ("cny", Some(Figure::Amount(_))) => Some(Unit::Cny),
            ("finding", Some(Figure::Category(_))) => Some(Unit::Finding),
            (u, Some(_)) => {
                issues.add(format!("{key}.unit"), format!("unit {u:?} does not fit figure {:?} (durations: hours|minutes; amounts: count|share|cny; categories: finding)", raw.figure));
                None
            }
            _ => None,
        };
        let measure = match (raw.episodes.as_deref(), figure) {
            (None | Some("longest_episode"), _) => Measure::LongestEpisode { flap_gap },
            (Some("sum"), Some(Figure::Duration(_))) => Measure::Sum,
            (Some("sum"), Some(_)) => {
                issues.add(
                    format!("{key}.episodes"),
                    "only a duration figure has episodes (amounts combine through correlation.combine)",
                );
                Measure::Sum
            }
            (Some(other), _) => {
                issues.add(
                    format!("{key}.episodes"),
                    format!("expected \"longest_episode\" or \"sum\", got {other:?}"),
                );
                Measure::LongestEpisode { flap_gap }
            }
        };
        let mut thresholds = Vec::new();
        let mut levels_seen = BTreeSet::new();
        for (j, t) in raw.threshold.iter().enumerate() {
            let tkey = format!("{key}.threshold[{j}]");
            let level = match t.level.parse::<Level>() {
                Ok(Level::General) => {
                    issues.add(
                        format!("{tkey}.level"),
                        "general is the residual level and has no thresholds",
                    );
                    continue;
                }
                Ok(l) => l,
                Err(e) => {
                    issues.add(format!("{tkey}.level"), e);
                    continue;
                }
            };
            if !levels_seen.insert(level) {
                issues.add(
                    format!("{tkey}.level"),
                    format!("second threshold for level {level}"),
                );
            }
            let rule = match (t.at_least, &t.any_of, figure) {
                (Some(v), None, Some(Figure::Duration(_) | Figure::Amount(_))) => {
                    if !(v.is_finite() && v > 0.0) {
                        issues.add(
                            format!("{tkey}.at_least"),
                            format!("must be a positive number, got {v}"),
                        );
                    }
                    if unit == Some(Unit::Share) && v > 1.0 {
                        issues.add(
                            format!("{tkey}.at_least"),
                            format!("a share is a fraction from 0 to 1, got {v}"),
                        );
                    }
                    Rule::AtLeast(v)
                }
                (None, Some(vals), Some(Figure::Category(_))) => {
                    if vals.is_empty() {
                        issues.add(format!("{tkey}.any_of"), "must list at least one value");
                    }
                    Rule::AnyOf(vals.clone())
                }
                (_, _, Some(Figure::Category(_))) => {
                    issues.add(
                        &tkey,
                        "a category figure needs `any_of` (and no `at_least`)",
                    );
                    continue;
                }
                (_, _, Some(_)) => {
                    issues.add(
                        &tkey,
                        "a duration or amount figure needs `at_least` (and no `any_of`)",
                    );
                    continue;
                }
                _ => continue,
            };
            let assets = t.assets.as_ref().map(|list| {
                list.iter()
                    .enumerate()
                    .filter_map(|(k, s)| {
                        let (kind, qual) = match s.split_once(':') {
                            Some((k, q)) => (k, Some(q.to_string())),
                            None => (s.as_str(), None),
                        };
                        match g.asset_kinds.get(kind) {
                            None => {
                                issues.add(format!("{tkey}.assets[{k}]"), format!("unknown asset kind {kind:?}"));
                                None
                            }
                            Some(quals) => {
                                if let Some(q) = &qual {
                                    if !quals.contains(q) {
                                        issues.add(format!("{tkey}.assets[{k}]"), format!("{q:?} is not a level or size of {kind:?} (allowed: {quals:?})"));
                                        return None;
                                    }
                                }
                                Some(AssetSelector { kind: kind.to_string(), qualifier: qual })
                            }
                        }
                    })
                    .collect::<Vec<_>>()
            });
            thresholds.push(Threshold {
                level,
                rule,
                assets,
            });
        }
        thresholds.sort_by_key(|t| std::cmp::Reverse(t.level));
        // A higher level must not be easier to reach than a lower one on the same assets.
        for w in thresholds.windows(2) {
            if let (Rule::AtLeast(hi), Rule::AtLeast(lo)) = (&w[0].rule, &w[1].rule) {
                if hi < lo && w[0].assets == w[1].assets {
                    issues.add(
                        &key,
                        format!(
                            "threshold for {} ({hi}) is below the one for {} ({lo})",
                            w[0].level, w[1].level
                        ),
                    );
                }
            }
        }
        // Only when none are written: thresholds skipped for their own errors (or an unknown
        // figure) have already been reported.
        if raw.threshold.is_empty() {
            issues.add(&key, "has no thresholds");
        }
        if let (Some(figure), Some(unit)) = (figure, unit) {
            out.push(Indicator {
                id: raw.id.clone(),
                figure,
                unit,
                measure,
                source: raw.source.clone(),
                thresholds,
            });
        }
    }
    (out, flap_gap)
}

type ReportingParts = (
    Level,
    ClockStart,
    Millis,
    Vec<String>,
    [Route; 3],
    [ReportRule; 4],
    Vec<(String, String)>,
    Vec<String>,
);

fn validate_reporting(
    r: ReportingFile,
    kinds: &BTreeMap<String, Vec<String>>,
    roles: &BTreeSet<&str>,
    issues: &mut Issues,
) -> Option<ReportingParts> {
    let dur = |key: &str, s: &str, issues: &mut Issues| -> Millis {
        match Millis::parse_human(s) {
            Ok(d) if d.0 > 0 => d,
            Ok(_) => {
                issues.add(key, "must be longer than zero");
                Millis(1)
            }
            Err(e) => {
                issues.add(key, e);
                Millis(1)
            }
        }
    };
    let floor = match r.floor.parse::<Level>() {
        Ok(Level::General) => {
            issues.add(
                "floor",
                "the floor must be a graded level (general is residual)",
            );
            Level::RelativelyMajor
        }
        Ok(l) => l,
        Err(e) => {
            issues.add("floor", e);
            Level::RelativelyMajor
        }
    };
    let clock_starts = match r.clock_starts.as_str() {
        "floor_reached" => ClockStart::FloorReached,
        "first_alert" => ClockStart::FirstAlert,
        other => {
            issues.add(
                "clock_starts",
                format!("expected floor_reached or first_alert, got {other:?}"),
            );
            ClockStart::FloorReached
        }
    };
    let lead = dur("upgrade_warning_lead", &r.upgrade_warning_lead, issues);
    for (i, k) in r.cii_asset_kinds.iter().enumerate() {
        if !kinds.contains_key(k) {
            issues.add(
                format!("cii_asset_kinds[{i}]"),
                format!("unknown asset kind {k:?}"),
            );
        }
    }
    let check_roles = |key: String, list: &[String], issues: &mut Issues| {
        if list.is_empty() {
            issues.add(&key, "must name at least one recipient role");
        }
        for (i, role) in list.iter().enumerate() {
            if !roles.contains(role.as_str()) {
                issues.add(
                    format!("{key}[{i}]"),
                    format!("no recipient in recipients.toml has role {role:?}"),
                );
            }
        }
    };
    let mut routes = Vec::new();
    for class in ["cii", "central_state_organ", "other"] {
        let key = format!("routes.{class}");
        let Some(raw) = r.routes.get(class) else {
            issues.add(&key, "missing: every operator class needs a route");
            continue;
        };
        let window = dur(&format!("{key}.window"), &raw.window, issues);
        check_roles(format!("{key}.recipients"), &raw.recipients, issues);
        let onward = raw.onward.as_ref().map(|o| {
            let from_level = o.from_level.parse::<Level>().unwrap_or_else(|e| {
                issues.add(format!("{key}.onward.from_level"), e);
                Level::Major
            });
            check_roles(format!("{key}.onward.to"), &o.to, issues);
            if !o.notify.is_empty() {
                check_roles(format!("{key}.onward.notify"), &o.notify, issues);
            }
            OnwardRule {
                from_level,
                within: dur(&format!("{key}.onward.within"), &o.within, issues),
                to_roles: o.to.clone(),
                notify_roles: o.notify.clone(),
            }
        });
        routes.push(Route {
            name: class.to_string(),
            window,
            recipient_roles: raw.recipients.clone(),
            onward,
        });
    }
    for k in r.routes.keys() {
        if !["cii", "central_state_organ", "other"].contains(&k.as_str()) {
            issues.add(
                format!("routes.{k}"),
                "unknown operator class (expected cii, central_state_organ, other)",
            );
        }
    }
    let mut reports = Vec::new();
    for kind in ["initial", "follow_up", "summary", "supplement"] {
        let key = format!("reports.{kind}");
        // 补报 came later than the other three: a ruleset without its own rules uses the initial
        // report's reminders and overdue repeats, and the route's window.
        if kind == "supplement" && !r.reports.contains_key(kind) {
            if let Some(initial) = reports.first().cloned() {
                reports.push(ReportRule {
                    window: None,
                    ..initial
                });
            }
            continue;
        }
        let Some(raw) = r.reports.get(kind) else {
            issues.add(
                &key,
                "missing: initial, follow_up and summary each need rules",
            );
            continue;
        };
        let window = raw
            .window
            .as_ref()
            .map(|w| dur(&format!("{key}.window"), w, issues));
        if kind == "summary" && window.is_none() {
            issues.add(
                format!("{key}.window"),
                "the summary report needs its own window (e.g. \"30d\")",
            );
        }
        let mut reminders: Vec<Millis> = raw
            .reminders
            .iter()
            .enumerate()
            .map(|(i, s)| dur(&format!("{key}.reminders[{i}]"), s, issues))
            .collect();
        reminders.sort_by(|a, b| b.cmp(a));
        reminders.dedup();
        reports.push(ReportRule {
            window,
            reminders,
            overdue: {
                let every = dur(&format!("{key}.overdue_every"), &raw.overdue_every, issues);
                let mut then = Vec::new();
                let mut last = Millis(0);
                for (i, ph) in raw.overdue_then.iter().enumerate() {
                    let k = format!("{key}.overdue_then[{i}]");
                    let after = dur(&format!("{k}.after"), &ph.after, issues);
                    let every = dur(&format!("{k}.every"), &ph.every, issues);
                    if after <= last {
                        issues.add(
                            format!("{k}.after"),
                            format!("must be later than the phase before it ({last})"),
                        );
                    }
                    last = last.max(after);
                    then.push((after, every));
                }
                OverdueSchedule::new(every, &then)
            },
        });
    }
    for k in r.reports.keys() {
        if !["initial", "follow_up", "summary", "supplement"].contains(&k.as_str()) {
            issues.add(
                format!("reports.{k}"),
                "unknown report kind (expected initial, follow_up, summary, supplement)",
            );
        }
    }
    if r.draft.items.is_empty() {
        issues.add(
            "draft.items",
            "list the report's items (Measures art. 7 has eight)",
        );
    }
    let routes: [Route; 3] = routes.try_into().ok()?;
    let reports: [ReportRule; 4] = reports.try_into().ok()?;
    let channels = r.channels.into_iter().map(|c| (c.kind, c.value)).collect();
    Some((
        floor,
        clock_starts,
        lead,
        r.cii_asset_kinds,
        routes,
        reports,
        channels,
        r.draft.items,
    ))
}
