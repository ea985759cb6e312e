//! Engine behaviour across its rooms: dedup bounds, recent ids, interning, partition shares.

use super::*;

#[test]
fn an_incident_remembers_its_newest_ids_oldest_first() {
    let mut e = Engine::from_config(&shipped_config());
    for i in 0..40 {
        e.handle(keyed_alert(&format!("a-{i}"), i));
    }
    let inc = e.incidents_sorted()[0];
    let want: Vec<u128> = (8..40)
        .map(|i| dedup_key(b"alert", &[format!("a-{i}").as_bytes()]))
        .collect();
    assert_eq!(inc.recent_ids, want);
    assert_eq!(inc.recent_ids.capacity(), RECENT_IDS);
    assert!(inc.alert_ids.capacity() <= inc.alert_ids.len() + 2);
}

fn shipped_config() -> crate::settings::Config {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    crate::settings::load(&dir).expect("config")
}

fn engine_with_dedup_bound(max_dedup_ids: usize) -> Engine {
    let c = shipped_config();
    let opts = EngineOptions {
        max_dedup_ids,
        ..EngineOptions::from_config(&c)
    };
    Engine::new(
        Arc::new(c.ruleset.clone()),
        Arc::new(c.registry.clone()),
        opts,
    )
}

fn keyed_alert(id: &str, second: u32) -> Input<'static> {
    let line = format!(
        r#"{{"id":"{id}","timestamp":"2026-11-24T08:00:{second:02}+08:00","incident_key":"k"}}"#
    );
    crate::decode::decode(line.as_bytes(), crate::decode::Expect::Alert, 0)
        .expect("alert")
        .into_owned()
}

#[test]
fn the_dedup_set_is_bounded_and_an_incident_still_knows_its_recent_alerts() {
    let mut e = engine_with_dedup_bound(3);
    for i in 0..5 {
        e.handle(keyed_alert(&format!("a-{i}"), i));
    }
    assert_eq!(e.stats(Timestamp(0)).dedup_ids, 3);
    assert_eq!(e.take_dedup_evicted(), 2);
    assert_eq!(e.take_dedup_evicted(), 0, "counted once");
    // The set forgot a-0, but the incident's own recent ids did not: still a duplicate.
    e.handle(keyed_alert("a-0", 10));
    assert_eq!(e.incidents_sorted()[0].alert_count, 5);
    assert_eq!(e.counters().duplicates, 1);
}

#[test]
fn past_the_bound_and_the_recent_ids_a_resent_alert_is_applied_again() {
    // The documented price of the bound: memory stays fixed, the window shrinks.
    let mut e = engine_with_dedup_bound(3);
    for i in 0..(RECENT_IDS as u32 + 5) {
        e.handle(keyed_alert(&format!("a-{i}"), i));
    }
    e.handle(keyed_alert("a-0", 59));
    assert_eq!(e.incidents_sorted()[0].alert_count, RECENT_IDS as u64 + 6);
    assert_eq!(e.stats(Timestamp(0)).dedup_ids, 3);
}

#[test]
fn incidents_share_one_copy_of_an_asset_and_the_pool_holds_it_once() {
    let mut e = engine_with_dedup_bound(100);
    for (id, key, host) in [("a1", "k1", "h1"), ("a2", "k2", "h1"), ("a3", "k3", "h2")] {
        let line = format!(
            r#"{{"id":"{id}","timestamp":"2026-11-24T08:00:00+08:00","incident_key":"{key}","asset":{{"id":"{host}","kind":"other"}}}}"#
        );
        e.handle(
            crate::decode::decode(line.as_bytes(), crate::decode::Expect::Alert, 0).expect("alert"),
        );
    }
    let by_key = |k: &str| {
        e.incidents_sorted()
            .into_iter()
            .find(|i| *i.key == format!("k:{k}"))
            .map(|i| i.asset.clone())
            .expect("incident")
    };
    assert!(Arc::ptr_eq(&by_key("k1"), &by_key("k2")));
    assert!(!Arc::ptr_eq(&by_key("k1"), &by_key("k3")));
    assert_eq!(e.assets.len(), 2);
    // The pool, the two incidents and the clone just returned: no other copy anywhere.
    assert_eq!(Arc::strong_count(&by_key("k1")), 1 + 2 + 1);
}

#[test]
fn each_partition_engine_gets_its_share_of_the_dedup_bound() {
    let opts = EngineOptions::from_config(&shipped_config());
    assert_eq!(opts.max_dedup_ids, 2_000_000);
    assert_eq!(opts.clone().one_partition_of(6).max_dedup_ids, 333_334);
    assert_eq!(opts.one_partition_of(0).max_dedup_ids, 2_000_000);
}

#[test]
fn incident_ids_render_as_write_would() {
    let ids = [
        (20261124, 0x7f3a_9c2e_01ab),
        (0, 0),
        (99_999_999, 0xffff_ffff_ffff),
        (100_000_000, 1),
        (7, 0x1_0000_0000_0000),
        (u32::MAX, u64::MAX),
    ];
    for (day, hash) in ids {
        let id = IncidentId { day, hash };
        assert_eq!(id.to_string(), format!("INC-{day:08}-{hash:012x}"));
        if day < 100_000_000 && hash >> 48 == 0 {
            assert_eq!(id.to_string().parse::<IncidentId>(), Ok(id));
        }
    }
}

#[test]
fn timers_are_kept_without_spare_capacity() {
    let mut set = TimerSet::default();
    let id = IncidentId { day: 1, hash: 2 };
    let mut current = Vec::new();
    let wanted = vec![
        (Timestamp(5), TimerKind::Crossing),
        (Timestamp(9), TimerKind::Expire),
    ];
    set.reschedule(id, &mut current, &wanted);
    assert_eq!((current.as_slice(), current.capacity()), (&wanted[..], 2));
    set.reschedule(id, &mut current, &wanted[1..]);
    assert_eq!((current.as_slice(), current.capacity()), (&wanted[1..], 1));
    assert_eq!(set.len(), 1);
    set.reschedule(id, &mut current, &[]);
    assert_eq!((current.capacity(), set.len()), (0, 0));
}

/// A million of them are held: an incident stays within the allocator's 384-byte class.
#[test]
fn an_incident_fits_the_384_byte_class() {
    assert!(std::mem::size_of::<Incident>() <= 384);
}

fn command(line: &str) -> Input<'static> {
    crate::decode::decode(line.as_bytes(), crate::decode::Expect::Command, 0)
        .expect("command")
        .into_owned()
}

/// The engine says what it did with a command, so the driver counts and logs it without
/// reading the events: applied, the same command again, or rejected with the reason the
/// `command.rejected` event carries.
#[test]
fn handle_says_whether_a_command_was_applied() {
    let mut e = Engine::from_config(&shipped_config());
    assert_eq!(e.handle(keyed_alert("a-0", 0)), Handled::Alert);
    let ack =
        r#"{"command":"ack","incident_id":"@k","at":"2026-11-24T08:01:00+08:00","by":"alice"}"#;
    assert_eq!(
        e.handle(command(ack)),
        Handled::Command(CommandOutcome::Applied)
    );
    while e.poll_output().is_some() {}
    assert_eq!(
        e.handle(command(ack)),
        Handled::Command(CommandOutcome::Redelivered)
    );
    assert!(
        e.poll_output().is_none(),
        "a command seen before emits nothing"
    );
    let Handled::Command(CommandOutcome::Rejected(reason)) = e.handle(command(
        r#"{"command":"ack","incident_id":"@nope","at":"2026-11-24T08:02:00+08:00","by":"alice"}"#,
    )) else {
        panic!("a command for no incident is rejected");
    };
    let ev = e.poll_output().expect("command.rejected");
    assert_eq!(ev.reason.as_deref(), Some(reason.as_str()));
    let Handled::Command(CommandOutcome::Rejected(reason)) = e.handle(command(
        r#"{"command":"ack","incident_id":"@k","at":"2026-11-24T08:03:00+08:00","by":"alice","note":7}"#,
    )) else {
        panic!("a malformed command is rejected");
    };
    assert!(reason.contains("note"), "{reason}");
}

/// A command's own fields are checked at the edge, before any incident is looked at: a dismiss
/// without a reason is rejected for the reason, whatever it addresses, and changes nothing.
#[test]
fn a_command_missing_a_field_it_needs_is_rejected_naming_it() {
    let mut e = Engine::from_config(&shipped_config());
    e.handle(keyed_alert("a-0", 0));
    while e.poll_output().is_some() {}
    for target in ["@k", "@nope"] {
        let line = format!(
            r#"{{"command":"dismiss","incident_id":"{target}","at":"2026-11-24T08:01:00+08:00","by":"alice"}}"#
        );
        assert_eq!(
            e.handle(command(&line)),
            Handled::Command(CommandOutcome::Rejected("`reason` is required".into())),
            "{target}"
        );
        let ev = e.poll_output().expect("command.rejected");
        assert_eq!(ev.kind, EventType::CommandRejected);
        assert!(e.poll_output().is_none());
    }
    let regrade = r#"{"command":"regrade","incident_id":"@k","at":"2026-11-24T08:02:00+08:00","by":"alice","reason":"r","level":"huge"}"#;
    let Handled::Command(CommandOutcome::Rejected(reason)) = e.handle(command(regrade)) else {
        panic!("an unreadable level is rejected");
    };
    assert!(reason.contains("huge"), "{reason}");
    // Nothing changed: the incident is still open and takes an ack.
    let ack =
        r#"{"command":"ack","incident_id":"@k","at":"2026-11-24T08:03:00+08:00","by":"alice"}"#;
    assert_eq!(
        e.handle(command(ack)),
        Handled::Command(CommandOutcome::Applied)
    );
}

/// Every report that follows a policy shares the policy's name with the configuration, when it
/// opens and after a restore from its changelog record: at a million incidents a copy each cost
/// ~48 bytes an incident with its box (docs/benchmarks.md, 2026-12-06).
#[test]
fn reports_share_their_policys_name_with_the_config_and_keep_sharing_it_after_a_restore() {
    let line = r#"{"id":"a1","timestamp":"2026-11-24T08:00:00+08:00","operator":"gd-grid","asset":"gd-grid-ami","impact":{"personal_info_records":1200000}}"#;
    let alert = || {
        crate::decode::decode(line.as_bytes(), crate::decode::Expect::Alert, 0)
            .expect("alert")
            .into_owned()
    };
    let shares = |e: &Engine| {
        let inc = e.incidents_sorted()[0];
        let paging = inc.reports[0].paging.as_ref().expect("a policy");
        let policy = e.rules.escalation.policy(&paging.policy).expect("known");
        Arc::ptr_eq(&paging.policy, &policy.name)
    };
    let mut e = Engine::from_config(&shipped_config());
    e.handle(alert());
    assert!(shares(&e), "when the report falls due");
    let record = serde_json::to_string(e.incidents_sorted()[0]).expect("serializes");
    let mut fresh = Engine::from_config(&shipped_config());
    fresh.restore(serde_json::from_str(&record).expect("restores"));
    assert!(shares(&fresh), "after a restore");
    assert_eq!(
        serde_json::to_string(fresh.incidents_sorted()[0]).expect("serializes"),
        record,
        "the changelog record is unchanged"
    );
}
