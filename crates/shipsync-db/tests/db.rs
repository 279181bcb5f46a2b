//! The repository API on both backends: a SQLite temp file, and a
//! throwaway database on the PostgreSQL server of
//! `SHIPSYNC_TEST_POSTGRES_URL` (skipped, with a notice, when it is unset).

use shipsync_db::rows::{ChannelRow, ConnectionRow, MerchantRow, ShipmentRow, VersionRow};
use shipsync_db::store_auth::{OauthStateRow, StoreTokenRow};
use shipsync_db::{Db, jobs, new_id, now_micros, rows};
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
    db.insert_merchant(&MerchantRow {
        id: id.clone(),
        name: "Acme".into(),
        warehouse_json: "{}".into(),
        warehouse_secrets: None,
        webhooks_enabled: 1,
        shared_secret: None,
        webhook_key: vec![1, 2, 3],
        webhook_key_hash: format!("hash-{id}"),
        kit_policy: "explode".into(),
        carrier_overrides: "{}".into(),
        created_at: 1,
        updated_at: 1,
    })
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
        enabled: 1,
        order_prefix: "AC-".into(),
        store_json: r#"{"shop":"acme"}"#.into(),
        store_token: Some(vec![9, 8, 7]),
        store_client_secret: Some(vec![0, 255, 1]),
        store_status: "ok".into(),
        store_error: None,
        created_at: 10,
        updated_at: 11,
        token_held: 0,
        token_expires_at: None,
        granted_scopes: None,
        shipments_on: 0,
        sales_orders_on: 0,
    };
    let channels = [("shipments", 1), ("sales_orders", 0)].map(|(channel, enabled)| ChannelRow {
        connection_id: c.id.clone(),
        channel: channel.into(),
        enabled,
        schedules_json: "[]".into(),
        last_completed_at: None,
        next_run_at: None,
    });
    db.insert_connection(&c, &channels)
        .await
        .expect("insert connection");
    c
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
        assert_eq!(first, [1, 2, 3, 4, 5, 6, 7, 10, 11, 12]);
        db.migrate().await.expect("migrate again");
        db.close().await;
        // And from another process's point of view: a new handle.
        let db = Db::open(url).await.expect("open again");
        assert_eq!(applied_migrations(&db).await, first);
        // The schema of the last migration is there, `{BLOB}` and all.
        let c = connection(&db).await;
        let got = db.get_connection(&c.id).await.expect("get").expect("row");
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
            let key = format!("test:{i}");
            jobs::enqueue(&mut tx, "test", Some(&key), "{}", now_micros())
                .await
                .expect("enqueue");
        }
        tx.commit().await.expect("commit");
        let claimer = |owner: &'static str| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let got = db.claim_jobs(owner, 3, 60_000_000).await.expect("claim");
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
            db.claim_jobs("c", 100, 60_000_000)
                .await
                .expect("claim")
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn a_connection_round_trips_with_its_store_token() {
    on_each_backend(async |db, _| {
        let c = connection(db).await;
        let got = db.get_connection(&c.id).await.expect("get").expect("row");
        assert_eq!(
            (
                got.token_held,
                got.token_expires_at,
                got.granted_scopes.as_deref()
            ),
            (0, None, None)
        );
        assert_eq!((got.shipments_on, got.sales_orders_on), (1, 0));
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

        db.save_store_token(&StoreTokenRow {
            connection_id: c.id.clone(),
            access_token: Some(vec![4, 5]),
            obtained_at: Some(100),
            expires_at: Some(200),
            scopes: Some("read_orders,write_fulfillments".into()),
            ..StoreTokenRow::default()
        })
        .await
        .expect("save token");
        let got = db.get_connection(&c.id).await.expect("get").expect("row");
        assert_eq!(
            (
                got.token_held,
                got.token_expires_at,
                got.granted_scopes.as_deref()
            ),
            (1, Some(200), Some("read_orders,write_fulfillments"))
        );
        let listed = db
            .list_connections(Some(&c.merchant_id), None, 10)
            .await
            .expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].id.as_str(), listed[0].token_held),
            (c.id.as_str(), 1)
        );
        let token = db
            .get_store_token(&c.id)
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
            db.take_refresh_lease(&c.id, 0, now, until)
                .await
                .expect("take")
        );
        assert!(
            !db.take_refresh_lease(&c.id, 0, now, until)
                .await
                .expect("take")
        );
        // Once it ran out, another worker takes it.
        assert!(
            db.take_refresh_lease(&c.id, 0, until + 1, until + 2)
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
        db.insert_oauth_state(&OauthStateRow {
            state_hash: "abc".into(),
            connection_id: new_id("con"),
            user_id: None,
            created_at: now,
            expires_at: now + 600_000_000,
            used_at: None,
        })
        .await
        .expect("insert state");
        assert!(db.mark_oauth_state_used("abc", now).await.expect("mark"));
        assert!(
            !db.mark_oauth_state_used("abc", now + 1)
                .await
                .expect("mark")
        );
        let s = db.get_oauth_state("abc").await.expect("get").expect("row");
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
        for (number, status) in [("S1", "open"), ("S2", "completed")] {
            let id = new_id("shp");
            rows::insert_shipment(
                &mut tx,
                &ShipmentRow {
                    id: id.clone(),
                    merchant_id: merchant_id.clone(),
                    number: number.into(),
                    connection_id: None,
                    order_id: None,
                    order_name: "#1".into(),
                    status: status.into(),
                    error: None,
                    sources: "[]".into(),
                    first_seen_via: "webhook".into(),
                    version_json: "{}".into(),
                    version_at: None,
                    content_hash: "h".into(),
                    received_at: 1,
                    updated_at: 1,
                    completed_at: None,
                },
            )
            .await
            .expect("insert shipment");
            rows::insert_version(
                &mut tx,
                &VersionRow {
                    id: new_id("ver"),
                    shipment_id: id.clone(),
                    event_id: None,
                    source: "webhook".into(),
                    received_at: 1,
                    content_hash: "h".into(),
                    version_json: "{}".into(),
                },
            )
            .await
            .expect("insert version");
            ids.push(id);
        }
        tx.commit().await.expect("commit");
        assert_eq!(
            db.delete_old_versions(now_micros())
                .await
                .expect("retention"),
            1
        );
        assert_eq!(db.versions_for(&ids[0]).await.expect("versions").len(), 1);
        assert!(db.versions_for(&ids[1]).await.expect("versions").is_empty());
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
        let id = db
            .upsert_order(&c.id, gid, "#1001", "new", "[]")
            .await
            .expect("upsert");
        let again = db
            .upsert_order(&c.id, gid, "#1001b", "queued", r#"[{"sku":"A"}]"#)
            .await
            .expect("upsert again");
        assert_eq!(again, id);
        let o = db.get_order_record(&id).await.expect("get").expect("row");
        assert_eq!(
            (
                o.connection_id.as_str(),
                o.store_order_id.as_str(),
                o.name.as_str()
            ),
            (c.id.as_str(), gid, "#1001b")
        );
        assert_eq!(
            (o.status.as_str(), o.lines_json.as_str()),
            ("new", r#"[{"sku":"A"}]"#)
        );
        assert_eq!((o.error, o.warehouse_number, o.sent_at), (None, None, None));
    })
    .await;
}
