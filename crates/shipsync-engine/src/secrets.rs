//! Encryption of stored credentials and webhook keys (XChaCha20-Poly1305
//! under `SHIPSYNC_SECRET_KEY`), and hashing of tokens for lookup.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;
use sha2::{Digest, Sha256};
use shipsync_db::{Db, DbError, merchants, meta};

const VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "SHIPSYNC_SECRET_KEY must be 32 bytes written as 64 hex characters or base64 (generate one with `openssl rand -hex 32`)"
    )]
    BadKey,
    #[error("a stored secret cannot be decrypted: was SHIPSYNC_SECRET_KEY changed?")]
    Decrypt,
    #[error("key file {path}: {message}")]
    KeyFile { path: String, message: String },
}

/// Seals and opens secrets at rest.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_key_bytes(key: &[u8]) -> Result<Self, SecretError> {
        if key.len() != 32 {
            return Err(SecretError::BadKey);
        }
        let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| SecretError::BadKey)?;
        Ok(Self { cipher })
    }

    /// Parses a key written as 64 hex characters or base64 of 32 bytes.
    pub fn from_text(text: &str) -> Result<Self, SecretError> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|_| SecretError::BadKey)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(t))
                .map_err(|_| SecretError::BadKey)?
        };
        Self::from_key_bytes(&bytes)
    }

    /// Loads the key kept beside a SQLite database; `Ok(None)` when the
    /// file does not exist. Refuses a file that other users may read or
    /// write (it opens every stored credential), saying which `chmod` fixes
    /// it.
    pub fn load_key_file(path: &std::path::Path) -> Result<Option<Self>, SecretError> {
        let err = |message: String| SecretError::KeyFile {
            path: path.display().to_string(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e.to_string())),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| err(e.to_string()))?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                return Err(err(format!(
                    "other users may read or change it (mode {mode:04o}); it must be readable by this user only: run `chmod 600 {}`",
                    path.display()
                )));
            }
        }
        Self::from_text(&text).map(Some)
    }

    /// Creates the key file (mode 0600) with a new random key; fails if
    /// the file exists.
    pub fn create_key_file(path: &std::path::Path) -> Result<Self, SecretError> {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        write_private(path, &hex::encode(key)).map_err(|e| SecretError::KeyFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_key_bytes(&key)
    }

    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption with a valid key and a fresh nonce cannot fail.
        let ct = self
            .cipher
            .encrypt(&XNonce::from(nonce), plain)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 24 + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 25 || sealed[0] != VERSION {
            return Err(SecretError::Decrypt);
        }
        self.cipher
            .decrypt(
                &XNonce::try_from(&sealed[1..25]).map_err(|_| SecretError::Decrypt)?,
                &sealed[25..],
            )
            .map_err(|_| SecretError::Decrypt)
    }

    pub fn seal_str(&self, plain: &str) -> Vec<u8> {
        self.seal(plain.as_bytes())
    }

    pub fn open_string(&self, sealed: &[u8]) -> Result<String, SecretError> {
        String::from_utf8(self.open(sealed)?).map_err(|_| SecretError::Decrypt)
    }
}

/// The `meta` row holding a value sealed under the database's key: a wrong
/// key is told at start, not at the first credential it cannot open.
const KEY_CHECK: &str = "secret_key_check";
const KEY_CHECK_PLAIN: &[u8] = b"shipsync secret key check";

/// Whether the database holds data sealed under some key (a key check, or
/// a merchant's sealed webhook key in a database from before key checks).
pub async fn holds_sealed_data(db: &Db) -> Result<bool, DbError> {
    Ok(meta::get(db.pool(), KEY_CHECK).await?.is_some()
        || merchants::sample_sealed(db.pool()).await?.is_some())
}

/// Whether `key` opens the database's sealed data: the key check, or else a
/// sealed value already stored. A database without a key check gets one
/// (under `key`) when the key fits.
pub async fn key_fits(db: &Db, key: &SecretBox) -> Result<bool, DbError> {
    if meta::get(db.pool(), KEY_CHECK).await?.is_none() {
        let fits = match merchants::sample_sealed(db.pool()).await? {
            Some(sealed) => key.open(&sealed).is_ok(),
            None => true,
        };
        if !fits {
            return Ok(false);
        }
        meta::init(
            db.pool(),
            KEY_CHECK,
            &hex::encode(key.seal(KEY_CHECK_PLAIN)),
        )
        .await?;
    }
    // Read back: another node starting at the same time may have written
    // its check (under its key) first.
    Ok(meta::get(db.pool(), KEY_CHECK).await?.is_some_and(|check| {
        hex::decode(check.trim())
            .ok()
            .and_then(|sealed| key.open(&sealed).ok())
            .is_some_and(|plain| plain == KEY_CHECK_PLAIN)
    }))
}

/// Writes a new file readable by this user only (mode 0600); fails if the
/// file exists.
#[cfg(unix)]
pub fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
pub fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// SHA-256 hex of a token or key: what is stored for lookup.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// SHA-256 hex of raw bytes.
pub fn hash_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A random token with a prefix: 192 bits, URL-safe.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let b = SecretBox::from_text(&"11".repeat(32)).unwrap();
        let s = b.seal_str("hunter2");
        assert_eq!(b.open_string(&s).unwrap(), "hunter2");
        let mut t = s.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(b.open(&t).is_err());
        let other = SecretBox::from_text(&"22".repeat(32)).unwrap();
        assert!(other.open(&s).is_err());
    }

    #[test]
    fn key_file_mode_and_creation() {
        let dir = std::env::temp_dir().join(format!("shipsync-key-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.key");
        assert!(SecretBox::load_key_file(&path).unwrap().is_none());
        let made = SecretBox::create_key_file(&path).unwrap();
        assert!(SecretBox::create_key_file(&path).is_err());
        let loaded = SecretBox::load_key_file(&path).unwrap().unwrap();
        assert_eq!(loaded.open_string(&made.seal_str("x")).unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = SecretBox::load_key_file(&path).unwrap_err().to_string();
            assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn key_formats() {
        assert!(SecretBox::from_text(&"ab".repeat(32)).is_ok());
        assert!(SecretBox::from_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_ok());
        assert!(SecretBox::from_text("short").is_err());
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token("whk");
        let b = random_token("whk");
        assert_ne!(a, b);
        assert!(a.len() >= 4 + 32);
    }
}
