//! The headless package and its signed automatic update, end to end on loopback.
//!
//! Version N (0.1.0) of the real `.deb` is installed with dpkg into a temporary root
//! (`--root`, the package's scripts run chrootless) and its `till-agent` runs from there, paired
//! with the sandbox. A static HTTPS server (Python's, with a test CA) serves the `stable` channel.
//! Refused, with the agent untouched: a manifest signed with another key, a package swapped under
//! a correctly signed manifest, and a manifest offering an older version. Then a manifest offers
//! N+1 (0.1.1) signed with the test key while a payment is open: the agent waits, the payment
//! ends, the agent installs the package with dpkg and restarts in place, and the journal (the same
//! last transaction) and the pairing are still there.
//!
//! Needs root (dpkg, chown in the package's scripts), dpkg-deb, openssl and python3; CI has them.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use till_sandbox::SandboxConfig;
use till_updater::signing::{generate, Signer};

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

/// Builds the headless package of `version` from the debug binary.
fn package(version: &str, out: &Path) -> Result<PathBuf> {
    let bin = till_tests::bin_path("till-agent")?;
    run(Command::new("bash")
        .arg(repo().join("scripts/package.sh"))
        .args(["--headless-only", "--fast", "--version", version, "--binary"])
        .arg(&bin)
        .arg("--out")
        .arg(out))?;
    Ok(out.join(format!("till-agent_{version}_amd64.deb")))
}

/// A CA and a certificate for 127.0.0.1 signed by it (rustls refuses a CA as a server's own).
fn certificates(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let (ca_key, ca, key, csr, cert, ext) =
        ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem", "ext.cnf");
    std::fs::write(dir.join(ext), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")?;
    let ossl = |args: &[&str]| run(Command::new("openssl").current_dir(dir).args(args));
    ossl(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
        "-subj", "/CN=Till test CA", "-keyout", ca_key, "-out", ca])?;
    ossl(&["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr])?;
    ossl(&["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
        "-extfile", ext, "-out", cert])?;
    Ok((dir.join(ca), dir.join(cert), dir.join(key)))
}

/// Python's static file server over TLS on a free loopback port.
struct Https {
    child: Child,
    port: u16,
}

impl Drop for Https {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn https_server(www: &Path, cert: &Path, key: &Path) -> Result<Https> {
    let script = r#"
import functools, http.server, ssl, sys
d, cert, key = sys.argv[1:4]
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=d))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(www)
        .arg(cert)
        .arg(key)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let port = line.trim().parse().with_context(|| format!("server said {line:?}"))?;
    Ok(Https { child, port })
}

/// The agent child; its stdout lines (one "listening on" per start) arrive on `lines`.
struct Agent {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    /// Waits for the next "listening on" line and returns the base URL.
    fn next_url(&self, secs: u64) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).context("no `listening on` line from the agent")?;
            if let Some(url) = line.trim().strip_prefix("till-agent listening on ") {
                return Ok(url.to_string());
            }
        }
    }
}

async fn health(http: &reqwest::Client, url: &str) -> Result<Value> {
    Ok(http.get(format!("{url}/api/agent/health")).send().await?.json().await?)
}

/// Polls health until `pred` holds.
async fn until(http: &reqwest::Client, url: &str, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let h = health(http, url).await.unwrap_or_default();
        if pred(&h) {
            return Ok(h);
        }
        if Instant::now() > deadline {
            bail!("{what}: not reached; health: {h}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes `stable.json` offering `version` with `file` under `name`, the manifest signed by
/// `manifest_key` and the file's signature made over `signed_bytes`.
#[allow(clippy::too_many_arguments)]
fn publish(www: &Path, port: u16, version: &str, name: &str, file: &Path, signed_bytes: &[u8], file_key: &Signer, manifest_key: &Signer) -> Result<()> {
    std::fs::copy(file, www.join(name))?;
    let manifest = serde_json::to_vec_pretty(&json!({
        "version": version,
        "notes": "test release",
        "platforms": { till_updater::headless_target(): {
            "url": format!("https://127.0.0.1:{port}/{name}"),
            "signature": file_key.sign(name, signed_bytes)?,
        }}
    }))?;
    // The signature first: an agent reading in between sees an old signature and refuses once.
    std::fs::write(www.join("stable.json.sig"), manifest_key.sign("stable.json", &manifest)?)?;
    std::fs::write(www.join("stable.json"), &manifest)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_update_waits_for_the_payment_installs_restarts_and_keeps_the_journal() -> Result<()> {
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m))?;
    if uid != 0 {
        // dpkg and the package's scripts (chown, setpriv) need root; CI runs as root.
        eprintln!("SKIPPED: the update end-to-end test needs root");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("root");
    let (pkgs, www, certs) = (tmp.path().join("pkgs"), tmp.path().join("www"), tmp.path().join("certs"));
    for d in [&pkgs, &www, &certs, &root.join("var/lib/dpkg/info"), &root.join("var/lib/dpkg/updates"), &root.join("etc")] {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "")?;
    // The package's service user must be able to reach the root's files.
    run(Command::new("chmod").arg("755").arg(tmp.path()).arg(&root))?;
    let deb_n = package("0.1.0", &pkgs)?;
    let deb_n1 = package("0.1.1", &pkgs)?;
    let deb_n1_bytes = std::fs::read(&deb_n1)?;
    // dpkg looks for ldconfig and start-stop-daemon on PATH, which a non-login PATH may lack.
    let dpkg: Vec<String> = vec![
        "env".into(),
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "dpkg".into(),
        format!("--root={}", root.display()),
        "--force-script-chrootless".into(),
        "--force-depends".into(),
        "--force-confold".into(),
        "--log=/dev/null".into(),
        "-i".into(),
    ];
    run(Command::new(&dpkg[0]).args(&dpkg[1..]).arg(&deb_n))?;

    let key = generate(None)?;
    let signer = Signer::new(&key.secret, None)?;
    let other = Signer::new(&generate(None)?.secret, None)?;
    let (ca, cert, cert_key) = certificates(&certs)?;
    let server = https_server(&www, &cert, &cert_key)?;
    let port = server.port;

    // The agent runs as root from the installed package, with its own data directory: in
    // `apply = "command"` mode it installs with dpkg itself and restarts in place.
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data)?;
    let mut install: Vec<String> = dpkg.clone();
    install.push("{file}".into());
    let config = root.join("etc/till-agent/config.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[update]\nmanifest_url = \"https://127.0.0.1:{port}/\"\nchannel = \"stable\"\n\
             check_interval_secs = 1\npublic_key = {pubkey:?}\nca_file = {ca:?}\napply = \"command\"\n\
             install_command = {install:?}\n",
            data = data.display().to_string(),
            pubkey = key.public,
            ca = ca.display().to_string(),
        ),
    )?;
    let sandbox = till_sandbox::start(SandboxConfig::default()).await.map_err(|e| anyhow::anyhow!("sandbox: {e}"))?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let device: Value = http
        .post(format!("{}/devices", sandbox.control_url()))
        .json(&json!({ "posName": "Update till" }))
        .send()
        .await?
        .json()
        .await?;
    let device_id = device["deviceAliasKey"].as_str().context("device id")?.to_string();
    let agent_bin = root.join("usr/bin/till-agent");
    let common = |c: &mut Command| {
        c.arg("--config").arg(&config).args(["--sensepass-url", &sandbox.api_base(), "--socket-url", &sandbox.socket_url()]);
    };
    let mut pair = Command::new(&agent_bin);
    pair.args(["pair", "--device-id", &device_id]);
    common(&mut pair);
    run(&mut pair)?;

    let mut cmd = Command::new(&agent_bin);
    cmd.args(["run", "--listen", "127.0.0.1:0"]);
    common(&mut cmd);
    let log = std::fs::File::create(tmp.path().join("agent.log"))?;
    let mut child = cmd.stdout(Stdio::piped()).stderr(log).spawn()?;
    let pid = child.id();
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().context("stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let agent = Agent { child, lines };
    let url = agent.next_url(60)?;
    let h = until(&http, &url, 30, "agent up", |h| h["update"]["state"] == "up_to_date" || h["update"]["state"] == "failed").await?;
    assert_eq!(h["version"], "0.1.0", "{h}");
    assert_eq!(h["update"]["version"], "0.1.0");
    assert_eq!(h["update"]["channel"], "stable");

    // A paid transaction: the journal's last one, to find again after the update.
    let body = |order: &str| json!({ "amount": 1250, "isCent": true, "currency": "USD", "timeOut": 600, "posData": { "orderId": order } });
    let created: Value = http.post(format!("{url}/api/transactions/init")).json(&body("U-1")).send().await?.json().await?;
    let paid = created["TransactionNumber"].as_str().context("number")?.to_string();
    http.post(format!("{}/transactions/{paid}/pay", sandbox.control_url()))
        .json(&json!({ "card": "4111111111111111" }))
        .send()
        .await?
        .error_for_status()?;
    until(&http, &url, 20, "payment approved", |h| h["openTransactions"] == 0 && h["queuedOperations"] == 0).await?;

    // Refused 1: a manifest signed with another key.
    publish(&www, port, "0.1.1", "till-agent_0.1.1_amd64.deb", &deb_n1, &deb_n1_bytes, &signer, &other)?;
    let h = until(&http, &url, 20, "other key refused", |h| {
        h["update"]["lastError"].as_str().is_some_and(|e| e.contains("manifest signature does not verify"))
    })
    .await?;
    assert_eq!(h["update"]["state"], "refused", "{h}");
    // Refused 2: the manifest verifies, but the file under its URL is another one (N's package).
    publish(&www, port, "0.1.1", "till-agent_0.1.1_amd64.deb", &deb_n, &deb_n1_bytes, &signer, &signer)?;
    until(&http, &url, 20, "swapped file refused", |h| {
        h["update"]["lastError"].as_str().is_some_and(|e| e.contains("till-agent_0.1.1.deb signature does not verify"))
    })
    .await?;
    // Refused 3: a correctly signed manifest offering an older version.
    publish(&www, port, "0.0.9", "till-agent_0.0.9_amd64.deb", &deb_n, &std::fs::read(&deb_n)?, &signer, &signer)?;
    until(&http, &url, 20, "downgrade refused", |h| {
        h["update"]["lastError"].as_str().is_some_and(|e| e.contains("not newer than the running 0.1.0"))
    })
    .await?;
    let h = health(&http, &url).await?;
    assert_eq!(h["version"], "0.1.0", "nothing was installed: {h}");
    assert_eq!(run(Command::new("dpkg-query").arg(format!("--admindir={}/var/lib/dpkg", root.display())).args(["-W", "-f", "${Version}", "till-agent"]))?, "0.1.0");

    // An open payment, then the real update: the agent must wait for it.
    let open: Value = http.post(format!("{url}/api/transactions/init")).json(&body("U-2")).send().await?.json().await?;
    let open_number = open["TransactionNumber"].as_str().context("number")?.to_string();
    publish(&www, port, "0.1.1", "till-agent_0.1.1_amd64.deb", &deb_n1, &deb_n1_bytes, &signer, &signer)?;
    until(&http, &url, 30, "waiting for the payment", |h| h["update"]["state"] == "waiting_for_idle").await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let h = health(&http, &url).await?;
    assert_eq!(h["update"]["state"], "waiting_for_idle", "must not install during a payment: {h}");
    assert_eq!(h["update"]["offered"], "0.1.1");
    assert_eq!(h["version"], "0.1.0");
    // The customer pays; the payment ends; now the update installs and the agent restarts.
    http.post(format!("{}/transactions/{open_number}/pay", sandbox.control_url()))
        .json(&json!({ "card": "4111111111111111" }))
        .send()
        .await?
        .error_for_status()?;
    let last_before: Value = {
        until(&http, &url, 20, "second payment approved", |h| h["openTransactions"] == 0).await?;
        http.get(format!("{url}/api/transactions/last")).send().await?.json().await?
    };
    let new_url = agent.next_url(120)?;
    let h = until(&http, &new_url, 30, "restarted on 0.1.1", |h| h["version"] == "0.1.1").await?;
    // Health without a credential shows only the device ID's end (it is a SensePass credential).
    let tail: String = device_id.chars().skip(device_id.chars().count().saturating_sub(4)).collect();
    assert_eq!(h["deviceId"], format!("•••• {tail}").as_str(), "pairing survives: {h}");
    assert_eq!(h["deviceIdMasked"], true);
    assert_eq!(h["update"]["channel"], "stable");
    let last_after: Value = http.get(format!("{new_url}/api/transactions/last")).send().await?.json().await?;
    assert_eq!(last_after["TransactionNumber"], last_before["TransactionNumber"], "journal survives");
    assert_eq!(last_after["TransactionNumber"], open_number.as_str());
    assert_eq!(last_after["status"], 5);
    let first: Value = http.get(format!("{new_url}/api/agent/transactions/{paid}")).send().await?.json().await?;
    assert_eq!(first["status"], 5, "the earlier payment is still in the journal: {first}");
    assert_eq!(run(Command::new("dpkg-query").arg(format!("--admindir={}/var/lib/dpkg", root.display())).args(["-W", "-f", "${Version}", "till-agent"]))?, "0.1.1");
    // Restarted in place: the same process id, a new program.
    assert_eq!(agent.child.id(), pid);
    let _ = sandbox;
    Ok(())
}
