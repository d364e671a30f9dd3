//! Writing keys, signatures and manifests (feature `signing`): what `till-release` and the tests
//! use. Keys are written as Tauri's `tauri signer generate` writes them (base64 of minisign's key
//! files), so Tauri's bundler signs the desktop packages with the same key.

use base64::Engine;
use std::io::Cursor;

/// Errors writing keys or signatures.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// minisign refused (bad key, wrong password, ...).
    #[error("minisign: {0}")]
    Minisign(#[from] minisign::PError),
    /// The key is not base64 of a minisign key file.
    #[error("the signing key is not a minisign secret key (plain or Tauri's base64): {0}")]
    BadKey(String),
}

/// A key pair, both halves in Tauri's encoding.
pub struct GeneratedKey {
    /// Base64 of the minisign secret key file; unencrypted when no password was given.
    pub secret: String,
    /// Base64 of the minisign public key file: what `tauri.conf.json` and the agent hold.
    pub public: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey").field("public", &self.public).finish_non_exhaustive()
    }
}

/// Generates a key pair; `password` encrypts the secret key (as release keys must be).
pub fn generate(password: Option<String>) -> Result<GeneratedKey, SigningError> {
    let kp = match password {
        Some(p) => minisign::KeyPair::generate_encrypted_keypair(Some(p))?,
        None => minisign::KeyPair::generate_unencrypted_keypair()?,
    };
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    Ok(GeneratedKey {
        secret: b64(kp.sk.to_box(None)?.into_string()),
        public: b64(kp.pk.to_box()?.into_string()),
    })
}

/// A secret key ready to sign.
pub struct Signer(minisign::SecretKey);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// Reads a secret key (Tauri's base64 or minisign's text), decrypting it with `password`
    /// when it is encrypted.
    pub fn new(secret: &str, password: Option<String>) -> Result<Signer, SigningError> {
        let secret = secret.trim();
        let text = base64::engine::general_purpose::STANDARD
            .decode(secret.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|t| t.starts_with("untrusted comment:"))
            .unwrap_or_else(|| secret.to_string());
        let sk_box = minisign::SecretKeyBox::from_string(&text).map_err(|e| SigningError::BadKey(e.to_string()))?;
        let sk = match password {
            Some(p) => sk_box.into_secret_key(Some(p))?,
            None => sk_box.into_unencrypted_secret_key()?,
        };
        Ok(Signer(sk))
    }

    /// Signs `bytes`; the result is base64 of the signature text, as in a manifest and in
    /// Tauri's `.sig` files. `name` goes into the (signed) trusted comment.
    pub fn sign(&self, name: &str, bytes: &[u8]) -> Result<String, SigningError> {
        let comment = format!("file:{name}");
        let sig = minisign::sign(None, &self.0, Cursor::new(bytes), Some(&comment), None)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sig.into_string().as_bytes()))
    }
}
