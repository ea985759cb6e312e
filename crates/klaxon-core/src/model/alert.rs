//! The native alert (docs/spec.md §1) as decoded from one record. Serde types only, no logic.

use super::level::{Level, OperatorClass};
use crate::time::Timestamp;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;

/// One field of the native alert, as a dotted path into its JSON.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub path: &'static str,
    /// A value the field may take, as JSON text (the decoders' agreement test builds records
    /// from these).
    pub example: &'static str,
    /// Whether `correlation.group_by` may name it.
    pub group_by: bool,
}

const fn field(path: &'static str, example: &'static str) -> Field {
    Field {
        path,
        example,
        group_by: false,
    }
}

const fn grouping(path: &'static str, example: &'static str) -> Field {
    Field {
        path,
        example,
        group_by: true,
    }
}

/// Every field of [`Alert`], in one table: mapping files may fill these (plus the plain-id
/// forms of `operator` and `asset`), `correlation.group_by` may name those marked, and the fast
/// decoder is checked against serde on records built of any of them. A field added to `Alert`
/// but not here fails the test `the_field_table_is_the_alert_schema`.
pub const FIELDS: [Field; 43] = [
    field("id", r#""a-1""#),
    field("timestamp", r#""2026-11-24T08:00:00+08:00""#),
    grouping("source", r#""suricata""#),
    grouping("title", r#""ET EXPLOIT 可疑 DNS 隧道""#),
    grouping("category", r#""outage""#),
    field("incident_key", r#""k-1""#),
    field("detail", r#""rule 5712, level 10""#),
    grouping("operator.id", r#""gd-grid""#),
    field("operator.name", r#""广东电网有限责任公司""#),
    field("operator.class", r#""cii""#),
    grouping("operator.province", r#""广东省""#),
    field("operator.sector", r#""energy""#),
    field("operator.organ", r#""mof""#),
    grouping("asset.id", r#""gd-grid-scada""#),
    field("asset.name", r#""SCADA master""#),
    grouping("asset.kind", r#""cii_system""#),
    field("asset.level", r#""provincial""#),
    field("asset.size", r#""large""#),
    field("asset.operator", r#""gd-grid""#),
    field("impact.outage.scope", r#""main_function""#),
    field("impact.outage.since", r#""2026-11-24T07:30:00+08:00""#),
    field("impact.outage.until", r#""2026-11-24T07:55:00Z""#),
    field("impact.unreachable.since", r#""2026-11-24T07:00:00+08:00""#),
    field("impact.unreachable.until", "null"),
    field("impact.defacement.page", r#""other""#),
    field("impact.defacement.since", r#""2026-11-24T06:00:00+08:00""#),
    field("impact.defacement.until", r#""2026-11-24T07:00:00+08:00""#),
    field("impact.defacement.reposts", "1200"),
    field("impact.defacement.views", "100000"),
    field("impact.defacement.designated", r#""major""#),
    field("impact.affected_population", "150000"),
    field("impact.affected_population_share.provincial", "0.25"),
    field("impact.affected_population_share.prefectural", "0.5"),
    field("impact.personal_info_records", "1200000"),
    field("impact.economic_loss_cny", "5000000.5"),
    field("impact.data_leak.class", r#""important""#),
    field("impact.data_leak.threat", r#""serious""#),
    field("impact.ransom.amount", "1.5e3"),
    field("impact.ransom.currency", r#""BTC""#),
    field("impact.ransom.method", r#""encryption""#),
    field("impact.ransom.date", r#""2026-11-24""#),
    field("impact.finding.level", r#""major""#),
    field("impact.finding.reason", r#""analyst's judgement""#),
];

/// The fields `correlation.group_by` may name, in table order.
pub fn group_by_fields() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().filter(|f| f.group_by).map(|f| f.path)
}

/// A string an alert carries. Most are dropped once the alert is applied, so the fast decoder
/// borrows them from the record instead of copying each (and allocating for the long ones:
/// titles, asset names); what the engine keeps, it copies. Serde, the reference decoder for
/// everything else, makes owned ones.
pub type Text<'a> = std::borrow::Cow<'a, str>;

/// One alert. Only `id` and `timestamp` are required; unknown fields are ignored so that SIEMs can
/// send their own extras.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Alert<'a> {
    #[serde(deserialize_with = "non_empty")]
    pub id: Text<'a>,
    #[serde(deserialize_with = "timestamp")]
    pub timestamp: Timestamp,
    #[serde(default)]
    pub source: Option<Text<'a>>,
    #[serde(default)]
    pub title: Option<Text<'a>>,
    #[serde(default)]
    pub category: Option<Text<'a>>,
    #[serde(default)]
    pub incident_key: Option<Text<'a>>,
    /// What the source says of its own detection (its rule and the rule's rating: a Wazuh rule
    /// level, a Suricata severity), for the person who files the report. Shown beside the
    /// source in the report draft; never graded: the guide grades on impact.
    #[serde(default)]
    pub detail: Option<Text<'a>>,
    #[serde(default)]
    pub operator: Option<Ref<'a, OperatorFields>>,
    #[serde(default)]
    pub asset: Option<Ref<'a, AssetFields<'a>>>,
    #[serde(default)]
    pub impact: Impact,
}

/// A string of the alert's own, to outlive the record it was decoded from.
fn owned(t: Text<'_>) -> Text<'static> {
    Text::Owned(t.into_owned())
}

impl Alert<'_> {
    /// The alert with every string its own, to outlive the record it was decoded from (the
    /// engine takes borrowed alerts; only callers that hold alerts across records need this).
    pub fn into_owned(self) -> Alert<'static> {
        Alert {
            id: owned(self.id),
            timestamp: self.timestamp,
            source: self.source.map(owned),
            title: self.title.map(owned),
            category: self.category.map(owned),
            incident_key: self.incident_key.map(owned),
            detail: self.detail.map(owned),
            operator: self.operator.map(|r| r.into_owned(|f| f)),
            asset: self.asset.map(|r| r.into_owned(AssetFields::into_owned)),
            impact: self.impact,
        }
    }
}

impl<T> Ref<'_, T> {
    /// [`Alert::into_owned`] for a reference, `own` doing it for the inline object.
    fn into_owned<U>(self, own: impl FnOnce(T) -> U) -> Ref<'static, U> {
        match self {
            Ref::Id(id) => Ref::Id(owned(id)),
            Ref::Inline(f) => Ref::Inline(Box::new(own(*f))),
        }
    }
}

impl AssetFields<'_> {
    fn into_owned(self) -> AssetFields<'static> {
        AssetFields {
            id: self.id.map(owned),
            name: self.name.map(owned),
            kind: self.kind.map(owned),
            level: self.level.map(owned),
            size: self.size.map(owned),
            operator: self.operator.map(owned),
        }
    }
}

/// Either a registry id (`"gd-grid"`) or an inline object whose fields override the registry's.
/// Inline objects are boxed: they are rare, and a decoded alert is moved several times on its
/// way into the engine, so its size is paid in copies on every alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Ref<'a, T> {
    Id(Text<'a>),
    Inline(Box<T>),
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct OperatorFields {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub class: Option<OperatorClass>,
    #[serde(default)]
    pub province: Option<String>,
    #[serde(default)]
    pub sector: Option<String>,
    /// For central and state organs: the organ's id, which picks its cyberspace work body.
    #[serde(default)]
    pub organ: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct AssetFields<'a> {
    #[serde(default)]
    pub id: Option<Text<'a>>,
    #[serde(default)]
    pub name: Option<Text<'a>>,
    /// What the guide's rows talk about: `cii_system`, `party_gov_portal`, … (vocabulary in config).
    #[serde(default)]
    pub kind: Option<Text<'a>>,
    /// Administrative level of a portal or news site: `national`, `provincial`, `prefectural`, `county`.
    #[serde(default)]
    pub level: Option<Text<'a>>,
    /// Size of a network platform: `super_large`, `large`, `other`.
    #[serde(default)]
    pub size: Option<Text<'a>>,
    #[serde(default)]
    pub operator: Option<Text<'a>>,
}

/// The measured figures the grading guide uses.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Impact {
    #[serde(default)]
    pub outage: Option<Outage>,
    #[serde(default)]
    pub unreachable: Option<Span>,
    #[serde(default)]
    pub defacement: Option<Box<Defacement>>,
    #[serde(default)]
    pub affected_population: Option<u64>,
    #[serde(default)]
    pub affected_population_share: Option<PopulationShare>,
    #[serde(default)]
    pub personal_info_records: Option<u64>,
    #[serde(default, deserialize_with = "non_negative")]
    pub economic_loss_cny: Option<f64>,
    #[serde(default)]
    pub data_leak: Option<Box<DataLeak>>,
    #[serde(default)]
    pub ransom: Option<Box<Ransom>>,
    /// An analyst's qualitative finding (the guide's catch-all row).
    #[serde(default)]
    pub finding: Option<Finding>,
}

/// An interval; `until: null` (or absent) means still going on. An absent `since` means "since
/// the alert's timestamp". Intervals are identified by `since`: a later alert with the same
/// `since` revises `until`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Span {
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub since: Option<Timestamp>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub until: Option<Timestamp>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Outage {
    #[serde(default)]
    pub scope: OutageScope,
    #[serde(flatten)]
    pub span: Span,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutageScope {
    /// 整体中断运行
    #[default]
    Whole,
    /// 主要功能中断运行
    MainFunction,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Defacement {
    #[serde(default)]
    pub page: Page,
    #[serde(flatten)]
    pub span: Span,
    #[serde(default)]
    pub reposts: Option<u64>,
    #[serde(default)]
    pub views: Option<u64>,
    /// The authority's designation of the spread (特大/大/较大范围传播). `true` without a scale is
    /// read as 较大范围 — the lowest designation, which still makes the incident reportable.
    #[serde(default, deserialize_with = "designation")]
    pub designated: Option<Level>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Page {
    #[default]
    Home,
    Other,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct PopulationShare {
    #[serde(default, deserialize_with = "share")]
    pub provincial: Option<f64>,
    #[serde(default, deserialize_with = "share")]
    pub prefectural: Option<f64>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct DataLeak {
    /// `core` or `important`.
    pub class: String,
    /// `especially_serious`, `serious` or `relatively_serious`.
    pub threat: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Ransom {
    #[serde(default)]
    pub amount: Option<serde_json::Number>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub date: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Finding {
    pub level: Level,
    #[serde(default)]
    pub reason: Option<String>,
}

// ---- field deserializers: each error message names the problem; serde_path_to_error adds the field.

fn non_empty<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Text<'a>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Err(de::Error::custom("must be a non-empty string"));
    }
    Ok(Text::Owned(s))
}

pub(crate) fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    Timestamp::parse_rfc3339(&s).map_err(de::Error::custom)
}

fn opt_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    match Option::<std::borrow::Cow<'de, str>>::deserialize(d)? {
        None => Ok(None),
        Some(s) => Timestamp::parse_rfc3339(&s)
            .map(Some)
            .map_err(de::Error::custom),
    }
}

fn share<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        Some(v) if !(0.0..=1.0).contains(&v) => Err(de::Error::custom(format!(
            "must be a fraction between 0 and 1, got {v}"
        ))),
        v => Ok(v),
    }
}

fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        Some(v) if !(v >= 0.0 && v.is_finite()) => Err(de::Error::custom(format!(
            "must be a non-negative amount, got {v}"
        ))),
        v => Ok(v),
    }
}

fn designation<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Level>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Flag(bool),
        Scale(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None | Some(Raw::Flag(false)) => Ok(None),
        Some(Raw::Flag(true)) => Ok(Some(Level::RelativelyMajor)),
        Some(Raw::Scale(s)) => match s.parse::<Level>() {
            Ok(Level::General) | Err(_) => Err(de::Error::custom(format!(
                "must be true or a scale (particularly_major, major, relatively_major), got {s:?}"
            ))),
            Ok(l) => Ok(Some(l)),
        },
    }
}

impl<'de, 'a, T: Deserialize<'de>> Deserialize<'de> for Ref<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RefVisitor<'a, T>(PhantomData<(Text<'a>, T)>);
        impl<'de, 'a, T: Deserialize<'de>> Visitor<'de> for RefVisitor<'a, T> {
            type Value = Ref<'a, T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a registry id string or an object")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.trim().is_empty() {
                    return Err(E::custom("must be a non-empty id or an object"));
                }
                Ok(Ref::Id(Text::Owned(v.to_owned())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|t| Ref::Inline(Box::new(t)))
            }
        }
        d.deserialize_any(RefVisitor(PhantomData))
    }
}

/// A native alert as JSON holding the given fields of the table, each with its example value.
#[cfg(test)]
pub(crate) fn record_of<'f>(fields: impl IntoIterator<Item = &'f Field>) -> serde_json::Value {
    let mut root = serde_json::Map::new();
    for f in fields {
        let value: serde_json::Value =
            serde_json::from_str(f.example).unwrap_or_else(|e| panic!("{}: {e}", f.path));
        let mut parts: Vec<&str> = f.path.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut obj = &mut root;
        for p in parts {
            obj = obj
                .entry(p)
                .or_insert_with(|| serde_json::Value::Object(Default::default()))
                .as_object_mut()
                .unwrap_or_else(|| panic!("{} crosses a leaf", f.path));
        }
        obj.insert(last.to_string(), value);
    }
    serde_json::Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn leaves(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&path, v, out);
                }
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }

    /// Serde's view of the schema (every field of a fully populated alert, serialized back) is
    /// the table: a field added to `Alert` and not to the table, or the reverse, fails here.
    #[test]
    fn the_field_table_is_the_alert_schema() {
        let json = record_of(FIELDS.iter());
        let alert: Alert = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("the table's examples make an alert: {e}\n{json}"));
        let mut schema = BTreeSet::new();
        leaves(
            "",
            &serde_json::to_value(&alert).expect("serializes"),
            &mut schema,
        );
        let table: BTreeSet<String> = FIELDS.iter().map(|f| f.path.to_string()).collect();
        assert_eq!(schema, table);
        assert_eq!(table.len(), FIELDS.len(), "a path is in the table twice");
    }
}
