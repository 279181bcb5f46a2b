//! The REST client against the Deposco sandbox (an independent
//! implementation) served on 127.0.0.1:0, plus a tiny stub for answers the
//! sandbox does not give (409).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shipsync_deposco::api::{
    Auth, DeposcoClient, DeposcoConfig, DeposcoError, KitComponent, RateLimiter, RetryPolicy,
    STATUS_CANCELED, STATUS_HOLD, STATUS_NEW, SalesOrderStage, shared_limiter,
};
use shipsync_sandbox_deposco::{
    DeposcoSandbox, Faults, ItemSpec, LineSpec, PackageSpec, RunningDeposco, SandboxConfig,
    ShipmentSpec,
};

async fn start(config: SandboxConfig) -> RunningDeposco {
    DeposcoSandbox::new(config)
        .start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("sandbox starts")
}

/// The sandbox without its rate limit, for tests about something else.
fn unlimited() -> SandboxConfig {
    SandboxConfig {
        rate_limit_per_sec: 0.0,
        ..SandboxConfig::default()
    }
}

fn basic(deposco: &RunningDeposco) -> DeposcoConfig {
    DeposcoConfig::new(
        deposco.url.clone(),
        "ACME",
        Auth::Basic {
            username: "sandbox".into(),
            password: "sandbox".to_owned().into(),
        },
    )
}

fn oauth(deposco: &RunningDeposco, refresh_token: &str) -> DeposcoConfig {
    DeposcoConfig::new(
        deposco.url.clone(),
        "ACME",
        Auth::OAuth {
            token_url: deposco.token_url(),
            client_id: "sandbox-client".into(),
            client_secret: "sandbox-secret".to_owned().into(),
            refresh_token: refresh_token.to_owned().into(),
        },
    )
}

fn client(config: DeposcoConfig, limiter: Arc<RateLimiter>) -> DeposcoClient {
    let http = DeposcoClient::http_client(shipsync_outbound::TargetPolicy::ALLOW_PRIVATE)
        .expect("http client");
    DeposcoClient::new(http, config, limiter).expect("client")
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        transient: 8,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..RetryPolicy::default()
    }
}

fn no_limit() -> Arc<RateLimiter> {
    Arc::new(RateLimiter::new(0.0, 1.0))
}

fn shipment(order: u32, lines: u32) -> ShipmentSpec {
    let mut spec = ShipmentSpec::new(order.to_string()).tracking(format!("1Z{order:08}"));
    for n in 1..=lines {
        spec = spec.line(
            LineSpec::new(n, format!("SKU-{n}"), 1)
                .customer_line(format!("gid://shopify/LineItem/{order}{n:03}")),
        );
    }
    spec
}

fn order(number: &str, skus: &[&str]) -> Value {
    let lines: Vec<Value> = skus
        .iter()
        .enumerate()
        .map(|(i, sku)| {
            json!({
                "lineNumber": (i + 1).to_string(),
                "customerLineNumber": format!("gid://shopify/LineItem/{}", 1000 + i),
                "item": { "businessKey": { "number": sku } },
                "pack": { "businessKey": { "item.number": sku, "quantity": 1 } },
                "orderPackQuantity": 1,
            })
        })
        .collect();
    json!({
        "number": number,
        "customerOrderNumber": format!("#{number}"),
        "orderStatus": "New",
        "shipToContact": { "name": "Ada Lovelace" },
        "shipToAddress": { "addressLine1": "1 Main St", "city": "Boston", "countryCode": "US" },
        "orderLines": lines,
    })
}

// ---------------------------------------------------------------------------
// Auth

#[tokio::test]
async fn basic_auth_check_and_refusals() {
    let deposco = start(unlimited()).await;
    let ok = client(basic(&deposco), no_limit());
    ok.check().await.expect("check passes");
    assert_eq!(ok.requests_made(), 1);

    let mut wrong = basic(&deposco);
    wrong.auth = Auth::Basic {
        username: "sandbox".into(),
        password: "nope".to_owned().into(),
    };
    let err = client(wrong, no_limit()).check().await.unwrap_err();
    assert!(matches!(err, DeposcoError::Unauthorized(_)), "{err:?}");
    assert!(
        !format!("{err} {err:?}").contains("nope"),
        "no secret in errors"
    );

    let mut other_bu = basic(&deposco);
    other_bu.business_unit = "OTHER".into();
    let err = client(other_bu, no_limit()).check().await.unwrap_err();
    assert_eq!(
        err,
        DeposcoError::Rejected {
            status: 400,
            message: "Business unit OTHER not found".into()
        }
    );

    let bad_url = DeposcoConfig::new("not a url", "ACME", basic(&deposco).auth);
    let http = DeposcoClient::http_client(shipsync_outbound::TargetPolicy::ALLOW_PRIVATE)
        .expect("http client");
    assert!(matches!(
        DeposcoClient::new(http, bad_url, no_limit()),
        Err(DeposcoError::Config(_))
    ));
}

#[tokio::test]
async fn oauth_token_is_reused_and_refreshed_once_when_revoked() {
    let deposco = start(unlimited()).await;
    let config = oauth(&deposco, "sandbox-refresh-token");
    assert!(!format!("{config:?}").contains("sandbox-secret"));
    let c = client(config, no_limit());
    for _ in 0..3 {
        c.check().await.expect("check passes");
    }
    // One token request, then three calls with the cached token.
    assert_eq!(c.requests_made(), 4);
    assert_eq!(deposco.sandbox.request_count(), 4);

    // A clone shares the token.
    c.clone().check().await.expect("clone passes");
    assert_eq!(c.requests_made(), 5);

    deposco.sandbox.revoke_tokens();
    c.check().await.expect("works again after a refresh");
    // 401, token request, the call again.
    assert_eq!(c.requests_made(), 8);
    c.check().await.expect("the new token is cached");
    assert_eq!(c.requests_made(), 9);

    let bad = client(oauth(&deposco, "revoked-refresh-token"), no_limit());
    match bad.check().await {
        Err(DeposcoError::Unauthorized(message)) => {
            assert!(message.contains("invalid or revoked"), "{message}");
            assert!(!message.contains("revoked-refresh-token"), "{message}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(bad.requests_made(), 1, "a refused grant is not retried");
}

// ---------------------------------------------------------------------------
// Shipments

#[tokio::test]
async fn pages_250_shipments_through_next_links() {
    let deposco = start(SandboxConfig::default()).await;
    let base = Timestamp::from_second(1_780_000_000).expect("time");
    for i in 0..250 {
        let at = base + SignedDuration::from_secs(i);
        let mut spec = shipment(10_000 + u32::try_from(i).expect("small"), 1);
        spec.created_date = Some(at);
        spec.updated_date = Some(at);
        deposco.sandbox.add_shipment(spec);
    }
    let c = client(basic(&deposco), Arc::new(RateLimiter::default()));

    let mut numbers = Vec::new();
    let mut pages = 0;
    let mut next: Option<String> = None;
    loop {
        let page = c
            .shipments_page(base - SignedDuration::from_secs(60), next.as_deref())
            .await
            .expect("page");
        pages += 1;
        assert!(page.failed.is_empty(), "{:?}", page.failed);
        assert_eq!(page.raw_count, page.shipments.len());
        for s in &page.shipments {
            assert!(s.updated_date.is_some());
            numbers.push(s.version.number.clone());
        }
        if page.complete {
            assert!(page.next.is_none());
            break;
        }
        let href = page.next.expect("next link on an incomplete page");
        assert!(href.contains("searchId="), "{href}");
        assert!(href.starts_with(&deposco.url), "{href}");
        next = Some(href);
        assert!(pages < 10, "runaway paging");
    }
    assert_eq!(pages, 3);
    assert_eq!(numbers.len(), 250);
    assert_eq!(numbers.iter().collect::<BTreeSet<_>>().len(), 250);
    assert_eq!(c.requests_made(), 3);

    // updatedAfter is sent (inclusive), newest first.
    let cut = base + SignedDuration::from_secs(200);
    let page = c.shipments_page(cut, None).await.expect("page");
    assert!(page.complete);
    assert_eq!(page.shipments.len(), 50);
    let dates: Vec<Timestamp> = page
        .shipments
        .iter()
        .map(|s| s.updated_date.expect("date"))
        .collect();
    assert!(dates.iter().all(|d| *d >= cut));
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first");
}

#[tokio::test]
async fn truncated_nested_lines_are_read_in_full() {
    let deposco = start(unlimited()).await;
    let big = deposco.sandbox.add_shipment(
        shipment(2001, 25).package(PackageSpec::new("LPN1", "1ZBIG").line(1, 1).line(25, 1)),
    );
    deposco.sandbox.add_shipment(shipment(2002, 2));
    let mut config = basic(&deposco);
    // Lines come 10 to a page: the sub-resource is followed through its next links too.
    config.page_size = 10;
    let c = client(config, no_limit());

    let page = c
        .shipments_page(Timestamp::UNIX_EPOCH, None)
        .await
        .expect("page");
    assert_eq!(page.shipments.len(), 2);
    let pulled = page
        .shipments
        .iter()
        .find(|s| s.version.number == big.number)
        .expect("big shipment");
    assert_eq!(pulled.version.lines.len(), 25);
    let raw_lines = &pulled.raw["shipmentLines"];
    assert_eq!(raw_lines["complete"], json!(true));
    assert_eq!(raw_lines["data"].as_array().map(Vec::len), Some(25));
    let shipped: u64 = pulled.version.lines.iter().map(|l| l.quantity).sum();
    assert_eq!(shipped, 25);
    // One list page, three pages of lines (10 + 10 + 5).
    assert_eq!(c.requests_made(), 4);

    let by_number = c
        .shipment_by_number(&big.number)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(by_number.version, pulled.version);
    assert!(
        c.shipment_by_number("SHP-999999")
            .await
            .expect("lookup")
            .is_none()
    );

    let by_id = c
        .shipment_by_id(&big.id.to_string())
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(by_id.version.lines.len(), 25);
    assert!(c.shipment_by_id("1").await.expect("lookup").is_none());
}

#[tokio::test]
async fn single_shipment_wrapped_is_accepted() {
    let deposco = start(SandboxConfig {
        wrap_single_shipment: true,
        ..unlimited()
    })
    .await;
    let record = deposco.sandbox.add_shipment(ShipmentSpec::example_simple());
    let c = client(basic(&deposco), no_limit());
    let pulled = c
        .shipment_by_id(&record.id.to_string())
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(pulled.version.number, record.number);
    assert_eq!(pulled.version.packages.len(), 2);
}

// ---------------------------------------------------------------------------
// Rate limit

/// Samples the sandbox's request count while `work` runs; asserts that at
/// every sample count ≤ rate × elapsed + burst + 1, and returns the total.
async fn within_budget<F>(deposco: &RunningDeposco, rate: f64, burst: f64, work: F) -> u64
where
    F: Future<Output = ()> + Send + 'static,
{
    let sandbox = deposco.sandbox.clone();
    let before = sandbox.request_count();
    let start = Instant::now();
    let task = tokio::spawn(work);
    let mut worst: f64 = 0.0;
    while !task.is_finished() {
        let sent = (sandbox.request_count() - before) as f64;
        let allowed = rate * start.elapsed().as_secs_f64() + burst + 1.0;
        assert!(
            sent <= allowed,
            "{sent} requests after {:?} (allowed {allowed})",
            start.elapsed()
        );
        worst = worst.max(sent - rate * start.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.await.expect("work");
    let total = sandbox.request_count() - before;
    let elapsed = start.elapsed().as_secs_f64();
    assert!(total as f64 <= rate * elapsed + burst + 1.0);
    total
}

#[tokio::test]
async fn bursts_get_429s_that_are_absorbed() {
    // A client whose limiter allows far more than the account: the sandbox
    // answers 429 and the client pauses and retries; nothing fails.
    let deposco = start(SandboxConfig::default()).await;
    let c = client(basic(&deposco), Arc::new(RateLimiter::new(100.0, 20.0)));
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.check().await }));
    }
    for t in tasks {
        t.await.expect("task").expect("every call succeeds");
    }
    let sent = deposco.sandbox.request_count();
    assert_eq!(sent, c.requests_made());
    assert!(sent > 12, "the burst should have met 429s (sent {sent})");
}

#[tokio::test]
async fn a_client_stays_within_the_account_rate() {
    let deposco = start(SandboxConfig::default()).await;
    let c = client(basic(&deposco), Arc::new(RateLimiter::default()));
    let calls = Arc::new(AtomicU64::new(0));
    let work = {
        let calls = calls.clone();
        async move {
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let c = c.clone();
                let calls = calls.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..3 {
                        c.check().await.expect("check");
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
        }
    };
    let total = within_budget(&deposco, 4.0, 2.0, work).await;
    assert_eq!(calls.load(Ordering::Relaxed), 12);
    assert!(total >= 12);
}

#[tokio::test]
async fn two_clients_sharing_a_limiter_share_one_budget() {
    let deposco = start(SandboxConfig::default()).await;
    let basic_config = basic(&deposco);
    let key = basic_config.limiter_key();
    let first = client(basic_config, shared_limiter(&key));
    let second = client(basic(&deposco), shared_limiter(&key));
    assert!(Arc::ptr_eq(first.limiter(), second.limiter()));
    let work = async move {
        let mut tasks = Vec::new();
        for c in [first, second] {
            for _ in 0..2 {
                let c = c.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..3 {
                        c.check().await.expect("check");
                    }
                }));
            }
        }
        for t in tasks {
            t.await.expect("task");
        }
    };
    let total = within_budget(&deposco, 4.0, 2.0, work).await;
    assert!(total >= 12);
}

// ---------------------------------------------------------------------------
// Sales orders after creation

/// Creates order `number` with `(sku, quantity)` lines through the client; its Deposco id.
async fn created(c: &DeposcoClient, number: &str, lines: &[(&str, u32)]) -> String {
    let skus: Vec<&str> = lines.iter().map(|(sku, _)| *sku).collect();
    let mut body = order(number, &skus);
    for (i, (_, quantity)) in lines.iter().enumerate() {
        body["orderLines"][i]["orderPackQuantity"] = json!(quantity);
    }
    let answer = c.create_sales_order(&body).await.expect("created");
    answer["self"]["id"].as_u64().expect("id").to_string()
}

fn rejected_400(result: Result<(), DeposcoError>) -> String {
    match result {
        Err(DeposcoError::Rejected {
            status: 400,
            message,
        }) => message,
        other => panic!("expected a 400 refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn sales_order_status_is_read_and_changed() {
    let deposco = start(unlimited()).await;
    let c = client(basic(&deposco), no_limit());
    let id = created(&c, "1001", &[("MUG", 1)]).await;

    let status = c
        .sales_order_status(&id)
        .await
        .expect("status")
        .expect("known");
    assert_eq!(status, "New");
    assert_eq!(SalesOrderStage::of(&status), SalesOrderStage::Editable);
    assert_eq!(c.sales_order_status("999").await.expect("status"), None);

    c.set_sales_order_status(&id, STATUS_HOLD)
        .await
        .expect("held");
    assert_eq!(deposco.sandbox.sales_order("1001").unwrap().status, "Hold");
    // Already held (a repeat after a lost answer): done, not refused.
    c.set_sales_order_status(&id, STATUS_HOLD)
        .await
        .expect("already held");
    c.set_sales_order_status(&id, STATUS_NEW)
        .await
        .expect("released back");
    assert_eq!(
        c.sales_order_status(&id).await.unwrap().as_deref(),
        Some("New")
    );

    // Released by the warehouse: every change is refused, once, with Deposco's message.
    deposco
        .sandbox
        .set_sales_order_status("1001", "Released")
        .unwrap();
    let status = c.sales_order_status(&id).await.unwrap().unwrap();
    assert!(SalesOrderStage::of(&status).is_too_late());
    for value in [STATUS_HOLD, STATUS_NEW, STATUS_CANCELED] {
        let before = c.requests_made();
        let message = rejected_400(c.set_sales_order_status(&id, value).await);
        assert!(message.contains("Released"), "{message}");
        // The refused call and one status read; no retry.
        assert_eq!(c.requests_made() - before, 2, "{value}");
    }
    // Unknown id: Deposco's 404, as a refusal.
    assert!(matches!(
        c.set_sales_order_status("999", STATUS_HOLD).await,
        Err(DeposcoError::Rejected { status: 404, .. })
    ));
}

#[tokio::test]
async fn sales_orders_are_cancelled_whole_or_by_line() {
    let deposco = start(unlimited()).await;
    let c = client(basic(&deposco), no_limit());
    let id = created(&c, "1001", &[("TSHIRT", 3), ("MUG", 1)]).await;

    let lines = c
        .sales_order_lines(&id)
        .await
        .expect("lines")
        .expect("known");
    assert_eq!(lines.len(), 2);
    let (shirt, mug) = (&lines[0], &lines[1]);
    assert_eq!(
        (shirt.line_number.as_str(), shirt.sku.as_str()),
        ("1", "TSHIRT")
    );
    assert_eq!(shirt.order_pack_quantity, 3.0);
    assert_eq!(shirt.open_quantity(), 3.0);
    assert_eq!(shirt.status.as_deref(), Some("New"));
    assert_eq!(
        shirt.customer_line_number.as_deref(),
        Some("gid://shopify/LineItem/1000")
    );
    assert_eq!(
        shirt.id,
        deposco.sandbox.sales_order("1001").unwrap().lines[0]
            .id
            .to_string()
    );
    assert_eq!(c.sales_order_lines("999").await.expect("lines"), None);

    // Two of three shirts.
    c.cancel_sales_order(&id, &[(shirt.id.clone(), Some(2.0))])
        .await
        .expect("part of a line");
    let now = c.sales_order_lines(&id).await.unwrap().unwrap();
    assert_eq!(now[0].canceled_pack_quantity, 2.0);
    assert_eq!(now[0].open_quantity(), 1.0);
    // More than is open: refused.
    let message = rejected_400(
        c.cancel_sales_order(&id, &[(shirt.id.clone(), Some(2.0))])
            .await,
    );
    assert!(message.contains("only 1 open"), "{message}");

    // The mug line in full; again: already done.
    c.cancel_sales_order(&id, &[(mug.id.clone(), None)])
        .await
        .expect("a whole line");
    c.cancel_sales_order(&id, &[(mug.id.clone(), None)])
        .await
        .expect("already cancelled");
    let now = c.sales_order_lines(&id).await.unwrap().unwrap();
    assert_eq!(now[1].canceled_pack_quantity, 1.0);
    assert_eq!(now[1].status.as_deref(), Some("Canceled"));
    assert_eq!(
        c.sales_order_status(&id).await.unwrap().as_deref(),
        Some("New")
    );

    // The whole order; again: already done.
    c.cancel_sales_order(&id, &[]).await.expect("whole order");
    let status = c.sales_order_status(&id).await.unwrap().unwrap();
    assert_eq!(SalesOrderStage::of(&status), SalesOrderStage::Cancelled);
    c.cancel_sales_order(&id, &[])
        .await
        .expect("already cancelled");
    let record = deposco.sandbox.sales_order("1001").unwrap();
    assert_eq!(record.lines[0].canceled_quantity, 3.0);
}

#[tokio::test]
async fn cancelling_too_late_is_rejected() {
    let deposco = start(unlimited()).await;
    let c = client(basic(&deposco), no_limit());
    let id = created(&c, "1001", &[("MUG", 2)]).await;
    let line = c.sales_order_lines(&id).await.unwrap().unwrap().remove(0);
    deposco
        .sandbox
        .set_sales_order_status("1001", "Released")
        .unwrap();

    let before = c.requests_made();
    let message = rejected_400(c.cancel_sales_order(&id, &[]).await);
    assert!(message.contains("Released"), "{message}");
    assert_eq!(
        c.requests_made() - before,
        2,
        "the refusal and a status read"
    );
    let before = c.requests_made();
    rejected_400(
        c.cancel_sales_order(&id, &[(line.id.clone(), Some(1.0))])
            .await,
    );
    assert_eq!(c.requests_made() - before, 1, "no retry, nothing to check");
    rejected_400(c.cancel_sales_order(&id, &[(line.id.clone(), None)]).await);
    let record = deposco.sandbox.sales_order("1001").unwrap();
    assert_eq!(record.status, "Released");
    assert_eq!(record.lines[0].canceled_quantity, 0.0);
}

#[tokio::test]
async fn cancelling_units_is_not_repeated_after_a_server_error() {
    let deposco = start(unlimited()).await;
    let mut config = basic(&deposco);
    config.retry = fast_retries();
    let c = client(config, no_limit());
    let id = created(&c, "1001", &[("MUG", 3)]).await;
    let line = c.sales_order_lines(&id).await.unwrap().unwrap().remove(0);
    deposco.sandbox.set_faults(Faults {
        rest_5xx_rate: 1.0,
        ..Faults::default()
    });

    // Units: a 5xx may have been carried out; sent once, and said so.
    let before = c.requests_made();
    let err = c
        .cancel_sales_order(&id, &[(line.id.clone(), Some(1.0))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeposcoError::Transient(m) if m.contains("read the order again")),
        "{err:?}"
    );
    assert_eq!(c.requests_made() - before, 1);

    // The whole order or whole lines come out the same when repeated: retried.
    let before = c.requests_made();
    let err = c.cancel_sales_order(&id, &[]).await.unwrap_err();
    assert!(matches!(err, DeposcoError::Transient(_)), "{err:?}");
    assert_eq!(c.requests_made() - before, 9, "1 + 8 retries");

    deposco.sandbox.set_faults(Faults::default());
    assert_eq!(
        deposco.sandbox.sales_order("1001").unwrap().lines[0].canceled_quantity,
        0.0
    );
}

#[tokio::test]
async fn updates_raise_and_add_but_do_not_lower_or_change_the_status() {
    let deposco = start(unlimited()).await;
    let c = client(basic(&deposco), no_limit());
    let id = created(&c, "1001", &[("MUG", 1)]).await;
    c.set_sales_order_status(&id, STATUS_HOLD).await.unwrap();

    // The DTO says New, as when it was created: the order stays held.
    let mut raised = order("1001", &["MUG", "TSHIRT"]);
    raised["orderLines"][0]["orderPackQuantity"] = json!(2);
    let answer = c.update_sales_order(&raised).await.expect("updated");
    assert_eq!(answer["self"]["id"].as_u64().unwrap().to_string(), id);
    let record = deposco.sandbox.sales_order("1001").unwrap();
    assert_eq!(record.status, "Hold");
    assert_eq!(record.lines.len(), 2);
    assert_eq!(record.lines[0].quantity, 2.0);

    // Lowering is a cancellation.
    let lowered = order("1001", &["MUG", "TSHIRT"]);
    match c.update_sales_order(&lowered).await {
        Err(DeposcoError::Rejected {
            status: 400,
            message,
        }) => assert!(message.contains("cancellations"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Released: too late to change.
    deposco
        .sandbox
        .set_sales_order_status("1001", "Released")
        .unwrap();
    raised["orderLines"][0]["orderPackQuantity"] = json!(3);
    assert!(matches!(
        c.update_sales_order(&raised).await,
        Err(DeposcoError::Rejected { status: 400, .. })
    ));
    assert_eq!(
        deposco.sandbox.sales_order("1001").unwrap().lines[0].quantity,
        2.0
    );
}

// ---------------------------------------------------------------------------
// Failures

#[tokio::test]
async fn server_errors_are_retried() {
    let deposco = start(unlimited()).await;
    for i in 0..30 {
        deposco.sandbox.add_shipment(shipment(3000 + i, 1));
    }
    deposco.sandbox.set_faults(Faults {
        rest_5xx_rate: 0.3,
        ..Faults::default()
    });
    let mut config = basic(&deposco);
    config.page_size = 5;
    config.retry = fast_retries();
    let c = client(config, no_limit());
    let mut seen = 0;
    let mut next: Option<String> = None;
    loop {
        let page = c
            .shipments_page(Timestamp::UNIX_EPOCH, next.as_deref())
            .await
            .expect("page despite 5xx");
        seen += page.shipments.len();
        match page.next {
            Some(href) => next = Some(href),
            None => break,
        }
    }
    assert_eq!(seen, 30);
    for _ in 0..10 {
        c.check().await.expect("check despite 5xx");
    }
    // 16 calls at 30 % failures: retries happened — unless none of them
    // met a 5xx (p = 0.7^16 ≈ 0.3 %): then more calls until one did (each
    // must still succeed, through its retries).
    let mut calls = 16;
    while c.requests_made() == calls && calls < 200 {
        c.check().await.expect("check despite 5xx");
        calls += 1;
    }
    assert!(
        c.requests_made() > calls,
        "{} requests for {calls} calls",
        c.requests_made()
    );

    deposco.sandbox.set_faults(Faults {
        rest_5xx_rate: 1.0,
        ..Faults::default()
    });
    let before = c.requests_made();
    let err = c.check().await.unwrap_err();
    assert!(
        matches!(&err, DeposcoError::Transient(m) if m.contains("HTTP 50")),
        "{err:?}"
    );
    assert_eq!(c.requests_made() - before, 9, "1 + 8 retries");
}

#[tokio::test]
async fn timeouts_are_transient() {
    let deposco = start(unlimited()).await;
    deposco.sandbox.set_faults(Faults {
        slow_ms: 1000,
        ..Faults::default()
    });
    let mut config = basic(&deposco);
    config.timeout = Duration::from_millis(100);
    config.retry = RetryPolicy {
        transient: 1,
        ..fast_retries()
    };
    let c = client(config, no_limit());
    let err = c.check().await.unwrap_err();
    assert!(
        matches!(&err, DeposcoError::Transient(m) if m.contains("timed out")),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(c.requests_made(), 2);
}

#[tokio::test]
async fn conflicts_are_retried() {
    use axum::http::StatusCode;
    use axum::routing::post;

    let hits = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/latest/orders/salesOrders",
        post({
            let hits = hits.clone();
            move || async move {
                if hits.fetch_add(1, Ordering::Relaxed) < 2 {
                    (
                        StatusCode::CONFLICT,
                        axum::Json(json!({"errors": [{"errorMessage": "Row was updated"}]})),
                    )
                } else {
                    (
                        StatusCode::CREATED,
                        axum::Json(json!({"self": {"id": 9}, "number": "1001"})),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut config = DeposcoConfig::new(
        format!("http://{addr}/latest"),
        "ACME",
        Auth::Basic {
            username: "u".into(),
            password: "p".to_owned().into(),
        },
    );
    config.retry = fast_retries();
    let c = client(config, no_limit());
    let answer = c
        .create_sales_order(&order("1001", &["MUG"]))
        .await
        .expect("created");
    assert_eq!(answer["self"]["id"], json!(9));
    assert_eq!(hits.load(Ordering::Relaxed), 3);
    server.abort();
}

// ---------------------------------------------------------------------------
// Sales orders and items

#[tokio::test]
async fn sales_orders_created_and_read_back() {
    let deposco = start(unlimited()).await;
    let c = client(basic(&deposco), no_limit());

    let answer = c
        .create_sales_order(&order("1001", &["TSHIRT-M-BLU", "MUG-CLASSIC"]))
        .await
        .expect("created");
    assert!(answer.pointer("/self/id").is_some(), "{answer}");
    let stored = deposco.sandbox.sales_order("1001").expect("stored");
    assert_eq!(stored.lines.len(), 2);

    let read = c
        .sales_order_by_number("1001")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(read["number"], json!("1001"));
    assert_eq!(read["customerOrderNumber"], json!("#1001"));
    assert!(
        c.sales_order_by_number("1002")
            .await
            .expect("lookup")
            .is_none()
    );

    // 15 lines: the nested list shows 10, the client reads all of them.
    let skus: Vec<String> = (1..=15).map(|i| format!("SKU-{i}")).collect();
    let skus: Vec<&str> = skus.iter().map(String::as_str).collect();
    c.create_sales_order(&order("1003", &skus))
        .await
        .expect("created");
    let read = c
        .sales_order_by_number("1003")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(
        read["orderLines"]["data"].as_array().map(Vec::len),
        Some(15)
    );
}

#[tokio::test]
async fn refused_sales_orders_carry_deposcos_message() {
    let deposco = start(SandboxConfig {
        items_must_exist: true,
        ..unlimited()
    })
    .await;
    deposco.sandbox.add_item(ItemSpec::new("MUG"));
    let c = client(basic(&deposco), no_limit());

    c.create_sales_order(&order("1001", &["MUG"]))
        .await
        .expect("known item accepted");

    let err = c
        .create_sales_order(&order("1002", &["MUG", "NO-SUCH-SKU"]))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DeposcoError::Rejected {
            status: 400,
            message: "Item NO-SUCH-SKU not found".into()
        }
    );
    assert!(!err.is_retryable());

    let long = "X".repeat(51);
    match c.create_sales_order(&order(&long, &["MUG"])).await {
        Err(DeposcoError::Rejected {
            status: 400,
            message,
        }) => {
            assert!(message.contains("maximum length of 50"), "{message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }

    let mut no_ship_to = order("1004", &["MUG"]);
    no_ship_to
        .as_object_mut()
        .expect("object")
        .remove("shipToAddress");
    match c.create_sales_order(&no_ship_to).await {
        Err(DeposcoError::Rejected { message, .. }) => {
            assert_eq!(message, "shipToAddress is required");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(deposco.sandbox.sales_orders().len(), 1);
}

#[tokio::test]
async fn item_components_are_read() {
    let deposco = start(unlimited()).await;
    deposco.sandbox.add_item(
        ItemSpec::new("GIFTSET-01")
            .component("CANDLE-VAN", 1)
            .component("SOAP-LAV", 2),
    );
    deposco.sandbox.add_item(ItemSpec::new("MUG"));
    let c = client(oauth(&deposco, "sandbox-refresh-token"), no_limit());

    let kit = c.item("GIFTSET-01").await.expect("item").expect("found");
    assert_eq!(kit.number, "GIFTSET-01");
    assert!(kit.kit_order_only);
    assert_eq!(
        kit.components,
        vec![
            KitComponent {
                sku: "CANDLE-VAN".into(),
                quantity: 1
            },
            KitComponent {
                sku: "SOAP-LAV".into(),
                quantity: 2
            },
        ]
    );
    let mug = c.item("MUG").await.expect("item").expect("found");
    assert!(mug.components.is_empty());
    assert!(c.item("NOPE").await.expect("item").is_none());
}

#[tokio::test]
async fn next_links_stay_on_the_api_host() {
    use axum::extract::RawQuery;
    use axum::routing::get;

    // Page 1 links relatively, page 2 to another host.
    let app = axum::Router::new().route(
        "/latest/shipments/outboundShipments",
        get(|RawQuery(query): RawQuery| async move {
            let href = if query.unwrap_or_default().contains("searchId") {
                "http://elsewhere.example/latest/shipments/outboundShipments?searchId=s1&page=3"
            } else {
                "/latest/shipments/outboundShipments?searchId=s1&page=2"
            };
            axum::Json(
                json!({"data": [], "complete": false, "links": [{"rel": "next", "href": href}]}),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let config = DeposcoConfig::new(
        format!("http://{addr}/latest"),
        "ACME",
        Auth::Basic {
            username: "u".into(),
            password: "p".to_owned().into(),
        },
    );
    let c = client(config, no_limit());
    let first = c
        .shipments_page(Timestamp::UNIX_EPOCH, None)
        .await
        .expect("first page");
    let next = first.next.expect("next");
    assert_eq!(
        next,
        format!("http://{addr}/latest/shipments/outboundShipments?searchId=s1&page=2")
    );
    let err = c
        .shipments_page(Timestamp::UNIX_EPOCH, Some(&next))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeposcoError::Malformed(m) if m.contains("leaves the API host")),
        "{err:?}"
    );
    server.abort();
}
