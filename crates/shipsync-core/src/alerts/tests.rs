use super::*;
use crate::states::AlertEvent::{IngestSaturated, RunFailed, ShipmentError};

fn subject(id: &str) -> Subject {
    Subject {
        id: id.into(),
        label: id.to_uppercase(),
    }
}

fn finding(event: AlertEvent, merchant: &str, connection: Option<&str>, id: &str) -> Finding {
    Finding {
        event,
        scope: match connection {
            Some(c) if event == RunFailed => Scope::Connection(c.into()),
            _ => Scope::Merchant(merchant.into()),
        },
        merchant_id: Some(merchant.into()),
        connection_id: connection.map(Into::into),
        subject: subject(id),
    }
}

fn policy(events: &[AlertEvent], merchants: &[&str], connections: &[&str]) -> PolicyDoc {
    PolicyDoc {
        name: "ops".into(),
        events: events.to_vec(),
        merchant_ids: merchants.iter().map(|s| s.to_string()).collect(),
        connection_ids: connections.iter().map(|s| s.to_string()).collect(),
        channel_ids: vec!["nch_1".into()],
        group_minutes: 15,
        notify_resolved: true,
        enabled: true,
        webhooks_stopped_hours: 6,
        latency_p99_seconds: 60,
        latency_window_minutes: 15,
    }
}

fn condition(event: AlertEvent, merchant: &str, ids: &[&str]) -> Condition {
    Condition {
        event,
        scope: Scope::Merchant(merchant.into()),
        merchant_id: Some(merchant.into()),
        connection_id: None,
        subjects: ids.iter().map(|i| subject(i)).collect(),
    }
}

fn open(id: &str, event: AlertEvent, merchant: &str, ids: &[&str]) -> OpenAlert {
    OpenAlert {
        id: id.into(),
        event,
        scope_key: Scope::Merchant(merchant.into()).key(),
        subjects: ids
            .iter()
            .map(|i| AlertSubject {
                id: i.to_string(),
                label: i.to_uppercase(),
                added_at: 1,
            })
            .collect(),
    }
}

#[test]
fn policies_cover_their_events_merchants_and_connections() {
    let f = finding(ShipmentError, "mer_a", Some("con_a"), "shp_1");
    let installation = Finding {
        event: IngestSaturated,
        scope: Scope::Installation,
        merchant_id: None,
        connection_id: None,
        subject: subject("installation"),
    };
    let cases: &[(&str, PolicyDoc, &Finding, bool)] = &[
        (
            "all merchants",
            policy(&[ShipmentError], &[], &[]),
            &f,
            true,
        ),
        ("other event", policy(&[RunFailed], &[], &[]), &f, false),
        (
            "its merchant",
            policy(&[ShipmentError], &["mer_a"], &[]),
            &f,
            true,
        ),
        (
            "other merchant",
            policy(&[ShipmentError], &["mer_b"], &[]),
            &f,
            false,
        ),
        (
            "its connection",
            policy(&[ShipmentError], &[], &["con_a"]),
            &f,
            true,
        ),
        (
            "other connection",
            policy(&[ShipmentError], &[], &["con_b"]),
            &f,
            false,
        ),
        (
            "installation-wide, merchant list",
            policy(&[IngestSaturated], &["mer_b"], &["con_b"]),
            &installation,
            true,
        ),
    ];
    for (name, p, f, want) in cases {
        assert_eq!(p.covers(f), *want, "{name}");
    }
}

#[test]
fn findings_group_by_event_and_scope() {
    let p = policy(&[ShipmentError, RunFailed], &[], &[]);
    let found = conditions(
        &p,
        &[
            finding(ShipmentError, "mer_a", None, "shp_2"),
            finding(ShipmentError, "mer_a", None, "shp_1"),
            finding(ShipmentError, "mer_a", None, "shp_1"),
            finding(ShipmentError, "mer_b", None, "shp_3"),
            finding(RunFailed, "mer_a", Some("con_a"), "con_a/shipments"),
        ],
    );
    let got: Vec<(AlertEvent, String, Vec<String>)> = found
        .iter()
        .map(|c| {
            (
                c.event,
                c.scope.key(),
                c.subjects.iter().map(|s| s.id.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                ShipmentError,
                "merchant:mer_a".into(),
                vec!["shp_1".into(), "shp_2".into()]
            ),
            (ShipmentError, "merchant:mer_b".into(), vec!["shp_3".into()]),
            (
                RunFailed,
                "connection:con_a".into(),
                vec!["con_a/shipments".into()]
            ),
        ]
    );
    assert_eq!(found[2].connection_id.as_deref(), Some("con_a"));
}

#[test]
fn reconcile_opens_grows_keeps_and_closes() {
    type Case = (&'static str, Vec<Condition>, Vec<OpenAlert>, Vec<Change>);
    let cases: Vec<Case> = vec![
        (
            "a new condition opens an alert",
            vec![condition(ShipmentError, "mer_a", &["shp_1"])],
            vec![],
            vec![Change::Open(condition(ShipmentError, "mer_a", &["shp_1"]))],
        ),
        (
            "the same subjects: seen",
            vec![condition(ShipmentError, "mer_a", &["shp_1"])],
            vec![open("alr_1", ShipmentError, "mer_a", &["shp_1"])],
            vec![Change::Seen {
                alert_id: "alr_1".into(),
            }],
        ),
        (
            "fewer subjects (one fixed): seen, not closed",
            vec![condition(ShipmentError, "mer_a", &["shp_2"])],
            vec![open("alr_1", ShipmentError, "mer_a", &["shp_1", "shp_2"])],
            vec![Change::Seen {
                alert_id: "alr_1".into(),
            }],
        ),
        (
            "a new subject beside an old one: grows",
            vec![condition(ShipmentError, "mer_a", &["shp_1", "shp_3"])],
            vec![open("alr_1", ShipmentError, "mer_a", &["shp_1"])],
            vec![Change::Grow {
                alert_id: "alr_1".into(),
                added: vec![subject("shp_3")],
            }],
        ),
        (
            "the condition cleared: closes",
            vec![],
            vec![open("alr_1", ShipmentError, "mer_a", &["shp_1"])],
            vec![Change::Close {
                alert_id: "alr_1".into(),
            }],
        ),
        (
            "only other records now: the old alert closes, a new one opens",
            vec![condition(ShipmentError, "mer_a", &["shp_9"])],
            vec![open("alr_1", ShipmentError, "mer_a", &["shp_1"])],
            vec![
                Change::Close {
                    alert_id: "alr_1".into(),
                },
                Change::Open(condition(ShipmentError, "mer_a", &["shp_9"])),
            ],
        ),
        (
            "another merchant's condition does not keep an alert",
            vec![condition(ShipmentError, "mer_b", &["shp_1"])],
            vec![open("alr_1", ShipmentError, "mer_a", &["shp_1"])],
            vec![
                Change::Close {
                    alert_id: "alr_1".into(),
                },
                Change::Open(condition(ShipmentError, "mer_b", &["shp_1"])),
            ],
        ),
    ];
    for (name, conds, alerts, want) in cases {
        assert_eq!(reconcile(&conds, &alerts), want, "{name}");
    }
}

#[test]
fn messages_wait_to_gather_and_for_the_window() {
    const GATHER: i64 = 30;
    const GROUP: i64 = 900;
    let fresh = Cursor::default();
    let sent = Cursor {
        sent_through: 100,
        last_sent_at: Some(100),
        retry_at: None,
    };
    let failed = Cursor {
        retry_at: Some(5_000),
        ..sent
    };
    let cases: &[(&str, Cursor, Option<i64>, Option<i64>)] = &[
        ("nothing pending", fresh, None, None),
        (
            "first change after quiet: gather",
            fresh,
            Some(50),
            Some(80),
        ),
        (
            "soon after a message: the window",
            sent,
            Some(150),
            Some(1_000),
        ),
        (
            "long after a message: gather",
            sent,
            Some(4_000),
            Some(4_030),
        ),
        (
            "after a failure: not before the retry",
            failed,
            Some(150),
            Some(5_000),
        ),
    ];
    for (name, cursor, first, want) in cases {
        assert_eq!(due_at(cursor, *first, GATHER, GROUP), *want, "{name}");
    }
}

fn view(id: &str, opened: i64, added: &[(&str, i64)], closed: Option<i64>) -> AlertView {
    AlertView {
        id: id.into(),
        event: ShipmentError,
        summary: format!("{id} summary"),
        opened_at: opened,
        closed_at: closed,
        subjects: added
            .iter()
            .map(|(s, at)| AlertSubject {
                id: s.to_string(),
                label: s.to_uppercase(),
                added_at: *at,
            })
            .collect(),
    }
}

#[test]
fn a_digest_lists_what_opened_grew_and_closed_in_its_window() {
    let alerts = vec![
        view("new", 150, &[("shp_1", 150), ("shp_2", 160)], None),
        view("grew", 50, &[("shp_3", 50), ("shp_4", 170)], None),
        view("quiet", 50, &[("shp_5", 50)], None),
        view("closed", 50, &[("shp_6", 50), ("shp_7", 180)], Some(190)),
        view("later", 250, &[("shp_8", 250)], None),
    ];
    let ids = |l: &[AlertView]| l.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    let d = digest(&alerts, 100, 200, true);
    assert_eq!(ids(&d.opened), ["new"]);
    assert_eq!(ids(&d.updated), ["grew"]);
    assert_eq!(d.updated[0].subjects.len(), 1, "only the added subject");
    assert_eq!(ids(&d.resolved), ["closed"]);
    assert!(digest(&alerts, 100, 200, false).resolved.is_empty());
    assert_eq!(first_pending(&alerts, 100, true), Some(150));
    assert_eq!(first_pending(&alerts, 250, true), None);
    assert_eq!(first_pending(&alerts, 200, false), Some(250));
}

#[test]
fn messages_link_each_subject() {
    let d = Digest {
        opened: vec![view("alr_1", 1, &[("shp_1", 1), ("ord_2", 1)], None)],
        ..Digest::default()
    };
    let m = Message {
        policy_id: "pol_1",
        policy_name: "Ops <night>",
        digest: &d,
        base_url: Some("https://sync.example/"),
    };
    let slack = m.slack_text();
    assert!(
        slack.contains("<https://sync.example/shipments/shp_1|SHP_1>"),
        "{slack}"
    );
    assert!(
        slack.contains("<https://sync.example/orders/ord_2|ORD_2>"),
        "{slack}"
    );
    assert!(slack.contains("Ops &lt;night&gt;"), "{slack}");
    let text = m.text();
    assert!(
        text.contains("SHP_1 <https://sync.example/shipments/shp_1>"),
        "{text}"
    );
    let json = m.json();
    assert_eq!(json["type"], "alerts");
    assert_eq!(json["policy"]["id"], "pol_1");
    assert_eq!(
        json["opened"][0]["subjects"][0]["url"],
        "https://sync.example/shipments/shp_1"
    );
    assert_eq!(m.subject(), "[shipsync] Ops <night>: 1 opened");
    assert_eq!(
        subject_path("con_a/shipments").as_deref(),
        Some("/connections/con_a")
    );
    assert_eq!(subject_path("installation"), None);
    assert_eq!(
        subject_path("mer_a/evs_b").as_deref(),
        Some("/merchants/mer_a/event-subscriptions/evs_b")
    );
}

#[test]
fn policy_checks_name_the_field() {
    let mut p = policy(&[ShipmentError], &[], &[]);
    assert_eq!(p.check(), Ok(()));
    p.group_minutes = 1441;
    assert_eq!(p.check().unwrap_err().field, "group_minutes");
    p.group_minutes = 0;
    p.channel_ids.clear();
    assert_eq!(p.check().unwrap_err().field, "channel_ids");
    let mut p = policy(&[], &[], &[]);
    assert_eq!(p.check().unwrap_err().field, "events");
    p.events = vec![ShipmentError];
    p.webhooks_stopped_hours = 0;
    assert_eq!(p.check().unwrap_err().field, "webhooks_stopped_hours");
}

#[test]
fn quantiles_by_nearest_rank() {
    let mut v: Vec<i64> = (1..=100).rev().collect();
    assert_eq!(quantile(&mut v, 0.99), Some(99));
    assert_eq!(quantile(&mut [5], 0.99), Some(5));
    assert_eq!(quantile(&mut [], 0.99), None);
}
