//! The OpenAPI document (`GET /api/v1/openapi.json`, issue 13): it lists
//! every route the API serves with its methods, and real answers validate
//! against its schemas for their route and status.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use shipsync_sandbox_deposco::Shape;
use shipsync_testkit::{Harness, Options, TestDb};

use crate::orders::{enable_sales_orders, paid_order, run_orders};
use crate::support::{SETTLE, user_and_token};
use crate::webhook::new_shipment;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The document as served, without a token.
async fn document(h: &Harness) -> Value {
    let r = reqwest::get(format!("{}/api/v1/openapi.json", h.url()))
        .await
        .expect("GET /api/v1/openapi.json");
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.expect("a JSON document");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    doc
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m.to_ascii_lowercase()).is_some() {
                ops.insert((m.to_string(), path.clone()));
            }
        }
    }
    ops
}

/// `{name}` → `{}`, so paths compare whatever their parameters are called.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "{}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// `(METHOD, path)` of every `/api/v1` route docs/contract.md names, e.g.
/// `` `GET|PATCH|DELETE /api/v1/merchants/{id}` `` or
/// `` `POST /api/v1/shipments/{id}/reprocess|reset|archive` ``.
fn contract_routes() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/contract.md"
    ))
    .expect("docs/contract.md");
    let mut routes = BTreeSet::new();
    for span in text.split('`').skip(1).step_by(2) {
        let Some((methods, rest)) = span.split_once(' ') else {
            continue;
        };
        if !rest.starts_with("/api/v1/") || !methods.split('|').all(|m| METHODS.contains(&m)) {
            continue;
        }
        let path = rest.split([' ', '?']).next().unwrap_or_default();
        let (head, last) = path.rsplit_once('/').unwrap_or((path, ""));
        for tail in last.split('|') {
            for m in methods.split('|') {
                routes.insert((m.to_string(), shape(&format!("{head}/{tail}"))));
            }
        }
    }
    routes
}

/// The methods the running server routes at `path` (its parameters filled
/// with an id nothing has): any answer but the API's "no such API endpoint"
/// 404 and a 405 means a handler took the request.
async fn routed_methods(h: &Harness, path: &str) -> BTreeSet<String> {
    let concrete = path
        .split('/')
        .map(|seg| if seg.starts_with('{') { "x0" } else { seg })
        .collect::<Vec<_>>()
        .join("/");
    let mut routed = BTreeSet::new();
    for m in METHODS {
        let r = h.api(m, &concrete, None).await.expect("api call");
        let fallback = r.status == 405
            || (r.status == 404 && r.body["error"]["message"] == "no such API endpoint");
        if !fallback {
            routed.insert(m.to_string());
        }
    }
    routed
}

/// (a) The document and the router agree: at every documented path the
/// server takes exactly the documented methods, and every `/api/v1` route
/// of the contract that the server takes is documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_lists_every_route() {
    let db = TestDb::sqlite().expect("test database");
    let h = Harness::start(Options::new(db.url.clone())).await.unwrap();
    let doc = document(&h).await;
    let documented = operations(&doc);
    assert!(
        documented.contains(&("GET".to_string(), "/api/v1/openapi.json".to_string())),
        "the document describes itself"
    );

    let mut by_path: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, p) in &documented {
        by_path.entry(p.clone()).or_default().insert(m.clone());
    }
    for (path, methods) in &by_path {
        assert_eq!(
            &routed_methods(&h, path).await,
            methods,
            "the methods the server takes at {path} and the document's"
        );
    }

    let shapes: BTreeSet<(String, String)> = documented
        .iter()
        .map(|(m, p)| (m.clone(), shape(p)))
        .collect();
    let contract = contract_routes();
    assert!(contract.len() >= 30, "the contract's routes: {contract:?}");
    let mut not_served = Vec::new();
    for (m, path) in &contract {
        if routed_methods(&h, path).await.contains(m) {
            assert!(
                shapes.contains(&(m.clone(), path.clone())),
                "{m} {path} is served but not in the document"
            );
        } else {
            not_served.push(format!("{m} {path}"));
        }
    }
    // The v1 routes are all served; what is not is v2 work of later issues.
    for (m, path) in &contract {
        if [
            "/api/v1/merchants",
            "/api/v1/connections",
            "/api/v1/shipments",
        ]
        .iter()
        .any(|p| path.starts_with(p))
            && !path.contains("mappings")
            && !path.contains("event-subscriptions")
        {
            assert!(
                !not_served.contains(&format!("{m} {path}")),
                "{m} {path} of the contract is not served"
            );
        }
    }
    eprintln!("contract routes not served yet: {not_served:?}");
    h.shutdown().await;
    drop(db);
}

/// Validates answers against the document's schemas (JSON Schema 2020-12,
/// formats asserted, objects closed: an answer field the document does not
/// describe fails).
struct Validator {
    doc: Value,
    compiler: boon::Compiler,
    schemas: boon::Schemas,
    checked: BTreeSet<String>,
}

const BASE: &str = "http://shipsync.test/openapi.json";

/// Closes every object schema (no other fields; an `allOf` as a whole),
/// except the schemas another one extends through `allOf`, and points
/// `#/…` refs at [`BASE`].
fn prepare(v: &mut Value, extended: &BTreeSet<String>, close: bool) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref")
                && r.starts_with("#/")
            {
                *r = format!("{BASE}{r}");
            }
            if close && o.contains_key("allOf") {
                o.insert("unevaluatedProperties".into(), Value::Bool(false));
            } else if close
                && o.contains_key("properties")
                && !o.contains_key("additionalProperties")
            {
                o.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (k, child) in o.iter_mut() {
                match (k.as_str(), child) {
                    ("components", child) => {
                        let schemas = child.get_mut("schemas").and_then(Value::as_object_mut);
                        for (name, s) in schemas.into_iter().flatten() {
                            prepare(s, extended, !extended.contains(name));
                        }
                    }
                    ("allOf", Value::Array(parts)) => {
                        parts.iter_mut().for_each(|p| prepare(p, extended, false))
                    }
                    (_, child) => prepare(child, extended, true),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| prepare(i, extended, close)),
        _ => {}
    }
}

/// Names of the schemas that an `allOf` refers to.
fn extended_schemas(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Array(parts)) = o.get("allOf") {
                for p in parts {
                    if let Some(name) = p["$ref"]
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    {
                        out.insert(name.to_string());
                    }
                }
            }
            o.values().for_each(|c| extended_schemas(c, out));
        }
        Value::Array(items) => items.iter().for_each(|i| extended_schemas(i, out)),
        _ => {}
    }
}

impl Validator {
    fn new(doc: &Value) -> Self {
        let mut extended = BTreeSet::new();
        extended_schemas(doc, &mut extended);
        let mut doc = doc.clone();
        prepare(&mut doc, &extended, true);
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V2020_12);
        compiler.enable_format_assertions();
        compiler
            .add_resource(BASE, doc.clone())
            .expect("the document as a resource");
        Self {
            doc,
            compiler,
            schemas: boon::Schemas::new(),
            checked: BTreeSet::new(),
        }
    }

    /// Checks an answer of `method template` with `status` against the
    /// document.
    fn check(&mut self, method: &str, template: &str, status: u16, body: &Value) {
        let op = &self.doc["paths"][template][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {template} is not in the document");
        let response = &op["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {template}: status {status} is not in the document ({body})"
        );
        self.checked.insert(format!("{method} {template} {status}"));
        let Some(schema) = response
            .pointer("/content/application~1json/schema")
            .cloned()
        else {
            assert!(
                body.is_null(),
                "{method} {template} {status}: the document says no body, got {body}"
            );
            return;
        };
        let loc = format!("http://shipsync.test/check/{}.json", self.checked.len());
        self.compiler
            .add_resource(&loc, schema)
            .expect("a response schema");
        let index = self
            .compiler
            .compile(&loc, &mut self.schemas)
            .unwrap_or_else(|e| panic!("{method} {template} {status}: {e:#}"));
        if let Err(e) = self.schemas.validate(body, index) {
            panic!(
                "{method} {template} {status}: the answer does not match the document: {e:#}\n{body}"
            );
        }
    }
}

/// The document's path that `path` (query string left out) is an instance
/// of: the one with the most literal segments, as the router picks.
fn template_of(doc: &Value, path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let segs: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .filter(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            ts.len() == segs.len()
                && ts
                    .iter()
                    .zip(&segs)
                    .all(|(t, s)| t.starts_with('{') || t == s)
        })
        .max_by_key(|t| t.split('/').filter(|x| !x.starts_with('{')).count())
        .unwrap_or_else(|| panic!("{path} is not in the document"))
        .clone()
}

/// API calls whose answers are validated against the document.
struct Client<'a> {
    h: &'a Harness,
    v: Validator,
    /// `None`: the admin token.
    token: Option<String>,
}

impl Client<'_> {
    /// Calls the API; the answer must have status `want` and match the
    /// document's schema for its route and status.
    async fn call(&mut self, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
        let (status, answer) = match &self.token {
            None => {
                let r = self.h.api(method, path, body).await.expect("api call");
                (r.status, r.body)
            }
            Some(t) => {
                let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let mut req = reqwest::Client::new()
                    .request(m, format!("{}{path}", self.h.url()))
                    .bearer_auth(t);
                if let Some(b) = body {
                    req = req.json(&b);
                }
                let r = req.send().await.expect("api call");
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
        };
        assert_eq!(status, want, "{method} {path}: {answer}");
        let template = template_of(&self.v.doc, path);
        self.v.check(method, &template, status, &answer);
        answer
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

/// (b) Answers of every resource, and errors, as the server gives them,
/// validate against the document.
async fn answers_match_the_document(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.unwrap();
    // A shipment in the warehouse and a paid order in the store.
    let (number, _) = new_shipment(&mut h, "T-OPENAPI-1");
    h.place_order_spec(paid_order("#7001", &[("A", 1)]));
    let doc = document(&h).await;
    let mut c = Client {
        h: &h,
        v: Validator::new(&doc),
        token: None,
    };

    // Merchants.
    let warehouse = json!({
        "platform": "deposco", "api_url": h.deposco.url, "business_unit": "BU",
        "auth": {"type": "oauth", "token_url": format!("{}/token", h.deposco.url),
                 "client_id": "cid", "client_secret": "cs", "refresh_token": "rt"},
    });
    let new = json!({"name": "Described", "warehouse": warehouse, "kit_policy": "first_component",
                     "carrier_overrides": {"UPSN": "UPS"}});
    let m = c.call("POST", "/api/v1/merchants", Some(new), 201).await;
    let mer = format!("/api/v1/merchants/{}", id(&m));
    c.call("GET", "/api/v1/merchants?limit=1", None, 200).await;
    c.call("GET", &mer, None, 200).await;
    let basic = json!({"warehouse": {"auth": {"type": "basic", "username": "u", "password": "p"}}});
    c.call("PATCH", &mer, Some(basic), 200).await;
    c.call("POST", &format!("{mer}/webhook-key/rotate"), None, 200)
        .await;
    let maps = format!("{mer}/mappings");
    let shown = c.call("GET", &maps, None, 200).await;
    assert_eq!(shown["carriers"][0]["store_company"], "UPS");
    let doc = json!({"ship_methods": {"rules": [{"match": {"title": "Express"}, "ship_via": "UPS Next Day Air",
                                                  "carrier": "UPS", "service": "Next Day Air"}],
                                      "default": {"ship_via": "Ground"}},
                     "sku_aliases": [{"store_sku": "TSHIRT-RED-M", "warehouse_item": "100234"}],
                     "kit_recipes": [{"kit_sku": "KIT-1", "components": [{"sku": "A", "quantity": 2}]}],
                     "carriers": [{"warehouse_carrier": "UPSN", "store_company": "UPS",
                                   "tracking_url_template": "https://t.example/{tracking_number}"}]});
    c.call("PUT", &maps, Some(doc), 200).await;
    c.call(
        "PATCH",
        &maps,
        Some(json!({"ship_methods": {"default": null}})),
        200,
    )
    .await;
    let bad = c
        .call(
            "PUT",
            &maps,
            Some(json!({"sku_aliases": [{"store_sku": "S"}]})),
            422,
        )
        .await;
    assert_eq!(bad["error"]["rule"], "sku_aliases[0]");
    c.call("GET", "/api/v1/merchants/mer_nothing", None, 404)
        .await;
    let bad = json!({"name": "Bad", "kit_policy": "sometimes"});
    c.call("POST", "/api/v1/merchants", Some(bad), 422).await;
    c.call("GET", "/api/v1/merchants?limit=501", None, 422)
        .await;

    // Connections, channels, runs.
    let store = json!({"platform": "shopify", "shop_url": h.shopify.url,
                       "auth": {"type": "authorization_code", "client_id": "app",
                                "client_secret": "secret", "scopes": ["read_orders"]}});
    let new = json!({"name": "App store", "merchant_id": id(&m), "store": store});
    let con = c.call("POST", "/api/v1/connections", Some(new), 201).await;
    let con = format!("/api/v1/connections/{}", id(&con));
    let seeded = format!("/api/v1/connections/{}", h.connection_id);
    c.call("GET", "/api/v1/connections", None, 200).await;
    c.call("GET", &seeded, None, 200).await;
    c.call("PATCH", &con, Some(json!({"order_prefix": "D-"})), 200)
        .await;
    c.call("POST", &format!("{con}/store/authorize"), None, 200)
        .await;
    c.call("POST", &format!("{seeded}/store/authorize"), None, 409)
        .await;
    c.call("GET", &format!("{con}/channels/shipments"), None, 200)
        .await;
    let schedules = json!({"schedules": [
        {"kind": "daily", "at": "06:30", "time_zone": "America/New_York"},
        {"kind": "minutely", "every": 15, "time_zone": "UTC"},
        {"kind": "flexible", "weekdays": ["mon", "fri"], "start_hour": 8, "end_hour": 18,
         "every_minutes": 30, "time_zone": "Europe/Berlin"},
    ]});
    let sales_orders = format!("{con}/channels/sales_orders");
    c.call("PATCH", &sales_orders, Some(schedules), 200).await;
    c.call("POST", &format!("{con}/channels/shipments/runs"), None, 409)
        .await;
    let runs = format!("{seeded}/channels/shipments/runs");
    let queued = c.call("POST", &runs, None, 202).await;
    let run = format!("{runs}/{}", id(&queued));
    let started = std::time::Instant::now();
    loop {
        let r = c.call("GET", &run, None, 200).await;
        if r["status"] == "succeeded" || r["status"] == "failed" {
            break;
        }
        assert!(started.elapsed() < SETTLE, "run did not finish: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    h.settle(SETTLE).await.unwrap();

    // Outbound events: a subscription of the seeded merchant, whose target
    // takes the shipment's event below.
    let target = crate::events_out::Target::start().await;
    let subs = format!("/api/v1/merchants/{}/event-subscriptions", h.merchant_id);
    let new = json!({"url": target.url, "events": ["shipment.completed", "order.sent"]});
    let sub = c.call("POST", &subs, Some(new), 201).await;
    let evs = format!("{subs}/{}", id(&sub));
    c.call("GET", &subs, None, 200).await;
    c.call("GET", &evs, None, 200).await;
    let events = json!({"events": ["shipment.completed", "order.sent", "order.error"]});
    c.call("PATCH", &evs, Some(events), 200).await;
    let rotated = c
        .call("POST", &format!("{evs}/rotate-secret"), None, 200)
        .await;
    target.state().secrets = [&sub, &rotated]
        .map(|s| s["secret"].as_str().unwrap_or_default().to_string())
        .to_vec();
    let bad = json!({"url": "ftp://example.com", "events": []});
    c.call("POST", &subs, Some(bad), 422).await;
    c.call("GET", &format!("{subs}/evs_nothing"), None, 404)
        .await;

    // Shipments, and the events that brought them.
    assert_eq!(h.post(&number, Shape::Current).await.unwrap(), 202);
    let s = h.wait_shipment(&number, &["completed"], SETTLE).await;
    let shp = format!("/api/v1/shipments/{}", id(&s.unwrap()));
    c.call("GET", "/api/v1/shipments?source=webhook", None, 200)
        .await;
    c.call("GET", &shp, None, 200).await;
    c.call("POST", &format!("{shp}/reprocess"), None, 200).await;
    // Completed again after the reprocess: a `shipment.completed` event.
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let delivered = c
        .call("GET", &format!("{evs}/deliveries?limit=5"), None, 200)
        .await;
    assert_eq!(delivered["items"][0]["state"], "delivered", "{delivered}");
    assert_eq!(target.accepted().len(), 1);
    let replay = format!("{evs}/deliveries/{}/replay", id(&delivered["items"][0]));
    c.call("POST", &replay, None, 202).await;
    c.call("GET", "/api/v1/shipments/shp_nothing", None, 404)
        .await;
    c.call("GET", "/api/v1/shipments?status=lost", None, 422)
        .await;
    let events = c
        .call("GET", "/api/v1/events?outcome=accepted", None, 200)
        .await;
    let evt = format!("/api/v1/events/{}", id(&events["items"][0]));
    c.call("GET", &evt, None, 200).await;
    c.call("POST", &format!("{evt}/replay"), None, 202).await;
    h.settle(SETTLE).await.unwrap();

    // Orders.
    enable_sales_orders(&h, "").await;
    run_orders(&h).await;
    let orders = c
        .call("GET", "/api/v1/orders?name=%237001", None, 200)
        .await;
    let ord = format!("/api/v1/orders/{}", id(&orders["items"][0]));
    c.call("GET", &ord, None, 200).await;

    // Users, and a user's own tokens.
    let new = json!({"email": "described@example.com", "password": crate::support::PASSWORD,
                     "role": "staff", "merchant_ids": [id(&m)]});
    let u = c.call("POST", "/api/v1/users", Some(new), 201).await;
    let usr = format!("/api/v1/users/{}", id(&u));
    c.call("GET", "/api/v1/users", None, 200).await;
    let everyone = json!({"all_merchants": true, "merchant_ids": []});
    c.call("PATCH", &usr, Some(everyone), 200).await;
    c.call("GET", "/api/v1/account/tokens", None, 403).await;
    c.call("DELETE", &usr, None, 204).await;
    let owner = json!({"email": "owner@example.com", "role": "admin"});
    let (_, token) = user_and_token(&h, owner).await;
    c.token = Some(token);
    let new = json!({"name": "ci", "expires_in_days": 30});
    let t = c
        .call("POST", "/api/v1/account/tokens", Some(new), 201)
        .await;
    c.call("GET", "/api/v1/account/tokens", None, 200).await;
    let tok = format!("/api/v1/account/tokens/{}", id(&t));
    c.call("DELETE", &tok, None, 204).await;
    c.token = Some("not-a-token".into());
    c.call("GET", "/api/v1/users", None, 401).await;
    c.token = None;

    // Deletions.
    c.call("DELETE", &evs, None, 204).await;
    c.call("DELETE", &mer, None, 409).await;
    c.call("DELETE", &con, None, 204).await;
    c.call("DELETE", &mer, None, 204).await;

    eprintln!("validated: {:#?}", c.v.checked);
    h.shutdown().await;
}

both_backends!(answers_match_the_document);
