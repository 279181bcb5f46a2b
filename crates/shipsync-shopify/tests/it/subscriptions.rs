//! Webhook subscriptions against a small fake of Shopify's three calls:
//! listing (paged, filtered by `uri`), creating (the same topic and address
//! twice refused, as Shopify does), deleting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use shipsync_shopify::webhook::ORDER_TOPICS;
use shipsync_shopify::{ShopifyError, Timeouts, WebhookSubscription};

use crate::client::{assert_well_formed, page};
use crate::stub::{Reply, Seen, Stub};

const URI: &str = "https://shipsync.example/webhooks/shopify/key-1";
const OTHER_URI: &str = "https://other.example/hooks";

#[derive(Default)]
struct Fake {
    subscriptions: Vec<WebhookSubscription>,
    next_id: u32,
    /// Listings that still leave these topics out (a subscription made by
    /// someone else between our listing and our create).
    hidden: Vec<&'static str>,
    /// Creates refused with this message, whatever the input.
    refuse_creates: Option<&'static str>,
}

/// Two subscriptions a page, so that every listing pages.
const PAGE: usize = 2;

impl Fake {
    fn answer(&mut self, seen: &Seen) -> Reply {
        let v = &seen.variables;
        match seen.operation.as_str() {
            "WebhookSubscriptions" => {
                let matching: Vec<&WebhookSubscription> = self
                    .subscriptions
                    .iter()
                    .filter(|s| v["uri"].as_str().is_none_or(|u| s.uri == u))
                    .filter(|s| !self.hidden.contains(&s.topic.as_str()))
                    .collect();
                self.hidden.clear();
                let start: usize = v["after"].as_str().map_or(0, |c| c.parse().unwrap_or(0));
                let end = (start + PAGE).min(matching.len());
                let nodes: Vec<Value> = matching[start..end]
                    .iter()
                    .map(|s| json!({ "id": s.id, "topic": s.topic, "uri": s.uri }))
                    .collect();
                let next = (end < matching.len()).then(|| end.to_string());
                Reply::data(json!({ "webhookSubscriptions": page(json!(nodes), next.as_deref()) }))
            }
            "WebhookSubscriptionCreate" => {
                let (topic, uri) = (
                    v["topic"].as_str().unwrap_or_default(),
                    v["uri"].as_str().unwrap_or_default(),
                );
                let refusal = self.refuse_creates.or_else(|| {
                    self.subscriptions
                        .iter()
                        .any(|s| s.topic == topic && s.uri == uri)
                        .then_some("Address for this topic has already been taken")
                });
                if let Some(message) = refusal {
                    return Reply::data(json!({ "webhookSubscriptionCreate": {
                        "webhookSubscription": null,
                        "userErrors": [{ "field": ["webhookSubscription", "callbackUrl"], "message": message }],
                    }}));
                }
                self.next_id += 1;
                let s = WebhookSubscription {
                    id: format!("gid://shopify/WebhookSubscription/{}", self.next_id),
                    topic: topic.to_owned(),
                    uri: uri.to_owned(),
                };
                let node = json!({ "id": s.id, "topic": s.topic, "uri": s.uri });
                self.subscriptions.push(s);
                Reply::data(json!({ "webhookSubscriptionCreate": {
                    "webhookSubscription": node, "userErrors": [],
                }}))
            }
            "WebhookSubscriptionDelete" => {
                let id = v["id"].as_str().unwrap_or_default();
                let before = self.subscriptions.len();
                self.subscriptions.retain(|s| s.id != id);
                if self.subscriptions.len() == before {
                    return Reply::data(json!({ "webhookSubscriptionDelete": {
                        "deletedWebhookSubscriptionId": null,
                        "userErrors": [{ "field": ["id"], "message": "Webhook subscription does not exist" }],
                    }}));
                }
                Reply::data(json!({ "webhookSubscriptionDelete": {
                    "deletedWebhookSubscriptionId": id, "userErrors": [],
                }}))
            }
            other => panic!("the fake does not know {other}"),
        }
    }

    fn add(&mut self, topic: &str, uri: &str) -> WebhookSubscription {
        self.next_id += 1;
        let s = WebhookSubscription {
            id: format!("gid://shopify/WebhookSubscription/{}", self.next_id),
            topic: topic.into(),
            uri: uri.into(),
        };
        self.subscriptions.push(s.clone());
        s
    }
}

async fn start(fake: Fake) -> (Stub, Arc<Mutex<Fake>>) {
    let fake = Arc::new(Mutex::new(fake));
    let shared = Arc::clone(&fake);
    let stub = Stub::start(move |seen| shared.lock().expect("fake").answer(seen)).await;
    (stub, fake)
}

fn topics(subscriptions: &[WebhookSubscription]) -> Vec<&str> {
    subscriptions.iter().map(|s| s.topic.as_str()).collect()
}

#[tokio::test]
async fn lists_every_page_at_an_address_or_all() {
    let mut fake = Fake::default();
    let a = fake.add("ORDERS_CREATE", URI);
    let b = fake.add("ORDERS_UPDATED", OTHER_URI);
    let c = fake.add("ORDERS_EDITED", URI);
    let d = fake.add("PRODUCTS_UPDATE", URI);
    let (stub, _) = start(fake).await;
    let client = stub.client();
    assert_eq!(
        client.webhook_subscriptions(None).await,
        Ok(vec![a.clone(), b, c.clone(), d.clone()])
    );
    assert_eq!(
        client.webhook_subscriptions(Some(URI)).await,
        Ok(vec![a, c, d])
    );
    let seen = stub.seen();
    let variables: Vec<&Value> = seen.iter().map(|s| &s.variables).collect();
    assert_eq!(
        variables,
        [
            &json!({ "uri": null, "after": null }),
            &json!({ "uri": null, "after": "2" }),
            &json!({ "uri": URI, "after": null }),
            &json!({ "uri": URI, "after": "2" }),
        ]
    );
    assert_well_formed(&seen);
}

/// A server that ignores the `uri` filter still never makes a subscription
/// elsewhere look like one at our address.
#[tokio::test]
async fn the_address_is_checked_here_too() {
    let stub = Stub::start(|_| {
        Reply::data(json!({ "webhookSubscriptions": page(json!([
            { "id": "gid://shopify/WebhookSubscription/1", "topic": "ORDERS_CREATE", "uri": OTHER_URI },
        ]), None) }))
    })
    .await;
    assert_eq!(
        stub.client().webhook_subscriptions(Some(URI)).await,
        Ok(vec![])
    );
}

#[tokio::test]
async fn creates_and_deletes_one_subscription() {
    let (stub, fake) = start(Fake::default()).await;
    let client = stub.client();
    let created = client
        .webhook_subscription_create("ORDERS_CANCELLED", URI)
        .await
        .expect("created");
    assert_eq!(
        (created.topic.as_str(), created.uri.as_str()),
        ("ORDERS_CANCELLED", URI)
    );
    assert_eq!(
        stub.seen()[0].variables,
        json!({ "topic": "ORDERS_CANCELLED", "uri": URI })
    );
    assert_eq!(
        client.webhook_subscription_delete(&created.id).await,
        Ok(())
    );
    assert!(fake.lock().expect("fake").subscriptions.is_empty());
    assert_eq!(stub.seen()[1].variables, json!({ "id": created.id }));
    assert_well_formed(&stub.seen());
}

/// Shopify's refusals come back as permanent errors naming what was asked
/// and what Shopify said.
#[tokio::test]
async fn refusals_name_the_topic_and_shopifys_message() {
    let mut fake = Fake::default();
    fake.add("ORDERS_CREATE", URI);
    let (stub, _) = start(fake).await;
    let client = stub.client();
    let err = client
        .webhook_subscription_create("ORDERS_CREATE", URI)
        .await;
    assert!(
        matches!(&err, Err(ShopifyError::Permanent(m))
            if m.contains("ORDERS_CREATE") && m.contains(URI)
                && m.contains("webhookSubscription.callbackUrl: Address for this topic has already been taken")),
        "{err:?}"
    );
    assert!(err.is_err_and(|e| !e.is_retryable()));
    let err = client
        .webhook_subscription_delete("gid://shopify/WebhookSubscription/999")
        .await;
    assert!(
        matches!(&err, Err(ShopifyError::Permanent(m))
            if m.contains("WebhookSubscription/999") && m.contains("does not exist")),
        "{err:?}"
    );
}

/// A mutation whose answer is lost, or that answers neither a result nor
/// userErrors, may have been applied: its outcome is unknown.
#[tokio::test]
async fn a_lost_answer_is_an_unknown_outcome() {
    let stub = Stub::start(|seen: &Seen| match seen.operation.as_str() {
        "WebhookSubscriptionCreate" => Reply::data(json!({ "webhookSubscriptionCreate": {
            "webhookSubscription": null, "userErrors": [],
        }})),
        _ => Reply::data(json!({ "webhookSubscriptionDelete": null })),
    })
    .await;
    let client = stub.client();
    for err in [
        client
            .webhook_subscription_create("ORDERS_CREATE", URI)
            .await
            .map(drop),
        client
            .webhook_subscription_delete("gid://shopify/WebhookSubscription/1")
            .await,
    ] {
        assert!(
            matches!(err, Err(ShopifyError::UnknownOutcome { .. })),
            "{err:?}"
        );
    }
    let slow = Stub::start(|_| Reply::data(json!({})).delayed(Duration::from_secs(3))).await;
    let client = slow.client_with(Timeouts {
        total: Duration::from_millis(300),
        ..Timeouts::default()
    });
    let err = client
        .webhook_subscription_create("ORDERS_CREATE", URI)
        .await;
    assert!(
        matches!(err, Err(ShopifyError::UnknownOutcome { .. })),
        "{err:?}"
    );
    // Sent once: a mutation is never repeated blindly.
    assert_eq!(slow.seen().len(), 1);
}

/// Creates only the missing order topics at the address; a second run
/// finds them all and creates nothing.
#[tokio::test]
async fn ensure_creates_only_what_is_missing() {
    let mut fake = Fake::default();
    let existing = fake.add("ORDERS_CREATE", URI);
    fake.add("ORDERS_UPDATED", OTHER_URI);
    fake.add("PRODUCTS_UPDATE", URI);
    let (stub, fake) = start(fake).await;
    let client = stub.client();
    let report = client.ensure_order_webhooks(URI).await.expect("ensured");
    assert_eq!(report.existing, vec![existing]);
    assert_eq!(
        topics(&report.created),
        ["ORDERS_UPDATED", "ORDERS_CANCELLED", "ORDERS_EDITED"]
    );
    assert!(report.created.iter().all(|s| s.uri == URI));
    let at_uri: Vec<String> = fake
        .lock()
        .expect("fake")
        .subscriptions
        .iter()
        .filter(|s| s.uri == URI)
        .map(|s| s.topic.clone())
        .collect();
    for topic in ORDER_TOPICS {
        assert_eq!(at_uri.iter().filter(|t| *t == topic).count(), 1, "{topic}");
    }

    let before = stub.seen().len();
    let again = client.ensure_order_webhooks(URI).await.expect("ensured");
    assert_eq!(topics(&again.existing), ORDER_TOPICS);
    assert!(again.created.is_empty());
    let creates = stub.seen()[before..]
        .iter()
        .filter(|s| s.operation == "WebhookSubscriptionCreate")
        .count();
    assert_eq!(creates, 0);
    assert_well_formed(&stub.seen());
}

/// Someone else subscribed the address between our listing and our create:
/// Shopify refuses the duplicate, and the subscription counts as existing.
#[tokio::test]
async fn ensure_takes_a_refused_duplicate_as_existing() {
    let mut fake = Fake::default();
    let raced = fake.add("ORDERS_UPDATED", URI);
    fake.hidden = vec!["ORDERS_UPDATED"];
    let (stub, _) = start(fake).await;
    let report = stub.client().ensure_order_webhooks(URI).await;
    let report = report.expect("ensured");
    assert_eq!(report.existing, vec![raced]);
    assert_eq!(
        topics(&report.created),
        ["ORDERS_CREATE", "ORDERS_CANCELLED", "ORDERS_EDITED"]
    );
}

/// Any other refusal stops it with Shopify's reason.
#[tokio::test]
async fn ensure_reports_a_real_refusal() {
    let fake = Fake {
        refuse_creates: Some("Address is not allowed"),
        ..Fake::default()
    };
    let (stub, _) = start(fake).await;
    let err = stub.client().ensure_order_webhooks(URI).await;
    assert!(
        matches!(&err, Err(ShopifyError::Permanent(m))
            if m.contains("ORDERS_CREATE") && m.contains("Address is not allowed")),
        "{err:?}"
    );
}

/// Removes the order topics at the address and nothing else.
#[tokio::test]
async fn remove_deletes_only_order_topics_at_the_address() {
    let mut fake = Fake::default();
    let ours: Vec<WebhookSubscription> = ORDER_TOPICS.iter().map(|t| fake.add(t, URI)).collect();
    let elsewhere = fake.add("ORDERS_CREATE", OTHER_URI);
    let other_topic = fake.add("PRODUCTS_UPDATE", URI);
    let (stub, fake) = start(fake).await;
    let client = stub.client();
    assert_eq!(client.remove_order_webhooks(URI).await, Ok(ours));
    assert_eq!(
        fake.lock().expect("fake").subscriptions,
        vec![elsewhere, other_topic]
    );
    assert_eq!(client.remove_order_webhooks(URI).await, Ok(vec![]));
    assert_eq!(
        client.ensure_order_webhooks(URI).await.map(|r| r.existing),
        Ok(vec![])
    );
}
