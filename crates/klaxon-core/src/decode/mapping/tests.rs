use super::*;
use serde_json::json;

fn path(s: &str) -> SourcePath {
    SourcePath::parse(s).unwrap()
}

#[test]
fn paths_read_nested_objects_and_flat_dotted_keys_alike() {
    let doc = json!({
        "kibana.alert.rule.name": "flat",
        "host": {"name": "nested"},
        "labels.klaxon": {"operator": "mixed"},
        "a": {"b.c": {"d": 1}},
        "resources": [{"uid": "r0"}, {"uid": "r1"}],
        "blank": "  ",
        "nil": null
    });
    assert_eq!(
        path("kibana.alert.rule.name").get(&doc),
        Some(&json!("flat"))
    );
    assert_eq!(path("host.name").get(&doc), Some(&json!("nested")));
    assert_eq!(
        path("labels.klaxon.operator").get(&doc),
        Some(&json!("mixed"))
    );
    assert_eq!(path("a.b.c.d").get(&doc), Some(&json!(1)));
    assert_eq!(path("resources[1].uid").get(&doc), Some(&json!("r1")));
    assert_eq!(path("resources[2].uid").get(&doc), None);
    assert_eq!(path("host.name.more").get(&doc), None);
    assert!(Source::parse("blank").unwrap().eval(&doc).is_none());
    assert!(Source::parse("nil").unwrap().eval(&doc).is_none());
}

#[test]
fn templates_need_every_placeholder() {
    let doc = json!({"event": {"module": "wazuh"}, "id": "1668.5", "n": 7});
    let t = Source::parse("{event.module}-{id}").unwrap();
    assert_eq!(t.eval(&doc), Some(json!("wazuh-1668.5")));
    let t = Source::parse("x{?event.module}").unwrap();
    assert_eq!(t.eval(&doc), Some(json!("x")));
    let t = Source::parse("{n}/{missing}").unwrap();
    assert_eq!(t.eval(&doc), None);
    for bad in ["{unclosed", "a}b", "{}", "{a{b}}", "{a..b}"] {
        assert!(Source::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn time_transforms() {
    let t = |v: Value| Transform::Timestamp.apply(&v, None);
    // Times with an offset pass as written: the native decoder reads the same forms.
    assert_eq!(
        t(json!("2022-11-17T19:17:42.694+0200")),
        Ok(json!("2022-11-17T19:17:42.694+0200"))
    );
    assert_eq!(
        t(json!(" 2018-10-03T14:42:44.836744+0000 ")),
        Ok(json!("2018-10-03T14:42:44.836744+0000"))
    );
    assert_eq!(t(json!(1739539623)), Ok(json!("2025-02-14T13:27:03+00:00")));
    assert_eq!(
        t(json!(1739539623123_i64)),
        Ok(json!("2025-02-14T13:27:03.123+00:00"))
    );
    assert!(
        matches!(t(json!("2023-06-30 10:28:55.297615")), Err(Problem::Value(p)) if p.contains("no UTC offset"))
    );
    assert!(
        matches!(t(json!("2023-02-29T10:28:55Z")), Err(Problem::Value(p)) if p.contains("day of the month is out of range"))
    );
    assert!(matches!(t(json!(["x"])), Err(Problem::Type(_))));
    // A declared zone reads a time without an offset, and only such a time.
    let cst = crate::time::parse_zone("+08:00").ok();
    assert_eq!(
        Transform::Timestamp.apply(&json!("2023-06-30 10:28:55.297615"), cst),
        Ok(json!("2023-06-30T10:28:55.297+08:00"))
    );
    assert_eq!(
        Transform::Timestamp.apply(&json!("2023-06-30T10:28:55Z"), cst),
        Ok(json!("2023-06-30T10:28:55Z"))
    );
    assert_eq!(
        Transform::EpochS.apply(&json!("1739539623"), None),
        Ok(json!("2025-02-14T13:27:03+00:00"))
    );
    assert_eq!(
        Transform::EpochMs.apply(&json!(1739539623000_i64), None),
        Ok(json!("2025-02-14T13:27:03+00:00"))
    );
    assert!(Transform::EpochMs.apply(&json!(1e300), None).is_err());
    assert!(Transform::EpochS
        .apply(&json!(253_402_300_800_i64), None)
        .is_err());
}

#[test]
fn number_transforms() {
    assert_eq!(
        Transform::Integer.apply(&json!("1200000"), None),
        Ok(json!(1200000))
    );
    assert_eq!(Transform::Integer.apply(&json!(5.0), None), Ok(json!(5)));
    assert!(Transform::Integer.apply(&json!("-3"), None).is_err());
    assert!(Transform::Integer.apply(&json!("lots"), None).is_err());
    assert_eq!(Transform::Number.apply(&json!("2.5"), None), Ok(json!(2.5)));
    assert_eq!(
        Transform::Boolean.apply(&json!("TRUE"), None),
        Ok(json!(true))
    );
    assert_eq!(
        Transform::Lowercase.apply(&json!("Suricata"), None),
        Ok(json!("suricata"))
    );
    assert_eq!(
        Transform::String.apply(&json!(2013028), None),
        Ok(json!("2013028"))
    );
}

const MINI: &str = r#"
        [recognise]
        all = ["@timestamp"]
        any = ["ecs.version", "event.kind"]
        [fields.id]
        from = ["event.id", "{event.module}-{id}"]
        [fields.timestamp]
        from = ["@timestamp"]
        transform = "timestamp"
        [fields.source]
        from = ["observer.product"]
        default = "ECS"
        transform = "lowercase"
        [fields.operator]
        from = ["labels.klaxon_operator"]
        [fields."operator.class"]
        from = ["labels.klaxon_operator_class"]
        [fields."impact.affected_population"]
        from = ["labels.klaxon_affected_population"]
        transform = "integer"
    "#;

#[test]
fn maps_a_record_and_keeps_provenance() {
    let m = parse("mini", "mini.toml", MINI).unwrap();
    let doc = json!({"@timestamp": "2026-11-24T00:00:00Z", "event.kind": "alert",
            "event": {"module": "wazuh"}, "id": "17.5",
            "labels": {"klaxon_operator": "gd-grid", "klaxon_operator_class": "cii",
                       "klaxon_affected_population": "150000"}});
    assert!(m.may_recognise(&key_roots(&["@timestamp", "event.kind"])));
    assert!(m.may_recognise(&key_roots(&["@timestamp", "event"])));
    assert!(!m.may_recognise(&key_roots(&["@timestamp", "id"])));
    assert!(!m.may_recognise(&key_roots(&["@timestamp", "eventually"])));
    assert!(m.recognises(&doc));
    let out = m.to_native(&doc).unwrap();
    assert_eq!(
        out.native,
        json!({"id": "wazuh-17.5", "timestamp": "2026-11-24T00:00:00Z", "source": "ecs",
                   "operator": {"id": "gd-grid", "class": "cii"},
                   "impact": {"affected_population": 150000}})
    );
    let e = DecodeError::WrongType {
        field: "impact.affected_population".into(),
        problem: "x".into(),
    };
    assert!(
        matches!(out.explain(e), DecodeError::WrongType { field, .. } if field == "labels.klaxon_affected_population")
    );
}

#[test]
fn rejections_name_the_source_field() {
    let m = parse("mini", "mini.toml", MINI).unwrap();
    let doc = json!({"@timestamp": "2026-11-24T00:00:00Z", "ecs.version": "8.11.0",
            "event.id": "e1", "labels.klaxon_affected_population": "many"});
    let e = m.to_native(&doc).unwrap_err();
    assert_eq!(e.code(), "bad_value");
    assert!(
        e.to_string()
            .contains("`labels.klaxon_affected_population`"),
        "{e}"
    );
    assert!(e.to_string().contains("impact.affected_population"), "{e}");
    let doc = json!({"@timestamp": "2026-11-24T00:00:00Z", "ecs.version": "8.11.0"});
    let e = m.to_native(&doc).unwrap_err();
    assert_eq!(e.code(), "missing_field");
    assert!(
        e.to_string().contains("event.id, {event.module}-{id}"),
        "{e}"
    );
}

#[test]
fn validation_names_each_bad_key() {
    let bad = r#"
            [recognise]
            [require]
            class_uid = []
            [fields.id]
            from = ["a..b"]
            [fields.titel]
            from = ["x"]
            [fields."impact.affected_population"]
            from = ["y"]
            transform = "int"
            [fields.source]
            default = [1]
        "#;
    let issues = parse("bad", "bad.toml", bad).unwrap_err();
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    for k in [
        "recognise",
        "require.class_uid",
        "fields.id.from[0]",
        "fields.titel",
        "fields.impact.affected_population.transform",
        "fields.source.default",
        "fields.timestamp",
    ] {
        assert!(keys.contains(&k), "{k} not in {keys:?}");
    }
    assert!(issues.iter().all(|i| i.file == "bad.toml"));
    let issues = parse(
        "bad",
        "bad.toml",
        "[recognise]\nall = [\"a\"]\n[fields.id]\nfrm = []\n",
    )
    .unwrap_err();
    assert_eq!(issues[0].key, "line 4", "{issues:?}");
}
