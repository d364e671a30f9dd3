//! `till-release`: the project's release signing tool.
//!
//! ```text
//! till-release keygen --out-dir DIR            # DIR/till-update.key (secret), DIR/till-update.pub
//! till-release sign --key FILE PATH...         # PATH.sig for each (base64, as Tauri writes them)
//! till-release manifest --key FILE --channel stable --version 0.2.0 --out-dir DIR \
//!     --package linux-x86_64-headless-deb=target/packages/till-agent_0.2.0_amd64.deb=https://updates.example/till-agent_0.2.0_amd64.deb
//! ```
//!
//! The secret key's password, when it has one, comes from `TILL_SIGNING_KEY_PASSWORD` (the name
//! Tauri uses is `TAURI_SIGNING_PRIVATE_KEY_PASSWORD`; both are read).
#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use till_updater::signing::{generate, Signer};
use till_updater::{Manifest, Platform};

#[derive(Parser)]
#[command(name = "till-release", about = "Keys, signatures and update manifests of Till Agent releases")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a key pair (encrypted when a password is in the environment).
    Keygen {
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Sign files: writes FILE.sig next to each.
    Sign {
        #[arg(long)]
        key: PathBuf,
        files: Vec<PathBuf>,
    },
    /// Write CHANNEL.json and CHANNEL.json.sig for a release.
    Manifest {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        channel: String,
        #[arg(long)]
        version: String,
        #[arg(long, default_value = "")]
        notes: String,
        #[arg(long)]
        out_dir: PathBuf,
        /// TARGET=FILE=URL, repeated.
        #[arg(long = "package")]
        packages: Vec<String>,
    },
}

fn password() -> Option<String> {
    std::env::var("TILL_SIGNING_KEY_PASSWORD")
        .or_else(|_| std::env::var("TAURI_SIGNING_PRIVATE_KEY_PASSWORD"))
        .ok()
        .filter(|p| !p.is_empty())
}

fn signer(key: &Path) -> Result<Signer> {
    let text = std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
    Ok(Signer::new(&text, password())?)
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Keygen { out_dir } => {
            std::fs::create_dir_all(&out_dir)?;
            let key = generate(password())?;
            let secret = out_dir.join("till-update.key");
            write_private(&secret, &key.secret)?;
            std::fs::write(out_dir.join("till-update.pub"), &key.public)?;
            println!("{}", key.public);
        }
        Command::Sign { key, files } => {
            let s = signer(&key)?;
            for f in files {
                let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
                let sig = s.sign(&file_name(&f), &bytes)?;
                std::fs::write(format!("{}.sig", f.display()), sig)?;
            }
        }
        Command::Manifest { key, channel, version, notes, out_dir, packages } => {
            if !channel.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || channel.is_empty() {
                bail!("channel `{channel}`: letters, digits and '-' only");
            }
            till_updater::parse_version(&version).context("--version")?;
            let s = signer(&key)?;
            let mut platforms = BTreeMap::new();
            for p in packages {
                let mut parts = p.splitn(3, '=');
                let (Some(target), Some(file), Some(url)) = (parts.next(), parts.next(), parts.next()) else {
                    bail!("--package {p}: expected TARGET=FILE=URL");
                };
                let file = Path::new(file);
                let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                let signature = s.sign(&file_name(file), &bytes)?;
                std::fs::write(format!("{}.sig", file.display()), &signature)?;
                platforms.insert(target.to_string(), Platform { url: url.to_string(), signature });
            }
            let pub_date = std::process::Command::new("date")
                .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_string());
            let manifest = Manifest { version, notes, pub_date, platforms };
            let bytes = serde_json::to_vec_pretty(&manifest)?;
            std::fs::create_dir_all(&out_dir)?;
            let path = out_dir.join(format!("{channel}.json"));
            std::fs::write(&path, &bytes)?;
            std::fs::write(out_dir.join(format!("{channel}.json.sig")), s.sign(&file_name(&path), &bytes)?)?;
            println!("{}", path.display());
        }
    }
    Ok(())
}

/// The secret key is written readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
