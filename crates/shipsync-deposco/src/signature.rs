//! Webhook signatures (docs/contract.md, "The Deposco webhook endpoint").
//!
//! Two schemes are accepted, with the same key: Standard Webhooks
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and a plain body
//! HMAC in `X-Deposco-Signature`. Verification runs over the raw body bytes
//! and compares MACs in constant time (`Mac::verify_slice`, which also checks
//! the length). Independent of any HTTP framework: headers come through
//! [`HeaderLookup`].
//!
//! `X-Deposco-Signature` covers the body only: no timestamp, no id. A
//! captured delivery verifies forever, so it can be replayed: within 24 h
//! it is answered as a repeat (same body), later it is stored again as a new
//! event (merging it changes nothing when the shipment has moved on: older
//! versions are kept out). Its `webhook-id`, if any, is not covered either,
//! so repeats are recognised by `webhook-id` only after a Standard Webhooks
//! check, whose signature covers the id and a timestamp within ±5 minutes.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use hmac::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Maximum distance between `webhook-timestamp` and now, in seconds.
pub const TOLERANCE_SECS: u64 = 300;

const SECRET_PREFIX: &str = "whsec_";

/// Which scheme a verified delivery used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    StandardWebhooks,
    BodyHmac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "no signature: send webhook-id, webhook-timestamp and webhook-signature, \
         or X-Deposco-Signature"
    )]
    Missing,
    #[error(
        "the signature headers are malformed (webhook-id/webhook-timestamp, or an undecodable X-Deposco-Signature)"
    )]
    Malformed,
    #[error("the signature does not match: check that both sides use the same secret")]
    Mismatch,
    #[error("webhook-timestamp is more than 5 minutes away from now: check the sender's clock")]
    StaleTimestamp,
}

/// Case-insensitive access to request headers.
pub trait HeaderLookup {
    /// The first value of the header `name` (given in lower case).
    fn header(&self, name: &str) -> Option<&str>;
}

impl HeaderLookup for [(String, String)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl HeaderLookup for Vec<(String, String)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl HeaderLookup for [(&str, &str)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

impl<const N: usize> HeaderLookup for [(&str, &str); N] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl HeaderLookup for BTreeMap<String, String> {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl HeaderLookup for HashMap<String, String> {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The HMAC key: `whsec_<base64>` means the decoded bytes; any other secret
/// (including a `whsec_` one whose rest is not base64) its UTF-8 bytes.
pub fn secret_key_bytes(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn mac(secret: &str) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    HmacSha256::new_from_slice(&secret_key_bytes(secret)).expect("HMAC accepts any key length")
}

fn standard_mac(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut m = mac(secret);
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// `v1,<base64>` for the Standard Webhooks `webhook-signature` header.
pub fn sign_standard(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = standard_mac(secret, id, &timestamp.to_string(), body).finalize();
    format!("v1,{}", STANDARD.encode(tag.into_bytes()))
}

/// Hex HMAC-SHA256 of the body, for `X-Deposco-Signature`.
pub fn sign_body_hex(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// Checks a delivery's signature. Standard Webhooks headers are tried first;
/// if they fail and `X-Deposco-Signature` is present, that is tried too, and
/// the first scheme's error is reported when both fail.
pub fn verify<H: HeaderLookup + ?Sized>(
    secret: &str,
    headers: &H,
    body: &[u8],
    now_unix: i64,
) -> Result<Scheme, SignatureError> {
    let standard = headers
        .header("webhook-signature")
        .map(|sig| verify_standard(secret, headers, sig, body, now_unix));
    let plain = || {
        headers
            .header("x-deposco-signature")
            .map(|sig| verify_body(secret, sig, body))
    };
    match standard {
        Some(Ok(())) => Ok(Scheme::StandardWebhooks),
        Some(Err(first)) => match plain() {
            Some(Ok(())) => Ok(Scheme::BodyHmac),
            _ => Err(first),
        },
        None => match plain() {
            Some(Ok(())) => Ok(Scheme::BodyHmac),
            Some(Err(e)) => Err(e),
            None => Err(SignatureError::Missing),
        },
    }
}

fn verify_standard<H: HeaderLookup + ?Sized>(
    secret: &str,
    headers: &H,
    signatures: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let id = headers
        .header("webhook-id")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::Malformed)?;
    let timestamp = headers
        .header("webhook-timestamp")
        .map(str::trim)
        .ok_or(SignatureError::Malformed)?;
    let ts: i64 = timestamp.parse().map_err(|_| SignatureError::Malformed)?;
    if ts.abs_diff(now_unix) > TOLERANCE_SECS {
        return Err(SignatureError::StaleTimestamp);
    }
    let expected = standard_mac(secret, id, timestamp, body);
    let matched = signatures
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter(|b64| !b64.is_empty())
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|tag| expected.clone().verify_slice(&tag).is_ok());
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn verify_body(secret: &str, signature: &str, body: &[u8]) -> Result<(), SignatureError> {
    let sig = signature.trim();
    let sig = match sig.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256=") => sig.get(7..).unwrap_or_default(),
        _ => sig,
    };
    if sig.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // A string may decode both as hex and as base64; either may be the one.
    let candidates: Vec<Vec<u8>> = [
        hex::decode(sig).ok(),
        STANDARD.decode(sig).ok(),
        URL_SAFE.decode(sig).ok(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let mut expected = mac(secret);
    expected.update(body);
    if candidates
        .iter()
        .any(|tag| expected.clone().verify_slice(tag).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const KNOWN: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn standard(sig: &str, ts: i64) -> Vec<(String, String)> {
        vec![
            ("webhook-id".into(), ID.into()),
            ("Webhook-Timestamp".into(), ts.to_string()),
            ("webhook-signature".into(), sig.into()),
        ]
    }

    #[test]
    fn standard_webhooks_known_answer() {
        assert_eq!(sign_standard(SECRET, ID, TS, BODY), KNOWN);
        assert_eq!(
            verify(SECRET, &standard(KNOWN, TS), BODY, TS),
            Ok(Scheme::StandardWebhooks)
        );
    }

    #[test]
    fn secret_key_forms() {
        assert_eq!(secret_key_bytes("whsec_AAEC"), vec![0, 1, 2]);
        assert_eq!(secret_key_bytes("plain"), b"plain".to_vec());
        assert_eq!(secret_key_bytes("whsec_!!!"), b"whsec_!!!".to_vec());
    }

    #[test]
    fn one_valid_among_several_signatures() {
        let sig = format!("v1,AAAA v2,xyz v1, {KNOWN} v1,not-base64!");
        assert_eq!(
            verify(SECRET, &standard(&sig, TS), BODY, TS + 10),
            Ok(Scheme::StandardWebhooks)
        );
    }

    #[test]
    fn wrong_or_empty_signatures_never_match() {
        for sig in [
            "v1,",
            "v1,!!!",
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkx=",
            "v1,dGVzdA==",
            "",
            "v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ] {
            assert_eq!(
                verify(SECRET, &standard(sig, TS), BODY, TS),
                Err(SignatureError::Mismatch),
                "{sig:?}"
            );
        }
        assert_eq!(
            verify(SECRET, &standard(KNOWN, TS), b"{}", TS),
            Err(SignatureError::Mismatch),
            "another body"
        );
        assert_eq!(
            verify("whsec_b3RoZXI=", &standard(KNOWN, TS), BODY, TS),
            Err(SignatureError::Mismatch),
            "another secret"
        );
    }

    #[test]
    fn stale_timestamps_either_way() {
        for now in [TS + 301, TS - 301, i64::MAX, i64::MIN] {
            assert_eq!(
                verify(SECRET, &standard(KNOWN, TS), BODY, now),
                Err(SignatureError::StaleTimestamp),
                "{now}"
            );
        }
        for now in [TS + 300, TS - 300] {
            assert!(verify(SECRET, &standard(KNOWN, TS), BODY, now).is_ok());
        }
    }

    #[test]
    fn missing_and_malformed() {
        let none: Vec<(String, String)> = Vec::new();
        assert_eq!(
            verify(SECRET, &none, BODY, TS),
            Err(SignatureError::Missing)
        );
        let mut no_id = standard(KNOWN, TS);
        no_id.remove(0);
        assert_eq!(
            verify(SECRET, no_id.as_slice(), BODY, TS),
            Err(SignatureError::Malformed)
        );
        let bad_ts = [
            ("webhook-id", ID),
            ("webhook-timestamp", "yesterday"),
            ("webhook-signature", KNOWN),
        ];
        assert_eq!(
            verify(SECRET, &bad_ts, BODY, TS),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn body_hmac_hex_base64_and_prefix() {
        let secret = "s3cret";
        let body = b"<shipments/>";
        let hex_sig = sign_body_hex(secret, body);
        let raw = hex::decode(&hex_sig).expect("hex");
        let b64 = STANDARD.encode(&raw);
        for sig in [
            hex_sig.clone(),
            hex_sig.to_uppercase(),
            format!("sha256={hex_sig}"),
            format!("SHA256={b64}"),
            b64.clone(),
            URL_SAFE.encode(&raw),
        ] {
            assert_eq!(
                verify(secret, &[("X-Deposco-Signature", sig.as_str())], body, 0),
                Ok(Scheme::BodyHmac),
                "{sig}"
            );
        }
        let short = &hex_sig[..62];
        let long = format!("{hex_sig}00");
        for sig in [short, long.as_str(), "00", "sha256=00"] {
            assert_eq!(
                verify(secret, &[("x-deposco-signature", sig)], body, 0),
                Err(SignatureError::Mismatch),
                "{sig}"
            );
        }
        for sig in ["", "sha256=", "~~~"] {
            assert_eq!(
                verify(secret, &[("x-deposco-signature", sig)], body, 0),
                Err(SignatureError::Malformed),
                "{sig:?}"
            );
        }
        assert_eq!(
            verify(
                secret,
                &[("x-deposco-signature", hex_sig.as_str())],
                b"other",
                0
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn whsec_key_applies_to_the_body_scheme_too() {
        let sig = sign_body_hex(SECRET, BODY);
        let mut m = HmacSha256::new_from_slice(&secret_key_bytes(SECRET)).expect("key");
        m.update(BODY);
        assert_eq!(sig, hex::encode(m.finalize().into_bytes()));
        assert_eq!(
            verify(SECRET, &[("x-deposco-signature", sig.as_str())], BODY, 0),
            Ok(Scheme::BodyHmac)
        );
    }

    #[test]
    fn body_scheme_rescues_a_failed_standard_attempt() {
        let body_sig = sign_body_hex(SECRET, BODY);
        let mut headers = standard("v1,AAAA", TS);
        headers.push(("x-deposco-signature".into(), body_sig));
        assert_eq!(verify(SECRET, &headers, BODY, TS), Ok(Scheme::BodyHmac));
        headers.pop();
        headers.push(("x-deposco-signature".into(), "00".into()));
        assert_eq!(
            verify(SECRET, &headers, BODY, TS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn works_through_dyn() {
        let headers = standard(KNOWN, TS);
        let dyn_headers: &dyn HeaderLookup = &headers;
        assert_eq!(
            verify(SECRET, dyn_headers, BODY, TS),
            Ok(Scheme::StandardWebhooks)
        );
    }
}
