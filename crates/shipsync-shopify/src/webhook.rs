//! Shopify's order webhooks as they arrive: the topics shipsync subscribes
//! to, the signature, and which order a delivery is about. The one place
//! that knows Shopify's delivery format.
//!
//! Facts and assumptions are those of orders-lifecycle.md § "Shopify order
//! webhooks" (Admin API 2026-10; nothing here was tried against a live
//! store):
//!
//! - headers are case-insensitive: `X-Shopify-Topic`,
//!   `X-Shopify-Hmac-Sha256`, `X-Shopify-Shop-Domain`,
//!   `X-Shopify-API-Version`, `X-Shopify-Webhook-Id`, `X-Shopify-Event-Id`,
//!   `X-Shopify-Triggered-At`;
//! - the signature is `base64(HMAC-SHA256(app client secret, raw body))`;
//!   a rotated secret may take up to an hour to apply, so the previous one
//!   is accepted meanwhile;
//! - order bodies are the REST Order JSON (`id`, `admin_graphql_api_id`,
//!   `updated_at`, …), except `orders/edited`, whose body describes the
//!   edit: `{"order_edit": {"id", "order_id", "created_at", …}}`
//!   (**assumption**: `order_id` is the numeric order id, as in Shopify's
//!   documented example);
//! - a delivery only says *which* order changed: it may be late, repeated
//!   (same event id) or out of order, so the order is read again through
//!   GraphQL and its `updatedAt` decides.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use serde_json::Value;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The GraphQL topics (`WebhookSubscriptionTopic`) shipsync subscribes a
/// store to when its Sales Orders channel is on.
pub const ORDER_TOPICS: [&str; 4] = [
    "ORDERS_CREATE",
    "ORDERS_UPDATED",
    "ORDERS_CANCELLED",
    "ORDERS_EDITED",
];

/// The same topics as a delivery's `X-Shopify-Topic` spells them, in the
/// order of [`ORDER_TOPICS`].
pub const ORDER_TOPIC_HEADERS: [&str; 4] = [
    "orders/create",
    "orders/updated",
    "orders/cancelled",
    "orders/edited",
];

/// The topic of each delivery.
pub const TOPIC_HEADER: &str = "X-Shopify-Topic";
/// The body's signature (see [`verify`]). Never store or show it.
pub const HMAC_HEADER: &str = "X-Shopify-Hmac-Sha256";
pub const SHOP_DOMAIN_HEADER: &str = "X-Shopify-Shop-Domain";
pub const API_VERSION_HEADER: &str = "X-Shopify-API-Version";
/// New for every delivery attempt.
pub const WEBHOOK_ID_HEADER: &str = "X-Shopify-Webhook-Id";
/// The same for every delivery of one event: what recognises a repeat.
pub const EVENT_ID_HEADER: &str = "X-Shopify-Event-Id";
pub const TRIGGERED_AT_HEADER: &str = "X-Shopify-Triggered-At";

/// The header spelling of a GraphQL order topic (`ORDERS_CREATE` →
/// `orders/create`); `None` for a topic shipsync does not subscribe to.
pub fn header_topic(topic: &str) -> Option<&'static str> {
    ORDER_TOPICS
        .iter()
        .position(|t| *t == topic)
        .map(|i| ORDER_TOPIC_HEADERS[i])
}

/// The GraphQL topic of a header spelling (`orders/create` →
/// `ORDERS_CREATE`), ignoring case and surrounding blanks.
pub fn graphql_topic(header: &str) -> Option<&'static str> {
    let header = header.trim();
    ORDER_TOPIC_HEADERS
        .iter()
        .position(|t| t.eq_ignore_ascii_case(header))
        .map(|i| ORDER_TOPICS[i])
}

/// Whether `hmac_header` (the `X-Shopify-Hmac-Sha256` value) is the base64
/// HMAC-SHA256 of the raw `body` under any of `secrets` — more than one
/// while a rotated secret takes effect. Compared in constant time
/// (`Mac::verify_slice`, which also checks the length). An empty secret
/// never matches: it would accept anyone's signature made with no key.
pub fn verify(secrets: &[&[u8]], body: &[u8], hmac_header: Option<&str>) -> bool {
    let Some(given) = hmac_header.and_then(|h| STANDARD.decode(h.trim()).ok()) else {
        return false;
    };
    secrets.iter().filter(|s| !s.is_empty()).any(|secret| {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    })
}

/// The `X-Shopify-Hmac-Sha256` value Shopify sends for `body` signed with
/// `secret`: for tests that play Shopify's part.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    match HmacSha256::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            STANDARD.encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length: not reached.
        Err(_) => String::new(),
    }
}

/// What one order webhook delivery says: which order changed, and the
/// identifiers that recognise a repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDelivery {
    /// As `X-Shopify-Topic` spells it, in lower case: `orders/create`, …
    pub topic: String,
    /// The order's GID, `gid://shopify/Order/…`.
    pub order_id: String,
    /// `X-Shopify-Event-Id`: the same for every delivery of one event.
    pub event_id: Option<String>,
    /// `X-Shopify-Webhook-Id`: new for every delivery attempt.
    pub webhook_id: Option<String>,
    /// `X-Shopify-Triggered-At`, as sent.
    pub triggered_at: Option<String>,
    /// The body's `updated_at` (the order's, as sent); `None` for
    /// `orders/edited`, whose body is the edit, not the order.
    pub updated_at: Option<String>,
    /// `X-Shopify-Shop-Domain`, e.g. `example.myshopify.com`.
    pub shop_domain: Option<String>,
}

/// Reads an order delivery: its topic (any `orders/…` topic) and headers
/// (names in any case), and from the body the order it is about —
/// `admin_graphql_api_id`, else the numeric `id`; for `orders/edited`,
/// `order_edit.order_id`. The error names what is missing or wrong.
/// Check the signature first ([`verify`]): this trusts the body.
pub fn parse(headers: &[(String, String)], body: &[u8]) -> Result<OrderDelivery, String> {
    let topic = header(headers, TOPIC_HEADER)
        .ok_or_else(|| format!("no {TOPIC_HEADER} header"))?
        .to_ascii_lowercase();
    if !topic.starts_with("orders/") {
        return Err(format!(
            "{TOPIC_HEADER} {topic:?} is not an order topic (orders/…)"
        ));
    }
    let json: Value =
        serde_json::from_slice(body).map_err(|e| format!("the {topic} body is not JSON: {e}"))?;
    if !json.is_object() {
        return Err(format!("the {topic} body is not a JSON object"));
    }
    let (order_id, updated_at) = if topic == "orders/edited" {
        let id = json
            .pointer("/order_edit/order_id")
            .and_then(numeric_id)
            .ok_or_else(|| format!("the {topic} body has no numeric order_edit.order_id"))?;
        (order_gid(id), None)
    } else {
        let order_id = match json.get("admin_graphql_api_id") {
            Some(Value::String(gid)) => Some(checked_gid(gid).ok_or_else(|| {
                format!("admin_graphql_api_id {gid:?} is not an order GID (gid://shopify/Order/…)")
            })?),
            _ => json.get("id").and_then(numeric_id).map(order_gid),
        }
        .ok_or_else(|| {
            format!("the {topic} body has neither admin_graphql_api_id nor a numeric id")
        })?;
        let updated_at = json
            .get("updated_at")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        (order_id, updated_at)
    };
    Ok(OrderDelivery {
        topic,
        order_id,
        event_id: header(headers, EVENT_ID_HEADER),
        webhook_id: header(headers, WEBHOOK_ID_HEADER),
        triggered_at: header(headers, TRIGGERED_AT_HEADER),
        updated_at,
        shop_domain: header(headers, SHOP_DOMAIN_HEADER),
    })
}

/// The first value of header `name`, in any case, trimmed; `None` when
/// absent or blank.
fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A positive order id, as a JSON number or a string of digits.
fn numeric_id(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
    .filter(|id| *id > 0)
}

fn order_gid(id: u64) -> String {
    format!("gid://shopify/Order/{id}")
}

/// `gid` when it is an order GID with a numeric id.
fn checked_gid(gid: &str) -> Option<String> {
    let id = gid.trim().strip_prefix("gid://shopify/Order/")?;
    let ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| gid.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently of this crate:
    /// `printf '%s' "$BODY" | openssl dgst -sha256 -hmac shpss_test_secret -binary | base64`
    /// (and Python's `hmac`, which agrees).
    const VECTOR_BODY: &str = r##"{"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508","name":"#9999","updated_at":"2026-11-02T10:00:00-05:00"}"##;
    const VECTOR_SECRET: &[u8] = b"shpss_test_secret";
    const VECTOR_HMAC: &str = "CLnvOQWSRIEELVKSUYmrhumo3+KbePsLrwDrNJVP8Xs=";
    /// The same body under `shpss_previous_secret`.
    const VECTOR_HMAC_PREVIOUS: &str = "OuXf/TItIRZB8dScXRRWNmHZwlZV1l11bs2e27iyqsI=";

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn verifies_a_known_vector_over_the_raw_body() {
        let body = VECTOR_BODY.as_bytes();
        assert!(verify(&[VECTOR_SECRET], body, Some(VECTOR_HMAC)));
        assert_eq!(sign(VECTOR_SECRET, body), VECTOR_HMAC);
        // Surrounding blanks in the header do not matter.
        assert!(verify(
            &[VECTOR_SECRET],
            body,
            Some(&format!(" {VECTOR_HMAC}\t"))
        ));
        // The raw bytes are signed: the same JSON re-serialised is not.
        let reformatted = serde_json::to_vec_pretty(
            &serde_json::from_str::<Value>(VECTOR_BODY).expect("vector is JSON"),
        )
        .expect("serialise");
        assert!(!verify(&[VECTOR_SECRET], &reformatted, Some(VECTOR_HMAC)));
        let mut tampered = body.to_vec();
        tampered[6] = b'9';
        assert!(!verify(&[VECTOR_SECRET], &tampered, Some(VECTOR_HMAC)));
    }

    #[test]
    fn any_current_secret_may_match_while_rotating() {
        let body = VECTOR_BODY.as_bytes();
        let previous: &[u8] = b"shpss_previous_secret";
        let both = [VECTOR_SECRET, previous];
        assert!(verify(&both, body, Some(VECTOR_HMAC)));
        assert!(verify(&both, body, Some(VECTOR_HMAC_PREVIOUS)));
        assert!(verify(&[previous], body, Some(VECTOR_HMAC_PREVIOUS)));
        assert!(!verify(&[previous], body, Some(VECTOR_HMAC)));
        assert!(!verify(&[b"other".as_slice()], body, Some(VECTOR_HMAC)));
    }

    #[test]
    fn refuses_missing_malformed_or_keyless_signatures() {
        let body = VECTOR_BODY.as_bytes();
        assert!(!verify(&[VECTOR_SECRET], body, None));
        assert!(!verify(&[VECTOR_SECRET], body, Some("")));
        assert!(!verify(&[VECTOR_SECRET], body, Some("not base64!")));
        // Hex instead of base64, and a truncated MAC.
        let hex = hex::encode(STANDARD.decode(VECTOR_HMAC).expect("base64"));
        assert!(!verify(&[VECTOR_SECRET], body, Some(&hex)));
        assert!(!verify(&[VECTOR_SECRET], body, Some(&VECTOR_HMAC[..20])));
        // No secret, or an empty one, matches nothing — not even a
        // signature made with the empty key.
        let keyless = sign(b"", body);
        assert!(!verify(&[], body, Some(&keyless)));
        assert!(!verify(&[b"".as_slice()], body, Some(&keyless)));
    }

    #[test]
    fn topics_in_both_spellings() {
        for (graphql, header) in ORDER_TOPICS.iter().zip(ORDER_TOPIC_HEADERS) {
            assert_eq!(header_topic(graphql), Some(header));
            assert_eq!(graphql_topic(header), Some(*graphql));
        }
        assert_eq!(
            graphql_topic(" Orders/Cancelled "),
            Some("ORDERS_CANCELLED")
        );
        assert_eq!(header_topic("ORDERS_PAID"), None);
        assert_eq!(graphql_topic("orders/paid"), None);
    }

    /// An `orders/create` body in the documented REST shape (abridged).
    const ORDER_BODY: &str = r##"{
        "id": 820982911946154508,
        "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
        "name": "#9999",
        "updated_at": "2026-11-02T10:00:00-05:00",
        "cancelled_at": null,
        "cancel_reason": null,
        "financial_status": "paid",
        "fulfillment_status": null,
        "tags": "HOLD, vip",
        "line_items": [
            {"id": 866550311766439020, "sku": "A-1", "quantity": 2, "current_quantity": 1,
             "requires_shipping": true, "fulfillment_status": null}
        ],
        "shipping_lines": [{"code": "Express", "title": "Express", "source": "shopify"}]
    }"##;

    #[test]
    fn parses_an_order_delivery_with_headers_in_any_case() {
        let h = headers(&[
            ("x-shopify-topic", "orders/create"),
            ("X-SHOPIFY-HMAC-SHA256", "ignored here"),
            ("X-Shopify-Shop-Domain", "example.myshopify.com"),
            ("x-shopify-api-version", "2026-10"),
            (
                "X-Shopify-Webhook-Id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            ),
            ("x-shopify-event-id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
            ("X-Shopify-Triggered-At", "2026-11-02T15:00:00.123Z"),
        ]);
        assert_eq!(
            parse(&h, ORDER_BODY.as_bytes()),
            Ok(OrderDelivery {
                topic: "orders/create".into(),
                order_id: "gid://shopify/Order/820982911946154508".into(),
                event_id: Some("98880550-7158-44d4-b7cd-2c97c8a091b5".into()),
                webhook_id: Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043".into()),
                triggered_at: Some("2026-11-02T15:00:00.123Z".into()),
                updated_at: Some("2026-11-02T10:00:00-05:00".into()),
                shop_domain: Some("example.myshopify.com".into()),
            })
        );
    }

    #[test]
    fn the_numeric_id_stands_in_for_a_missing_gid() {
        let h = headers(&[("X-Shopify-Topic", "ORDERS/CANCELLED")]);
        let body = br#"{"id": 450789469, "updated_at": "2026-11-02T10:00:00Z"}"#;
        let d = parse(&h, body).expect("parses");
        assert_eq!(d.topic, "orders/cancelled");
        assert_eq!(d.order_id, "gid://shopify/Order/450789469");
        assert_eq!(d.event_id, None);
        assert_eq!(d.webhook_id, None);
        assert_eq!(d.shop_domain, None);
        // A numeric id sent as a string, a null GID.
        let body = br#"{"id": "450789469", "admin_graphql_api_id": null}"#;
        assert_eq!(
            parse(&h, body).map(|d| d.order_id),
            Ok("gid://shopify/Order/450789469".into())
        );
    }

    /// `orders/edited` describes the edit; the order is `order_edit.order_id`.
    #[test]
    fn an_edit_names_its_order() {
        let h = headers(&[
            ("X-Shopify-Topic", "orders/edited"),
            ("X-Shopify-Event-Id", "e-1"),
        ]);
        let body = br#"{"order_edit": {
            "id": 78912328,
            "app_id": null,
            "created_at": "2026-11-02T10:05:00-05:00",
            "notify_customer": false,
            "order_id": 450789469,
            "staff_note": "",
            "user_id": null,
            "line_items": {"additions": [{"id": 1, "delta": 1}], "removals": [{"id": 2, "delta": 2}]}
        }}"#;
        let d = parse(&h, body).expect("parses");
        assert_eq!(d.order_id, "gid://shopify/Order/450789469");
        assert_eq!(d.updated_at, None);
        assert_eq!(d.event_id.as_deref(), Some("e-1"));
        // An edit body without the order, or an order body under the edit topic.
        for body in [
            br#"{"order_edit": {"id": 78912328}}"#.as_slice(),
            ORDER_BODY.as_bytes(),
        ] {
            let err = parse(&h, body).expect_err("no order_edit.order_id");
            assert!(err.contains("order_edit.order_id"), "{err}");
        }
    }

    #[test]
    fn errors_name_what_is_missing() {
        let order = headers(&[("X-Shopify-Topic", "orders/updated")]);
        type Case<'a> = (&'a [(String, String)], &'a [u8], &'a str);
        let cases: [Case; 7] = [
            (&[], ORDER_BODY.as_bytes(), "X-Shopify-Topic"),
            (
                &headers(&[("X-Shopify-Topic", "  ")]),
                ORDER_BODY.as_bytes(),
                "X-Shopify-Topic",
            ),
            (
                &headers(&[("X-Shopify-Topic", "products/update")]),
                ORDER_BODY.as_bytes(),
                "not an order topic",
            ),
            (&order, b"<order/>", "not JSON"),
            (&order, b"[1]", "not a JSON object"),
            (
                &order,
                br##"{"name": "#1", "id": -4}"##,
                "neither admin_graphql_api_id nor a numeric id",
            ),
            (
                &order,
                br#"{"id": 1, "admin_graphql_api_id": "gid://shopify/Product/1"}"#,
                "not an order GID",
            ),
        ];
        for (h, body, expected) in cases {
            let err = parse(h, body).expect_err(expected);
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        }
    }
}
