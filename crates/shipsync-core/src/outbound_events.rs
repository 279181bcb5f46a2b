//! Outbound events for merchants' own systems (issue 16), as far as they
//! can be stated without I/O: the Standard Webhooks signature and secrets,
//! the retry schedule, and the payloads.
//!
//! Signature (<https://www.standardwebhooks.com/>): `v1,` + base64 of
//! HMAC-SHA256, keyed with the base64-decoded secret (`whsec_…` without its
//! prefix), over `{webhook-id}.{webhook-timestamp}.{body}`. Several valid
//! secrets (during a rotation) give several signatures, space-separated.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::states::EventType;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What starts a subscription's secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Bytes of a new secret.
pub const SECRET_BYTES: usize = 32;

/// Delays before the 2nd, 3rd, … attempt of a delivery (before jitter):
/// 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h — ten attempts over
/// about a day.
pub const RETRY_DELAYS: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(3 * 60 * 60),
    Duration::from_secs(6 * 60 * 60),
    Duration::from_secs(12 * 60 * 60),
];

/// How far a retry delay may move either way (±20 %).
pub const JITTER: f64 = 0.2;

/// The secret as shown once to the subscriber: `whsec_` + base64 of `key`.
pub fn secret_text(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// A secret that is not `whsec_` + base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSecret;

impl std::fmt::Display for BadSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a webhook secret is `whsec_` followed by base64")
    }
}

impl std::error::Error for BadSecret {}

/// The key of a `whsec_…` secret (the prefix may be left out).
pub fn secret_key(text: &str) -> Result<Vec<u8>, BadSecret> {
    let b64 = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
    match STANDARD.decode(b64) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err(BadSecret),
    }
}

/// One signature: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per valid key, newest
/// first, space-separated.
pub fn signature_header(keys: &[&[u8]], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The wait before the next attempt of a delivery that has failed
/// `failed` times (1 after the first attempt), or `None` when the schedule
/// is exhausted and the delivery fails for good. `jitter` is in `[-1, 1]`
/// (a uniform random draw): it moves the delay by up to ±[`JITTER`].
pub fn retry_delay(schedule: &[Duration], failed: usize, jitter: f64) -> Option<Duration> {
    let base = *schedule.get(failed.checked_sub(1)?)?;
    Some(base.mul_f64(1.0 + JITTER * jitter.clamp(-1.0, 1.0)))
}

/// The body of every delivery: `{"type", "timestamp", "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it happened (RFC 3339, UTC).
    pub timestamp: String,
    pub data: serde_json::Value,
}

/// A store order as events name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreOrderRef {
    /// The store's id (Shopify GID).
    pub id: String,
    /// e.g. `#1001`.
    pub name: String,
}

/// One package of a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageData {
    /// The warehouse's package key (LPN).
    pub key: String,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    /// The carrier as the store shows it (the merchant's carrier mapping
    /// first), else the warehouse's.
    pub carrier: Option<String>,
    pub service: Option<String>,
}

/// A line: SKU and units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineData {
    pub sku: Option<String>,
    pub quantity: u64,
}

/// `data` of `shipment.completed` and `shipment.error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentData {
    pub shipment_id: String,
    /// Deposco's shipment number.
    pub shipment_number: String,
    pub merchant_id: String,
    pub connection_id: Option<String>,
    /// `None` while the shipment is matched to no store order.
    pub store_order: Option<StoreOrderRef>,
    pub packages: Vec<PackageData>,
    pub lines: Vec<LineData>,
    /// The store fulfillments that carry it (Shopify GIDs).
    pub store_fulfillment_ids: Vec<String>,
    /// Why shipsync gave up (`shipment.error`); `None` otherwise.
    pub error: Option<String>,
}

/// `data` of `order.sent`, `order.error` and `order.cancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderData {
    pub order_id: String,
    pub merchant_id: String,
    pub connection_id: String,
    pub store_order: StoreOrderRef,
    /// Deposco's order number, once sent.
    pub warehouse_order_number: Option<String>,
    pub lines: Vec<LineData>,
    /// Why it could not be sent (`order.error`).
    pub error: Option<String>,
    /// Why it was cancelled (`order.cancelled`).
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published known-answer vector of the Standard Webhooks spec.
    #[test]
    fn the_specs_known_answer() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn two_keys_two_signatures() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let h = signature_header(&[&a, &b], "msg_x", 1, b"{}");
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(
            parts,
            [sign(&a, "msg_x", 1, b"{}"), sign(&b, "msg_x", 1, b"{}")]
        );
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let key = [7u8; SECRET_BYTES];
        let text = secret_text(&key);
        assert!(text.starts_with("whsec_"));
        assert_eq!(secret_key(&text).unwrap(), key);
        assert_eq!(secret_key("whsec_not base64!"), Err(BadSecret));
        assert_eq!(secret_key("whsec_"), Err(BadSecret));
    }

    #[test]
    fn the_retry_schedule() {
        let s = &RETRY_DELAYS;
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        // (failed attempts, jitter, wait before the next attempt)
        let table: [(usize, f64, Option<f64>); 13] = [
            (0, 0.0, None),
            (1, 0.0, Some(5.0)),
            (1, 1.0, Some(6.0)),
            (1, -1.0, Some(4.0)),
            (2, 0.0, Some(30.0)),
            (3, 0.0, Some(120.0)),
            (4, 0.0, Some(600.0)),
            (5, 0.0, Some(1800.0)),
            (6, 0.0, Some(3600.0)),
            (7, 0.0, Some(10800.0)),
            (8, 0.0, Some(21600.0)),
            (9, 0.5, Some(43200.0 * 1.1)),
            (10, 0.0, None),
        ];
        for (failed, jitter, want) in table {
            let got = secs(retry_delay(s, failed, jitter));
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-6, "{failed}: {g} != {w}"),
                (g, w) => assert_eq!(g, w, "{failed}"),
            }
        }
        // Jitter never leaves ±20 %, whatever the draw.
        assert_eq!(secs(retry_delay(s, 1, 9.0)), Some(6.0));
        // About a day in all.
        let total: Duration = s.iter().sum();
        assert!(total > Duration::from_secs(22 * 3600) && total < Duration::from_secs(25 * 3600));
        // A test's schedule replaces the whole list.
        let short = [Duration::from_millis(10), Duration::from_millis(20)];
        assert_eq!(retry_delay(&short, 2, 0.0), Some(Duration::from_millis(20)));
        assert_eq!(retry_delay(&short, 3, 0.0), None);
    }
}
