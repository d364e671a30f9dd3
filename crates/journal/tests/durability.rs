//! The journal on disk: file settings, permissions, reopening, crashes, concurrent writers.

mod common;

use common::{entity, sale};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use till_core::{Minor, Status};
use till_journal::{Begin, EventSource, Journal, NewOperation, OpKind, Pairing};

const T0: i64 = 1_700_000_000_000;

#[test]
fn file_is_wal_full_sync_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("journal.sqlite3");
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.pragma("journal_mode").unwrap(), "wal");
    assert_eq!(j.pragma("synchronous").unwrap(), "2", "2 = FULL");
    assert_eq!(j.pragma("foreign_keys").unwrap(), "1");
    assert!(j.pragma("busy_timeout").unwrap().parse::<i64>().unwrap() >= 1000);
    assert_eq!(j.pragma("user_version").unwrap(), till_journal::schema_version().to_string(), "migrations ran");
    assert_eq!(j.path(), Some(path.as_path()));

    // Write something so the WAL file exists, then check every file's mode.
    j.set_setting("k", "v").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let p = format!("{}{suffix}", path.display());
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{p} has mode {mode:o}");
        }
    }
}

#[cfg(unix)]
#[test]
fn an_existing_file_with_loose_permissions_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    drop(Journal::open(&path).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _j = Journal::open(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn foreign_keys_are_enforced() {
    let j = Journal::open_in_memory().unwrap();
    assert_eq!(j.pragma("foreign_keys").unwrap(), "1");
    let err = j.enqueue(NewOperation {
        kind: OpKind::Cancel,
        transaction_local_id: Some("missing".into()),
        op_key: "k".into(),
        amount: None,
        payload: json!({}),
        now_ms: T0,
    });
    assert!(err.is_err());
}

#[test]
fn everything_survives_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    {
        let j = Journal::open(&path).unwrap();
        let j2 = j.clone(); // clones share the connection; dropping all closes it
        assert!(matches!(
            j.begin_payment(sale("a", "dev1", Some("o1"), Some("k1"), 700, T0))
                .unwrap(),
            Begin::Started(_)
        ));
        j2.record_created(
            "a",
            "N-1",
            Status::Initialize,
            &entity("N-1", Status::Initialize),
            T0 + 1,
        )
        .unwrap();
        j.apply_status(
            "N-1",
            Status::Approved,
            &entity("N-1", Status::Approved),
            EventSource::Socket,
            T0 + 2,
        )
        .unwrap();
        j.enqueue_refund(
            NewOperation {
                kind: OpKind::Refund,
                transaction_local_id: Some("a".into()),
                op_key: "r1".into(),
                amount: Some(Minor(200)),
                payload: json!({"reason": "test"}),
                now_ms: T0 + 3,
            },
            Minor(700),
        )
        .unwrap();
        assert!(matches!(
            j.begin_payment(sale("b", "dev1", Some("o2"), None, 100, T0 + 4))
                .unwrap(),
            Begin::Started(_)
        ));
        j.set_pairing(&Pairing {
            device_id: "dev1".into(),
            pos_name: "Till 1".into(),
            environment: "sandbox".into(),
            api_base: "http://127.0.0.1:1".into(),
            socket_url: "http://127.0.0.1:2".into(),
            client_box_url: None,
            paired_at: T0,
        })
        .unwrap();
        j.set_setting("pin_hash", "xyz").unwrap();
    }
    let j = Journal::open(&path).unwrap();
    let a = j.by_number("N-1").unwrap().unwrap();
    assert_eq!(a.status, Some(Status::Approved));
    assert_eq!(a.amount, Minor(700));
    assert_eq!(a.order_id.as_deref(), Some("o1"));
    assert_eq!(j.events("a").unwrap().len(), 2);
    assert_eq!(j.refunded_total("a").unwrap(), (Minor(0), Minor(200)));
    assert_eq!(j.due_operations(T0 + 3).unwrap().len(), 1);
    // The open intent is still open (for the reconciler), and the device still busy.
    assert_eq!(
        j.open_payments()
            .unwrap()
            .iter()
            .map(|r| r.local_id.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert!(matches!(
        j.begin_payment(sale("c", "dev1", Some("o3"), None, 100, T0 + 5))
            .unwrap(),
        Begin::Busy(_)
    ));
    // Idempotency survived too.
    assert!(matches!(
        j.begin_payment(sale("d", "dev2", Some("o1"), None, 100, T0 + 5))
            .unwrap(),
        Begin::Existing(_)
    ));
    assert_eq!(j.pairing().unwrap().unwrap().pos_name, "Till 1");
    assert_eq!(j.setting("pin_hash").unwrap().as_deref(), Some("xyz"));
    assert_eq!(j.last(Some("dev1")).unwrap().unwrap().local_id, "b");
}

/// Child side of `killed_writer_loses_nothing_it_reported`: writes payments forever, printing
/// each local ID only after its commit returned.
#[test]
#[ignore = "helper process for killed_writer_loses_nothing_it_reported"]
fn child_writer() {
    let Ok(path) = std::env::var("TILL_JOURNAL_CHILD_PATH") else {
        return;
    };
    let j = Journal::open(path).unwrap();
    for i in 0.. {
        let id = format!("p{i}");
        let mut p = sale(
            &id,
            &format!("dev{i}"),
            Some(&format!("o{i}")),
            None,
            100 + i,
            T0 + i,
        );
        p.request_json = json!({"i": i});
        j.begin_payment(p).unwrap();
        j.record_created(
            &id,
            &format!("N{i}"),
            Status::Initialize,
            &json!({}),
            T0 + i,
        )
        .unwrap();
        println!("{id}");
    }
}

#[test]
fn killed_writer_loses_nothing_it_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TILL_JOURNAL_CHILD_PATH", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reported = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while reported.len() < 50 {
        let line = lines.next().unwrap().unwrap();
        if line.starts_with('p') {
            reported.push(line);
        }
    }
    // SIGKILL on unix: no destructors, no flush, like `kill -9`.
    child.kill().unwrap();
    child.wait().unwrap();
    // Anything printed after our last read was committed too; read what is left.
    for line in lines.map_while(Result::ok) {
        if line.starts_with('p') {
            reported.push(line);
        }
    }

    let j = Journal::open(&path).unwrap();
    for id in &reported {
        let rec = j
            .by_local_id(id)
            .unwrap()
            .unwrap_or_else(|| panic!("{id} lost"));
        assert_eq!(rec.status, Some(Status::Initialize), "{id}");
    }
    // At most one payment may be half-done (begun, create not recorded): it is an open intent.
    let intents: Vec<_> = j
        .open_payments()
        .unwrap()
        .into_iter()
        .filter(|r| r.number.is_none())
        .collect();
    assert!(intents.len() <= 1, "{intents:?}");
}

#[test]
fn concurrent_begin_for_one_order_starts_exactly_one_payment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    Journal::open(&path).unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let j = Journal::open(&path).unwrap(); // one connection per thread
                barrier.wait();
                let mut started = 0;
                for i in 0..25 {
                    // Different devices so only idempotency (not busy) decides.
                    let p = sale(
                        &format!("t{t}-{i}"),
                        &format!("dev{t}"),
                        Some(&format!("order-{i}")),
                        None,
                        100,
                        T0 + i,
                    );
                    if let Begin::Started(r) = j.begin_payment(p).unwrap() {
                        started += 1;
                        j.record_created(
                            &r.local_id,
                            &format!("N-{i}"),
                            Status::Approved,
                            &json!({}),
                            T0 + i,
                        )
                        .unwrap();
                    }
                }
                started
            })
        })
        .collect();
    let total: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 25, "each order started exactly once");
    let j = Journal::open(&path).unwrap();
    for i in 0..25 {
        assert_eq!(j.all_by_order_id(&format!("order-{i}")).unwrap().len(), 1);
    }
}

#[test]
fn many_processes_opening_a_new_file_at_once_all_succeed() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite3");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Journal::open(&path).map(|j| j.pragma("user_version").unwrap())
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().unwrap(), till_journal::schema_version().to_string());
        }
    }
}
