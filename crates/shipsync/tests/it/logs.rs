//! One shipment's path in the JSON logs: the webhook that brought it, the
//! jobs that merged it and sent it, and the store call that fulfilled it all
//! name it in their spans. The server logs through the subscriber `serve`
//! builds (`shipsync::logging`), in JSON, into memory; the checks read
//! fields, never message texts.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use shipsync::config::LogFormat;
use shipsync_sandbox_deposco::{LineSpec, PackageSpec, Shape, ShipmentSpec};
use shipsync_testkit::{Harness, Options, SHOPIFY_TOKEN, TestDb};
use tracing::Dispatch;
use tracing::dispatcher::DefaultGuard;

use crate::support::SETTLE;

/// What the subscriber wrote, kept in memory (one `write` per line).
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    /// Every line written so far, parsed.
    pub(crate) fn lines(&self) -> Vec<Value> {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

thread_local! {
    static LOGGING: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
}

/// Runs `test` on a runtime of its own whose every thread logs to
/// `dispatch` (and only its threads: the other tests of this binary run
/// beside it, unlogged).
pub(crate) fn with_logs(dispatch: &Dispatch, test: impl Future<Output = ()>) {
    let on_start = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            let guard = tracing::dispatcher::set_default(&on_start);
            LOGGING.with(|g| *g.borrow_mut() = Some(guard));
        })
        .on_thread_stop(|| LOGGING.with(|g| drop(g.borrow_mut().take())))
        .build()
        .expect("runtime");
    let _guard = tracing::dispatcher::set_default(dispatch);
    runtime.block_on(test);
}

/// The spans of a line, outermost first.
fn spans(line: &Value) -> &[Value] {
    line["spans"].as_array().map_or(&[], Vec::as_slice)
}

/// The span named `name` of a line, if it is inside one.
fn span<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    spans(line).iter().find(|s| s["name"] == name)
}

/// Whether a list field (`a,b,c`) names `id`.
fn names(field: &Value, id: &str) -> bool {
    field
        .as_str()
        .is_some_and(|f| f.split(',').any(|x| x == id))
}

async fn one_shipment_can_be_followed(db_url: String, logs: Captured) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (name, _) = h.place_order(&[("A", 2)]);
    let spec = ShipmentSpec::new(name.trim_start_matches('#'))
        .line(LineSpec::new(1, "A", 2))
        .package(PackageSpec::new("C1", "T-LOGS").line(1, 2));
    let (number, status) = h.ship(spec, Shape::Current).await.expect("ship");
    assert_eq!(status, 202);
    let s = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .expect("completed");
    let shipment = s["id"].as_str().expect("shipment id").to_string();
    let (merchant, connection) = (h.merchant_id.clone(), h.connection_id.clone());
    let secrets = [
        h.token.clone(),
        h.settings
            .secret_key
            .as_ref()
            .map(|k| secrecy::ExposeSecret::expose_secret(k).to_owned())
            .expect("key"),
        SHOPIFY_TOKEN.to_string(),
    ];
    h.shutdown().await;
    let lines = logs.lines();
    let seen = || format!("{} lines:\n{lines:#?}", lines.len());

    // The webhook: its merchant, the event it stored, the shipment it held.
    let webhook = lines
        .iter()
        .filter_map(|l| span(l, "webhook"))
        .find(|w| names(&w["shipment_number"], &number))
        .unwrap_or_else(|| panic!("no webhook line names {number}: {}", seen()));
    assert_eq!(webhook["merchant"], merchant.as_str(), "{webhook}");
    let event = webhook["event"]
        .as_str()
        .expect("the webhook names its event");

    // The job that merged the event: the same event, the same shipment.
    assert!(
        lines.iter().any(|l| {
            span(l, "job").is_some_and(|j| j["kind"] == "process_event" && j["event"] == event)
                && span(l, "process_event").is_some_and(|p| {
                    p["merchant"] == merchant.as_str()
                        && names(&p["shipment_number"], &number)
                        && names(&p["shipment"], &shipment)
                })
        }),
        "no line of the job that merged {event} into {shipment}: {}",
        seen()
    );

    // The job run that sent the shipment to the store.
    let job_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            span(l, "job").is_some_and(|j| {
                j["kind"] == "sync_shipment"
                    && j["shipment"] == shipment.as_str()
                    && j["job"].as_str().is_some_and(|id| !id.is_empty())
            })
        })
        .collect();
    assert!(
        !job_lines.is_empty(),
        "no line of the sync_shipment job of {shipment}: {}",
        seen()
    );

    // The store call that fulfilled it, inside that job, naming the
    // connection, the shipment and its Deposco number.
    let store_call = job_lines
        .iter()
        .find(|l| span(l, "store_call").is_some_and(|c| c["operation"] == "FulfillmentCreate"))
        .unwrap_or_else(|| {
            panic!(
                "no FulfillmentCreate line in the job of {shipment}: {}",
                seen()
            )
        });
    let call = span(store_call, "store_call").expect("store_call");
    assert_eq!(call["connection"], connection.as_str(), "{store_call}");
    let sync = span(store_call, "sync_shipment").expect("inside sync_shipment");
    assert_eq!(sync["shipment"], shipment.as_str(), "{store_call}");
    assert_eq!(sync["shipment_number"], number.as_str(), "{store_call}");
    assert_eq!(sync["merchant"], merchant.as_str(), "{store_call}");
    assert_eq!(sync["connection"], connection.as_str(), "{store_call}");

    // Nothing secret in any line: the admin token, the secret key, the
    // Shopify token.
    let text = serde_json::to_string(&lines).expect("text");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret is in the logs");
    }
}

/// Runs the test on `db` with the JSON subscriber `serve` uses.
fn logged(db_url: String) {
    let logs = Captured::default();
    let dispatch =
        shipsync::logging::dispatch(LogFormat::Json, Some("warn,shipsync=debug"), logs.clone());
    with_logs(&dispatch, one_shipment_can_be_followed(db_url, logs));
}

#[test]
fn one_shipment_can_be_followed_sqlite() {
    let db = TestDb::sqlite().expect("test database");
    logged(db.url.clone());
}

#[test]
fn one_shipment_can_be_followed_postgres() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(db) = runtime.block_on(TestDb::postgres()).expect("test database") else {
        return;
    };
    logged(db.url.clone());
}
