//! Webhook signatures as the sender computes them (docs/contract.md,
//! "Signatures"): Standard Webhooks, or an HMAC of the raw body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::KeyInit;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How `post_webhook` signs a delivery.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum Signing {
    #[default]
    None,
    /// Headers `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.
    Standard { secret: String },
    /// Header `X-Deposco-Signature: sha256=<hex>` over the raw body.
    BodyHmac { secret: String },
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        match self {
            Signing::None => f.write_str("None"),
            Signing::Standard { .. } => f.write_str("Standard { secret: *** }"),
            Signing::BodyHmac { .. } => f.write_str("BodyHmac { secret: *** }"),
        }
    }
}

/// The HMAC key a secret stands for: `whsec_<base64>` is the decoded bytes,
/// anything else (including `whsec_` followed by invalid base64) its UTF-8 bytes.
pub fn signing_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| BASE64.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub fn sign_standard(secret: &str, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(
        &signing_key(secret),
        &[webhook_id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!("v1,{}", BASE64.encode(mac))
}

/// `sha256=<hex HMAC-SHA256(key, body)>`.
pub fn sign_body_hmac(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(&signing_key(secret), &[body]))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_known_answer() {
        let sig = sign_standard(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn plain_secret_is_its_utf8_bytes() {
        assert_eq!(signing_key("s3cret"), b"s3cret");
        assert_eq!(signing_key("whsec_!!notbase64"), b"whsec_!!notbase64");
        assert_eq!(signing_key("whsec_AAEC"), vec![0, 1, 2]);
    }

    #[test]
    fn body_hmac_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign_body_hmac("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
