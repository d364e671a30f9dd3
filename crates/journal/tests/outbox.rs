//! The outbox: refund cap (sequential and concurrent), idempotent enqueue, delivery states.

mod common;

use common::{entity, journal, sale};
use serde_json::json;
use std::sync::{Arc, Barrier};
use till_core::{Minor, Status};
use till_journal::{EventSource, Journal, JournalError, NewOperation, OpKind, OpState};

const T0: i64 = 1_700_000_000_000;

/// An approved payment `local_id` of `amount` cents.
fn approved(j: &Journal, local_id: &str, amount: i64) {
    j.begin_payment(sale(
        local_id,
        &format!("dev-{local_id}"),
        None,
        None,
        amount,
        T0,
    ))
    .unwrap();
    let number = format!("N-{local_id}");
    j.record_created(
        local_id,
        &number,
        Status::Initialize,
        &entity(&number, Status::Initialize),
        T0,
    )
    .unwrap();
    j.apply_status(
        &number,
        Status::Approved,
        &entity(&number, Status::Approved),
        EventSource::Socket,
        T0,
    )
    .unwrap();
}

fn refund(local_id: &str, key: &str, amount: Option<i64>, now: i64) -> NewOperation {
    NewOperation {
        kind: OpKind::Refund,
        transaction_local_id: Some(local_id.into()),
        op_key: key.into(),
        amount: amount.map(Minor),
        payload: json!({"isPartial": true}),
        now_ms: now,
    }
}

#[test]
fn refund_cap_counts_delivered_and_queued() {
    let (_d, j) = journal();
    approved(&j, "a", 1000);
    let cap = Minor(1000);

    let r1 = j
        .enqueue_refund(refund("a", "r1", Some(400), T0), cap)
        .unwrap();
    assert_eq!(r1.state, OpState::Pending);
    assert_eq!(r1.amount, Some(Minor(400)));
    assert_eq!(r1.transaction_local_id.as_deref(), Some("a"));
    // Queued refunds count: 400 queued + 700 > 1000.
    match j.enqueue_refund(refund("a", "r2", Some(700), T0), cap) {
        Err(JournalError::RefundCapExceeded { remaining }) => assert_eq!(remaining, Minor(600)),
        other => panic!("{other:?}"),
    }
    // Same key again: the existing operation, not a second refund (even with another amount).
    let again = j
        .enqueue_refund(refund("a", "r1", Some(999), T0 + 1), cap)
        .unwrap();
    assert_eq!(again.id, r1.id);
    assert_eq!(again.amount, Some(Minor(400)));

    // Delivered refunds count.
    j.mark_in_flight(r1.id, T0 + 2).unwrap();
    j.mark_delivered(r1.id, &json!({"result": "Approved"}), T0 + 3)
        .unwrap();
    assert_eq!(j.refunded_total("a").unwrap(), (Minor(400), Minor(0)));
    let r2 = j
        .enqueue_refund(refund("a", "r2", Some(500), T0 + 4), cap)
        .unwrap();
    assert_eq!(j.refunded_total("a").unwrap(), (Minor(400), Minor(500)));
    match j.enqueue_refund(refund("a", "r3", Some(101), T0 + 5), cap) {
        Err(JournalError::RefundCapExceeded { remaining }) => assert_eq!(remaining, Minor(100)),
        other => panic!("{other:?}"),
    }
    // A failed (declined) refund frees its amount again.
    j.mark_in_flight(r2.id, T0 + 6).unwrap();
    j.mark_failed(r2.id, "refund operation declined by Processor", T0 + 7)
        .unwrap();
    assert_eq!(j.refunded_total("a").unwrap(), (Minor(400), Minor(0)));
    // No amount = everything that remains.
    let rest = j
        .enqueue_refund(refund("a", "r4", None, T0 + 8), cap)
        .unwrap();
    assert_eq!(rest.amount, Some(Minor(600)));
    match j.enqueue_refund(refund("a", "r5", None, T0 + 9), cap) {
        Err(JournalError::RefundCapExceeded { remaining }) => assert_eq!(remaining, Minor(0)),
        other => panic!("{other:?}"),
    }
    // Invalid refunds change nothing.
    assert!(matches!(
        j.enqueue_refund(refund("a", "r6", Some(0), T0), cap),
        Err(JournalError::InvalidOperation(_))
    ));
    assert!(matches!(
        j.enqueue_refund(refund("a", "r6", Some(-5), T0), cap),
        Err(JournalError::InvalidOperation(_))
    ));
    let mut no_tx = refund("a", "r6", Some(1), T0);
    no_tx.transaction_local_id = None;
    assert!(matches!(
        j.enqueue_refund(no_tx, cap),
        Err(JournalError::InvalidOperation(_))
    ));
    let mut wrong_kind = refund("a", "r6", Some(1), T0);
    wrong_kind.kind = OpKind::Credit;
    assert!(matches!(
        j.enqueue_refund(wrong_kind, cap),
        Err(JournalError::InvalidOperation(_))
    ));
    assert!(matches!(
        j.enqueue_refund(refund("zz", "r6", Some(1), T0), cap),
        Err(JournalError::NotFound { .. })
    ));
    assert!(j.operation_by_key("r6").unwrap().is_none());
    assert_eq!(j.operations_for("a").unwrap().len(), 3);
}

#[test]
fn refund_caps_are_per_payment() {
    let (_d, j) = journal();
    approved(&j, "a", 100);
    approved(&j, "b", 100);
    j.enqueue_refund(refund("a", "ra", Some(100), T0), Minor(100))
        .unwrap();
    j.enqueue_refund(refund("b", "rb", Some(100), T0), Minor(100))
        .unwrap();
    assert_eq!(j.refunded_total("a").unwrap(), (Minor(0), Minor(100)));
}

/// Two threads, each with its own `Journal` (its own SQLite connection) on the same file, race to
/// queue refunds of one payment. The cap must hold: never more than captured in total.
#[test]
fn concurrent_refunds_never_exceed_the_captured_amount() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    let captured = Minor(10_000);
    approved(&Journal::open(&path).unwrap(), "a", captured.0);

    for round in 0..3 {
        // Fresh payment per round so each race starts from zero.
        let local = format!("p{round}");
        approved(&Journal::open(&path).unwrap(), &local, captured.0);
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let (path, barrier, local) = (path.clone(), barrier.clone(), local.clone());
                std::thread::spawn(move || {
                    let j = Journal::open(&path).unwrap();
                    barrier.wait();
                    let mut accepted = Minor::ZERO;
                    // 40 × 300 = 12_000 per thread: together far more than captured.
                    for i in 0..40 {
                        match j.enqueue_refund(
                            refund(&local, &format!("{local}-t{t}-{i}"), Some(300), T0 + i),
                            captured,
                        ) {
                            Ok(op) => accepted = accepted.checked_add(op.amount.unwrap()).unwrap(),
                            Err(JournalError::RefundCapExceeded { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    accepted
                })
            })
            .collect();
        let accepted: Vec<Minor> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let total = Minor::checked_sum(accepted.iter().copied()).unwrap();
        assert!(
            total <= captured,
            "round {round}: accepted {total} > {captured}"
        );
        // 10_000 / 300 = 33 refunds fit; both threads together must have filled it exactly.
        assert_eq!(total, Minor(9_900), "round {round}: {accepted:?}");
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.refunded_total(&local).unwrap(), (Minor(0), Minor(9_900)));
    }
}

#[test]
fn outbox_state_machine() {
    let (_d, j) = journal();
    approved(&j, "a", 1000);
    let commit = j
        .enqueue(NewOperation {
            kind: OpKind::Commit,
            transaction_local_id: Some("a".into()),
            op_key: "commit:N-a".into(),
            amount: None,
            payload: json!({"commitLink": "http://127.0.0.1/commit"}),
            now_ms: T0,
        })
        .unwrap();
    assert_eq!(
        (commit.state, commit.attempts, commit.next_at),
        (OpState::Pending, 0, T0)
    );
    // Enqueue is idempotent by key.
    let dup = j
        .enqueue(NewOperation {
            kind: OpKind::Commit,
            transaction_local_id: Some("a".into()),
            op_key: "commit:N-a".into(),
            amount: None,
            payload: json!({}),
            now_ms: T0 + 5,
        })
        .unwrap();
    assert_eq!(dup, commit);
    let credit = j
        .enqueue(NewOperation {
            kind: OpKind::Credit,
            transaction_local_id: None,
            op_key: "credit-1".into(),
            amount: Some(Minor(250)),
            payload: json!({}),
            now_ms: T0 + 1,
        })
        .unwrap();
    assert_eq!(credit.transaction_local_id, None);
    assert!(matches!(
        j.enqueue(NewOperation {
            kind: OpKind::Credit,
            transaction_local_id: None,
            op_key: "credit-neg".into(),
            amount: Some(Minor(-1)),
            payload: json!({}),
            now_ms: T0,
        }),
        Err(JournalError::InvalidOperation(_))
    ));

    // Due order: by next_at.
    assert!(j.due_operations(T0 - 1).unwrap().is_empty());
    assert_eq!(
        j.due_operations(T0)
            .unwrap()
            .iter()
            .map(|o| o.id)
            .collect::<Vec<_>>(),
        [commit.id]
    );
    assert_eq!(
        j.due_operations(T0 + 1)
            .unwrap()
            .iter()
            .map(|o| o.id)
            .collect::<Vec<_>>(),
        [commit.id, credit.id]
    );

    // Claim; a second claim fails (two senders never send the same operation).
    let c = j.mark_in_flight(commit.id, T0 + 2).unwrap();
    assert_eq!((c.state, c.attempts), (OpState::InFlight, 1));
    assert!(matches!(
        j.mark_in_flight(commit.id, T0 + 2),
        Err(JournalError::InvalidOpState {
            state: OpState::InFlight,
            ..
        })
    ));
    assert!(!j
        .due_operations(T0 + 100)
        .unwrap()
        .iter()
        .any(|o| o.id == commit.id));

    // Transient failure: back to pending later, with the error visible.
    let c = j
        .reschedule(commit.id, c.attempts, T0 + 1000, "connection refused")
        .unwrap();
    assert_eq!(
        (c.state, c.attempts, c.next_at),
        (OpState::Pending, 1, T0 + 1000)
    );
    assert_eq!(c.last_error.as_deref(), Some("connection refused"));
    assert!(!j
        .due_operations(T0 + 999)
        .unwrap()
        .iter()
        .any(|o| o.id == commit.id));
    assert!(j
        .due_operations(T0 + 1000)
        .unwrap()
        .iter()
        .any(|o| o.id == commit.id));

    let c = j.mark_in_flight(commit.id, T0 + 1000).unwrap();
    assert_eq!(c.attempts, 2);
    let c = j
        .mark_delivered(commit.id, &json!({"isPaymentCommitted": true}), T0 + 1001)
        .unwrap();
    assert_eq!(c.state, OpState::Delivered);
    assert_eq!(c.finished_at, Some(T0 + 1001));
    assert_eq!(c.result, Some(json!({"isPaymentCommitted": true})));
    // Delivered is final: redelivery is harmless, failure and reschedule are refused.
    assert_eq!(
        j.mark_delivered(commit.id, &json!({}), T0 + 2000)
            .unwrap()
            .finished_at,
        Some(T0 + 1001)
    );
    assert!(matches!(
        j.mark_failed(commit.id, "x", T0),
        Err(JournalError::InvalidOpState { .. })
    ));
    assert!(matches!(
        j.reschedule(commit.id, 3, T0, "x"),
        Err(JournalError::InvalidOpState { .. })
    ));
    assert!(matches!(
        j.mark_in_flight(commit.id, T0),
        Err(JournalError::InvalidOpState { .. })
    ));

    // Permanent failure straight from pending; failed is final.
    let f = j
        .mark_failed(credit.id, "401 unauthorized", T0 + 3)
        .unwrap();
    assert_eq!(
        (f.state, f.last_error.as_deref()),
        (OpState::Failed, Some("401 unauthorized"))
    );
    assert!(matches!(
        j.mark_delivered(credit.id, &json!({}), T0),
        Err(JournalError::InvalidOpState { .. })
    ));
    assert!(matches!(
        j.mark_in_flight(credit.id, T0),
        Err(JournalError::InvalidOpState { .. })
    ));
    assert_eq!(
        j.mark_failed(credit.id, "again", T0 + 9)
            .unwrap()
            .last_error
            .as_deref(),
        Some("401 unauthorized")
    );
    assert!(j.due_operations(i64::MAX).unwrap().is_empty());

    // Listings.
    assert_eq!(
        j.operations(None, 10, 0)
            .unwrap()
            .iter()
            .map(|o| o.id)
            .collect::<Vec<_>>(),
        [credit.id, commit.id]
    );
    assert_eq!(j.operations(Some(OpState::Failed), 10, 0).unwrap().len(), 1);
    assert_eq!(
        j.operations(Some(OpState::Pending), 10, 0).unwrap().len(),
        0
    );
    assert_eq!(j.operations(None, 1, 1).unwrap()[0].id, commit.id);
    assert!(matches!(
        j.mark_delivered(999, &json!({}), T0),
        Err(JournalError::NotFound { .. })
    ));
    let counts = j.counts().unwrap();
    assert_eq!(
        (
            counts.pending_operations,
            counts.in_flight_operations,
            counts.failed_operations
        ),
        (0, 0, 1)
    );
}

#[test]
fn interrupted_sends_stay_in_flight_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    let id = {
        let j = Journal::open(&path).unwrap();
        approved(&j, "a", 500);
        let op = j
            .enqueue_refund(refund("a", "r1", Some(500), T0), Minor(500))
            .unwrap();
        j.mark_in_flight(op.id, T0 + 1).unwrap();
        op.id
    };
    let j = Journal::open(&path).unwrap();
    let in_flight = j.operations(Some(OpState::InFlight), 10, 0).unwrap();
    assert_eq!(in_flight.iter().map(|o| o.id).collect::<Vec<_>>(), [id]);
    assert_eq!(j.counts().unwrap().in_flight_operations, 1);
    // Still counted against the cap while its fate is unknown.
    assert!(matches!(
        j.enqueue_refund(refund("a", "r2", Some(1), T0 + 2), Minor(500)),
        Err(JournalError::RefundCapExceeded { .. })
    ));
}

/// The console's outbox actions: the payment's order id and number on every row, "retry now",
/// "dismiss" only for what certainly did not happen, and a last error that clears on delivery.
#[test]
fn console_retry_dismiss_and_cleared_errors() {
    let (_d, j) = journal();
    j.begin_payment(sale("p", "dev-p", Some("ORDER-9"), None, 1000, T0)).unwrap();
    j.record_created("p", "N-p", Status::Initialize, &entity("N-p", Status::Initialize), T0).unwrap();
    j.apply_status("N-p", Status::Approved, &entity("N-p", Status::Approved), EventSource::Socket, T0).unwrap();
    let op = |kind: OpKind, key: &str| NewOperation {
        kind,
        transaction_local_id: Some("p".into()),
        op_key: key.into(),
        amount: None,
        payload: json!({}),
        now_ms: T0,
    };
    let commit = j.enqueue(op(OpKind::Commit, "c")).unwrap();
    assert_eq!(commit.order_id.as_deref(), Some("ORDER-9"));
    assert_eq!(commit.transaction_number.as_deref(), Some("N-p"));

    // A pending operation waiting out its back-off is due at once after "retry now".
    j.mark_in_flight(commit.id, T0).unwrap();
    j.reschedule(commit.id, 1, T0 + 60_000, "unreachable: connection refused").unwrap();
    assert!(j.due_operations(T0 + 10).unwrap().is_empty());
    let retried = j.retry_operation(commit.id, T0 + 10).unwrap();
    assert_eq!((retried.state, retried.next_at), (OpState::Pending, T0 + 10));
    assert_eq!(retried.last_error.as_deref(), Some("unreachable: connection refused"));
    assert_eq!(j.due_operations(T0 + 10).unwrap().len(), 1);
    // A pending one cannot be dismissed: it may still happen.
    assert!(matches!(j.dismiss_operation(commit.id, T0), Err(JournalError::InvalidOpState { .. })));
    // Delivered: the old error is cleared.
    j.mark_in_flight(commit.id, T0 + 11).unwrap();
    let done = j.mark_delivered(commit.id, &json!({"ok": true}), T0 + 12).unwrap();
    assert_eq!(done.last_error, None);
    assert!(matches!(j.retry_operation(commit.id, T0), Err(JournalError::InvalidOpState { .. })));
    assert!(matches!(j.dismiss_operation(commit.id, T0), Err(JournalError::InvalidOpState { .. })));

    // A failed cancel may be retried (no money moves); a failed refund may not.
    let cancel = j.enqueue(op(OpKind::Cancel, "x")).unwrap();
    j.mark_failed(cancel.id, "SensePass answered 501: {}", T0 + 20).unwrap();
    let again = j.retry_operation(cancel.id, T0 + 21).unwrap();
    assert_eq!((again.state, again.finished_at), (OpState::Pending, None));
    j.mark_failed(cancel.id, "SensePass answered 501: {}", T0 + 22).unwrap();
    let refund = j.enqueue_refund(refund("p", "r", Some(100), T0), Minor(1000)).unwrap();
    j.mark_failed(refund.id, "SensePass answered 200: declined", T0 + 23).unwrap();
    assert!(matches!(j.retry_operation(refund.id, T0 + 24), Err(JournalError::InvalidOperation(_))));
    assert_eq!(j.counts().unwrap().failed_operations, 2);

    // Dismissed: out of the default list and the failure count, still in the journal.
    let dismissed = j.dismiss_operation(refund.id, T0 + 30).unwrap();
    assert_eq!(dismissed.dismissed_at, Some(T0 + 30));
    assert_eq!(j.dismiss_operation(refund.id, T0 + 40).unwrap().dismissed_at, Some(T0 + 30), "first time kept");
    assert!(matches!(j.retry_operation(refund.id, T0 + 41), Err(JournalError::InvalidOperation(_))));
    assert_eq!(j.counts().unwrap().failed_operations, 1);
    let listed = |all: bool| j.outbox_view(None, all, 10, 0).unwrap().iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(listed(false), [cancel.id, commit.id]);
    assert_eq!(listed(true), [refund.id, cancel.id, commit.id]);
    assert_eq!(j.operations(Some(OpState::Failed), 10, 0).unwrap().len(), 2, "the sender's view is unchanged");
}
