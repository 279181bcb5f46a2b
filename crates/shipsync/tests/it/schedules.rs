//! Channel schedules over the API, and the scheduler firing slots.

use std::time::{Duration, Instant};

use serde_json::json;
use shipsync_testkit::{Harness, Options};

use crate::support::SETTLE;

async fn schedules_are_validated_and_replaced(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let path = format!("/api/v1/connections/{}/channels/shipments", h.connection_id);
    let ch = h.api("GET", &path, None).await.unwrap().ok(200).unwrap();
    assert_eq!(ch["schedules"][0]["kind"], "hourly");
    assert_eq!(ch["schedules"][0]["every"], 4);
    // The article's steps: delete the existing rules, add "every day" at 12:00 am.
    let daily =
        json!({"schedules": [{"kind": "daily", "at": "00:00", "time_zone": "America/New_York"}]});
    let ch = h
        .api("PATCH", &path, Some(daily))
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    let list = ch["schedules"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["kind"], "daily");
    assert_eq!(list[0]["at"], "00:00");
    assert!(list[0]["id"].as_str().unwrap().starts_with("sch_"));
    // next_run_at is the coming midnight in New York.
    let next: jiff::Timestamp = ch["next_run_at"].as_str().unwrap().parse().unwrap();
    let local = next.to_zoned(jiff::tz::TimeZone::get("America/New_York").unwrap());
    assert_eq!((local.hour(), local.minute()), (0, 0), "{local}");
    assert!(next > jiff::Timestamp::now());

    for (bad, field) in [
        (
            json!([{"kind": "daily", "at": "24:00", "time_zone": "UTC"}]),
            "schedules[0].at",
        ),
        (
            json!([{"kind": "minutely", "every": 0, "time_zone": "UTC"}]),
            "schedules[0].every",
        ),
        (
            json!([{"kind": "daily", "at": "01:00", "time_zone": "Mars/Olympus"}]),
            "schedules[0].time_zone",
        ),
        (
            json!([{"kind": "flexible", "weekdays": [], "start_hour": 8, "end_hour": 18, "every_minutes": 30, "time_zone": "UTC"}]),
            "schedules[0].weekdays",
        ),
        (
            json!([{"kind": "fortnightly", "time_zone": "UTC"}]),
            "schedules[0].kind",
        ),
    ] {
        let r = h
            .api("PATCH", &path, Some(json!({"schedules": bad})))
            .await
            .unwrap();
        assert_eq!(r.status, 422, "{bad}: {r:?}");
        let msg = r.body["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.starts_with(field), "{bad}: {msg}");
    }
    // The rejected patches changed nothing.
    let ch = h.api("GET", &path, None).await.unwrap().ok(200).unwrap();
    assert_eq!(ch["schedules"][0]["kind"], "daily");
    h.shutdown().await;
}

/// Waits until the channel's last run is a finished scheduled run.
async fn wait_scheduled_run(h: &Harness) -> serde_json::Value {
    let path = format!("/api/v1/connections/{}/channels/shipments", h.connection_id);
    let start = Instant::now();
    loop {
        let ch = h.api("GET", &path, None).await.unwrap().ok(200).unwrap();
        if ch["last_run"]["trigger"] == "schedule" && ch["last_run"]["status"] == "succeeded" {
            return ch;
        }
        assert!(start.elapsed() < SETTLE, "no scheduled run: {ch}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_due_slot_fires_one_run_and_missed_slots_collapse(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let db = h.db().await.unwrap();
    let path = format!("/api/v1/connections/{}/channels/shipments", h.connection_id);
    let ch = h
        .api("PATCH", &path, Some(json!({"schedules": [{"kind": "hourly", "every": 1, "minute": 0, "time_zone": "UTC"}]})))
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    let planned: jiff::Timestamp = ch["next_run_at"].as_str().unwrap().parse().unwrap();
    // The server was down for three days: 72 hourly slots were missed.
    let three_days_ago = jiff::Timestamp::now().as_microsecond() - 72 * 3600 * 1_000_000;
    assert!(
        shipsync_db::channels::advance_schedule(
            db.pool(),
            &h.connection_id,
            shipsync_core::states::Channel::Shipments,
            Some(planned.as_microsecond()),
            Some(three_days_ago)
        )
        .await
        .unwrap()
    );
    let ch = wait_scheduled_run(&h).await;
    // One catch-up run, and the schedule moved on to the next slot.
    let next: jiff::Timestamp = ch["next_run_at"].as_str().unwrap().parse().unwrap();
    assert!(next > jiff::Timestamp::now(), "{ch}");
    h.settle(SETTLE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM runs WHERE connection_id = $1 AND trigger_kind = 'schedule'",
    )
    .bind(&h.connection_id)
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(runs.len(), 1, "missed slots must collapse into one run");
    h.shutdown().await;
}

both_backends!(
    schedules_are_validated_and_replaced,
    a_due_slot_fires_one_run_and_missed_slots_collapse
);
