//! The web UI over plain HTTP (the browser test drives the same pages in
//! Chromium): sign-in with a CSRF token, roles, and CSRF-less posts refused.

use serde_json::json;
use shipsync_sandbox_deposco::{LineSpec, PackageSpec, Shape, ShipmentSpec};
use shipsync_testkit::{Harness, Hop, Options, Session, csrf_of};

use crate::roles::other_tenant;
use crate::support::{SETTLE, browser_for};

/// A browser-like session: the world's [`Session`] (cookies kept by hand,
/// redirects not followed), checking that every cookie is `HttpOnly` and
/// `SameSite=Lax`.
pub(crate) struct Browser(Session);

impl Browser {
    pub(crate) fn new(base: String) -> Self {
        Self(Session::new(&base).expect("client"))
    }

    fn check_cookies(hop: &Hop) {
        for v in &hop.set_cookies {
            assert!(v.contains("HttpOnly") && v.contains("SameSite=Lax"), "{v}");
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> (u16, String) {
        let hop = self.0.get(path).await.expect("get");
        Self::check_cookies(&hop);
        (hop.status, hop.body)
    }

    /// Status, and `Location` when there is one, else the body.
    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let hop = self.0.post(path, form).await.expect("post");
        Self::check_cookies(&hop);
        let shown = if hop.location.is_empty() {
            hop.body
        } else {
            hop.location
        };
        (hop.status, shown)
    }

    /// The `csrf` hidden field of the page's first form.
    pub(crate) fn csrf(page: &str) -> String {
        csrf_of(page).expect("a csrf field")
    }

    pub(crate) async fn sign_in(&mut self, email: &str, password: &str) -> String {
        let (_, login) = self.get("/login").await;
        let token = Self::csrf(&login);
        let (st, to) = self
            .post(
                "/login",
                &[("csrf", &token), ("email", email), ("password", password)],
            )
            .await;
        assert_eq!((st, to.as_str()), (303, "/"), "sign-in");
        let (st, home) = self.get("/").await;
        assert_eq!(st, 200);
        Self::csrf(&home)
    }
}

async fn ui_roles_and_csrf(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (other_m, other_c) = other_tenant(&h).await;
    for (email, role, m) in [
        ("brand@example.com", "merchant", Some(h.merchant_id.clone())),
        ("staff@example.com", "staff", None),
    ] {
        h.api("POST", "/api/v1/users", Some(json!({"email": email, "password": "a long password", "role": role, "merchant_id": m})))
            .await
            .expect("api")
            .ok(201)
            .expect("user");
    }
    // Not signed in: every page sends to the sign-in page.
    let mut anon = Browser::new(h.url());
    let (st, _) = anon.get("/merchants").await;
    assert_eq!(st, 303);
    // A sign-in without the form's token is refused; a wrong password says so.
    let (st, _) = anon
        .post(
            "/login",
            &[
                ("email", "brand@example.com"),
                ("password", "a long password"),
            ],
        )
        .await;
    assert_eq!(st, 403);
    let (_, login) = anon.get("/login").await;
    let t = Browser::csrf(&login);
    let (st, to) = anon
        .post(
            "/login",
            &[
                ("csrf", &t),
                ("email", "brand@example.com"),
                ("password", "wrong password!"),
            ],
        )
        .await;
    assert_eq!(st, 303);
    assert!(to.starts_with("/login?error"), "{to}");

    let mut brand = Browser::new(h.url());
    let csrf = brand.sign_in("Brand@Example.com", "a long password").await;
    let (st, list) = brand.get("/merchants").await;
    assert_eq!(st, 200);
    assert!(
        list.contains("Acme Outdoor") && !list.contains("Other Brand"),
        "{list}"
    );
    let (_, conns) = brand.get("/connections").await;
    assert!(conns.contains("Acme Shopify") && !conns.contains("Other Shopify"));
    for path in [
        format!("/merchants/{other_m}"),
        format!("/connections/{other_c}"),
        "/shipments/shp_01jzzzzzzzzzzzzzzzzzzzzzzz".into(),
        "/events/evt_01jzzzzzzzzzzzzzzzzzzzzzzz".into(),
    ] {
        let (st, _) = brand.get(&path).await;
        assert_eq!(st, 404, "{path}");
    }
    let (st, _) = brand
        .post(
            &format!("/merchants/{other_m}"),
            &[("csrf", &csrf), ("name", "taken over")],
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = brand
        .post(
            &format!("/connections/{other_c}/channels/shipments/enabled"),
            &[("csrf", &csrf), ("enabled", "1")],
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = brand.get("/users").await;
    assert_eq!(st, 403);
    // CSRF-less and wrong-token posts are refused, and change nothing.
    let own = format!("/merchants/{}", h.merchant_id);
    let (st, _) = brand
        .post(
            &own,
            &[("name", "Renamed"), ("api_url", "http://127.0.0.1:1")],
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = brand
        .post(
            &own,
            &[
                ("csrf", "csrf_wrong"),
                ("name", "Renamed"),
                ("api_url", "http://127.0.0.1:1"),
            ],
        )
        .await;
    assert_eq!(st, 403);
    let m = h
        .api("GET", &format!("/api/v1{own}"), None)
        .await
        .expect("api")
        .ok(200)
        .expect("merchant");
    assert_eq!(m["name"], "Acme Outdoor");

    let mut staff = Browser::new(h.url());
    let csrf = staff.sign_in("staff@example.com", "a long password").await;
    let (_, list) = staff.get("/merchants").await;
    assert!(list.contains("Other Brand"));
    let (st, _) = staff.get("/users").await;
    assert_eq!(st, 403);
    let (st, _) = staff
        .post(
            "/users",
            &[
                ("csrf", &csrf),
                ("email", "x@example.com"),
                ("password", "a long password"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(st, 403);
    // Signing out ends the session.
    let (st, _) = staff.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(st, 303);
    let (st, _) = staff.get("/merchants").await;
    assert_eq!(st, 303);
    h.shutdown().await;
}

both_backends!(ui_roles_and_csrf);

/// A signed-in administrator's browser session (a user made by the API).
async fn admin_browser(h: &Harness) -> (Browser, String) {
    browser_for(h, json!({"email": "ops@example.com", "role": "admin"})).await
}

/// Ships one package of one line with `tracking`; returns (order name,
/// Deposco number, shipment id) once it completed.
async fn shipped(h: &mut Harness, sku: &str, tracking: &str) -> (String, String, String) {
    let (name, _) = h.place_order(&[(sku, 1)]);
    let spec = ShipmentSpec::new(name.trim_start_matches('#'))
        .line(LineSpec::new(1, sku, 1))
        .package(PackageSpec::new(format!("LPN-{sku}"), tracking).line(1, 1));
    let (number, code) = h.ship(spec, Shape::Current).await.expect("ship");
    assert_eq!(code, 202);
    let s = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .expect("completed");
    let id = s["id"].as_str().unwrap_or_default().to_string();
    (name, number, id)
}

async fn status_of(h: &Harness, id: &str) -> String {
    let s = h
        .api("GET", &format!("/api/v1/shipments/{id}"), None)
        .await
        .expect("api")
        .ok(200)
        .expect("shipment");
    s["status"].as_str().unwrap_or_default().to_string()
}

async fn ui_shipment_search_and_bulk_actions(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (_, n1, id1) = shipped(&mut h, "TENT-1", "1Z-FIND-ME").await;
    let (name2, n2, id2) = shipped(&mut h, "TARP-2", "1Z-OTHER").await;
    let (b, csrf) = admin_browser(&h).await;
    let mut b = b;
    // One search box: by tracking number (any case), or by order name.
    let (st, list) = b.get("/shipments?q=1z-find-me").await;
    assert_eq!(st, 200);
    assert!(list.contains(&n1) && !list.contains(&n2), "{list}");
    assert!(list.contains("<label") && list.contains("More actions"));
    let (_, list) = b
        .get(&format!("/shipments?q={}", name2.replace('#', "%23")))
        .await;
    assert!(list.contains(&n2) && !list.contains(&n1), "{list}");
    let (_, list) = b.get("/shipments?q=1Z-FIND-ME&status=error").await;
    assert!(!list.contains(&n1));
    let (_, list) = b.get("/shipments?q=1Z-NOWHERE").await;
    assert!(!list.contains(&n1) && !list.contains(&n2));

    // A Merchant user of another merchant can neither find nor touch them.
    let (other_m, _) = other_tenant(&h).await;
    h.api("POST", "/api/v1/users", Some(json!({"email": "other@example.com", "password": "a long password", "role": "merchant", "merchant_id": other_m})))
        .await
        .expect("api")
        .ok(201)
        .expect("user");
    let mut other = Browser::new(h.url());
    let other_csrf = other.sign_in("other@example.com", "a long password").await;
    let (_, list) = other.get("/shipments?q=1Z-FIND-ME").await;
    assert!(!list.contains(&n1));
    let (st, to) = other
        .post(
            "/shipments",
            &[("csrf", &other_csrf), ("action", "archive"), ("id", &id1)],
        )
        .await;
    assert_eq!(st, 303);
    assert!(to.contains("error="), "{to}");
    assert_eq!(status_of(&h, &id1).await, "completed");

    // A bulk post without the CSRF token is refused and changes nothing.
    let (st, _) = b
        .post(
            "/shipments",
            &[("action", "archive"), ("id", &id1), ("id", &id2)],
        )
        .await;
    assert_eq!(st, 403);
    assert_eq!(status_of(&h, &id1).await, "completed");

    // Bulk archive of the checked ones (More actions → Archive).
    let (st, to) = b
        .post(
            "/shipments",
            &[
                ("csrf", &csrf),
                ("action", "archive"),
                ("id", &id1),
                ("id", &id2),
            ],
        )
        .await;
    assert_eq!(st, 303);
    assert!(
        to.starts_with("/shipments?") && to.contains("saved="),
        "{to}"
    );
    assert_eq!(status_of(&h, &id1).await, "archived");
    assert_eq!(status_of(&h, &id2).await, "archived");
    let (_, list) = b.get(&to).await;
    assert!(list.contains("2 shipment(s) done"), "{list}");
    h.shutdown().await;
}

both_backends!(ui_shipment_search_and_bulk_actions);

async fn ui_dashboard_fallback_share_and_latency_chart(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (b, _) = admin_browser(&h).await;
    let mut b = b;
    let (st, home) = b.get("/").await;
    assert_eq!(st, 200);
    assert!(home.contains("Found by fallback") && home.contains("No shipment yet."));
    assert!(home.contains("No shipment completed in the last 24 hours."));
    // One shipment by webhook, one found only by the scheduled pull.
    shipped(&mut h, "TENT-1", "1Z-HOOK").await;
    let (name, _) = h.place_order(&[("TARP-2", 1)]);
    let record = h.deposco.sandbox.add_shipment(
        ShipmentSpec::new(name.trim_start_matches('#'))
            .line(LineSpec::new(1, "TARP-2", 1))
            .package(PackageSpec::new("LPN-P", "1Z-PULLED").line(1, 1)),
    );
    h.run_channel("shipments", SETTLE).await.expect("pull");
    let s = h
        .wait_shipment(&record.number, &["completed"], SETTLE)
        .await
        .expect("completed");
    assert_eq!(s["first_seen_via"], "poll");
    let (_, home) = b.get("/").await;
    assert!(
        home.contains(">50%<") && home.contains("(1 of 2)"),
        "{home}"
    );
    let chart = &home[home.find("id=\"latency-chart\"").expect("chart")..];
    assert!(
        chart.contains("<svg") && chart.contains("<polyline") && chart.contains("<circle"),
        "{chart}"
    );
    assert!(
        chart.contains("Hourly values") && chart.contains(" p99 "),
        "{chart}"
    );
    h.shutdown().await;
}

both_backends!(ui_dashboard_fallback_share_and_latency_chart);

async fn ui_order_page_shows_quantities_and_error(db_url: String) {
    use crate::orders::{enable_sales_orders, paid_order, run_orders, wait_order};
    let mut opts = Options::new(db_url);
    opts.deposco.items_must_exist = true;
    let mut h = Harness::start(opts).await.expect("harness");
    for sku in ["A", "B"] {
        h.deposco
            .sandbox
            .add_item(shipsync_sandbox_deposco::ItemSpec::new(sku));
    }
    enable_sales_orders(&h, "").await;
    let placed = h.place_order_spec(paid_order("#1001", &[("A", 2), ("B", 1)]));
    h.place_order_spec(paid_order("#1002", &[("NOPE", 1)]));
    run_orders(&h).await;
    wait_order(&h, "#1001", "open").await;
    let bad = wait_order(&h, "#1002", "error").await;
    let (number, _) = h
        .ship(
            ShipmentSpec::new("1001")
                .line(LineSpec::new(1, "A", 2).customer_line(&placed.line_item_ids[0]))
                .package(PackageSpec::new("C1", "1Z-ORDER").line(1, 2)),
            Shape::Current,
        )
        .await
        .expect("ship");
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .expect("completed");
    let good = wait_order(&h, "#1001", "partially_shipped").await;

    let (b, csrf) = admin_browser(&h).await;
    let mut b = b;
    let (_, list) = b.get("/orders").await;
    let id = good["id"].as_str().unwrap_or_default();
    let bad_id = bad["id"].as_str().unwrap_or_default();
    let link = |id: &str| format!("href=\"/orders/{id}\"");
    assert!(list.contains(&link(id)), "{list}");
    // One search box: a tracking number of one of its shipments (any
    // case), or the order name.
    let (_, list) = b.get("/orders?q=1z-order").await;
    assert!(
        list.contains(&link(id)) && !list.contains(&link(bad_id)),
        "{list}"
    );
    let (_, list) = b.get("/orders?q=%231002").await;
    assert!(
        !list.contains(&link(id)) && list.contains(&link(bad_id)),
        "{list}"
    );
    for q in ["1Z-NOWHERE", "1Z-ORDER&status=error", "A"] {
        let (_, list) = b.get(&format!("/orders?q={q}")).await;
        assert!(!list.contains(&link(id)), "{q}: {list}");
    }
    // The API's list filters by tracking number too.
    for (q, want) in [("1Z-ORDER", vec![id]), ("1Z-NOWHERE", vec![])] {
        let found = h
            .api("GET", &format!("/api/v1/orders?tracking_number={q}"), None)
            .await
            .expect("api")
            .ok(200)
            .expect("orders");
        let ids: Vec<&str> = found["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["id"].as_str())
            .collect();
        assert_eq!(ids, want, "{q}");
    }
    let (st, page) = b.get(&format!("/orders/{id}")).await;
    assert_eq!(st, 200);
    let row = |sku: &str| {
        let at = page
            .find(&format!("<td>{sku}</td>"))
            .unwrap_or_else(|| panic!("line {sku}: {page}"));
        page[at..page[at..].find("</tr>").map_or(page.len(), |e| at + e)].to_string()
    };
    for (sku, want) in [("A", [2, 2, 2, 2]), ("B", [1, 1, 0, 0])] {
        let r = row(sku);
        for (class, n) in ["ordered", "sent", "shipped", "fulfilled"].iter().zip(want) {
            assert!(
                r.contains(&format!("<td class=\"qty-{class}\">{n}</td>")),
                "{sku} {class} {n}: {r}"
            );
        }
    }
    assert!(
        page.contains(&number) && page.contains("Activity"),
        "{page}"
    );
    // The refused order shows its reason at the top, before its lines.
    let (_, page) = b.get(&format!("/orders/{bad_id}")).await;
    let err = page.find("Item NOPE not found").expect("the error");
    assert!(err < page.find("order-lines").expect("lines"), "{page}");
    // Its actions want the form's token.
    let (st, _) = b.post(&format!("/orders/{bad_id}/archive"), &[]).await;
    assert_eq!(st, 403);
    let (st, _) = b
        .post(&format!("/orders/{bad_id}/archive"), &[("csrf", &csrf)])
        .await;
    assert_eq!(st, 303);
    h.shutdown().await;
}

both_backends!(ui_order_page_shows_quantities_and_error);

/// The `<time …>…</time>` element whose `title` (shown on hover) is `exact`.
fn time_titled<'a>(page: &'a str, exact: &str) -> &'a str {
    let at = page
        .find(&format!("title=\"{exact}\""))
        .unwrap_or_else(|| panic!("{exact} on hover: {page}"));
    let start = page[..at].rfind("<time ").expect("in a <time> element");
    let end = at + page[at..].find("</time>").expect("</time>");
    &page[start..end]
}

async fn ui_times_read_at_a_glance_and_store_orders_link_out(db_url: String) {
    use crate::orders::{enable_sales_orders, paid_order, run_orders, wait_order};
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    enable_sales_orders(&h, "").await;
    let placed = h.place_order_spec(paid_order("#1001", &[("A", 1)]));
    run_orders(&h).await;
    let order = wait_order(&h, "#1001", "open").await;
    let (number, _) = h
        .ship(
            ShipmentSpec::new("1001")
                .line(LineSpec::new(1, "A", 1).customer_line(&placed.line_item_ids[0]))
                .package(PackageSpec::new("C1", "1Z-GLANCE").line(1, 1)),
            Shape::Current,
        )
        .await
        .expect("ship");
    let shipment = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .expect("completed");
    let received = shipment["received_at"].as_str().expect("received_at");
    let (b, _) = admin_browser(&h).await;
    let mut b = b;

    // The list says how long ago, with the exact time on hover.
    let (st, list) = b.get("/shipments").await;
    assert_eq!(st, 200);
    assert!(list.contains(&number), "{list}");
    let el = time_titled(&list, received);
    assert!(
        el.contains(&format!("datetime=\"{}", &received[..19])),
        "{el}"
    );
    let shown = el.rsplit('>').next().unwrap_or_default();
    assert!(
        shown == "just now" || shown.ends_with(" min ago"),
        "{shown:?} in {el}"
    );
    assert!(!list.contains(&format!(">{received}<")), "{list}");

    // The shipment's page says when, and links its order: the store's
    // admin page (a new tab), shipsync's order page, its Deposco number.
    let connection = h
        .api(
            "GET",
            &format!("/api/v1/connections/{}", h.connection_id),
            None,
        )
        .await
        .expect("api")
        .ok(200)
        .expect("connection");
    let shop = connection["store"]["shop_url"].as_str().expect("shop_url");
    let gid = order["store_order_id"].as_str().expect("store_order_id");
    let numeric = gid.rsplit('/').next().unwrap_or_default();
    assert!(gid.starts_with("gid://shopify/Order/") && !numeric.is_empty());
    let admin = format!(
        "href=\"{}/admin/orders/{numeric}\" target=\"_blank\" rel=\"noopener noreferrer\"",
        shop.trim_end_matches('/')
    );
    let sid = shipment["id"].as_str().expect("id");
    let (st, page) = b.get(&format!("/shipments/{sid}")).await;
    assert_eq!(st, 200);
    let el = time_titled(&page, received);
    assert!(el.ends_with(" UTC"), "{el}");
    assert!(page.contains(&admin), "{page}");
    let oid = order["id"].as_str().expect("order id");
    assert!(
        page.contains(&format!("href=\"/orders/{oid}\">#1001</a>")),
        "{page}"
    );
    let deposco = order["warehouse_order_number"]
        .as_str()
        .expect("sent to Deposco");
    assert!(
        page.contains(&format!("id=\"deposco-order\">{deposco}<")),
        "{page}"
    );

    // The order's page links to the store's admin too.
    let (st, page) = b.get(&format!("/orders/{oid}")).await;
    assert_eq!(st, 200);
    assert!(page.contains(&admin), "{page}");
    h.shutdown().await;
}

both_backends!(ui_times_read_at_a_glance_and_store_orders_link_out);

async fn ui_connection_filters_and_switch(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (other_m, other_c) = other_tenant(&h).await;
    let enabled = async |id: &str| {
        h.api("GET", &format!("/api/v1/connections/{id}"), None)
            .await
            .expect("api")
            .ok(200)
            .expect("connection")["enabled"]
            == true
    };
    assert!(enabled(&h.connection_id).await && !enabled(&other_c).await);
    let (b, csrf) = admin_browser(&h).await;
    let mut b = b;
    let (_, list) = b.get("/connections").await;
    for label in ["Status", "Merchant", "Store platform", "Warehouse platform"] {
        assert!(list.contains(&format!(">{label}</label>")), "{label}");
    }
    assert!(list.contains("Acme Shopify") && list.contains("Other Shopify"));
    let shows = |page: &str, acme: bool, other: bool| {
        assert_eq!(
            (
                page.contains("Acme Shopify"),
                page.contains("Other Shopify")
            ),
            (acme, other),
            "{page}"
        );
    };
    let (_, p) = b.get(&format!("/connections?merchant_id={other_m}")).await;
    shows(&p, false, true);
    let (_, p) = b.get("/connections?status=enabled").await;
    shows(&p, true, false);
    let (_, p) = b.get("/connections?status=disabled").await;
    shows(&p, false, true);
    let (_, p) = b.get("/connections?store=shopify&warehouse=deposco").await;
    shows(&p, true, true);
    let (_, p) = b.get("/connections?store=woocommerce").await;
    shows(&p, false, false);
    assert!(p.contains("No connection matches"));

    // The row's switch: CSRF-less refused; with the token it flips and
    // returns to the filtered list.
    let path = format!("/connections/{other_c}/enabled");
    let (st, _) = b.post(&path, &[("enabled", "1")]).await;
    assert_eq!(st, 403);
    assert!(!enabled(&other_c).await);
    let back = "/connections?status=disabled&merchant_id=&store=&warehouse=";
    let (st, to) = b
        .post(&path, &[("csrf", &csrf), ("enabled", "1"), ("back", back)])
        .await;
    assert_eq!((st, to.as_str()), (303, back));
    assert!(enabled(&other_c).await);
    let (_, p) = b.get("/connections?status=enabled").await;
    shows(&p, true, true);
    assert!(p.contains("aria-label=\"Disable Other Shopify\""), "{p}");
    // An outside address is not followed.
    let (_, to) = b
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("enabled", "0"),
                ("back", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(to, format!("/connections/{other_c}"));
    h.shutdown().await;
}

both_backends!(ui_connection_filters_and_switch);

async fn ui_api_tokens_per_user(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (other_m, _) = other_tenant(&h).await;
    h.api("POST", "/api/v1/users", Some(json!({"email": "brand@example.com", "password": "a long password", "role": "merchant", "merchant_id": h.merchant_id})))
        .await
        .expect("api")
        .ok(201)
        .expect("user");
    let mut b = Browser::new(h.url());
    let csrf = b.sign_in("brand@example.com", "a long password").await;
    let (st, page) = b.get("/account").await;
    assert_eq!(st, 200);
    assert!(
        page.contains("API tokens") && page.contains("No tokens yet"),
        "{page}"
    );
    // CSRF-less creation is refused.
    let (st, _) = b.post("/account", &[("label", "ci")]).await;
    assert_eq!(st, 403);
    let (st, made) = b
        .post("/account", &[("csrf", &csrf), ("label", "ci deploy")])
        .await;
    assert_eq!(st, 200, "{made}");
    let at = made.find("value=\"sst").expect("the token shown") + 7;
    let token = made[at..].split('"').next().unwrap_or("").to_string();
    assert!(token.len() > 20, "{token}");
    // Listed by label afterwards, never with its secret.
    let (_, page) = b.get("/account").await;
    assert!(
        page.contains("ci deploy") && !page.contains(&token),
        "{page}"
    );
    // The token acts as this Merchant user on the API.
    let http = reqwest::Client::new();
    let get = async |path: &str| {
        let r = http
            .get(format!("{}{path}", h.url()))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        let st = r.status().as_u16();
        (st, r.json::<serde_json::Value>().await.unwrap_or_default())
    };
    let (st, list) = get("/api/v1/merchants").await;
    assert_eq!(st, 200, "{list}");
    let text = list.to_string();
    assert!(
        text.contains(&h.merchant_id) && !text.contains(&other_m),
        "{text}"
    );
    let (st, _) = get(&format!("/api/v1/merchants/{other_m}")).await;
    assert_eq!(st, 404);
    let (st, _) = get("/api/v1/users").await;
    assert_eq!(st, 403);
    // A wrong token is refused.
    let r = http
        .get(format!("{}/api/v1/merchants", h.url()))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
    h.shutdown().await;
}

both_backends!(ui_api_tokens_per_user);

async fn ui_test_connection_reports_store_and_warehouse(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (b, csrf) = admin_browser(&h).await;
    let mut b = b;
    let page = format!("/connections/{}", h.connection_id);
    let (_, p) = b.get(&page).await;
    assert!(p.contains("Test connection"), "{p}");
    let path = format!("{page}/test");
    let (st, _) = b.post(&path, &[]).await;
    assert_eq!(st, 403);
    // Good credentials: the shop's name and the warehouse's acceptance.
    let (st, to) = b.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(st, 303, "{to}");
    let (st, p) = b.get(&to).await;
    assert_eq!(st, 200);
    let want = format!(
        "Shopify: connected to {}; Deposco: credentials accepted",
        shipsync_sandbox_shopify::SHOP_NAME
    );
    assert!(p.contains(&want) && p.contains("role=\"status\""), "{p}");
    // A wrong access token: the store's refusal shown, as a page, not a 500.
    h.api(
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        Some(json!({"store": {"access_token": "shpat_wrong"}})),
    )
    .await
    .expect("api")
    .ok(200)
    .expect("patched");
    let (st, to) = b.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(st, 303, "{to}");
    let (st, p) = b.get(&to).await;
    assert_eq!(st, 200);
    assert!(
        p.contains("role=\"alert\"")
            && p.contains("Shopify refused the credentials")
            && p.contains("Deposco: credentials accepted"),
        "{p}"
    );
    // Another tenant's connection is not found, not tested.
    let mut brand = Browser::new(h.url());
    let (_, other_c) = other_tenant(&h).await;
    h.api("POST", "/api/v1/users", Some(json!({"email": "brand@example.com", "password": "a long password", "role": "merchant", "merchant_id": h.merchant_id})))
        .await
        .expect("api")
        .ok(201)
        .expect("user");
    let csrf = brand.sign_in("brand@example.com", "a long password").await;
    let (st, _) = brand
        .post(&format!("/connections/{other_c}/test"), &[("csrf", &csrf)])
        .await;
    assert_eq!(st, 404);
    h.shutdown().await;
}

both_backends!(ui_test_connection_reports_store_and_warehouse);

/// The value of a hidden input named `name` on a page.
fn hidden(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\" value=\""))? + name.len() + 15;
    Some(page[at..].split('"').next().unwrap_or("").to_string())
}

async fn ui_add_connection_wizard(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (b, csrf) = admin_browser(&h).await;
    let mut b = b;
    let count = async |what: &str| {
        h.api("GET", &format!("/api/v1/{what}"), None)
            .await
            .expect("api")
            .ok(200)
            .expect("list")["items"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let (st, p) = b.get("/connections/new").await;
    assert_eq!(st, 200);
    for (id, label) in [
        ("name", "Connection name"),
        ("merchant_id", "Merchant"),
        ("merchant_name", "New merchant's name"),
        ("api_url", "Deposco API URL"),
        ("password", "API password"),
        ("shop_url", "Shopify shop domain"),
        ("access_token", "Admin API access token"),
    ] {
        assert!(
            p.contains(&format!("<label for=\"{id}\">{label}</label>")),
            "{label}: {p}"
        );
    }
    assert!(p.contains("Test connection"), "{p}");
    let shop = h.shopify.url.clone();
    let deposco = h.deposco.url.clone();
    let form = |token: &str, password: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("name", "Trail Shopify".to_string()),
            ("merchant", "new".into()),
            ("merchant_name", "Trail Co".into()),
            ("api_url", deposco.clone()),
            ("business_unit", "ACME".into()),
            ("username", "sandbox".into()),
            ("password", password.into()),
            ("shop_url", shop.clone()),
            ("access_token", token.into()),
        ]
    };
    let post = async |b: &mut Browser, fields: &[(&str, String)]| {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b.post("/connections", &pairs).await
    };

    // Without the form's token nothing happens.
    let mut no_csrf = form(shipsync_testkit::SHOPIFY_TOKEN, "sandbox");
    no_csrf.retain(|(k, _)| *k != "csrf");
    no_csrf.push(("action", "save".into()));
    let (st, _) = post(&mut b, &no_csrf).await;
    assert_eq!(st, 403);

    // Test with wrong credentials: each side's refusal, the entered values
    // shown again, never the secrets; nothing saved.
    let mut bad = form("shpat_wrong_token", "wrong-password");
    bad.push(("action", "test".into()));
    let (st, p) = post(&mut b, &bad).await;
    assert_eq!(st, 200, "{p}");
    assert!(
        p.contains("Test failed")
            && p.contains("Shopify refused the credentials")
            && !p.contains("Deposco: credentials accepted"),
        "{p}"
    );
    assert!(p.contains("value=\"Trail Co\"") && p.contains(&format!("value=\"{shop}\"")));
    assert!(
        !p.contains("shpat_wrong_token") && !p.contains("wrong-password"),
        "{p}"
    );
    assert_eq!(
        (count("merchants").await, count("connections").await),
        (1, 1)
    );

    // Test with the right ones: both sides answer; still nothing saved.
    let mut good = form(shipsync_testkit::SHOPIFY_TOKEN, "sandbox");
    good.push(("action", "test".into()));
    let (st, p) = post(&mut b, &good).await;
    assert_eq!(st, 200, "{p}");
    let want = format!(
        "Shopify: connected to {}; Deposco: credentials accepted",
        shipsync_sandbox_shopify::SHOP_NAME
    );
    assert!(p.contains("Test passed") && p.contains(&want), "{p}");
    assert!(!p.contains(shipsync_testkit::SHOPIFY_TOKEN), "{p}");
    assert_eq!(
        (count("merchants").await, count("connections").await),
        (1, 1)
    );

    // Save without typing the secrets again: the tested ones are kept
    // (sealed in the form), creating the merchant on the way.
    let mut save = form("", "");
    for k in ["access_token_kept", "password_kept"] {
        save.push((k, hidden(&p, k).expect(k)));
    }
    save.push(("action", "save".into()));
    // A sealed secret from another session is not accepted.
    let mut other = Browser::new(h.url());
    let other_csrf = other.sign_in("ops@example.com", "a long password").await;
    let mut replay = save.clone();
    replay[0].1 = other_csrf;
    let (st, p2) = post(&mut other, &replay).await;
    assert_eq!(st, 422, "{p2}");
    assert!(p2.contains("warehouse.auth.password"), "{p2}");

    let (st, to) = post(&mut b, &save).await;
    assert_eq!(st, 303, "{to}");
    let con_id = to
        .strip_prefix("/connections/")
        .and_then(|r| r.split('?').next())
        .expect("to the connection's page")
        .to_string();
    let (st, page) = b.get(&to).await;
    assert_eq!(st, 200);
    assert!(
        page.contains("Trail Shopify") && page.contains("Trail Co"),
        "{page}"
    );
    let c = h
        .api("GET", &format!("/api/v1/connections/{con_id}"), None)
        .await
        .expect("api")
        .ok(200)
        .expect("connection");
    assert_eq!(
        (
            c["enabled"].as_bool(),
            c["store"]["access_token_set"].as_bool()
        ),
        (Some(false), Some(true))
    );
    let m = h
        .api(
            "GET",
            &format!(
                "/api/v1/merchants/{}",
                c["merchant_id"].as_str().unwrap_or("")
            ),
            None,
        )
        .await
        .expect("api")
        .ok(200)
        .expect("merchant");
    assert_eq!(m["name"], "Trail Co");
    assert_eq!(m["warehouse"]["auth"]["password_set"], true);
    // The saved credentials are the tested ones.
    let (st, to) = b
        .post(&format!("/connections/{con_id}/test"), &[("csrf", &csrf)])
        .await;
    assert_eq!(st, 303);
    let (_, page) = b.get(&to).await;
    assert!(page.contains(&want), "{page}");

    // Bad input: 422, the field named, the values kept.
    let mut blank = form(shipsync_testkit::SHOPIFY_TOKEN, "sandbox");
    blank[1].1 = String::new();
    blank[2].1 = "existing".into();
    blank.push(("merchant_id", h.merchant_id.clone()));
    blank.push(("action", "save".into()));
    let (st, p) = post(&mut b, &blank).await;
    assert_eq!(st, 422, "{p}");
    assert!(
        p.contains("class=\"field-error\"") && p.contains(&format!("value=\"{shop}\"")),
        "{p}"
    );
    // An existing merchant.
    blank[1].1 = "Acme Second Store".into();
    let (st, to) = post(&mut b, &blank).await;
    assert_eq!(st, 303, "{to}");
    assert_eq!(
        (count("merchants").await, count("connections").await),
        (2, 3)
    );
    h.shutdown().await;
}

both_backends!(ui_add_connection_wizard);

/// The row of the lines table whose SKU cell is `sku`.
fn line_row<'a>(page: &'a str, sku: &str) -> &'a str {
    let at = page
        .find(&format!("<td>{sku}</td>"))
        .unwrap_or_else(|| panic!("line {sku}: {page}"));
    let start = page[..at].rfind("<tr").unwrap_or(at);
    &page[start..page[at..].find("</tr>").map_or(page.len(), |e| at + e)]
}

/// Polls `GET path` (without waiting for idle work: a webhook may not have
/// brought an order yet, a held order's release stays pending) until `done`
/// holds for the answer; returns it.
async fn poll_api(
    h: &Harness,
    path: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let answer = h
            .api("GET", path, None)
            .await
            .expect("api")
            .ok(200)
            .expect(path);
        if done(&answer) {
            return answer;
        }
        assert!(start.elapsed() < SETTLE, "{path}: {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Waits until order `name` is in `status`; returns it in full.
async fn wait_status(h: &Harness, name: &str, status: &str) -> serde_json::Value {
    let path = format!(
        "/api/v1/orders?connection_id={}&name={}&status={status}",
        h.connection_id,
        name.trim_start_matches('#')
    );
    let list = poll_api(h, &path, |l| l["items"][0]["id"].is_string()).await;
    let id = list["items"][0]["id"].as_str().unwrap_or_default();
    poll_api(h, &format!("/api/v1/orders/{id}"), |_| true).await
}

async fn ui_order_page_shows_both_sides_and_the_api_secret_stays_hidden(db_url: String) {
    use crate::orders::{enable_sales_orders, paid_order};
    let mut opts = Options::new(db_url);
    opts.order_webhooks = true;
    let h = Harness::start(opts).await.expect("harness");
    enable_sales_orders(&h, "SS-").await;
    let connection = format!("/api/v1/connections/{}", h.connection_id);
    poll_api(&h, &connection, |c| {
        c["order_webhooks"]["subscribed"] == true
    })
    .await;
    let (b, csrf) = admin_browser(&h).await;
    let mut b = b;
    let tab = format!("/connections/{}?tab=sales_orders", h.connection_id);
    let (_, p) = b.get(&tab).await;
    let hooks = &p[p.find("id=\"order-webhooks\"").expect("webhooks card")..];
    assert!(
        hooks.contains("subscribed")
            && hooks.contains("<code>ORDERS_CANCELLED</code>")
            && hooks.contains(&format!("/webhooks/shopify/{}", h.connection_id))
            && hooks.contains("API secret key"),
        "{hooks}"
    );

    // A new API secret key through the UI: never shown again, and it is the
    // one that now checks the store's signatures (the store still signs with
    // the old one: refused).
    let secret = "shpss_typed_in_the_ui_0123456789";
    let path = format!("/connections/{}/api-secret", h.connection_id);
    let (st, _) = b.post(&path, &[("api_secret", secret)]).await;
    assert_eq!(st, 403);
    let (st, to) = b
        .post(&path, &[("csrf", &csrf), ("api_secret", secret)])
        .await;
    assert_eq!(st, 303, "{to}");
    let (st, p) = b.get(&to).await;
    assert_eq!(st, 200);
    assert!(p.contains("API secret key saved."), "{p}");
    assert!(!p.contains(secret), "the secret is echoed: {p}");
    let state = &p[p.find("id=\"api-secret-state\"").expect("secret state")..];
    assert!(state.contains("</span> set"), "{state}");
    let c = poll_api(&h, &connection, |_| true).await;
    assert_eq!(c["store"]["api_secret_set"], true, "{c}");
    assert!(!c.to_string().contains(secret), "{c}");
    h.shopify
        .sandbox
        .create_order(paid_order("#6000", &[("A", 1)]));
    poll_api(&h, "/api/v1/events?outcome=invalid_signature", |e| {
        e["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    // The store's own key again: its webhooks are taken.
    let (st, _) = b
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("api_secret", shipsync::demo::world::SHOPIFY_API_SECRET),
            ],
        )
        .await;
    assert_eq!(st, 303);

    // A bundle, a gift card and a plain line, brought by the webhook.
    let mut spec = paid_order(
        "#6001",
        &[("TENT", 1), ("GIFT", 1), ("POLES", 2), ("SOCKS", 1)],
    );
    for i in [0, 2] {
        spec.lines[i].group = Some("Camping bundle".into());
    }
    spec.lines[1].requires_shipping = Some(false);
    h.shopify.sandbox.create_order(spec);
    let o = wait_status(&h, "#6001", "open").await;
    assert_eq!(o["first_seen_via"], "webhook", "{o}");
    let id = o["id"].as_str().unwrap_or_default();
    let (st, page) = b.get(&format!("/orders/{id}")).await;
    assert_eq!(st, 200);
    let side = |name: &str| {
        let at = page.find(&format!("id=\"{name}\"")).expect(name);
        page[at..at + page[at..].find("</dl>").expect("facts")].to_string()
    };
    let store = side("store-side");
    assert!(
        store.contains("In the store") && store.contains("order webhook"),
        "{store}"
    );
    let warehouse = side("warehouse-side");
    assert!(
        warehouse.contains("In the warehouse") && warehouse.contains(">SS-6001<"),
        "{warehouse}"
    );
    let gift = line_row(&page, "GIFT");
    assert!(
        gift.contains("<td class=\"skipped\">does not require shipping</td>")
            && gift.contains("<td class=\"qty-ordered\">1</td>")
            && gift.contains("<td class=\"qty-sent\">0</td>")
            && gift.contains("skipped-line"),
        "{gift}"
    );
    for (sku, sent) in [("TENT", 1), ("POLES", 2), ("SOCKS", 1)] {
        let r = line_row(&page, sku);
        assert!(
            r.contains("<td class=\"skipped\"></td>")
                && r.contains(&format!("<td class=\"qty-sent\">{sent}</td>")),
            "{sku}: {r}"
        );
    }
    // The bundle's lines follow its header, together.
    let pos = |s: &str| page.find(s).unwrap_or_else(|| panic!("{s}: {page}"));
    let header = pos("Camping bundle");
    let (tent, poles, gift) = (
        pos("<td>TENT</td>"),
        pos("<td>POLES</td>"),
        pos("<td>GIFT</td>"),
    );
    assert!(header < tent && tent < poles && poles < gift, "{page}");
    assert!(line_row(&page, "POLES").contains("in-group"));
    assert!(!line_row(&page, "SOCKS").contains("in-group"));

    // Cancelled in the store after Deposco released it: needs attention,
    // flagged in the list, and the page says what to do before the lines.
    h.shopify
        .sandbox
        .create_order(paid_order("#6002", &[("C", 1)]));
    wait_status(&h, "#6002", "open").await;
    h.deposco
        .sandbox
        .set_sales_order_status("SS-6002", "Released")
        .expect("released");
    h.shopify
        .sandbox
        .cancel_order("#6002", "CUSTOMER")
        .expect("cancelled");
    let late = wait_status(&h, "#6002", "needs_attention").await;
    let late_id = late["id"].as_str().unwrap_or_default();
    let (_, list) = b.get("/orders").await;
    for st in ["held", "cancelled", "needs_attention", "closed"] {
        assert!(
            list.contains(&format!("<option value=\"{st}\">")),
            "{st}: {list}"
        );
    }
    let link = |id: &str| format!("href=\"/orders/{id}\"");
    let row_start = |id: &str| {
        let at = list.find(&link(id)).expect("listed");
        list[..at].rfind("<tr").expect("row")
    };
    assert!(
        list[row_start(late_id)..].starts_with("<tr class=\"attention\""),
        "{list}"
    );
    assert!(list[row_start(id)..].starts_with("<tr>"), "{list}");
    assert!(list.contains("id=\"needs-attention\""), "{list}");
    let (_, only) = b.get("/orders?status=needs_attention").await;
    assert!(
        only.contains(&link(late_id)) && !only.contains(&link(id)),
        "{only}"
    );
    let (_, page) = b.get(&format!("/orders/{late_id}")).await;
    let problem = page
        .find("Needs attention. What to do:")
        .unwrap_or_else(|| panic!("{page}"));
    assert!(page[problem..].contains("Released"), "{page}");
    assert!(problem < page.find("order-lines").expect("lines"), "{page}");
    h.shutdown().await;
}

both_backends!(ui_order_page_shows_both_sides_and_the_api_secret_stays_hidden);

async fn ui_import_rules_form_saves_and_shows_refusals(db_url: String) {
    use crate::orders::{enable_sales_orders, paid_order};
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (b, csrf) = admin_browser(&h).await;
    let mut b = b;
    let rules_of = async |h: &Harness, id: &str| {
        poll_api(h, &format!("/api/v1/connections/{id}"), |_| true).await["order_rules"].clone()
    };
    let defaults = json!({"financial_statuses": ["PAID"], "include_partially_fulfilled": false,
        "hold_minutes": 0, "hold_tags": ["HOLD"], "exclude_tags": [], "location_ids": []});
    assert_eq!(rules_of(&h, &h.connection_id).await, defaults);
    let tab = format!("/connections/{}?tab=sales_orders", h.connection_id);
    let (_, p) = b.get(&tab).await;
    let form = &p[p.find("id=\"order-rules\"").expect("rules form")..];
    assert!(
        form.contains("value=\"PAID\" checked")
            && form.contains("value=\"AUTHORIZED\">")
            && form.contains("name=\"hold_minutes\" min=\"0\" max=\"10080\" value=\"0\"")
            && form.contains("name=\"hold_tags\" value=\"HOLD\""),
        "{form}"
    );
    // The Shipments tab does not carry the order settings.
    let (_, shipments_tab) = b.get(&format!("/connections/{}", h.connection_id)).await;
    assert!(!shipments_tab.contains("id=\"order-rules\""));

    let path = format!("/connections/{}/order-rules", h.connection_id);
    let (st, _) = b.post(&path, &[("hold_minutes", "30")]).await;
    assert_eq!(st, 403);
    assert_eq!(rules_of(&h, &h.connection_id).await, defaults);
    let full = [
        ("csrf", csrf.as_str()),
        ("financial_statuses", "PAID"),
        ("financial_statuses", "AUTHORIZED"),
        ("include_partially_fulfilled", "1"),
        ("hold_minutes", "30"),
        ("hold_tags", "HOLD, Fraud-check"),
        ("exclude_tags", "wholesale"),
        ("location_ids", "12, gid://shopify/Location/7"),
    ];
    let (st, to) = b.post(&path, &full).await;
    assert_eq!(st, 303, "{to}");
    let saved = json!({"financial_statuses": ["PAID", "AUTHORIZED"], "include_partially_fulfilled": true,
        "hold_minutes": 30, "hold_tags": ["HOLD", "Fraud-check"], "exclude_tags": ["wholesale"],
        "location_ids": ["gid://shopify/Location/12", "gid://shopify/Location/7"]});
    assert_eq!(rules_of(&h, &h.connection_id).await, saved);
    let (_, p) = b.get(&to).await;
    assert!(p.contains("Import rules saved."), "{p}");
    assert!(
        p.contains("value=\"AUTHORIZED\" checked")
            && p.contains("value=\"30\"")
            && p.contains("value=\"gid://shopify/Location/12, gid://shopify/Location/7\""),
        "{p}"
    );

    // Refused: 422, the reason under its field, what was typed kept,
    // nothing saved.
    for (field, typed, why) in [
        ("hold_minutes", "99999", "at most 10080 minutes"),
        (
            "location_ids",
            "gid://shopify/Order/1",
            "is not a Shopify location id",
        ),
    ] {
        let mut bad = full.to_vec();
        bad.retain(|(k, _)| *k != field);
        bad.push((field, typed));
        let (st, p) = b.post(&path, &bad).await;
        assert_eq!(st, 422, "{field}: {p}");
        let form = &p[p.find("id=\"order-rules\"").expect("rules form")..];
        let at = form
            .find(&format!("name=\"{field}\""))
            .unwrap_or_else(|| panic!("{field}: {form}"));
        let after = &form[at..];
        let error = after.find("class=\"field-error\"").expect("field error");
        assert!(
            after[error..].contains(why) && after[..error].contains(&format!("value=\"{typed}\"")),
            "{field}: {form}"
        );
        assert!(after[error..].find("</form>").is_some(), "inside the form");
    }
    let (st, p) = b
        .post(&path, &[("csrf", csrf.as_str()), ("hold_minutes", "5")])
        .await;
    assert_eq!(st, 422);
    assert!(p.contains("name at least one financial status"), "{p}");
    assert_eq!(rules_of(&h, &h.connection_id).await, saved);

    // What the rules do shows on the order: held for the hold period.
    let (st, _) = b
        .post(
            &path,
            &[
                ("csrf", csrf.as_str()),
                ("financial_statuses", "PAID"),
                ("hold_minutes", "30"),
                ("hold_tags", "HOLD"),
            ],
        )
        .await;
    assert_eq!(st, 303);
    enable_sales_orders(&h, "").await;
    h.place_order_spec(paid_order("#6101", &[("A", 1)]));
    // Its release is due in 30 minutes: work stays pending, so this waits
    // on the order alone.
    h.api(
        "POST",
        &format!(
            "/api/v1/connections/{}/channels/sales_orders/runs",
            h.connection_id
        ),
        None,
    )
    .await
    .expect("api")
    .ok(202)
    .expect("run queued");
    let o = wait_status(&h, "#6101", "held").await;
    let (_, page) = b
        .get(&format!("/orders/{}", o["id"].as_str().unwrap_or_default()))
        .await;
    let hold = &page[page
        .find("id=\"order-hold\"")
        .unwrap_or_else(|| panic!("{page}"))..];
    assert!(
        hold.contains("hold period of 30 minute(s)")
            && hold.contains("<span id=\"hold-until\"><time datetime="),
        "{hold}"
    );
    assert!(page.contains("scheduled pull"), "{page}");

    // A connection without an API secret key says so; a blank or too long
    // key is refused, and never shown back.
    let (_, other_c) = other_tenant(&h).await;
    let (_, p) = b
        .get(&format!("/connections/{other_c}?tab=sales_orders"))
        .await;
    let state = &p[p.find("id=\"api-secret-state\"").expect("secret state")..];
    assert!(
        state.starts_with("id=\"api-secret-state\">not set"),
        "{state}"
    );
    let path = format!("/connections/{other_c}/api-secret");
    let long = "k".repeat(501);
    for (typed, why) in [
        ("  ", "type the app's API secret key"),
        (long.as_str(), "at most 500 characters"),
    ] {
        let (st, p) = b
            .post(&path, &[("csrf", csrf.as_str()), ("api_secret", typed)])
            .await;
        assert_eq!(st, 422, "{p}");
        assert!(p.contains(why) && !p.contains(&long), "{p}");
    }
    let c = poll_api(&h, &format!("/api/v1/connections/{other_c}"), |_| true).await;
    assert_eq!(c["store"]["api_secret_set"], false, "{c}");
    // With an app's client credentials there is nothing to enter.
    h.api(
        "PATCH",
        &format!("/api/v1/connections/{other_c}"),
        Some(json!({"store": {"auth": {"type": "client_credentials", "client_id": "app-1", "client_secret": "s3cret-of-the-app"}}})),
    )
    .await
    .expect("api")
    .ok(200)
    .expect("patched");
    let (_, p) = b
        .get(&format!("/connections/{other_c}?tab=sales_orders"))
        .await;
    assert!(
        p.contains("nothing to enter") && !p.contains("name=\"api_secret\""),
        "{p}"
    );
    h.shutdown().await;
}

both_backends!(ui_import_rules_form_saves_and_shows_refusals);
