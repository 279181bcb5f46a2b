//! The repository API on both backends: a SQLite temp file, and a
//! throwaway database on the PostgreSQL server of
//! `SHIPSYNC_TEST_POSTGRES_URL` (skipped, with a notice, when it is unset).

use std::collections::BTreeMap;

use shipsync_core::ledger::KitPolicy;
use shipsync_core::states::{
    Channel, FulfillmentState, OrderStatus, ShipmentStatus, Source, StoreStatus,
};
use shipsync_core::{ShipmentVersion, WarehouseStatus};
use shipsync_db::channels::{self, ChannelRow};
use shipsync_db::connections::{self, ConnectionRow};
use shipsync_db::fulfillments::{self, StoreFulfillmentRow};
use shipsync_db::jobs::{self, Job};
use shipsync_db::merchants::{self, MerchantRow};
use shipsync_db::orders::{self, OrderLineRow, OrderRecord};
use shipsync_db::shipments::{self, ShipmentRow};
use shipsync_db::store_auth::{self, OauthStateRow, StoreTokenRow};
use shipsync_db::versions::{self, VersionRow};
use shipsync_db::{Db, DbError, new_id, now_micros, retention};
use shipsync_testkit::TestDb;

/// A SQLite database, and a PostgreSQL one when a server is configured.
async fn backends() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite().expect("a SQLite test database")];
    if let Some(pg) = TestDb::postgres()
        .await
        .expect("a PostgreSQL test database")
    {
        dbs.push(pg);
    }
    dbs
}

/// Runs `test` on each backend's new, migrated database (given with its
/// URL), then closes it.
async fn on_each_backend(test: impl AsyncFn(&Db, &str)) {
    for t in backends().await {
        let db = Db::open(&t.url).await.expect("open and migrate");
        test(&db, &t.url).await;
        db.close().await;
    }
}

async fn merchant(db: &Db) -> String {
    let id = new_id("mer");
    merchants::insert(
        db.pool(),
        &MerchantRow {
            id: id.clone(),
            name: "Acme".into(),
            warehouse_json: "{}".into(),
            warehouse_secrets: None,
            webhooks_enabled: true,
            shared_secret: None,
            webhook_key: vec![1, 2, 3],
            webhook_key_hash: format!("hash-{id}"),
            kit_policy: KitPolicy::FirstComponent,
            carrier_overrides: BTreeMap::from([("UPS".into(), "UPS Ground".into())]),
            created_at: 1,
            updated_at: 1,
        },
    )
    .await
    .expect("insert merchant");
    id
}

/// A connection of a new merchant, its Shipments channel on.
async fn connection(db: &Db) -> ConnectionRow {
    let merchant_id = merchant(db).await;
    let c = ConnectionRow {
        id: new_id("con"),
        name: "Shop".into(),
        merchant_id,
        enabled: true,
        order_prefix: "AC-".into(),
        store_json: r#"{"shop":"acme"}"#.into(),
        store_token: Some(vec![9, 8, 7]),
        store_client_secret: Some(vec![0, 255, 1]),
        store_status: StoreStatus::Ok,
        store_error: None,
        order_rules: Default::default(),
        store_api_secret: None,
        order_webhooks: Default::default(),
        created_at: 10,
        updated_at: 11,
        token_held: false,
        token_expires_at: None,
        granted_scopes: None,
        shipments_on: false,
        sales_orders_on: false,
    };
    let channels =
        [(Channel::Shipments, true), (Channel::SalesOrders, false)].map(|(channel, enabled)| {
            ChannelRow {
                connection_id: c.id.clone(),
                channel,
                enabled,
                schedules: serde_json::json!([]),
                last_completed_at: None,
                next_run_at: None,
            }
        });
    connections::insert(db, &c, &channels)
        .await
        .expect("insert connection");
    c
}

/// A warehouse version of shipment `number`.
fn version(number: &str) -> ShipmentVersion {
    ShipmentVersion {
        number: number.into(),
        warehouse_id: None,
        status: WarehouseStatus::Shipped,
        order_refs: vec!["#1".into()],
        carrier: None,
        service: None,
        tracking_url: None,
        shipped_at: None,
        updated_at: None,
        lines: Vec::new(),
        packages: Vec::new(),
    }
}

async fn applied_migrations(db: &Db) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(db.pool())
        .await
        .expect("schema_migrations")
}

#[tokio::test]
async fn migrations_apply_twice_idempotently() {
    on_each_backend(async |db, url| {
        let first = applied_migrations(db).await;
        assert_eq!(
            first,
            [1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        );
        db.migrate().await.expect("migrate again");
        db.close().await;
        // And from another process's point of view: a new handle.
        let db = Db::open(url).await.expect("open again");
        assert_eq!(applied_migrations(&db).await, first);
        // The schema of the last migration is there, `{BLOB}` and all.
        let c = connection(&db).await;
        let got = connections::get(db.pool(), &c.id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(got.store_client_secret, Some(vec![0, 255, 1]));
        db.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_claimers_never_claim_the_same_job() {
    const JOBS: usize = 40;
    on_each_backend(async |db, _| {
        let mut tx = db.begin().await.expect("begin");
        for i in 0..JOBS {
            let job = Job::SyncShipment {
                shipment_id: format!("shp_{i}"),
            };
            jobs::enqueue(&mut *tx, &job, now_micros())
                .await
                .expect("enqueue");
        }
        tx.commit().await.expect("commit");
        let claimer = |owner: &'static str| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let got = jobs::claim(&db, owner, 3, 60_000_000).await.expect("claim");
                    if got.is_empty() {
                        return ids;
                    }
                    ids.extend(got.into_iter().map(|j| j.id));
                }
            })
        };
        let (a, b) = (claimer("a"), claimer("b"));
        let (a, b) = (a.await.expect("claimer a"), b.await.expect("claimer b"));
        let mut all: Vec<_> = a.iter().chain(&b).cloned().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), a.len() + b.len(), "a job was claimed twice");
        assert_eq!(all.len(), JOBS);
        // Leased: nobody claims them again.
        assert!(
            jobs::claim(db, "c", 100, 60_000_000)
                .await
                .expect("claim")
                .is_empty()
        );
    })
    .await;
}

/// A worker's turn says whether jobs are left due after its claim (it wakes
/// another worker only then): two due, one claimed → more; the second
/// claimed → none left; a job due later is not "more".
#[tokio::test]
async fn a_turn_says_whether_more_jobs_are_due() {
    on_each_backend(async |db, _| {
        let now = now_micros();
        for (i, at) in [(1, now), (2, now), (3, now + 3_600_000_000)] {
            let job = Job::SyncShipment {
                shipment_id: format!("shp_{i}"),
            };
            jobs::enqueue(db.pool(), &job, at).await.expect("enqueue");
        }
        let turn = |done: Option<String>| jobs::CompleteAndClaim {
            done,
            owner: "w".into(),
            n: 1,
            lease_micros: 60_000_000,
        };
        let first = db.unit(turn(None)).await.expect("first turn");
        assert_eq!(first.jobs.len(), 1);
        assert!(first.more, "a second job is due");
        let done = Some(first.jobs[0].id.clone());
        let second = db.unit(turn(done)).await.expect("second turn");
        assert_eq!(second.jobs.len(), 1);
        assert!(!second.more, "the only other job is due in an hour");
        let third = db.unit(turn(None)).await.expect("third turn");
        assert!(third.jobs.is_empty() && !third.more);
    })
    .await;
}

/// A leased job becomes its follow-up in place (same row, same lease) —
/// but not when it was enqueued again while it ran, nor when the
/// follow-up is queued already.
#[tokio::test]
async fn a_job_becomes_its_follow_up_only_when_free_to() {
    on_each_backend(async |db, _| {
        let event = |i: u32| Job::ProcessEvent {
            event_id: format!("evt_{i}"),
        };
        let sync = |i: u32| Job::SyncShipment {
            shipment_id: format!("shp_{i}"),
        };
        let now = now_micros();
        for i in 1..=3 {
            jobs::enqueue(db.pool(), &event(i), now)
                .await
                .expect("enqueue");
        }
        let claimed = jobs::claim(db, "w", 3, 60_000_000).await.expect("claim");
        let id_of = |job: &Job| {
            claimed
                .iter()
                .find(|c| c.job.as_ref().ok() == Some(job))
                .map(|c| c.id.clone())
                .expect("claimed")
        };
        let become_ = async |id: &str, next: &Job| {
            let mut c = db.pooled();
            jobs::become_in(&mut c, id, "w", next)
                .await
                .expect("become")
        };
        // 1: free to: the row is now the sync, still leased to "w".
        let one = id_of(&event(1));
        assert!(become_(&one, &sync(1)).await);
        let still = jobs::claim_this(db, &sync(1), "x", 60_000_000)
            .await
            .expect("claim this");
        assert!(still.is_none(), "the lease went with the row");
        // 2: enqueued again while it ran: it stays itself.
        jobs::enqueue(db.pool(), &event(2), now)
            .await
            .expect("again");
        assert!(!become_(&id_of(&event(2)), &sync(2)).await);
        // 3: its follow-up has a row already.
        jobs::enqueue(db.pool(), &sync(3), now)
            .await
            .expect("sync 3");
        assert!(!become_(&id_of(&event(3)), &sync(3)).await);
        // Done with the sync: the row goes.
        jobs::complete(db, &one, "w").await.expect("complete");
        let left = jobs::claim(db, "y", 10, 60_000_000)
            .await
            .expect("claim rest");
        assert!(
            left.iter().all(|c| c.id != one),
            "the sync's row was completed"
        );
    })
    .await;
}

#[tokio::test]
async fn a_connection_round_trips_with_its_store_token() {
    on_each_backend(async |db, _| {
        let c = connection(db).await;
        let got = connections::get(db.pool(), &c.id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(
            (
                got.token_held,
                got.token_expires_at,
                got.granted_scopes.as_deref()
            ),
            (false, None, None)
        );
        assert_eq!((got.shipments_on, got.sales_orders_on), (true, false));
        assert_eq!(
            (
                &got.name,
                &got.merchant_id,
                &got.order_prefix,
                &got.store_json
            ),
            (&c.name, &c.merchant_id, &c.order_prefix, &c.store_json)
        );
        assert_eq!(
            (&got.store_token, &got.store_status),
            (&c.store_token, &c.store_status)
        );
        assert_eq!((got.created_at, got.updated_at), (10, 11));

        store_auth::save_token(
            db,
            &StoreTokenRow {
                connection_id: c.id.clone(),
                access_token: Some(vec![4, 5]),
                obtained_at: Some(100),
                expires_at: Some(200),
                scopes: Some("read_orders,write_fulfillments".into()),
                ..StoreTokenRow::default()
            },
        )
        .await
        .expect("save token");
        let got = connections::get(db.pool(), &c.id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(
            (
                got.token_held,
                got.token_expires_at,
                got.granted_scopes.as_deref()
            ),
            (true, Some(200), Some("read_orders,write_fulfillments"))
        );
        let listed = connections::list(
            db.pool(),
            Some(std::slice::from_ref(&c.merchant_id)),
            None,
            10,
        )
        .await
        .expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].id.as_str(), listed[0].token_held),
            (c.id.as_str(), true)
        );
        let token = store_auth::token(db.pool(), &c.id)
            .await
            .expect("get token")
            .expect("row");
        assert_eq!(
            (token.access_token, token.generation),
            (Some(vec![4, 5]), 1)
        );
    })
    .await;
}

#[tokio::test]
async fn the_refresh_lease_is_taken_once() {
    on_each_backend(async |db, _| {
        let c = connection(db).await;
        let now = now_micros();
        let until = now + 60_000_000;
        assert!(
            store_auth::take_refresh_lease(db, &c.id, 0, now, until)
                .await
                .expect("take")
        );
        assert!(
            !store_auth::take_refresh_lease(db, &c.id, 0, now, until)
                .await
                .expect("take")
        );
        // Once it ran out, another worker takes it.
        assert!(
            store_auth::take_refresh_lease(db, &c.id, 0, until + 1, until + 2)
                .await
                .expect("take")
        );
    })
    .await;
}

#[tokio::test]
async fn an_oauth_state_is_used_once() {
    on_each_backend(async |db, _| {
        let now = now_micros();
        store_auth::insert_oauth_state(
            db,
            &OauthStateRow {
                state_hash: "abc".into(),
                connection_id: new_id("con"),
                user_id: None,
                created_at: now,
                expires_at: now + 600_000_000,
                used_at: None,
            },
        )
        .await
        .expect("insert state");
        assert!(
            store_auth::mark_oauth_state_used(db.pool(), "abc", now)
                .await
                .expect("mark")
        );
        assert!(
            !store_auth::mark_oauth_state_used(db.pool(), "abc", now + 1)
                .await
                .expect("mark")
        );
        let s = store_auth::oauth_state(db.pool(), "abc")
            .await
            .expect("get")
            .expect("row");
        assert_eq!(s.used_at, Some(now));
    })
    .await;
}

#[tokio::test]
async fn retention_keeps_the_versions_of_open_shipments() {
    on_each_backend(async |db, _| {
        let merchant_id = merchant(db).await;
        let mut tx = db.begin().await.expect("begin");
        let mut ids = Vec::new();
        for (number, status) in [
            ("S1", ShipmentStatus::Open),
            ("S2", ShipmentStatus::Completed),
        ] {
            let id = new_id("shp");
            shipments::insert(
                &mut *tx,
                &ShipmentRow {
                    id: id.clone(),
                    status,
                    error: None,
                    ..shipment_row(&merchant_id, number)
                },
            )
            .await
            .expect("insert shipment");
            versions::insert(
                &mut *tx,
                &VersionRow {
                    id: new_id("ver"),
                    shipment_id: id.clone(),
                    event_id: None,
                    source: Source::Webhook,
                    received_at: 1,
                    content_hash: "h".into(),
                    version: version(number),
                },
            )
            .await
            .expect("insert version");
            ids.push(id);
        }
        tx.commit().await.expect("commit");
        assert_eq!(
            retention::delete_old_versions(db, now_micros())
                .await
                .expect("retention"),
            1
        );
        assert_eq!(
            versions::of_shipment(db.pool(), &ids[0])
                .await
                .expect("versions")
                .len(),
            1
        );
        assert!(
            versions::of_shipment(db.pool(), &ids[1])
                .await
                .expect("versions")
                .is_empty()
        );
    })
    .await;
}

/// The last Deposco delivery that counted, by the newest such row: not a
/// later refused one, not a store's, not another merchant's.
#[tokio::test]
async fn the_last_webhook_is_the_newest_that_counted() {
    use shipsync_core::states::EventOutcome;
    use shipsync_db::conditions;
    use shipsync_db::events::{self, EventRow};
    on_each_backend(async |db, _| {
        let merchant_id = merchant(db).await;
        let other = merchant(db).await;
        assert_eq!(
            conditions::last_webhook_at(db, &merchant_id)
                .await
                .expect("none yet"),
            None
        );
        let store = connection(db).await;
        let event =
            |merchant: &str, at: i64, outcome: EventOutcome, store: Option<&str>| EventRow {
                id: new_id("evt"),
                merchant_id: merchant.to_string(),
                connection_id: store.map(str::to_string),
                received_at: at,
                headers: Vec::new(),
                body: None,
                body_size: 0,
                body_hash: None,
                webhook_id: None,
                verified: true,
                outcome,
                detail: None,
                repeat_count: 0,
                shipment_ids: Vec::new(),
            };
        for e in [
            event(&merchant_id, 100, EventOutcome::Accepted, None),
            event(&merchant_id, 200, EventOutcome::NeedsAttention, None),
            event(&merchant_id, 300, EventOutcome::InvalidSignature, None),
            event(&merchant_id, 400, EventOutcome::Accepted, Some(&store.id)),
            event(&other, 500, EventOutcome::Accepted, None),
        ] {
            events::insert(db.pool(), &e).await.expect("insert event");
        }
        assert_eq!(
            conditions::last_webhook_at(db, &merchant_id)
                .await
                .expect("last"),
            Some(200)
        );
    })
    .await;
}

#[test]
fn a_url_names_its_backend() {
    use shipsync_db::Backend;
    for (url, want) in [
        ("sqlite://shipsync.db", Some(Backend::Sqlite)),
        ("sqlite::memory:", Some(Backend::Sqlite)),
        ("postgres://u@h/db", Some(Backend::Postgres)),
        ("postgresql://u@h/db", Some(Backend::Postgres)),
        ("mysql://u@h/db", None),
        ("shipsync.db", None),
    ] {
        assert_eq!(Backend::of_url(url), want, "{url}");
    }
}

/// What chooses `FOR UPDATE` and the placeholders of a transaction.
#[tokio::test]
async fn a_transaction_knows_its_backend() {
    use shipsync_db::Backend;
    on_each_backend(async |db, url| {
        assert_eq!(Backend::of_url(url), Some(db.backend()));
        let tx = db.begin().await.expect("begin");
        assert_eq!(Backend::of_connection(&tx), db.backend());
        drop(tx);
    })
    .await;
}

/// An order upserted twice is one record, read back as an `OrderRecord`:
/// the second upsert refreshes its name and lines but keeps its state.
#[tokio::test]
async fn an_order_upserted_twice_keeps_its_state() {
    on_each_backend(async |db, _| {
        let c = connection(db).await;
        let gid = "gid://shopify/Order/1";
        let first = orders::upsert(db.pool(), &c.id, gid, "#1001", OrderStatus::New, Some(&[]))
            .await
            .expect("upsert");
        assert_eq!(
            (first.name.as_str(), first.status),
            ("#1001", OrderStatus::New)
        );
        let id = first.id;
        let lines = [OrderLineRow {
            id: "gid://shopify/LineItem/1".into(),
            sku: Some("A".into()),
            name: Some("Apple".into()),
            quantity: 2,
            group: None,
            sent: None,
            skipped: None,
            to_send: None,
        }];
        let again = orders::upsert(
            db.pool(),
            &c.id,
            gid,
            "#1001b",
            OrderStatus::Queued,
            Some(&lines),
        )
        .await
        .expect("upsert again");
        // Returned as stored: the refreshed name and lines, the kept state.
        assert_eq!(again.id, id);
        assert_eq!(
            (again.name.as_str(), again.status),
            ("#1001b", OrderStatus::New)
        );
        assert_eq!(again.lines.len(), 1);
        let o = orders::get(db.pool(), &id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(
            (
                o.connection_id.as_str(),
                o.store_order_id.as_str(),
                o.name.as_str()
            ),
            (c.id.as_str(), gid, "#1001b")
        );
        assert_eq!(
            (o.status, o.lines.as_slice()),
            (OrderStatus::New, &lines[..])
        );
        assert_eq!((o.error, o.warehouse_number, o.sent_at), (None, None, None));
        // Upserted by someone who does not know all the lines: kept.
        let kept = orders::upsert(db.pool(), &c.id, gid, "#1001c", OrderStatus::New, None)
            .await
            .expect("upsert without lines");
        assert_eq!(
            (kept.name.as_str(), kept.lines.as_slice()),
            ("#1001c", &lines[..])
        );
        let fresh = orders::upsert(
            db.pool(),
            &c.id,
            "gid://shopify/Order/2",
            "#1002",
            OrderStatus::New,
            None,
        )
        .await
        .expect("new without lines");
        assert!(fresh.lines.is_empty());
    })
    .await;
}

/// A store fulfillment of a new shipment, as the engine records one.
fn fulfillment(shipment_id: &str, connection_id: &str) -> StoreFulfillmentRow {
    StoreFulfillmentRow {
        id: new_id("ful"),
        shipment_id: shipment_id.into(),
        connection_id: connection_id.into(),
        store_order_id: "gid://shopify/Order/1".into(),
        fulfillment_order_id: "gid://shopify/FulfillmentOrder/1".into(),
        store_fulfillment_id: None,
        carrier: Some("UPS".into()),
        lines: BTreeMap::from([("gid://shopify/LineItem/1".into(), 2)]),
        items: BTreeMap::from([("gid://shopify/FulfillmentOrderLineItem/1".into(), 2)]),
        tracking: vec![("P1".into(), "1Z1".into())],
        state: FulfillmentState::Pending,
        created_at: 1,
        updated_at: 1,
    }
}

/// Typed columns come back as written: JSON maps and lists, states, flags.
#[tokio::test]
async fn typed_rows_round_trip() {
    on_each_backend(async |db, _| {
        let c = connection(db).await;
        let f = fulfillment("shp_1", &c.id);
        fulfillments::insert(db.pool(), &f).await.expect("insert");
        let got = fulfillments::of_shipment(db.pool(), "shp_1")
            .await
            .expect("read");
        assert_eq!(got.len(), 1);
        assert_eq!(
            (&got[0].lines, &got[0].items, &got[0].tracking, got[0].state),
            (&f.lines, &f.items, &f.tracking, FulfillmentState::Pending)
        );
        let m = merchants::get(db.pool(), &c.merchant_id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(
            (m.webhooks_enabled, m.kit_policy, m.carrier_overrides.len()),
            (true, KitPolicy::FirstComponent, 1)
        );
        let ch = channels::get(db.pool(), &c.id, Channel::SalesOrders)
            .await
            .expect("get")
            .expect("row");
        assert_eq!((ch.channel, ch.enabled), (Channel::SalesOrders, false));
    })
    .await;
}

/// Stored data that does not decode is `DbError::Corrupt`, naming the
/// column: never a default. A corrupt ledger of what was sent must stop the
/// exactly-once path, not read as "nothing sent".
#[tokio::test]
async fn corrupt_stored_values_are_errors() {
    fn corrupt<T: std::fmt::Debug>(r: Result<T, DbError>, column: &str) {
        match r {
            Err(DbError::Corrupt(m)) => assert!(m.starts_with(column), "{m}"),
            other => panic!("{column}: expected Corrupt, got {other:?}"),
        }
    }
    on_each_backend(async |db, _| {
        let c = connection(db).await;
        let f = fulfillment("shp_2", &c.id);
        fulfillments::insert(db.pool(), &f).await.expect("insert");
        let raw = async |sql: &str, value: &str, id: &str| {
            sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                .bind(value)
                .bind(id)
                .execute(db.pool())
                .await
                .expect(sql);
        };

        raw(
            "UPDATE store_fulfillments SET lines_json = $1 WHERE id = $2",
            "{\"gid\":",
            &f.id,
        )
        .await;
        corrupt(
            fulfillments::of_shipment(db.pool(), "shp_2").await,
            "store_fulfillments.lines_json",
        );
        raw(
            "UPDATE store_fulfillments SET lines_json = $1 WHERE id = $2",
            "{\"gid\":-1}",
            &f.id,
        )
        .await;
        corrupt(
            fulfillments::of_shipment(db.pool(), "shp_2").await,
            "store_fulfillments.lines_json",
        );
        raw(
            "UPDATE store_fulfillments SET lines_json = '{}', state = $1 WHERE id = $2",
            "sent",
            &f.id,
        )
        .await;
        corrupt(
            fulfillments::of_shipment(db.pool(), "shp_2").await,
            "store_fulfillments.state",
        );

        raw(
            "UPDATE connections SET store_status = $1 WHERE id = $2",
            "broken",
            &c.id,
        )
        .await;
        corrupt(
            connections::get(db.pool(), &c.id).await,
            "connections.store_status",
        );
        raw(
            "UPDATE connections SET store_status = $1, enabled = 2 WHERE id = $2",
            "ok",
            &c.id,
        )
        .await;
        corrupt(
            connections::get(db.pool(), &c.id).await,
            "connections.enabled",
        );

        raw(
            "UPDATE merchants SET carrier_overrides = $1 WHERE id = $2",
            "[1]",
            &c.merchant_id,
        )
        .await;
        corrupt(
            merchants::get(db.pool(), &c.merchant_id).await,
            "merchants.carrier_overrides",
        );
    })
    .await;
}

#[tokio::test]
async fn an_unknown_state_word_is_corrupt() {
    on_each_backend(async |db, _| {
        let merchant_id = merchant(db).await;
        let s = ShipmentRow {
            id: new_id("shp"),
            merchant_id,
            number: "S9".into(),
            connection_id: None,
            order_id: None,
            order_name: "#9".into(),
            status: ShipmentStatus::New,
            error: None,
            sources: vec![Source::Webhook, Source::Poll],
            first_seen_via: Source::Webhook,
            version: version("S9"),
            version_at: None,
            content_hash: "h".into(),
            received_at: 1,
            updated_at: 1,
            completed_at: None,
        };
        shipments::insert(db.pool(), &s).await.expect("insert");
        let got = shipments::get(db.pool(), &s.id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(
            (got.sources, got.version),
            (s.sources.clone(), s.version.clone())
        );
        sqlx::query("UPDATE shipments SET status = 'shipped_maybe' WHERE id = $1")
            .bind(&s.id)
            .execute(db.pool())
            .await
            .expect("update");
        match shipments::get(db.pool(), &s.id).await {
            Err(DbError::Corrupt(m)) => assert!(m.contains("shipments.status"), "{m}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(matches!(
            shipments::count_by_status(db.pool()).await,
            Err(DbError::Corrupt(_))
        ));
    })
    .await;
}

/// Every job goes in as its kind and payload and comes back out the same;
/// rows written before the `Job` type (same columns) still decode, and a
/// row that does not is claimed as `Corrupt` (for the worker to give up).
#[tokio::test]
async fn jobs_round_trip_through_the_queue() {
    let all = [
        Job::ProcessEvent {
            event_id: "evt_1".into(),
        },
        Job::SyncShipment {
            shipment_id: "shp_1".into(),
        },
        Job::PullShipments {
            run_id: "run_1".into(),
        },
        Job::PullOrders {
            run_id: "run_2".into(),
        },
        Job::PushOrder {
            order_id: "ord_1".into(),
        },
        Job::Retention,
    ];
    on_each_backend(async |db, _| {
        for job in &all {
            jobs::enqueue(db.pool(), job, now_micros()).await.expect("enqueue");
        }
        let stored: Vec<(String, String, String)> =
            sqlx::query_as("SELECT kind, dedupe_key, payload FROM jobs ORDER BY kind")
                .fetch_all(db.pool())
                .await
                .expect("rows");
        assert_eq!(
            stored,
            [
                ("process_event", "event:evt_1", r#"{"event_id":"evt_1"}"#),
                ("pull_orders", "run:run_2", r#"{"run_id":"run_2"}"#),
                ("pull_shipments", "run:run_1", r#"{"run_id":"run_1"}"#),
                ("push_order", "push:ord_1", r#"{"order_id":"ord_1"}"#),
                ("retention", "retention", "{}"),
                ("sync_shipment", "sync:shp_1", r#"{"shipment_id":"shp_1"}"#),
            ]
            .map(|(k, d, p)| (k.to_string(), d.to_string(), p.to_string()))
        );
        for (kind, payload) in [("push_order", r#"{"order_id":1}"#), ("send_fax", "{}")] {
            sqlx::query(
                "INSERT INTO jobs (id, kind, dedupe_key, payload, run_at, created_at) VALUES ($1, $2, $1, $3, 0, 0)",
            )
            .bind(new_id("job"))
            .bind(kind)
            .bind(payload)
            .execute(db.pool())
            .await
            .expect("raw job");
        }
        let claimed = jobs::claim(db, "w", 100, 60_000_000).await.expect("claim");
        assert_eq!(claimed.len(), all.len() + 2);
        let mut good = Vec::new();
        for c in claimed {
            match c.job {
                Ok(job) => {
                    assert_eq!(job.kind(), c.kind);
                    good.push(job);
                }
                Err(DbError::Corrupt(m)) => assert!(
                    ["push_order", "send_fax"].contains(&c.kind.as_str()),
                    "{}: {m}",
                    c.kind
                ),
                Err(e) => panic!("{e}"),
            }
        }
        for job in &all {
            assert!(good.contains(job), "{job:?} lost");
        }
        // The CLI's claim of one job by its key.
        jobs::enqueue(db.pool(), &Job::PullShipments { run_id: "run_9".into() }, now_micros())
            .await
            .expect("enqueue");
        let one = jobs::claim_this(db, &Job::PullShipments { run_id: "run_9".into() }, "cli", 1)
            .await
            .expect("claim")
            .expect("claimable");
        assert_eq!(one.job.expect("decodes"), Job::PullShipments { run_id: "run_9".into() });
    })
    .await;
}

#[tokio::test]
async fn mappings_and_learned_recipes_round_trip() {
    use shipsync_core::mappings::{Mappings, RecipeSource};
    use shipsync_db::mappings::{self, MappingsRow};
    use shipsync_db::recipes;
    on_each_backend(async |db, _| {
        let m = merchant(db).await;
        assert_eq!(mappings::get(db.pool(), &m).await.expect("get"), None);
        let row = MappingsRow {
            merchant_id: m.clone(),
            doc: Mappings::for_new_merchant(),
            updated_at: 5,
            updated_by: Some("ops@example.com".into()),
        };
        mappings::save(db.pool(), &row).await.expect("save");
        let mut again = row.clone();
        again.doc.ship_methods.rules.truncate(1);
        again.updated_by = None;
        mappings::save(db.pool(), &again).await.expect("save again");
        assert_eq!(
            mappings::get(db.pool(), &m).await.expect("get"),
            Some(again)
        );

        recipes::save(db.pool(), &m, "KIT", "A", 2, RecipeSource::Webhook)
            .await
            .expect("recipe");
        recipes::save(db.pool(), &m, "KIT", "B", 1, RecipeSource::Items)
            .await
            .expect("recipe");
        let got: Vec<(String, i64, RecipeSource)> = recipes::of_merchant(db.pool(), &m)
            .await
            .expect("recipes")
            .into_iter()
            .map(|r| (r.component_sku, r.per_kit, r.source))
            .collect();
        assert_eq!(
            got,
            [
                ("A".to_string(), 2, RecipeSource::Webhook),
                ("B".to_string(), 1, RecipeSource::Items)
            ]
        );
        // A learned source word that is none of the known ones is corrupt.
        sqlx::query("UPDATE kit_recipes SET source = 'guess' WHERE merchant_id = $1")
            .bind(&m)
            .execute(db.pool())
            .await
            .expect("update");
        assert!(matches!(
            recipes::of_merchant(db.pool(), &m).await,
            Err(DbError::Corrupt(_))
        ));
        // Deleting the merchant deletes its document.
        assert!(merchants::delete(db, &m).await.expect("delete"));
        assert_eq!(mappings::get(db.pool(), &m).await.expect("get"), None);
    })
    .await;
}

/// Event subscriptions round-trip (events, sealed secrets, status); the
/// failing ones are listed; deliveries of one subject to one subscription
/// know the pending ones before and after them; lists page newest first.
#[tokio::test]
async fn event_subscriptions_and_deliveries() {
    use shipsync_core::states::{DeliveryState, EventType, SubscriptionStatus};
    use shipsync_db::event_deliveries::{self, DeliveryRow};
    use shipsync_db::event_subscriptions::{self, SubscriptionRow};

    on_each_backend(async |db, _| {
        let c = connection(db).await;
        let merchant_id = c.merchant_id.clone();
        let now = now_micros();
        let sub = SubscriptionRow {
            id: new_id("evs"),
            merchant_id: merchant_id.clone(),
            url: "https://erp.example.com/hooks".into(),
            events: vec![EventType::ShipmentCompleted, EventType::OrderSent],
            enabled: true,
            secret: vec![1, 2, 3],
            previous_secret: None,
            previous_until: None,
            status: SubscriptionStatus::Active,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        event_subscriptions::insert(db.pool(), &sub).await.unwrap();
        let got = event_subscriptions::get(db.pool(), &sub.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.events, sub.events);
        assert_eq!(got.secret, [1, 2, 3]);
        let of_connection = event_subscriptions::enabled_of_connection(db.pool(), &c.id)
            .await
            .unwrap();
        assert_eq!(of_connection.len(), 1, "the merchant of the connection's");
        let elsewhere = merchant(db).await;
        assert!(
            event_subscriptions::enabled_of_merchant(db.pool(), &elsewhere)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            event_subscriptions::failing(db.pool())
                .await
                .unwrap()
                .is_empty()
        );
        event_subscriptions::mark_failing(db.pool(), &sub.id, now)
            .await
            .unwrap();
        event_subscriptions::mark_failing(db.pool(), &sub.id, now + 5)
            .await
            .unwrap();
        let failing = event_subscriptions::failing(db.pool()).await.unwrap();
        assert_eq!(failing.len(), 1);
        assert_eq!(
            failing[0].failing_since,
            Some(now),
            "kept from the first time"
        );
        assert!(
            event_subscriptions::mark_active(db.pool(), &sub.id)
                .await
                .unwrap()
        );
        assert!(
            !event_subscriptions::mark_active(db.pool(), &sub.id)
                .await
                .unwrap()
        );

        let delivery = |subject: &str, state: DeliveryState| DeliveryRow {
            id: new_id("dlv"),
            event_id: new_id("msg"),
            subscription_id: sub.id.clone(),
            subject_id: subject.into(),
            state,
            tries: 0,
            next_attempt_at: Some(now),
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        let first = delivery("shp_a", DeliveryState::Pending);
        event_deliveries::insert(db.pool(), &first).await.unwrap();
        let other = delivery("shp_b", DeliveryState::Pending);
        event_deliveries::insert(db.pool(), &other).await.unwrap();
        let second = delivery("shp_a", DeliveryState::Pending);
        event_deliveries::insert(db.pool(), &second).await.unwrap();
        let earlier = event_deliveries::earlier_pending(db.pool(), &second)
            .await
            .unwrap();
        assert_eq!(earlier.map(|d| d.id), Some(first.id.clone()));
        assert!(
            event_deliveries::earlier_pending(db.pool(), &first)
                .await
                .unwrap()
                .is_none()
        );
        let next = event_deliveries::next_pending(db.pool(), &first)
            .await
            .unwrap();
        assert_eq!(next.map(|d| d.id), Some(second.id.clone()));
        let mut done = first.clone();
        done.state = DeliveryState::Delivered;
        event_deliveries::update(db.pool(), &done).await.unwrap();
        assert!(
            event_deliveries::earlier_pending(db.pool(), &second)
                .await
                .unwrap()
                .is_none()
        );

        let page = event_deliveries::list(db.pool(), &sub.id, None, 2)
            .await
            .unwrap();
        let ids: Vec<&str> = page.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, [second.id.as_str(), other.id.as_str()], "newest first");
        let rest = event_deliveries::list(db.pool(), &sub.id, Some(&other.id), 2)
            .await
            .unwrap();
        assert_eq!(
            rest.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            [first.id.as_str()]
        );
        db.close().await;
    })
    .await;
}

fn alert(policy_id: &str, merchant_id: Option<&str>, at: i64) -> shipsync_db::alerts::AlertRow {
    use shipsync_core::alerts::AlertSubject;
    use shipsync_core::states::{AlertEvent, AlertStatus};
    shipsync_db::alerts::AlertRow {
        id: new_id("alr"),
        policy_id: policy_id.into(),
        event: AlertEvent::ShipmentError,
        scope_key: merchant_id.map_or("installation".into(), |m| format!("merchant:{m}")),
        merchant_id: merchant_id.map(Into::into),
        connection_id: None,
        subjects: vec![AlertSubject {
            id: "shp_1".into(),
            label: "Shipment 1".into(),
            added_at: at,
        }],
        status: AlertStatus::Open,
        summary: "1 shipment(s) in error".into(),
        opened_at: at,
        grown_at: None,
        acknowledged_at: None,
        acknowledged_by: None,
        closed_at: None,
        last_seen_at: at,
    }
}

/// Alerts: an update of a check never undoes an acknowledgement; a
/// closed alert cannot be acknowledged; a limited list shows its
/// merchants' alerts and the installation-wide ones.
#[tokio::test]
async fn alerts_keep_acknowledgements_and_filter_by_merchant() {
    use shipsync_core::states::AlertStatus;
    use shipsync_db::alerts::{self, AlertFilter};
    on_each_backend(async |db: &Db, _| {
        let now = now_micros();
        let mine = alert("pol_1", Some("mer_a"), now);
        let other = alert("pol_1", Some("mer_b"), now);
        let everyone = alert("pol_1", None, now);
        for a in [&mine, &other, &everyone] {
            alerts::insert(db.pool(), a).await.expect("insert");
        }
        assert!(
            alerts::acknowledge(db.pool(), &mine.id, now, "ops@example.com")
                .await
                .expect("ack")
        );
        let mut seen = mine.clone();
        seen.subjects[0].label = "Shipment 1 again".into();
        seen.last_seen_at = now + 1;
        alerts::seen(db.pool(), &seen).await.expect("seen");
        let got = alerts::get(db.pool(), &mine.id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(got.status, AlertStatus::Acknowledged);
        assert_eq!(got.acknowledged_by.as_deref(), Some("ops@example.com"));
        assert_eq!(got.last_seen_at, now + 1);

        alerts::close(db.pool(), &mine.id, now + 2)
            .await
            .expect("close");
        assert!(
            !alerts::acknowledge(db.pool(), &mine.id, now, "x")
                .await
                .expect("ack")
        );
        let got = alerts::get(db.pool(), &mine.id)
            .await
            .expect("get")
            .expect("row");
        assert_eq!(
            (got.status, got.closed_at),
            (AlertStatus::Closed, Some(now + 2))
        );
        let open: Vec<String> = alerts::not_closed(db.pool(), "pol_1")
            .await
            .expect("open")
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(open.len(), 2);

        let limited = alerts::list(
            db.pool(),
            &AlertFilter {
                status: None,
                merchant_ids: Some(vec!["mer_a".into()]),
                before: None,
                limit: 10,
            },
        )
        .await
        .expect("list");
        let mut ids: Vec<String> = limited.into_iter().map(|a| a.id).collect();
        ids.sort();
        let mut want = vec![mine.id.clone(), everyone.id.clone()];
        want.sort();
        assert_eq!(ids, want);
        let closed = alerts::list(
            db.pool(),
            &AlertFilter {
                status: Some(AlertStatus::Closed),
                merchant_ids: None,
                before: None,
                limit: 10,
            },
        )
        .await
        .expect("list");
        assert_eq!(closed.len(), 1);
    })
    .await;
}

/// Inside a relaxed scope (job processing on SQLite) the scope's pool does
/// not fsync each commit, and the durable pool still does: the intent
/// recorded before a store mutation goes through the latter.
#[tokio::test]
async fn the_durable_pool_stays_durable_in_a_relaxed_scope() {
    async fn synchronous(pool: &sqlx::AnyPool) -> i64 {
        sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
            .fetch_one(pool)
            .await
            .expect("PRAGMA synchronous")
    }
    let t = TestDb::sqlite().expect("a SQLite test database");
    let db = Db::open(&t.url).await.expect("open and migrate");
    // 2 = FULL, 1 = NORMAL.
    assert_eq!(synchronous(db.pool()).await, 2);
    shipsync_db::relaxed(async {
        assert_eq!(synchronous(db.pool()).await, 1);
        assert_eq!(synchronous(db.durable_pool()).await, 2);
    })
    .await;
    // Units too: relaxed inside the scope, unless run durably — by
    // SQLite's own fsync (FULL: the unit thread's first durable commit),
    // or answered after an fsync of the log off the unit thread.
    let durable = |sync: i64, fsyncs_before: u64| sync == 2 || db.log_fsyncs() > fsyncs_before;
    let before = db.log_fsyncs();
    assert!(durable(db.unit(Synchronous).await.unwrap(), before));
    shipsync_db::relaxed(async {
        let before = db.log_fsyncs();
        assert_eq!(db.unit(Synchronous).await.unwrap(), 1);
        assert_eq!(db.log_fsyncs(), before, "a relaxed unit waits for no fsync");
        let before = db.log_fsyncs();
        assert_eq!(
            db.durable_unit(Synchronous).await.unwrap(),
            1,
            "committed without SQLite's fsync"
        );
        assert!(db.log_fsyncs() > before, "answered after the log's");
        assert_eq!(db.unit(Synchronous).await.unwrap(), 1);
    })
    .await;
    db.close().await;
}

/// An urgent unit (the webhook ingest's) runs ahead of the units queued
/// before it, and durably inside a relaxed scope: it waits for the one
/// unit running, not for the queue.
#[tokio::test]
async fn an_urgent_unit_goes_ahead_of_the_queue() {
    let t = TestDb::sqlite().expect("a SQLite test database");
    let db = Db::open(&t.url).await.expect("open and migrate");
    let ran = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // The first unit holds the unit thread until the others are queued.
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let held = tokio::spawn({
        let (db, ran) = (db.clone(), ran.clone());
        async move {
            db.unit(Noted {
                name: "held",
                ran,
                gate: Some(gate),
            })
            .await
        }
    });
    let queued = |name: &'static str, urgent: bool| {
        let (db, ran) = (db.clone(), ran.clone());
        tokio::spawn(async move {
            let unit = Noted {
                name,
                ran,
                gate: None,
            };
            shipsync_db::relaxed(async {
                if urgent {
                    db.urgent_unit(unit).await
                } else {
                    db.unit(unit).await
                }
            })
            .await
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ran.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first unit never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let second = queued("second", false);
    let third = queued("third", false);
    let urgent = queued("urgent", true);
    while db.units_waiting() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the units were not queued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let fsyncs_before = db.log_fsyncs();
    release.send(()).unwrap();
    let sync = |r: Result<Result<i64, DbError>, tokio::task::JoinError>| r.unwrap().unwrap();
    // The held unit is durable: SQLite's own fsync (the unit thread's
    // first durable commit), or answered after an fsync of the log.
    let held = sync(held.await);
    assert!(held == 2 || db.log_fsyncs() > fsyncs_before, "{held}");
    assert_eq!(
        sync(second.await),
        1,
        "a normal unit is relaxed in the scope"
    );
    assert_eq!(sync(third.await), 1);
    assert_eq!(
        sync(urgent.await),
        1,
        "an urgent unit commits without SQLite's fsync..."
    );
    assert!(
        db.log_fsyncs() > fsyncs_before,
        "... and is answered after an fsync of the log"
    );
    assert_eq!(*ran.lock().unwrap(), ["held", "urgent", "second", "third"]);
    db.close().await;
}

/// Notes its name when it runs, after waiting for `gate` if it has one;
/// answers the `synchronous` setting it ran with.
struct Noted {
    name: &'static str,
    ran: std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>,
    gate: Option<std::sync::mpsc::Receiver<()>>,
}

impl shipsync_db::unit::Unit for Noted {
    type Output = i64;
    type Error = DbError;

    async fn run<C: shipsync_db::unit::Conn>(self, c: &mut C) -> Result<i64, DbError> {
        self.ran.lock().unwrap().push(self.name);
        if let Some(gate) = self.gate {
            // Blocks the unit thread: only a test may.
            gate.recv().unwrap();
        }
        Ok(sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
            .fetch_one(c.ex())
            .await?)
    }
}

/// The `synchronous` setting a unit runs with.
struct Synchronous;

impl shipsync_db::unit::Unit for Synchronous {
    type Output = i64;
    type Error = DbError;

    async fn run<C: shipsync_db::unit::Conn>(self, c: &mut C) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
            .fetch_one(c.ex())
            .await?)
    }
}

/// The orders shipsync sent that a shipment's references name, in one
/// statement: by Deposco number first, else by store name with or without
/// `#`; orders never sent, and other merchants' orders, are not found.
#[tokio::test]
async fn sent_orders_are_found_by_number_before_name() {
    on_each_backend(async |db, _| {
        let c = connection(db).await;
        let other = connection(db).await;
        let order = |conn: &str, n: u32, name: &str, number: Option<&str>| OrderRecord {
            id: new_id("ord"),
            connection_id: conn.to_owned(),
            store_order_id: format!("gid://shopify/Order/{n}"),
            name: name.to_owned(),
            status: OrderStatus::Open,
            lines: Vec::new(),
            created_at: 1,
            updated_at: 1,
            error: None,
            store_json: None,
            store_updated_at: None,
            warehouse_number: number.map(str::to_owned),
            warehouse_id: number.map(|n| format!("dep-{n}")),
            sent_at: number.map(|_| 1),
            first_seen_via: None,
            hold_until: None,
            hold_reason: None,
        };
        let by_number = order(&c.id, 1, "#1001", Some("SO-77"));
        let by_name = order(&c.id, 2, "#1002", Some("SO-78"));
        let never_sent = order(&c.id, 3, "#1003", None);
        let elsewhere = order(&other.id, 4, "#1002", Some("SO-77"));
        for o in [&by_number, &by_name, &never_sent, &elsewhere] {
            orders::insert(db.pool(), o).await.expect("insert order");
        }
        let ids = async |refs: &[&str]| -> Vec<String> {
            let refs: Vec<String> = refs.iter().map(|r| (*r).to_owned()).collect();
            orders::sent_for_refs(db.pool(), &c.merchant_id, &refs)
                .await
                .expect("sent_for_refs")
                .into_iter()
                .map(|o| o.id)
                .collect()
        };
        // A Deposco number wins over a name naming another order.
        assert_eq!(
            ids(&["SO-77", "#1002"]).await,
            std::slice::from_ref(&by_number.id)
        );
        // By name, with or without `#`; blank references are skipped.
        assert_eq!(ids(&["1002", " "]).await, std::slice::from_ref(&by_name.id));
        assert_eq!(ids(&["#1002"]).await, std::slice::from_ref(&by_name.id));
        let mut both = vec![by_number.id.clone(), by_name.id.clone()];
        both.sort();
        assert_eq!(ids(&["1001", "#1002"]).await, both);
        // Never sent: not found; nothing to look for: nothing.
        assert!(ids(&["#1003"]).await.is_empty());
        assert!(ids(&[]).await.is_empty());
    })
    .await;
}

/// Reads a merchant and writes a shipment in one unit: what the unit sees
/// and writes is what the pool sees and writes (on SQLite the unit runs on
/// the unit thread's own connection).
struct ShipOne {
    merchant_id: String,
    shipment: ShipmentRow,
    /// Insert the shipment twice: the second insert fails.
    twice: bool,
}

impl shipsync_db::unit::Unit for ShipOne {
    type Output = Option<String>;
    type Error = DbError;

    async fn run<C: shipsync_db::unit::Conn>(self, c: &mut C) -> Result<Option<String>, DbError> {
        let name = merchants::get(c.ex(), &self.merchant_id)
            .await?
            .map(|m| m.name);
        shipments::insert(c.ex(), &self.shipment).await?;
        if self.twice {
            shipments::insert(c.ex(), &self.shipment).await?;
        }
        Ok(name)
    }
}

fn shipment_row(merchant_id: &str, number: &str) -> ShipmentRow {
    ShipmentRow {
        id: new_id("shp"),
        merchant_id: merchant_id.to_string(),
        number: number.into(),
        connection_id: None,
        order_id: None,
        order_name: "#1001".into(),
        status: ShipmentStatus::New,
        error: Some("waiting".into()),
        sources: vec![Source::Webhook],
        first_seen_via: Source::Webhook,
        version: version(number),
        version_at: None,
        content_hash: "h".into(),
        received_at: 1,
        updated_at: 2,
        completed_at: None,
    }
}

#[tokio::test]
async fn a_unit_reads_and_writes_what_the_pool_does() {
    on_each_backend(async |db, _| {
        let merchant_id = merchant(db).await;
        let row = shipment_row(&merchant_id, "SHP-U1");
        let name = db
            .unit(ShipOne {
                merchant_id: merchant_id.clone(),
                shipment: row.clone(),
                twice: false,
            })
            .await
            .expect("the unit runs");
        assert_eq!(name.as_deref(), Some("Acme"));
        let stored = shipments::get(db.pool(), &row.id)
            .await
            .unwrap()
            .expect("the unit's write is committed");
        assert_eq!(stored.number, "SHP-U1");
        assert_eq!(stored.error.as_deref(), Some("waiting"));
        assert_eq!(stored.version, row.version);
        assert_eq!(stored.sources, vec![Source::Webhook]);

        // A unit that fails leaves nothing behind, and its error is the
        // database's own (a unique violation here).
        let failed = shipment_row(&merchant_id, "SHP-U2");
        let err = db
            .unit(ShipOne {
                merchant_id,
                shipment: failed.clone(),
                twice: true,
            })
            .await
            .expect_err("the second insert fails");
        assert!(err.is_unique_violation(), "{err}");
        assert!(
            shipments::get(db.pool(), &failed.id)
                .await
                .unwrap()
                .is_none()
        );
    })
    .await;
}

/// A unit that finds the write lock held by one of the pool's
/// transactions waits for it (the unit thread's busy handler), and runs
/// once it is committed; it does not fail with "database is locked".
#[tokio::test]
async fn a_unit_waits_for_the_pools_write_lock() {
    let t = TestDb::sqlite().expect("a SQLite test database");
    let db = Db::open(&t.url).await.expect("open and migrate");
    let merchant_id = merchant(&db).await;
    let row = shipment_row(&merchant_id, "SHP-W1");
    let mut tx = db.begin().await.expect("the pool's write lock");
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let unit = tokio::spawn({
        let (db, row, sent) = (db.clone(), row.clone(), sent.clone());
        async move {
            sent.store(true, std::sync::atomic::Ordering::SeqCst);
            // Queued in its first poll, on this (the test's) thread.
            db.unit(ShipOne {
                merchant_id,
                shipment: row,
                twice: false,
            })
            .await
        }
    });
    // The unit is on the unit thread (queued, then taken), waiting for
    // the lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !sent.load(std::sync::atomic::Ordering::SeqCst) || db.units_waiting() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the unit never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    sqlx::query("UPDATE merchants SET name = 'Acme, locked' WHERE id = $1")
        .bind(&row.merchant_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let name = unit.await.unwrap().expect("the unit waited and ran");
    assert_eq!(
        name.as_deref(),
        Some("Acme, locked"),
        "it ran after the commit"
    );
    assert!(shipments::get(db.pool(), &row.id).await.unwrap().is_some());
    db.close().await;
}

/// Binds and reads every kind of value.
struct Values;

impl shipsync_db::unit::Unit for Values {
    type Output = (String, i64, i64, Option<String>, f64, Vec<u8>);
    type Error = DbError;

    async fn run<C: shipsync_db::unit::Conn>(self, c: &mut C) -> Result<Self::Output, DbError> {
        use sqlx::Row;
        // `$2` before `$1`, `$1` twice: bound by number, not by position.
        let row = sqlx::query("SELECT $2 AS b, $1 AS a, $1 + 1 AS a2, $3 AS n, $4 AS r, $5 AS bl")
            .bind(41_i64)
            .bind("text")
            .bind(None::<String>)
            .bind(1.5_f64)
            .bind(vec![1_u8, 2])
            .fetch_one(c.ex())
            .await?;
        Ok((
            row.try_get("b")?,
            row.try_get("a")?,
            row.try_get("a2")?,
            row.try_get("n")?,
            row.try_get("r")?,
            row.try_get("bl")?,
        ))
    }
}

#[tokio::test]
async fn a_unit_binds_by_number_and_reads_every_kind_of_value() {
    on_each_backend(async |db, _| {
        let got = db.unit(Values).await.expect("the unit runs");
        assert_eq!(
            got,
            ("text".into(), 41, 42, None, 1.5, vec![1, 2]),
            "{:?}",
            db.backend()
        );
    })
    .await;
}
