//! What a `report.due` carries for the person who must file it: recipients resolved from the
//! directory, the reporting channels, the onward deadline, and the report draft with the items
//! of the Measures' art. 7, filled from what the incident knows and marked where a person must
//! complete it.

use super::correlate::{AssetInfo, OperatorInfo};
use super::grade::Grade;
use super::Incident;
use crate::model::escalation::{
    Channel, Draft, DraftItem, Evidence, EvidenceValue, Onward, Recipient,
};
use crate::model::{Level, OperatorClass};
use crate::settings::ruleset::{DurationFigure, Ruleset};
use crate::time::Timestamp;
use chrono::FixedOffset;

/// The marker a person looks for in the draft.
pub const TO_COMPLETE: &str = "【待填写】";

/// Resolves one list of roles to directory entries; a role nobody serves becomes a visible
/// placeholder rather than silently vanishing.
pub fn resolve_roles(rules: &Ruleset, roles: &[String], op: &OperatorInfo) -> Vec<Recipient> {
    let mut out: Vec<Recipient> = Vec::new();
    for role in roles {
        let found = rules.resolve_role(
            role,
            op.province.as_deref(),
            op.sector.as_deref(),
            op.organ.as_deref(),
        );
        if found.is_empty() {
            out.push(Recipient {
                id: format!("unresolved:{role}"),
                name: format!("{TO_COMPLETE} no directory entry for role {role} (province {:?}, sector {:?}, organ {:?})", op.province.as_deref().unwrap_or("-"), op.sector.as_deref().unwrap_or("-"), op.organ.as_deref().unwrap_or("-")),
            });
        }
        for r in found {
            if !out.iter().any(|x| x.id == r.id) {
                out.push(Recipient {
                    id: r.id.clone(),
                    name: r.name.clone(),
                });
            }
        }
    }
    out
}

/// The first recipients of a report on `route`.
pub fn recipients(rules: &Ruleset, route: OperatorClass, op: &OperatorInfo) -> Vec<Recipient> {
    resolve_roles(rules, &rules.route(route).recipient_roles, op)
}

/// The first recipients of every applicable route (`reporting::routes`), in order, each once.
pub fn recipients_of(
    rules: &Ruleset,
    routes: &[OperatorClass],
    op: &OperatorInfo,
) -> Vec<Recipient> {
    let mut out: Vec<Recipient> = Vec::new();
    for route in routes {
        for r in recipients(rules, *route, op) {
            if !out.iter().any(|x| x.id == r.id) {
                out.push(r);
            }
        }
    }
    out
}

/// For major and above: whom the first recipient must pass the report to (and notify), and by
/// when at the latest. `from` is when the recipient has the report: the filing, once filed
/// (收到报告后); before that, the operator's own deadline, the latest it can arrive.
pub fn onward(
    rules: &Ruleset,
    route: OperatorClass,
    op: &OperatorInfo,
    level: Level,
    from: Timestamp,
    offset: FixedOffset,
) -> Option<Onward> {
    let rule = rules.route(route).onward.as_ref()?;
    (level >= rule.from_level).then(|| Onward {
        within_minutes: rule.within.0 / crate::time::MINUTE,
        deadline: from.plus(rule.within).format(offset),
        to: resolve_roles(rules, &rule.to_roles, op),
        notify: resolve_roles(rules, &rule.notify_roles, op),
    })
}

/// When several routes apply: a sentence for the draft saying that the report goes to every
/// route's recipients and the strictest deadline binds, route by route (with the onward steps at
/// `level`). `None` for a single route.
pub fn routing_note(
    rules: &Ruleset,
    routes: &[OperatorClass],
    op: &OperatorInfo,
    level: Level,
) -> Option<String> {
    if routes.len() < 2 {
        return None;
    }
    let names = |list: Vec<Recipient>| {
        list.into_iter()
            .map(|r| r.name)
            .collect::<Vec<_>>()
            .join("、")
    };
    let strictest = rules.route(routes[0]).window;
    let mut s = format!(
        "本事件适用多条报告路径（《国家网络安全事件报告管理办法》第四条）：须向各路径的报告对象分别报告，时限从严，最迟 {strictest} 内。"
    );
    for route in routes {
        let r = rules.route(*route);
        s.push_str(&format!(
            "{}（{}）：{} 内报告 {}",
            route_zh(*route),
            route.key(),
            r.window,
            names(recipients(rules, *route, op))
        ));
        if let Some(o) = r.onward.as_ref().filter(|o| level >= o.from_level) {
            s.push_str(&format!(
                "，接报后 {} 内报 {}",
                o.within,
                names(resolve_roles(rules, &o.to_roles, op))
            ));
            if !o.notify_roles.is_empty() {
                s.push_str(&format!(
                    "并通报 {}",
                    names(resolve_roles(rules, &o.notify_roles, op))
                ));
            }
        }
        s.push('；');
    }
    Some(s)
}

fn route_zh(c: OperatorClass) -> &'static str {
    match c {
        OperatorClass::Cii => "涉及关键信息基础设施",
        OperatorClass::CentralStateOrgan => "中央和国家机关部门及其直属单位",
        OperatorClass::Other => "其他网络运营者",
    }
}

pub fn channels(rules: &Ruleset) -> Vec<Channel> {
    rules
        .channels
        .iter()
        .map(|(k, v)| Channel {
            kind: k.clone(),
            value: v.clone(),
        })
        .collect()
}

fn class_zh(c: OperatorClass) -> &'static str {
    match c {
        OperatorClass::Cii => "关键信息基础设施运营者",
        OperatorClass::CentralStateOrgan => "中央和国家机关部门或直属单位",
        OperatorClass::Other => "其他网络运营者",
    }
}

fn or_blank(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or(TO_COMPLETE)
}

/// One line per piece of evidence, in words a duty officer can paste into a report.
pub fn explain_evidence(e: &Evidence) -> String {
    let value = e.value.to_string();
    let threshold = match &e.threshold {
        EvidenceValue::Number(_) => format!("≥ {}", e.threshold),
        EvidenceValue::Text(t) => format!("one of {t}"),
    };
    format!(
        "{} = {} {} (threshold {} {}) → {}（{}）",
        e.indicator,
        value,
        e.unit.unwrap_or(""),
        threshold,
        e.unit.unwrap_or(""),
        e.level,
        e.level.zh()
    )
}

fn describe_asset(a: &AssetInfo) -> String {
    let mut s = a.name().or(a.id()).unwrap_or(TO_COMPLETE).to_string();
    if let Some(k) = a.kind() {
        s.push_str(&format!("（类型 {k}"));
        if let Some(l) = a.level().or(a.size()) {
            s.push_str(&format!("，{l}"));
        }
        s.push('）');
    }
    s
}

/// A supplement (补报) completes a report filed with items （一）（二） only: those two were
/// reported, so they are marked as such (kept for reference, nothing to complete); items （三）
/// onward are what the supplement must say.
pub fn mark_already_reported(d: &mut Draft) {
    for item in d.items.iter_mut().filter(|i| i.item <= 2) {
        item.content = format!(
            "{ALREADY_REPORTED}{}",
            item.content.replace(TO_COMPLETE, "")
        );
        item.to_complete = false;
    }
}

/// The marker of an item a partial report already carried.
pub const ALREADY_REPORTED: &str = "【已报送】";

/// The art. 7 draft. Items whose titles the ruleset lists beyond the eight are left to complete.
pub fn draft(
    rules: &Ruleset,
    inc: &Incident,
    grade: &Grade,
    level: Level,
    offset: FixedOffset,
) -> Draft {
    let op = &inc.operator;
    let mut items = Vec::with_capacity(rules.draft_titles.len());
    for (i, title) in rules.draft_titles.iter().enumerate() {
        let n = (i + 1) as u8;
        let (content, to_complete) = match n {
            1 => {
                let known =
                    op.name.is_some() && (inc.asset.name().is_some() || inc.asset.id().is_some());
                (
                    format!(
                        "{}（{}，{}）；涉事系统：{}",
                        or_blank(&op.name),
                        class_zh(op.class),
                        or_blank(&op.province),
                        describe_asset(&inc.asset)
                    ),
                    !known,
                )
            }
            2 => {
                let mut s = format!(
                    "发现时间：{}；事件类型：{}；事件级别：{}（{}）；",
                    inc.opened_at.format(offset),
                    inc.category.as_deref().unwrap_or(TO_COMPLETE),
                    level.zh(),
                    level.key()
                );
                if grade.evidence.is_empty() {
                    s.push_str("定级依据：分析研判；");
                } else {
                    s.push_str("定级依据：");
                    s.push_str(
                        &grade
                            .evidence
                            .iter()
                            .map(explain_evidence)
                            .collect::<Vec<_>>()
                            .join("；"),
                    );
                    s.push('；');
                }
                let unassessed = inc.unassessed_at(rules, level);
                if !unassessed.is_empty() {
                    s.push_str("未能评估的指标（缺少事实，级别可能更高）：");
                    s.push_str(
                        &unassessed
                            .iter()
                            .map(|u| format!("{}（{}：{}）", u.row, u.reason, u.detail))
                            .collect::<Vec<_>>()
                            .join("；"),
                    );
                    s.push_str(TO_COMPLETE);
                    s.push('；');
                }
                if let Some(r) = &inc.ransom {
                    s.push_str(&format!(
                        "勒索信息：金额 {} {}，支付方式 {}，时间 {}；",
                        r.amount
                            .as_ref()
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| TO_COMPLETE.into()),
                        r.currency.as_deref().unwrap_or(""),
                        r.method.as_deref().unwrap_or(TO_COMPLETE),
                        r.date.as_deref().unwrap_or(TO_COMPLETE)
                    ));
                }
                s.push_str("已采取的应急措施及效果：");
                s.push_str(TO_COMPLETE);
                (s, true)
            }
            3 => {
                let ongoing: Vec<&str> = [
                    (DurationFigure::OutageWhole, "整体中断运行"),
                    (DurationFigure::OutageMainFunction, "主要功能中断运行"),
                    (DurationFigure::Unreachable, "无法访问"),
                    (DurationFigure::DefacementHome, "首页被篡改"),
                    (DurationFigure::DefacementOther, "页面被篡改"),
                ]
                .into_iter()
                .filter(|(f, _)| inc.figures.is_ongoing(*f))
                .map(|(_, name)| name)
                .collect();
                let s = if ongoing.is_empty() {
                    String::new()
                } else {
                    format!("事件仍在持续：{}；", ongoing.join("、"))
                };
                (format!("{s}{TO_COMPLETE}"), true)
            }
            5 => {
                let mut s = String::new();
                if !inc.sources.is_empty() {
                    s.push_str(&format!("告警来源：{}；", inc.sources.join("、")));
                }
                s.push_str(&format!("关联告警 {} 条；", inc.alert_count));
                s.push_str(TO_COMPLETE);
                (s, true)
            }
            _ => (TO_COMPLETE.to_string(), true),
        };
        items.push(DraftItem {
            item: n,
            title: title.clone(),
            content,
            to_complete,
        });
    }
    let _ = grade;
    let routes = super::reporting::routes(rules, op, &inc.asset);
    Draft {
        routing: routing_note(rules, &routes, op, level),
        items,
    }
}
