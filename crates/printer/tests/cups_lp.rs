//! `cups://` printers against a stand-in `lp`/`lpstat` on PATH that record their arguments and
//! stdin: what the transport asks of CUPS (`lp -d QUEUE -o raw`, the bytes untouched on stdin,
//! `lpstat -p QUEUE` to check a queue), and how it reports CUPS refusing a job or not being
//! installed. Runs everywhere; `cups_daemon.rs` delivers through a real cupsd where one can run.
//!
//! One test function: it changes PATH for the whole process (this file is its own test binary).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use till_printer::transport::{check, send};
use till_printer::{Columns, Layout, SendError, Target, Timeouts};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("till-printer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn cups_transport_hands_the_raw_bytes_to_lp_and_reports_its_refusals() {
    let dir = scratch("lp");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("args");
    let data = dir.join("stdin");
    // A CUPS with one queue, `Receipts`: lp records its arguments and its stdin; anything else is
    // refused the way lp refuses it.
    script(
        &bin,
        "lp",
        &format!(
            r#"echo "$@" >> '{log}'
case "$*" in *"-d Receipts "*) cat >> '{data}'; echo "request id is Receipts-1 (1 file(s))" ;;
  *) cat > /dev/null; echo "lp: The printer or class does not exist." >&2; exit 1 ;; esac"#,
            log = log.display(),
            data = data.display()
        ),
    );
    script(&bin, "lpstat", r#"[ "$1 $2" = "-p Receipts" ] && echo "printer Receipts is idle." || exit 1"#);
    let old_path = std::env::var_os("PATH").unwrap_or_default();
    let mut path = std::ffi::OsString::from(&bin);
    path.push(":");
    path.push(&old_path);
    std::env::set_var("PATH", &path);

    let bytes = till_printer::render_test_page(&Layout::new(Columns::new(42).unwrap(), vec![]), "Till Agent", "now").unwrap();
    let queue = Target::parse("cups://Receipts").unwrap();
    check(&queue, Timeouts::default()).expect("the queue exists");
    let state = send(&queue, &bytes, Timeouts::default()).expect("lp accepted the job");
    assert_eq!(state, till_printer::PrinterState::Unknown, "CUPS reports no printer status");
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "-d Receipts -o raw");
    assert_eq!(std::fs::read(&data).unwrap(), bytes, "the bytes reach lp untouched");

    // An unknown queue: refused when saved, and a job for it is not sent (so it is retried).
    let missing = Target::parse("cups://Nope").unwrap();
    let err = check(&missing, Timeouts::default()).unwrap_err();
    assert!(err.to_string().contains("CUPS has no queue `Nope`"), "{err}");
    match send(&missing, &bytes, Timeouts::default()) {
        Err(SendError::NotSent { reason, .. }) => {
            assert!(reason.contains("lp refused the job") && reason.contains("does not exist"), "{reason}")
        }
        other => panic!("expected NotSent, got {other:?}"),
    }

    // No CUPS installed at all: said in words, nothing sent.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::env::set_var("PATH", &empty);
    match send(&queue, &bytes, Timeouts::default()) {
        Err(SendError::NotSent { reason, .. }) => assert!(reason.contains("cannot run lp (is CUPS installed?)"), "{reason}"),
        other => panic!("expected NotSent, got {other:?}"),
    }
    let err = check(&queue, Timeouts::default()).unwrap_err();
    assert!(err.to_string().contains("cannot run lpstat"), "{err}");

    std::env::set_var("PATH", old_path);
    std::fs::remove_dir_all(&dir).unwrap();
}
