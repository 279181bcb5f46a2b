//! Signed Deposco webhook deliveries for the load generator, rendered by the
//! Deposco sandbox (current-API JSON) and signed as Deposco does (Standard
//! Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`).

use std::sync::Arc;

use bytes::Bytes;
use shipsync_sandbox_deposco::sign_standard;
use shipsync_sandbox_deposco::{
    DeposcoSandbox, LineSpec, PackageSpec, SandboxConfig, Shape, ShipmentSpec,
};

use crate::load::{Factory, Request};

/// The shared secret the bench gives its merchants (Standard Webhooks form).
pub const SHARED_SECRET: &str = "whsec_c2hpcHN5bmMtYmVuY2gtc2VjcmV0LTMyYnl0ZXMh";
/// Body size of the `ingest` deliveries.
pub const INGEST_BODY_BYTES: usize = 4096;
const SLOT: &[u8] = b"@@@@@@@@@@";

/// A 4 KiB body with fixed-width slots that each request fills with its
/// index, so every delivery is a distinct shipment with a distinct body
/// (no repeat detection) at the same size.
#[derive(Debug, Clone)]
pub struct Template {
    body: Vec<u8>,
    slots: Vec<usize>,
}

impl Template {
    /// A shipment of 3 lines in 2 packages, padded to exactly
    /// [`INGEST_BODY_BYTES`] with an extra (ignored) field.
    pub fn ingest() -> Self {
        let sandbox = DeposcoSandbox::new(SandboxConfig::default());
        let slot = std::str::from_utf8(SLOT).expect("ascii");
        let spec = ShipmentSpec::new(format!("B{slot}"))
            .tracking(format!("1ZING{slot}"))
            .line(LineSpec::new(1, "SKU-TENT-2P", 1))
            .line(LineSpec::new(2, "SKU-STOVE", 2))
            .line(LineSpec::new(3, "SKU-SOCKS", 3))
            .package(
                PackageSpec::new(format!("LPN{slot}A"), format!("1ZING{slot}"))
                    .line(1, 1)
                    .line(2, 1),
            )
            .package(
                PackageSpec::new(format!("LPN{slot}B"), format!("1ZING{slot}B"))
                    .line(2, 1)
                    .line(3, 3),
            );
        let record = sandbox.add_shipment(spec);
        let body = sandbox
            .render(&record.number, Shape::Current)
            .expect("rendered");
        let text = String::from_utf8(body).expect("JSON is UTF-8");
        let text = text.replace(&record.number, &format!("SHP-{slot}"));
        Self::padded(text.into_bytes(), INGEST_BODY_BYTES)
    }

    fn padded(body: Vec<u8>, size: usize) -> Self {
        let mut body = body;
        let open = body.iter().position(|b| *b == b'{').unwrap_or(0);
        let field = br#""benchPadding":"","#;
        if body.len() + field.len() < size {
            let fill = size - body.len() - field.len();
            let mut pad = Vec::with_capacity(field.len() + fill);
            pad.extend_from_slice(&field[..field.len() - 2]);
            pad.extend(std::iter::repeat_n(b'x', fill));
            pad.extend_from_slice(b"\",");
            body.splice(open + 1..open + 1, pad);
        }
        let slots = body
            .windows(SLOT.len())
            .enumerate()
            .filter(|(_, w)| *w == SLOT)
            .map(|(i, _)| i)
            .collect::<Vec<_>>();
        // Overlapping matches cannot happen with '@' runs of exactly SLOT.len()
        // separated by other bytes, but keep only non-overlapping ones.
        let mut kept: Vec<usize> = Vec::new();
        for s in slots {
            if kept.last().is_none_or(|l| s >= l + SLOT.len()) {
                kept.push(s);
            }
        }
        Self { body, slots: kept }
    }

    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// The body of delivery `i`.
    pub fn body(&self, i: u64) -> Vec<u8> {
        let mut b = self.body.clone();
        let digits = format!("{:010}", i % 10_000_000_000);
        for &s in &self.slots {
            b[s..s + SLOT.len()].copy_from_slice(digits.as_bytes());
        }
        b
    }
}

/// Standard Webhooks headers for `body`, signed with `secret` now.
pub fn signed_headers(secret: &str, id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = jiff::Timestamp::now().as_second();
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sign_standard(secret, id, ts, body)),
    ]
}

/// Request `i`: the template's `i`-th body, signed, to `path`.
pub fn ingest_factory(template: Arc<Template>, path: String, run: &str) -> Factory {
    let run = run.to_owned();
    Arc::new(move |i| {
        let body = template.body(i);
        let headers = signed_headers(SHARED_SECRET, &format!("msg_{run}_{i}"), &body);
        Request {
            path: path.clone(),
            headers,
            body: Bytes::from(body),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_4_kib_distinct_json() {
        let t = Template::ingest();
        assert_eq!(t.len(), INGEST_BODY_BYTES);
        assert!(t.slots.len() >= 4, "{:?}", t.slots);
        let a = t.body(1);
        let b = t.body(2);
        assert_ne!(a, b);
        assert_eq!(a.len(), INGEST_BODY_BYTES);
        let v: serde_json::Value = serde_json::from_slice(&a).expect("valid JSON");
        assert!(v.to_string().contains("0000000001"));
    }
}
