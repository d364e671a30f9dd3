//! Signed update manifests of Till Agent.
//!
//! For: deciding whether an update offered by a channel's manifest may be installed. A channel
//! (`stable`, `pilot`) publishes `CHANNEL.json` — the same static JSON Tauri's updater reads
//! (`version`, `notes`, `pub_date`, `platforms.{target}.url|signature`) — and next to it
//! `CHANNEL.json.sig`, a minisign signature of the manifest's exact bytes. Every package has its own
//! minisign signature in the manifest, base64-encoded as Tauri writes it. An offer is accepted only
//! if the manifest's signature verifies with the project's key (a tampered manifest is refused),
//! its version is newer than the running one (no downgrade, no replay of an old manifest), and the
//! downloaded file's signature verifies with the same key (a swapped file is refused).
//!
//! Not for: downloading, scheduling or installing (the agent's `updater` module does that), nor
//! for the desktop app, which uses `tauri-plugin-updater` against the same manifests and key.
//!
//! Keys and signatures are minisign's, encoded as Tauri encodes them (base64 of the whole
//! `untrusted comment:` text), so one key signs the desktop bundles (through Tauri's bundler) and
//! the headless packages. Verification uses `minisign-verify` (no dependencies, by minisign's
//! author); signing, behind the `signing` feature, uses `minisign`.
#![forbid(unsafe_code)]

use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[cfg(any(feature = "signing", test))]
pub mod signing;

/// The manifest target of the headless agent's Debian package. Tauri's updater looks up
/// `{os}-{arch}-{installer}` (`linux-x86_64-deb`) for the desktop app; the headless package needs
/// a key of its own so that the two never install each other's files.
pub fn headless_target() -> String {
    format!("linux-{}-headless-deb", std::env::consts::ARCH)
}

/// Why an update was refused. Every variant is logged by the agent and none installs anything.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The configured public key is not a minisign public key (as text or as Tauri's base64).
    #[error("the update public key cannot be read: {0}")]
    BadKey(String),
    /// A signature is not minisign's format.
    #[error("the {what} signature cannot be read: {reason}")]
    BadSignature {
        /// "manifest" or the file name.
        what: String,
        /// Why.
        reason: String,
    },
    /// A signature is well-formed but does not verify with our key: made with another key, or
    /// over other bytes (a tampered manifest, a swapped file).
    #[error("the {what} signature does not verify with the update key: {reason}")]
    NotSigned {
        /// "manifest" or the file name.
        what: String,
        /// What minisign said (another key, a signature over other bytes, ...).
        reason: String,
    },
    /// The manifest verifies but is not the expected JSON.
    #[error("the manifest is not valid: {0}")]
    BadManifest(String),
    /// The offered version is not newer than the running one: a downgrade or a replayed manifest.
    #[error("the manifest offers {offered}, not newer than the running {running}: refused")]
    NotNewer {
        /// What the manifest offers.
        offered: String,
        /// What runs.
        running: String,
    },
    /// The manifest has no package for this machine.
    #[error("the manifest has no package for `{0}`")]
    NoPackage(String),
}

/// A channel's manifest: Tauri's static update JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The version offered (semver, no leading `v`).
    pub version: String,
    /// Release notes shown to a manager; free text.
    #[serde(default)]
    pub notes: String,
    /// When the release was published (RFC 3339), informative only.
    #[serde(default)]
    pub pub_date: Option<String>,
    /// One package per target (`linux-x86_64-deb`, `linux-x86_64-rpm`, `linux-x86_64-headless-deb`, ...).
    pub platforms: BTreeMap<String, Platform>,
}

/// One downloadable package of a release.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Platform {
    /// Where to download it (HTTPS in production).
    pub url: String,
    /// Base64 of its minisign signature text (Tauri's `.sig` file contents).
    pub signature: String,
}

/// An update that passed every check but the file's own signature (checked after download).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The version offered.
    pub version: semver::Version,
    /// Where to download the package.
    pub url: String,
    /// Its signature, to verify the downloaded bytes with [`UpdateKey::verify_file`].
    pub signature: String,
    /// Release notes.
    pub notes: String,
}

/// The project's update public key.
#[derive(Clone)]
pub struct UpdateKey(minisign_verify::PublicKey);

impl std::fmt::Debug for UpdateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpdateKey(..)")
    }
}

impl UpdateKey {
    /// Reads a public key in any of the spellings in use: Tauri's base64 of the key file (what
    /// `tauri.conf.json` holds), the minisign key file text, or the bare base64 key line.
    pub fn parse(text: &str) -> Result<UpdateKey, UpdateError> {
        let text = text.trim();
        let as_box = decode_tauri(text).unwrap_or_else(|| text.to_string());
        let key = if as_box.contains('\n') {
            minisign_verify::PublicKey::decode(as_box.trim())
        } else {
            minisign_verify::PublicKey::from_base64(as_box.trim())
        };
        key.map(UpdateKey).map_err(|e| UpdateError::BadKey(e.to_string()))
    }

    /// Verifies `bytes` against a signature given as Tauri writes it (base64 of the minisign
    /// signature text) or as the signature text itself.
    pub fn verify(&self, what: &str, bytes: &[u8], signature: &str) -> Result<(), UpdateError> {
        let text = decode_tauri(signature.trim()).unwrap_or_else(|| signature.to_string());
        let sig = minisign_verify::Signature::decode(text.trim()).map_err(|e| UpdateError::BadSignature {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
        // Legacy (non-prehashed) signatures are refused: every tool in use writes prehashed ones.
        self.0.verify(bytes, &sig, false).map_err(|e| UpdateError::NotSigned {
            what: what.to_string(),
            reason: e.to_string(),
        })
    }

    /// Checks a channel manifest: its signature, then its JSON, then that it offers a version
    /// newer than `running` for `target`.
    pub fn check_manifest(
        &self,
        manifest: &[u8],
        manifest_sig: &str,
        running: &semver::Version,
        target: &str,
    ) -> Result<Offer, UpdateError> {
        self.verify("manifest", manifest, manifest_sig)?;
        let m: Manifest = serde_json::from_slice(manifest).map_err(|e| UpdateError::BadManifest(e.to_string()))?;
        let version = parse_version(&m.version).map_err(|e| UpdateError::BadManifest(format!("version: {e}")))?;
        if version <= *running {
            return Err(UpdateError::NotNewer { offered: version.to_string(), running: running.to_string() });
        }
        let p = m.platforms.get(target).ok_or_else(|| UpdateError::NoPackage(target.to_string()))?;
        Ok(Offer { version, url: p.url.clone(), signature: p.signature.clone(), notes: m.notes })
    }
}

/// Parses a version as manifests and Debian write it (`0.1.1`, `v0.1.1`).
pub fn parse_version(v: &str) -> Result<semver::Version, semver::Error> {
    semver::Version::parse(v.trim().trim_start_matches('v'))
}

/// Tauri stores keys and signatures as base64 of their text; the text is what minisign reads.
fn decode_tauri(s: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.starts_with("untrusted comment:").then_some(text)
}

#[cfg(test)]
mod tests;
