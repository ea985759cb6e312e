//! Prometheus Alertmanager as a sink (API v2, `POST /api/v2/alerts`).
//!
//! Each page becomes one alert per target: `alertname` `KlaxonReportDue` (or
//! `KlaxonReportOverdue` once the deadline has passed), the §10 labels (`incident_id`, `level`,
//! `report_kind`, `operator`, `province`), `target` and the target's own labels (route on them),
//! and annotations a person reads (summary, description = the page's reason, deadline,
//! recipients, the desk link). Alertmanager identifies an alert by its labels, so the labels hold
//! nothing that changes while the obligation is open; the annotations carry what does.
//!
//! An alert stays firing while its obligation is open: the stage keeps the open alerts (bounded)
//! and re-sends them every `resend_every` with `endsAt` four periods ahead, as Prometheus does —
//! if Klaxon stops, they lapse instead of firing forever. `report.filed` resolves the alerts of
//! that report, `incident.dismissed` and `incident.merged` all alerts of the incident: they are
//! sent once more with `endsAt` now, which Alertmanager turns into a resolved notification.
//!
//! The table lives in memory: after a restart of the stage, alerts of obligations paged before
//! it are not re-sent, and lapse at their `endsAt` unless a later page of the same obligation
//! (an overdue repeat) opens them again. Documented in the README.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

pub const DUE: &str = "KlaxonReportDue";
pub const OVERDUE: &str = "KlaxonReportOverdue";

/// One alert as API v2 takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AmAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// An open alert, with what resolves it.
#[derive(Clone, Debug)]
struct Open {
    alert: AmAlert,
    incident_id: String,
    report_kind: String,
    /// Insertion order, for evicting the oldest when full.
    seq: u64,
}

/// The open alerts, keyed by their label set.
#[derive(Debug, Default)]
pub struct OpenAlerts {
    open: BTreeMap<String, Open>,
    seq: u64,
    max: usize,
    /// Alerts dropped because the table was full, since the last call.
    pub evicted: u64,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// RFC 3339 in UTC, as Alertmanager prints it.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The alerts a page event raises (one per target), firing until `ends_at`. Anything that is
/// not a page raises none.
pub fn alerts_for_page(
    ev: &Value,
    desk_url: &str,
    now: chrono::DateTime<chrono::Utc>,
    ends_at: chrono::DateTime<chrono::Utc>,
) -> Vec<AmAlert> {
    if ev.get("type").and_then(Value::as_str) != Some("escalation.page") {
        return Vec::new();
    }
    let incident = text(ev, "incident_id");
    let overdue = ev
        .get("seconds_remaining")
        .and_then(Value::as_i64)
        .is_some_and(|s| s <= 0);
    let level = text(ev, "level");
    let level_zh = text(ev, "level_zh");
    let kind = text(ev, "report_kind");
    let operator = ev.get("operator").cloned().unwrap_or(Value::Null);
    let starts = ev
        .get("at")
        .and_then(Value::as_str)
        .and_then(|a| chrono::DateTime::parse_from_rfc3339(a).ok())
        .map(|t| t.with_timezone(&chrono::Utc).min(now))
        .unwrap_or(now);
    let link = format!("{}/incidents/{incident}", desk_url.trim_end_matches('/'));
    let recipients: Vec<String> = ev
        .get("recipients")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let title = text(ev, "title");
    let deadline = text(ev, "deadline");
    let reason = text(ev, "reason");
    let summary = format!(
        "{level_zh} ({level}) {incident}{}: {} report {} by {deadline}",
        if title.is_empty() {
            String::new()
        } else {
            format!(" — {title}")
        },
        kind.replace('_', "-"),
        if overdue { "overdue, was due" } else { "due" },
    );
    let targets = ev
        .get("targets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    targets
        .iter()
        .map(|t| {
            let mut labels = BTreeMap::new();
            if let Some(extra) = t.get("labels").and_then(Value::as_object) {
                for (k, v) in extra {
                    if let Some(v) = v.as_str() {
                        labels.insert(k.clone(), v.to_owned());
                    }
                }
            }
            let mut put = |k: &str, v: String| {
                if !v.is_empty() {
                    labels.insert(k.to_owned(), v);
                }
            };
            put("alertname", (if overdue { OVERDUE } else { DUE }).into());
            put(
                "severity",
                (if overdue { "critical" } else { "warning" }).into(),
            );
            put("incident_id", incident.clone());
            put("level", level.clone());
            put("report_kind", kind.clone());
            put("operator", text(&operator, "id"));
            put("province", text(&operator, "province"));
            put("target", text(t, "id"));
            let mut annotations = BTreeMap::new();
            annotations.insert("summary".to_owned(), summary.clone());
            annotations.insert("description".to_owned(), reason.clone());
            annotations.insert("deadline".to_owned(), deadline.clone());
            if !recipients.is_empty() {
                annotations.insert("recipients".to_owned(), recipients.join("、"));
            }
            annotations.insert("desk".to_owned(), link.clone());
            if let Some(name) = t.get("name").and_then(Value::as_str) {
                annotations.insert("target_name".to_owned(), name.to_owned());
            }
            AmAlert {
                labels,
                annotations,
                starts_at: rfc3339(starts),
                ends_at: rfc3339(ends_at),
                generator_url: link.clone(),
            }
        })
        .collect()
}

/// What an event closes: (incident, report kind or `None` for all of the incident's alerts).
pub fn closes(ev: &Value) -> Option<(String, Option<String>)> {
    let incident = text(ev, "incident_id");
    match ev.get("type").and_then(Value::as_str)? {
        "report.filed" => Some((incident, Some(text(ev, "report_kind")))),
        "incident.dismissed" | "incident.merged" => Some((incident, None)),
        _ => None,
    }
}

fn key(a: &AmAlert) -> String {
    serde_json::to_string(&a.labels).unwrap_or_default()
}

impl OpenAlerts {
    pub fn new(max: usize) -> Self {
        OpenAlerts {
            max: max.max(1),
            ..OpenAlerts::default()
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Opens (or refreshes) alerts; a re-opened alert keeps its first `startsAt`.
    pub fn open(&mut self, alerts: &[AmAlert]) -> Vec<AmAlert> {
        let mut out = Vec::new();
        for a in alerts {
            let k = key(a);
            let mut a = a.clone();
            if let Some(prev) = self.open.get(&k) {
                a.starts_at = prev.alert.starts_at.clone();
            }
            self.seq += 1;
            let incident_id = a.labels.get("incident_id").cloned().unwrap_or_default();
            let report_kind = a.labels.get("report_kind").cloned().unwrap_or_default();
            self.open.insert(
                k,
                Open {
                    alert: a.clone(),
                    incident_id,
                    report_kind,
                    seq: self.seq,
                },
            );
            out.push(a);
        }
        while self.open.len() > self.max {
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, o)| o.seq)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.open.remove(&k);
                    self.evicted += 1;
                }
                None => break,
            }
        }
        out
    }

    /// Closes the alerts of `incident` (of `kind` only, if given): returns them with `endsAt`
    /// set to `now`, to be sent once more as resolved.
    pub fn close(
        &mut self,
        incident: &str,
        kind: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<AmAlert> {
        let keys: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| o.incident_id == incident && kind.is_none_or(|k| o.report_kind == k))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| self.open.remove(&k))
            .map(|o| {
                let mut a = o.alert;
                a.ends_at = rfc3339(now);
                a
            })
            .collect()
    }

    /// Every open alert with `endsAt` moved to `ends_at` (the periodic re-send).
    pub fn renew(&mut self, ends_at: chrono::DateTime<chrono::Utc>) -> Vec<AmAlert> {
        let ends = rfc3339(ends_at);
        self.open
            .values_mut()
            .map(|o| {
                o.alert.ends_at = ends.clone();
                o.alert.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(seconds_remaining: i64) -> Value {
        json!({
            "event_id": "INC-20261124-000000000001/escalation.page/initial/2",
            "type": "escalation.page", "incident_id": "INC-20261124-000000000001",
            "at": "2026-11-24T08:10:00+08:00", "title": "SCADA down", "level": "major",
            "level_zh": "重大", "report_kind": "initial", "deadline": "2026-11-24T09:00:00+08:00",
            "seconds_remaining": seconds_remaining, "policy": "reportable", "step": 2,
            "targets": [{"id": "duty-lead", "name": "Shift lead", "labels": {"team": "soc-lead"}},
                        {"id": "ciso", "labels": {"team": "ciso"}}],
            "reason": "not acknowledged 10m after the initial report fell due",
            "recipients": [{"id": "a", "name": "能源行业保护工作部门"}, {"id": "b", "name": "广东省公安厅"}],
            "operator": {"id": "gd-grid", "class": "cii", "province": "广东省"},
        })
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn a_page_raises_one_alert_per_target_with_the_section_10_labels() {
        let alerts = alerts_for_page(&page(3000), "http://desk:8090/", now(), now());
        assert_eq!(alerts.len(), 2);
        let a = &alerts[0];
        for (k, v) in [
            ("alertname", "KlaxonReportDue"),
            ("incident_id", "INC-20261124-000000000001"),
            ("level", "major"),
            ("report_kind", "initial"),
            ("operator", "gd-grid"),
            ("province", "广东省"),
            ("target", "duty-lead"),
            ("team", "soc-lead"),
        ] {
            assert_eq!(a.labels.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(
            a.annotations["desk"],
            "http://desk:8090/incidents/INC-20261124-000000000001"
        );
        assert_eq!(
            a.annotations["recipients"],
            "能源行业保护工作部门、广东省公安厅"
        );
        assert_eq!(a.starts_at, "2026-11-24T00:10:00.000Z");
        let overdue = alerts_for_page(&page(-60), "http://desk", now(), now());
        assert_eq!(overdue[0].labels["alertname"], "KlaxonReportOverdue");
        assert!(alerts_for_page(&json!({"type": "report.due"}), "", now(), now()).is_empty());
    }

    #[test]
    fn filing_closes_that_report_s_alerts_and_dismiss_all_of_them() {
        let mut open = OpenAlerts::new(100);
        open.open(&alerts_for_page(&page(3000), "http://d", now(), now()));
        let mut follow = page(3000);
        follow["report_kind"] = json!("follow_up");
        open.open(&alerts_for_page(&follow, "http://d", now(), now()));
        assert_eq!(open.len(), 4);
        let filed = json!({"type": "report.filed", "incident_id": "INC-20261124-000000000001", "report_kind": "initial"});
        let (inc, kind) = closes(&filed).expect("closes");
        let resolved = open.close(&inc, kind.as_deref(), now());
        assert_eq!(resolved.len(), 2);
        assert!(resolved.iter().all(|a| a.ends_at == rfc3339(now())));
        assert_eq!(open.len(), 2);
        let dismissed =
            json!({"type": "incident.dismissed", "incident_id": "INC-20261124-000000000001"});
        let (inc, kind) = closes(&dismissed).expect("closes");
        assert_eq!(open.close(&inc, kind.as_deref(), now()).len(), 2);
        assert!(open.is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_oldest() {
        let mut open = OpenAlerts::new(3);
        for i in 0..5 {
            let mut p = page(3000);
            p["incident_id"] = json!(format!("INC-{i}"));
            open.open(&alerts_for_page(&p, "http://d", now(), now())[..1]);
        }
        assert_eq!(open.len(), 3);
        assert_eq!(open.evicted, 2);
        assert!(open.close("INC-0", None, now()).is_empty());
        assert_eq!(open.close("INC-4", None, now()).len(), 1);
    }
}
