//! `cups://` printers through a real CUPS: a private cupsd (its own configuration, spool and
//! socket in a temporary directory, nothing of the system's CUPS used) with one raw queue,
//! `Receipts`, whose backend records every job in a file, as a printer on the other end would.
//! The transport's `lp -d Receipts -o raw` must get the receipt's bytes to the backend unchanged.
//!
//! Needs cupsd and lp (`scripts/setup.sh` installs cups-daemon and cups-client); where cupsd is
//! not installed the test says so and passes without checking anything (`cups_lp.rs` still checks
//! the transport against a stand-in lp). Where cupsd is installed but does not start, it fails.
//!
//! One test function: it sets CUPS_SERVER for the whole process (this file is its own test binary).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use till_printer::transport::{check, send};
use till_printer::{Columns, Layout, Target, Timeouts};

const CUPSD: &str = "/usr/sbin/cupsd";
const CUPS_SERVERBIN: &str = "/usr/lib/cups";

/// The private cupsd; stopped (and its directory removed) when dropped.
struct Cupsd {
    child: Child,
    dir: PathBuf,
}

impl Drop for Cupsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Starts cupsd in `dir` with a queue `Receipts` recording into `out`; the socket path to use as
/// CUPS_SERVER.
fn start(dir: &Path, out: &Path) -> (Cupsd, PathBuf) {
    for sub in ["conf", "cache", "state", "spool", "tmp", "log", "bin/backend"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // cupsd runs filters and backends through its own helpers: the system's, beside our backend.
    std::os::unix::fs::symlink(Path::new(CUPS_SERVERBIN).join("daemon"), dir.join("bin/daemon")).unwrap();
    let backend = dir.join("bin/backend/recorder");
    write(
        &backend,
        "#!/bin/sh\n# CUPS backend: appends each job to the file named by the device URI (recorder:/path).\n\
         [ $# -eq 0 ] && { echo 'direct recorder \"Unknown\" \"Recorder\"'; exit 0; }\n\
         out=\"${DEVICE_URI#recorder:}\"\n\
         if [ -n \"$6\" ]; then cat \"$6\" >> \"$out\"; else cat >> \"$out\"; fi\n",
    );
    // Owner-only: cupsd refuses backends others may change, and runs this one as its owner.
    std::fs::set_permissions(&backend, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = dir.join("cups.sock");
    let d = dir.display();
    write(
        &dir.join("conf/cupsd.conf"),
        &format!(
            "Listen {socket}\nLogLevel info\nWebInterface No\nBrowsing No\nDefaultAuthType None\n\
             <Location />\n  Order allow,deny\n  Allow all\n</Location>\n\
             <Policy default>\n  <Limit All>\n    Order allow,deny\n    Allow all\n  </Limit>\n</Policy>\n",
            socket = socket.display()
        ),
    );
    write(
        &dir.join("conf/cups-files.conf"),
        &format!(
            "ServerRoot {d}/conf\nCacheDir {d}/cache\nStateDir {d}/state\nRequestRoot {d}/spool\nTempDir {d}/tmp\n\
             AccessLog {d}/log/access_log\nErrorLog {d}/log/error_log\nPageLog {d}/log/page_log\n\
             ServerBin {d}/bin\nDataDir /usr/share/cups\n"
        ),
    );
    // A raw queue (no PPD, no filters): the bytes go to the backend as they came.
    write(
        &dir.join("conf/printers.conf"),
        &format!("<Printer Receipts>\nState Idle\nAccepting Yes\nDeviceURI recorder:{}\n</Printer>\n", out.display()),
    );
    let child = Command::new(CUPSD)
        .arg("-f")
        .arg("-c")
        .arg(dir.join("conf/cupsd.conf"))
        .arg("-s")
        .arg(dir.join("conf/cups-files.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cupsd starts");
    (Cupsd { child, dir: dir.to_path_buf() }, socket)
}

fn error_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("log/error_log")).unwrap_or_default()
}

#[test]
fn a_cups_queue_receives_the_receipt_bytes_unchanged() {
    if !Path::new(CUPSD).exists() || Command::new("lp").arg("-h").output().is_err() {
        eprintln!("SKIPPED: cupsd or lp is not installed (scripts/setup.sh installs cups-daemon and cups-client); cups_lp.rs checks the transport against a stand-in lp");
        return;
    }
    let dir = std::env::temp_dir().join(format!("till-printer-cupsd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("printer.bin");
    let (mut cupsd, socket) = start(&dir, &out);
    std::env::set_var("CUPS_SERVER", &socket);

    // Ready when the queue answers (cupsd creates the socket, then loads the printer).
    let queue = Target::parse("cups://Receipts").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while check(&queue, Timeouts::default()).is_err() {
        if let Ok(Some(status)) = cupsd.child.try_wait() {
            panic!("cupsd exited ({status}):\n{}", error_log(&dir));
        }
        assert!(Instant::now() < deadline, "the private cupsd did not answer:\n{}", error_log(&dir));
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = check(&Target::parse("cups://Nope").unwrap(), Timeouts::default()).unwrap_err();
    assert!(err.to_string().contains("CUPS has no queue `Nope`"), "{err}");

    // Two jobs, a test page and a receipt-sized one with every byte value: both arrive, in order,
    // unchanged (no filter, no conversion, nothing added).
    let page = till_printer::render_test_page(&Layout::new(Columns::new(42).unwrap(), vec![]), "Till Agent", "now").unwrap();
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let mut expected = Vec::new();
    for job in [&page, &every_byte] {
        send(&queue, job, Timeouts::default()).expect("CUPS accepted the job");
        expected.extend_from_slice(job);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read(&out).map(|b| b.len()).unwrap_or(0) < expected.len() {
            assert!(Instant::now() < deadline, "the job did not reach the printer:\n{}", error_log(&dir));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let printed = std::fs::read(&out).unwrap();
    assert_eq!(printed, expected, "the printer got exactly the bytes sent");
    let papers = till_printer::decode::papers(&printed[..page.len()]);
    assert!(papers[0].cut && papers[0].text().contains("Printer test"), "{}", papers[0].text());

    // A job for a queue CUPS does not have is refused in lp's words, and not sent.
    let refused = send(&Target::parse("cups://Nope").unwrap(), &page, Timeouts::default()).unwrap_err();
    assert!(refused.to_string().contains("lp refused the job"), "{refused}");
    assert_eq!(std::fs::read(&out).unwrap().len(), expected.len());
    std::env::remove_var("CUPS_SERVER");
}
