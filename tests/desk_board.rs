//! The duty board in a real headless Chromium (Debian's `chromium` + `chromium-driver`, from
//! `scripts/chromium.sh`), served by a real `klaxon run` (desk in-process) against the real
//! broker: sign in; an incident from a produced alert appears without a reload; its countdown
//! ticks while watched; the draft's copy buttons reach the clipboard (and the fallback path
//! works); filing a report from the page stops the countdown and the escalations topic shows
//! `report.filed` by that principal; a viewer sees no action buttons; a dropped stream says so.
//!
//! Screenshots of each step go to `target/board-screenshots/` (git-ignored); `board.png` there is
//! the one checked in as `docs/board.png`.

mod browser_support;
mod kafka_support;

use browser_support::Browser;
use kafka_support::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// An alert, detected `ago_s` seconds ago, of a whole outage of a registry operator's asset that
/// had then lasted 15 minutes (already relatively major on a CII system: the report falls due at
/// detection, 1 h window).
fn outage(id: &str, operator: &str, asset: &str, title: &str, ago_s: i64) -> String {
    serde_json::json!({
        "id": id, "timestamp": at(-ago_s), "source": "board-test", "title": title,
        "category": "outage", "operator": operator, "asset": asset,
        "impact": {"outage": {"scope": "whole", "since": at(-ago_s - 15 * 60), "until": null}}
    })
    .to_string()
}

/// A few incidents around the main one, so the board looks like a night's board: one overdue,
/// one under 30 minutes, one on the 4 h route, one not reportable.
async fn background_incidents(p: &rdkafka::producer::FutureProducer, topic: &str) {
    let alerts = [
        outage(
            "bg-1",
            "sh-bank",
            "sh-bank-core",
            "核心业务系统全部中断 (core banking down)",
            70 * 60,
        ),
        outage(
            "bg-2",
            "bj-metro",
            "bj-metro-afc",
            "AFC 自动售检票系统中断 (fare gates down)",
            40 * 60,
        ),
        serde_json::json!({
            "id": "bg-3", "timestamp": at(-600), "source": "board-test",
            "title": "Ransomware: *.lockbit on the HIS application server", "category": "ransomware",
            "operator": {"id": "hb-hospital", "name": "江城大学附属中心医院", "class": "other", "province": "湖北省"},
            "asset": {"id": "hb-his", "name": "医院信息系统 (HIS)", "kind": "other"},
            "impact": {"affected_population": 150000}
        })
        .to_string(),
        serde_json::json!({
            "id": "bg-4", "timestamp": at(-300), "source": "board-test",
            "title": "sshd: brute force on the VPN gateway", "category": "intrusion_attempt",
            "operator": {"id": "sz-tech", "name": "深圳鹏程智能科技股份有限公司", "class": "other", "province": "广东省"},
            "asset": {"id": "sz-tech-vpn", "name": "远程办公SSL VPN网关", "kind": "other"}
        })
        .to_string(),
    ];
    for a in alerts {
        produce(p, topic, None, a.as_bytes()).await;
    }
}

async fn sign_in(b: &Browser, base: &str, token: &str) {
    b.goto(base).await;
    b.wait_for(
        "the sign-in form",
        "!document.querySelector('#signin').hidden",
        WAIT,
    )
    .await;
    b.type_into("#token", token).await;
    b.click("#signin-form button[type=submit]").await;
    b.wait_for(
        "the board after sign-in",
        "!document.querySelector('#board').hidden && document.querySelector('#who-name')",
        WAIT,
    )
    .await;
}

/// The countdown text of the row of incident `id`, or "" when there is no such row.
fn row_clock(id: &str) -> String {
    format!(
        "(document.querySelector('#rows tr[data-incident=\"{id}\"] .countdown') || {{}}).textContent || ''"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_in_a_real_browser() {
    // `klaxon run` with its desk in-process, on the test config's principals (one per role).
    let t = Topics::new(&unique("board"));
    let mut k = Klaxon::start(&t, &[("KLAXON__DESK__ENABLED", "true")]);
    k.wait_ready(Duration::from_secs(60));
    let base = format!("http://127.0.0.1:{}/", k.desk_port);
    let p = producer();
    background_incidents(&p, &t.alerts).await;

    let b = Browser::start().await;

    // A wrong token is refused, saying so.
    b.goto(&base).await;
    b.wait_for(
        "the sign-in form",
        "!document.querySelector('#signin').hidden",
        WAIT,
    )
    .await;
    b.type_into("#token", "not-a-token\u{E007}").await;
    let refused = b
        .wait_for(
            "the refusal of a wrong token",
            "document.querySelector('#signin-error').textContent",
            WAIT,
        )
        .await;
    assert!(refused.as_str().unwrap_or("").contains("401"), "{refused}");
    assert_eq!(b.js("return sessionStorage.length").await, 0);

    // Sign in: the principal's name and role are shown; the token is in sessionStorage only.
    sign_in(&b, &base, DUTY_TOKEN).await;
    let who = b
        .js("return document.querySelector('#who').textContent")
        .await;
    assert_eq!(
        who.as_str(),
        Some(format!("{DUTY} · duty officer").as_str()),
        "{who}"
    );
    let stored = b
        .js("return [sessionStorage.getItem('klaxon.token'), localStorage.getItem('klaxon.token'), document.cookie]")
        .await;
    assert_eq!(stored, serde_json::json!([DUTY_TOKEN, null, ""]));
    b.wait_for(
        "the stream to be live",
        "document.querySelector('#conn').dataset.state === 'live'",
        WAIT,
    )
    .await;
    b.wait_for(
        "the background incidents",
        "document.querySelectorAll('#rows tr').length >= 4",
        WAIT,
    )
    .await;

    // A new alert: its incident appears without a reload (the page is never navigated again).
    b.js("window.__sameDocument = 'yes'").await;
    produce(
        &p,
        &t.alerts,
        None,
        outage(
            "main-1",
            "gd-grid",
            "gd-grid-scada",
            "调度自动化系统主站全站通信中断 (SCADA master down)",
            0,
        )
        .as_bytes(),
    )
    .await;
    let id = b
        .wait_for(
            "the new incident's row",
            "[...document.querySelectorAll('#rows tr')].map(r => r.dataset.incident).find(i => document.querySelector(`#rows tr[data-incident=\"${i}\"] .title a`).textContent.includes('SCADA master down') && document.querySelector(`#rows tr[data-incident=\"${i}\"] [data-deadline]`))",
            WAIT,
        )
        .await
        .as_str()
        .expect("incident id")
        .to_string();
    assert_eq!(
        b.js("return window.__sameDocument").await,
        "yes",
        "no reload"
    );
    // Nearest deadline first: the overdue one leads.
    let states = b
        .js("return [...document.querySelectorAll('#rows tr')].map(r => r.dataset.state || '')")
        .await;
    assert_eq!(states[0], "over", "overdue first: {states}");
    let first_clock = b
        .js("return document.querySelector('#rows tr .countdown').textContent")
        .await;
    assert!(
        first_clock.as_str().unwrap_or("").starts_with("overdue ")
            && first_clock.as_str().unwrap_or("").ends_with(" min"),
        "{first_clock}"
    );
    assert!(
        states
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == "warn")),
        "one under 30 min is amber: {states}"
    );

    // The countdown ticks while watched.
    let before = b.js(&format!("return {}", row_clock(&id))).await;
    b.wait_for(
        "the countdown to change",
        &format!("{} !== {before}", row_clock(&id)),
        Duration::from_secs(5),
    )
    .await;
    b.screenshot("board").await;

    // The incident page: evidence, recipients, channels, the draft with copy buttons.
    b.click(&format!("#rows tr[data-incident=\"{id}\"] .title a"))
        .await;
    b.wait_for(
        "the incident page",
        "document.querySelector('#incident h1') && document.querySelectorAll('.draft-item').length === 8",
        WAIT,
    )
    .await;
    let page = b
        .js("return document.querySelector('#incident').innerText")
        .await;
    let page = page.as_str().unwrap_or("");
    for want in [
        "cii_whole_outage_minutes",
        "Guide 2025 row 2",
        "12387",
        "广东省公安厅",
        "（一）",
        "to complete",
    ] {
        assert!(page.contains(want), "incident page lacks {want:?}:\n{page}");
    }
    b.screenshot("incident").await;

    // Copy: the Clipboard API (127.0.0.1 is a secure context), checked by pasting it back.
    let item1 = b
        .js("const i = document.querySelector('#draft-1'); return i.querySelector('strong').textContent + '\\n' + i.querySelector('.draft-content').textContent")
        .await;
    b.click("#copy-1").await;
    b.wait_for(
        "the copy to be confirmed",
        "document.querySelector('#copy-1').dataset.copied",
        WAIT,
    )
    .await;
    assert_eq!(
        b.js("return document.querySelector('#copy-1').dataset.copied")
            .await,
        "clipboard"
    );
    assert_eq!(paste(&b).await, item1, "the clipboard holds item 1");
    // Without the Clipboard API (plain http on a LAN address), the execCommand fallback.
    b.js("Object.defineProperty(navigator, 'clipboard', { value: undefined, configurable: true })")
        .await;
    b.click("#copy-all").await;
    b.wait_for(
        "the fallback copy",
        "document.querySelector('#copy-all').dataset.copied === 'fallback'",
        WAIT,
    )
    .await;
    let all = paste(&b).await;
    let all = all.as_str().unwrap_or("");
    assert!(
        all.starts_with(item1.as_str().unwrap_or("?")) && all.contains("（八）"),
        "copy all holds the eight items: {all}"
    );

    // Acknowledge: a dialog says what it will do; once confirmed the page shows it.
    b.click("#act-ack").await;
    b.wait_for(
        "the ack dialog",
        "document.querySelector('#dlg').open",
        WAIT,
    )
    .await;
    b.click("#dlg-ok").await;
    b.wait_for(
        "the incident to show as acknowledged",
        "/acknowledged/.test(document.querySelector('#inc-status').textContent) && !document.querySelector('#act-ack')",
        WAIT,
    )
    .await;

    // File the initial report from the page, by keyboard in the dialog.
    b.click("#act-report_filed").await;
    b.wait_for(
        "the filing dialog",
        "document.querySelector('#dlg').open",
        WAIT,
    )
    .await;
    b.type_into("#in-reference", "CN-2026-BOARD-1\u{E007}")
        .await;
    b.wait_for(
        "the countdown to stop",
        "!document.querySelector('#dlg').open && [...document.querySelectorAll('#incident .countdown.stopped')].length > 0",
        WAIT,
    )
    .await;
    let toast = b
        .js("return document.querySelector('#toast').textContent")
        .await;
    assert!(
        toast.as_str().unwrap_or("").contains(DUTY),
        "the page confirms what it did: {toast}"
    );
    b.screenshot("incident-filed").await;
    let c = consumer(&t.escalations);
    let got = read_until(&c, WAIT, |r| {
        r.iter().any(|x| {
            let e = x.json();
            e["type"] == "report.filed" && e["incident_id"] == id.as_str()
        })
    })
    .await;
    let filed = got
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "report.filed" && e["incident_id"] == id.as_str())
        .expect("report.filed on the escalations topic");
    assert_eq!(filed["command"]["by"], DUTY, "{filed}");
    assert_eq!(filed["command"]["reference"], "CN-2026-BOARD-1", "{filed}");
    // Back on the board, the row's clock is stopped.
    b.click("a.back").await;
    b.wait_for(
        "the row to show the filing",
        &format!("(document.querySelector('#rows tr[data-incident=\"{id}\"] .countdown') || {{}}).classList?.contains('stopped')"),
        WAIT,
    )
    .await;

    // 补报: a partial filing (items （一）（二） first) stops the initial report's clock and starts
    // the supplementary report's.
    let metro = b
        .wait_for(
            "the fare-gates incident",
            "[...document.querySelectorAll('#rows tr')].map(r => r.dataset.incident).find(i => document.querySelector(`#rows tr[data-incident=\"${i}\"] .title a`).textContent.includes('fare gates down'))",
            WAIT,
        )
        .await
        .as_str()
        .expect("incident id")
        .to_string();
    b.click(&format!("#rows tr[data-incident=\"{metro}\"] .title a"))
        .await;
    b.wait_for(
        "the fare-gates incident page",
        &format!("document.querySelector('#incident .inc-head .mono')?.textContent === '{metro}' && document.querySelector('#act-report_filed')"),
        WAIT,
    )
    .await;
    b.click("#act-report_filed").await;
    b.click("#in-partial").await;
    b.type_into("#in-reference", "CN-2026-BOARD-2\u{E007}")
        .await;
    b.wait_for(
        "the supplementary report's clock",
        "[...document.querySelectorAll('#incident .kv-table tr')].some(r => /补报/.test(r.textContent) && r.querySelector('[data-deadline]'))",
        WAIT,
    )
    .await;
    b.screenshot("incident-partial").await;
    b.click("a.back").await;
    b.wait_for(
        "the board row on the supplementary report",
        &format!("/补报/.test((document.querySelector('#rows tr[data-incident=\"{metro}\"] .kind') || {{}}).textContent || '')"),
        WAIT,
    )
    .await;

    // Chinese labels.
    b.click("#lang").await;
    let head = b
        .js("return document.querySelector('#grid thead').innerText")
        .await;
    assert!(head.as_str().unwrap_or("").contains("剩余时间"), "{head}");
    b.screenshot("board-zh").await;
    b.click("#lang").await;

    // A viewer sees everything and no action buttons.
    b.click("#signout").await;
    sign_in(&b, &base, VIEWER_TOKEN).await;
    b.goto(&format!("{base}#/incident/{id}")).await;
    b.wait_for(
        "the incident page as a viewer",
        "document.querySelectorAll('.draft-item').length === 8",
        WAIT,
    )
    .await;
    assert_eq!(
        b.js("return document.querySelectorAll('#incident button[data-action]').length")
            .await,
        0,
        "a viewer has no action buttons"
    );
    assert!(b.exists(".viewer-note").await);
    b.screenshot("incident-viewer").await;

    // A lead has more actions; a refused one shows the desk's reason and changes nothing.
    b.click("#signout").await;
    sign_in(&b, &base, LEAD_TOKEN).await;
    b.goto(&format!("{base}#/incident/{id}")).await;
    b.wait_for(
        "the incident page as a lead",
        "document.querySelector('#act-merge')",
        WAIT,
    )
    .await;
    for action in ["resolve", "dismiss", "regrade", "merge"] {
        assert!(
            b.exists(&format!("#act-{action}")).await,
            "lead may {action}"
        );
    }
    assert!(
        !b.exists("#act-ack").await,
        "already acknowledged by the duty officer"
    );
    b.click("#act-merge").await;
    b.type_into("#in-into", "INC-20260101-000000000000\u{E007}")
        .await;
    let refusal = b
        .wait_for(
            "the refusal reason",
            "document.querySelector('#dlg-error').textContent",
            WAIT,
        )
        .await;
    assert!(
        refusal.as_str().unwrap_or("").starts_with("Refused: (400)")
            && refusal.as_str().unwrap_or("").contains("into"),
        "{refusal}"
    );
    b.screenshot("refused").await;
    b.click("#dlg-cancel").await;

    // The stream drops (the desk goes away): the board says so and keeps retrying.
    assert!(k.sigterm().success());
    b.wait_for(
        "connection lost",
        "document.querySelector('#conn').dataset.state === 'lost' && /retrying/.test(document.querySelector('#conn').textContent)",
        WAIT,
    )
    .await;
    b.screenshot("connection-lost").await;
    b.close().await;
}

/// What the clipboard holds: pasted with Ctrl+V into a fresh text area (as a person would).
async fn paste(b: &Browser) -> serde_json::Value {
    b.js("const t = document.createElement('textarea'); t.id = 'paste-here'; document.body.append(t); t.focus();")
        .await;
    b.type_into("#paste-here", "\u{E009}v").await;
    b.js(
        "const t = document.querySelector('#paste-here'); const v = t.value; t.remove(); return v;",
    )
    .await
}
