//! Payments: begin outcomes, idempotency, busy rule, create phases, status ordering.

mod common;

use common::{entity, journal, sale};
use serde_json::json;
use till_core::{Minor, Status, Transition};
use till_journal::{Begin, EventSource, JournalError, Phase, IDEMPOTENCY_TTL_MS};

const T0: i64 = 1_700_000_000_000;

fn started(b: Begin) -> till_journal::PaymentRecord {
    match b {
        Begin::Started(r) => r,
        other => panic!("expected Started, got {other:?}"),
    }
}

#[test]
fn begin_started_then_existing_for_same_order_and_key() {
    let (_d, j) = journal();
    let a = started(
        j.begin_payment(sale("a", "dev1", Some("order-1"), Some("key-1"), 500, T0))
            .unwrap(),
    );
    assert_eq!(a.phase, Phase::Intent);
    assert_eq!(a.status, None);
    assert!(a.is_open());
    assert_eq!(a.amount, Minor(500));

    // Same order, new local id: attach, nothing new inserted.
    match j
        .begin_payment(sale("b", "dev1", Some("order-1"), None, 500, T0 + 1))
        .unwrap()
    {
        Begin::Existing(r) => assert_eq!(r.local_id, "a"),
        other => panic!("{other:?}"),
    }
    // Same key, other order: attach too.
    match j
        .begin_payment(sale(
            "c",
            "dev1",
            Some("order-other"),
            Some("key-1"),
            500,
            T0 + 2,
        ))
        .unwrap()
    {
        Begin::Existing(r) => assert_eq!(r.local_id, "a"),
        other => panic!("{other:?}"),
    }
    // Same order from another device: still the same order, never a second charge.
    match j
        .begin_payment(sale("d", "dev2", Some("order-1"), None, 500, T0 + 3))
        .unwrap()
    {
        Begin::Existing(r) => assert_eq!(r.local_id, "a"),
        other => panic!("{other:?}"),
    }
    // Same local id again: the first record.
    match j
        .begin_payment(sale("a", "dev1", None, None, 500, T0 + 4))
        .unwrap()
    {
        Begin::Existing(r) => assert_eq!(r.local_id, "a"),
        other => panic!("{other:?}"),
    }
    assert!(j.by_local_id("b").unwrap().is_none());
    assert_eq!(j.all_by_order_id("order-1").unwrap().len(), 1);
}

#[test]
fn busy_while_another_payment_is_open_on_the_device_only() {
    let (_d, j) = journal();
    started(
        j.begin_payment(sale("a", "dev1", Some("o1"), None, 100, T0))
            .unwrap(),
    );
    match j
        .begin_payment(sale("b", "dev1", Some("o2"), None, 200, T0 + 1))
        .unwrap()
    {
        Begin::Busy(r) => assert_eq!(r.local_id, "a"),
        other => panic!("{other:?}"),
    }
    // Another device is not busy.
    started(
        j.begin_payment(sale("c", "dev2", Some("o3"), None, 300, T0 + 2))
            .unwrap(),
    );
    // A setup cart is refused while a sale is open on the device (it would hide that sale)...
    let mut setup = sale("s", "dev1", None, None, 100, T0 + 3);
    setup.setup = true;
    match j.begin_payment(setup).unwrap() {
        Begin::Busy(r) => assert_eq!(r.local_id, "a"),
        other => panic!("{other:?}"),
    }
    assert!(j.open_setup("dev1").unwrap().is_none());
    // ...and never makes a device busy itself.
    let mut cart = sale("s3", "dev3", None, None, 100, T0 + 3);
    cart.setup = true;
    started(j.begin_payment(cart).unwrap());
    started(j.begin_payment(sale("d", "dev3", Some("o4"), None, 100, T0 + 3)).unwrap());

    // Uncertain create keeps the device busy.
    j.record_create_unknown("a", "timeout", T0 + 4).unwrap();
    assert!(matches!(
        j.begin_payment(sale("b", "dev1", Some("o2"), None, 200, T0 + 5))
            .unwrap(),
        Begin::Busy(_)
    ));
    // Created with an open status: busy.
    j.record_created(
        "a",
        "N-1",
        Status::Initialize,
        &entity("N-1", Status::Initialize),
        T0 + 6,
    )
    .unwrap();
    assert!(matches!(
        j.begin_payment(sale("b", "dev1", Some("o2"), None, 200, T0 + 7))
            .unwrap(),
        Begin::Busy(_)
    ));
    // Approved: free again.
    j.apply_status(
        "N-1",
        Status::Approved,
        &entity("N-1", Status::Approved),
        EventSource::Socket,
        T0 + 8,
    )
    .unwrap();
    started(
        j.begin_payment(sale("b", "dev1", Some("o2"), None, 200, T0 + 9))
            .unwrap(),
    );
}

#[test]
fn a_new_attempt_is_allowed_after_an_uncaptured_end_but_not_after_capture() {
    let (_d, j) = journal();
    for (i, ending) in [
        Status::Declined,
        Status::Failed,
        Status::Timeout,
        Status::Cancelled,
    ]
    .into_iter()
    .enumerate()
    {
        let order = format!("order-{i}");
        let first = format!("first-{i}");
        let number = format!("N-{i}");
        started(
            j.begin_payment(sale(&first, "dev1", Some(&order), Some(&order), 100, T0))
                .unwrap(),
        );
        j.record_created(
            &first,
            &number,
            Status::Initialize,
            &entity(&number, Status::Initialize),
            T0 + 1,
        )
        .unwrap();
        j.apply_status(
            &number,
            ending,
            &entity(&number, ending),
            EventSource::Socket,
            T0 + 2,
        )
        .unwrap();
        // Retry of the same order after the decline: a new payment starts, and the idempotency
        // records now point at it.
        let second = format!("second-{i}");
        let r = started(
            j.begin_payment(sale(
                &second,
                "dev1",
                Some(&order),
                Some(&order),
                100,
                T0 + 3,
            ))
            .unwrap(),
        );
        assert_eq!(r.local_id, second);
        match j
            .begin_payment(sale("again", "dev1", Some(&order), None, 100, T0 + 4))
            .unwrap()
        {
            Begin::Existing(r) => assert_eq!(r.local_id, second),
            other => panic!("{other:?}"),
        }
        assert_eq!(j.by_order_id(&order).unwrap().unwrap().local_id, second);
        j.record_create_failed(&second, "bad request", T0 + 5)
            .unwrap();
    }

    // CreateFailed also allows a retry.
    started(
        j.begin_payment(sale("f1", "dev1", Some("of"), None, 100, T0))
            .unwrap(),
    );
    let failed = j
        .record_create_failed("f1", "400 validation", T0 + 1)
        .unwrap();
    assert_eq!(failed.phase, Phase::CreateFailed);
    assert!(!failed.is_open());
    assert_eq!(failed.final_at, Some(T0 + 1));
    started(
        j.begin_payment(sale("f2", "dev1", Some("of"), None, 100, T0 + 2))
            .unwrap(),
    );
    j.record_created(
        "f2",
        "N-f2",
        Status::Initialize,
        &entity("N-f2", Status::Initialize),
        T0 + 3,
    )
    .unwrap();

    // Captured, and even refunded afterwards: never a second charge for that order.
    for (s, n) in [(Status::Approved, 0), (Status::Refunded, 1)] {
        let number = "N-f2";
        j.apply_status(number, s, &entity(number, s), EventSource::Api, T0 + 4 + n)
            .unwrap();
        match j
            .begin_payment(sale("f3", "dev1", Some("of"), None, 100, T0 + 10))
            .unwrap()
        {
            Begin::Existing(r) => assert_eq!(r.local_id, "f2"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn idempotency_records_expire_after_31_days() {
    let (_d, j) = journal();
    started(
        j.begin_payment(sale("a", "dev1", None, Some("o1"), 100, T0))
            .unwrap(),
    );
    j.record_created(
        "a",
        "N-1",
        Status::Approved,
        &entity("N-1", Status::Approved),
        T0 + 1,
    )
    .unwrap();
    // Just before expiry: attached.
    assert!(matches!(
        j.begin_payment(sale(
            "b",
            "dev1",
            None,
            Some("o1"),
            100,
            T0 + IDEMPOTENCY_TTL_MS - 1
        ))
        .unwrap(),
        Begin::Existing(_)
    ));
    // Purge keeps the young record.
    assert_eq!(j.purge_idempotency(T0 + IDEMPOTENCY_TTL_MS - 1).unwrap(), 0);
    assert_eq!(j.purge_idempotency(T0 + IDEMPOTENCY_TTL_MS).unwrap(), 1);
    // After expiry the order ID may be reused.
    started(
        j.begin_payment(sale(
            "b",
            "dev1",
            None,
            Some("o1"),
            100,
            T0 + IDEMPOTENCY_TTL_MS,
        ))
        .unwrap(),
    );
}

#[test]
fn an_order_id_alone_attaches_only_within_the_window() {
    let (_d, j) = journal();
    started(j.begin_payment(sale("a", "dev1", Some("1"), None, 300, T0)).unwrap());
    j.record_created("a", "N-1", Status::Approved, &entity("N-1", Status::Approved), T0 + 1)
        .unwrap();
    // A retry a minute later: the same payment.
    match j.begin_payment(sale("b", "dev1", Some("1"), None, 300, T0 + 60_000)).unwrap() {
        Begin::Existing(r) => assert_eq!(r.local_id, "a"),
        other => panic!("{other:?}"),
    }
    // Tomorrow's order "1": a new payment, although the record has not expired.
    let tomorrow = T0 + 24 * 60 * 60 * 1000;
    started(j.begin_payment(sale("c", "dev1", Some("1"), None, 300, tomorrow)).unwrap());
    // A shorter window set by the agent applies to every clone of the handle.
    let clone = j.clone();
    clone.set_order_id_window(1_000);
    assert_eq!(j.order_id_window(), 1_000);
}

#[test]
fn purge_deletes_only_expired_records() {
    let (_d, j) = journal();
    let day = 24 * 60 * 60 * 1000;
    for (i, age_days) in [40, 32, 31, 30, 1, 0].into_iter().enumerate() {
        let id = format!("p{i}");
        let at = T0 - age_days * day;
        let mut p = sale(
            &id,
            &format!("dev{i}"),
            Some(&format!("o{i}")),
            Some(&format!("k{i}")),
            100,
            at,
        );
        p.setup = false;
        started(j.begin_payment(p).unwrap());
        j.record_created(
            &id,
            &format!("N{i}"),
            Status::Approved,
            &entity("x", Status::Approved),
            at,
        )
        .unwrap();
    }
    // 40, 32 and exactly-31-day-old records (two each: order + key) are expired.
    assert_eq!(j.purge_idempotency(T0).unwrap(), 6);
    assert_eq!(j.purge_idempotency(T0).unwrap(), 0);
    for i in 3..6 {
        assert!(
            matches!(
                j.begin_payment(sale("new", "devX", None, Some(&format!("k{i}")), 100, T0))
                    .unwrap(),
                Begin::Existing(_)
            ),
            "record {i} must survive"
        );
    }
    // The payments themselves are never purged.
    assert_eq!(j.counts().unwrap().transactions, 6);
}

#[test]
fn create_phases() {
    let (_d, j) = journal();
    started(
        j.begin_payment(sale("a", "dev1", None, None, 100, T0))
            .unwrap(),
    );
    let u = j
        .record_create_unknown("a", "read timeout", T0 + 1)
        .unwrap();
    assert_eq!(u.phase, Phase::CreateUnknown);
    assert_eq!(u.failure.as_deref(), Some("read timeout"));
    assert_eq!(j.open_payments().unwrap().len(), 1);

    // The reconciler found it at SensePass.
    let c = j
        .record_created(
            "a",
            "N-1",
            Status::WaitingForTap,
            &entity("N-1", Status::WaitingForTap),
            T0 + 2,
        )
        .unwrap();
    assert_eq!(c.phase, Phase::Created);
    assert_eq!(c.number.as_deref(), Some("N-1"));
    assert_eq!(c.status, Some(Status::WaitingForTap));
    assert_eq!(c.failure, None);
    assert_eq!(j.by_number("N-1").unwrap().unwrap().local_id, "a");

    // A created payment cannot be declared failed or uncertain.
    assert!(matches!(
        j.record_create_failed("a", "x", T0 + 3),
        Err(JournalError::InvalidPhase { .. })
    ));
    assert!(matches!(
        j.record_create_unknown("a", "x", T0 + 3),
        Err(JournalError::InvalidPhase { .. })
    ));
    // Another number for the same payment is refused; the same number again is a status observation.
    assert!(matches!(
        j.record_created("a", "N-2", Status::Initialize, &json!({}), T0 + 3),
        Err(JournalError::NumberMismatch { .. })
    ));
    let again = j
        .record_created("a", "N-1", Status::Initialize, &json!({}), T0 + 4)
        .unwrap();
    assert_eq!(
        again.status,
        Some(Status::WaitingForTap),
        "stale status from a repeated create is ignored"
    );

    // A number already used by another payment is refused.
    started(
        j.begin_payment(sale("b", "dev2", None, None, 100, T0))
            .unwrap(),
    );
    assert!(matches!(
        j.record_created("b", "N-1", Status::Initialize, &json!({}), T0 + 5),
        Err(JournalError::NumberTaken(_))
    ));
    // Unknown payments are NotFound.
    assert!(matches!(
        j.record_create_failed("zzz", "x", T0),
        Err(JournalError::NotFound { .. })
    ));
    assert!(matches!(
        j.apply_status(
            "N-zzz",
            Status::Approved,
            &json!({}),
            EventSource::Socket,
            T0
        ),
        Err(JournalError::NotFound { .. })
    ));

    // A payment believed not created that SensePass does know is recorded as created.
    started(
        j.begin_payment(sale("c", "dev3", None, None, 100, T0))
            .unwrap(),
    );
    j.record_create_failed("c", "connection refused", T0 + 1)
        .unwrap();
    let c = j
        .record_created(
            "c",
            "N-3",
            Status::Approved,
            &entity("N-3", Status::Approved),
            T0 + 2,
        )
        .unwrap();
    assert!(c.was_captured());
    // The mistaken "failed" outcome is replaced by the real one.
    assert_eq!(c.final_at, Some(T0 + 2));
    assert_eq!(c.failure, None);
}

#[test]
fn apply_status_never_moves_backwards_and_records_every_event() {
    let (_d, j) = journal();
    started(
        j.begin_payment(sale("a", "dev1", Some("o"), None, 1000, T0))
            .unwrap(),
    );
    j.record_created(
        "a",
        "N",
        Status::Initialize,
        &entity("N", Status::Initialize),
        T0 + 1,
    )
    .unwrap();

    // Reordered and duplicated deliveries from three sources.
    let feed = [
        (
            Status::TapDetected,
            EventSource::Socket,
            Transition::Advance,
        ),
        (Status::WaitingForTap, EventSource::Poll, Transition::Ignore), // late
        (Status::TapDetected, EventSource::Poll, Transition::Same),     // duplicate
        (
            Status::ProcessingPayment,
            EventSource::Socket,
            Transition::Advance,
        ),
        (
            Status::UserApproved,
            EventSource::Socket,
            Transition::Ignore,
        ), // reordered
        (Status::Approved, EventSource::Socket, Transition::Advance),
        (
            Status::ProcessingPayment,
            EventSource::Poll,
            Transition::Ignore,
        ),
        (Status::Approved, EventSource::Api, Transition::Same),
        (Status::Declined, EventSource::Poll, Transition::Ignore),
        (
            Status::PartiallyRefunded,
            EventSource::Socket,
            Transition::Advance,
        ),
        (Status::Approved, EventSource::Poll, Transition::Ignore),
    ];
    let mut last_final_at = None;
    for (i, (status, source, expected)) in feed.iter().enumerate() {
        let mut e = entity("N", *status);
        e["seq"] = json!(i);
        let applied = j
            .apply_status("N", *status, &e, *source, T0 + 10 + i as i64)
            .unwrap();
        assert_eq!(applied.transition, *expected, "event {i} {status:?}");
        assert_eq!(applied.advanced(), *expected == Transition::Advance);
        match expected {
            Transition::Advance | Transition::Same => {
                assert_eq!(
                    applied.record.entity_json.as_ref().unwrap()["seq"],
                    json!(i)
                );
            }
            Transition::Ignore => {
                assert_ne!(
                    applied.record.entity_json.as_ref().unwrap()["seq"],
                    json!(i)
                );
            }
        }
        if *status == Status::Approved && *expected == Transition::Advance {
            last_final_at = applied.record.final_at;
            assert_eq!(last_final_at, Some(T0 + 10 + i as i64));
        }
    }
    let rec = j.by_local_id("a").unwrap().unwrap();
    assert_eq!(rec.status, Some(Status::PartiallyRefunded));
    assert_eq!(
        rec.final_at, last_final_at,
        "final_at is the first final time"
    );
    assert!(!rec.is_open());

    let events = j.events("a").unwrap();
    // One event for the create answer plus one per observation.
    assert_eq!(events.len(), feed.len() + 1);
    assert_eq!(events[0].status, Status::Initialize);
    assert_eq!(events[0].source, EventSource::Api);
    for (ev, (status, source, expected)) in events[1..].iter().zip(feed.iter()) {
        assert_eq!(ev.status, *status);
        assert_eq!(ev.source, *source);
        assert_eq!(ev.transition, *expected);
        assert_eq!(ev.applied, *expected == Transition::Advance);
        assert!(ev.entity_json.is_some());
    }
}

#[test]
fn commit_bookkeeping() {
    let (_d, j) = journal();
    started(
        j.begin_payment(sale("a", "dev1", None, None, 100, T0))
            .unwrap(),
    );
    j.record_created("a", "N", Status::Initialize, &json!({}), T0)
        .unwrap();
    assert!(j.uncommitted_approved().unwrap().is_empty());
    j.apply_status(
        "N",
        Status::Approved,
        &json!({}),
        EventSource::Socket,
        T0 + 1,
    )
    .unwrap();
    let link = "https://api.sandbox.sensepass.com/api/transactions/commitPayment/N";
    assert_eq!(
        j.set_commit_link("N", link).unwrap().commit_link.as_deref(),
        Some(link)
    );
    assert_eq!(j.uncommitted_approved().unwrap().len(), 1);
    assert_eq!(j.counts().unwrap().uncommitted_approved, 1);
    assert_eq!(
        j.record_commit("N", T0 + 2).unwrap().committed_at,
        Some(T0 + 2)
    );
    assert_eq!(
        j.record_commit("N", T0 + 3).unwrap().committed_at,
        Some(T0 + 2)
    );
    assert!(j.uncommitted_approved().unwrap().is_empty());
}

#[test]
fn last_skips_setup_carts_and_is_per_device() {
    let (_d, j) = journal();
    assert!(j.last(None).unwrap().is_none());
    started(
        j.begin_payment(sale("a", "dev1", None, None, 100, T0))
            .unwrap(),
    );
    j.record_create_failed("a", "x", T0).unwrap();
    started(
        j.begin_payment(sale("b", "dev2", None, None, 100, T0 + 1))
            .unwrap(),
    );
    let mut s = sale("s", "dev1", None, None, 100, T0 + 2);
    s.setup = true;
    started(j.begin_payment(s).unwrap());
    // Same millisecond: the later row wins.
    started(
        j.begin_payment(sale("c", "dev3", None, None, 100, T0 + 1))
            .unwrap(),
    );

    assert_eq!(j.last(Some("dev1")).unwrap().unwrap().local_id, "a");
    assert_eq!(j.last(Some("dev2")).unwrap().unwrap().local_id, "b");
    assert_eq!(j.last(None).unwrap().unwrap().local_id, "c");
    assert!(j.last(Some("nope")).unwrap().is_none());

    // The setup cart follows the live cart.
    let updated = j
        .update_cart("s", Minor(250), &json!({"amount": 250}), true, T0 + 3)
        .unwrap();
    assert_eq!(updated.amount, Minor(250));
    assert!(updated.product_sum_mismatch);
    assert!(matches!(
        j.update_cart("a", Minor(1), &json!({}), false, T0 + 3),
        Err(JournalError::InvalidPhase { .. })
    ));
}

#[test]
fn a_setup_cart_is_promoted_into_the_payment() {
    let (_d, j) = journal();
    let mut cart = sale("cart", "dev", None, None, 500, 1_000);
    cart.setup = true;
    started(j.begin_payment(cart).unwrap());
    // Not created at SensePass yet: cannot be promoted.
    assert!(matches!(
        j.promote_setup("cart", sale("pay", "dev", Some("A-1"), None, 700, 1_500)),
        Err(JournalError::InvalidPhase { .. })
    ));
    j.record_created("cart", "N-CART", Status::Initialize, &entity("N-CART", Status::Initialize), 1_100).unwrap();
    let promoted = started(j.promote_setup("cart", sale("pay", "dev", Some("A-1"), None, 700, 2_000)).unwrap());
    assert_eq!(promoted.local_id, "cart");
    assert!(!promoted.setup);
    assert_eq!(promoted.number.as_deref(), Some("N-CART"));
    assert_eq!(promoted.amount, Minor(700));
    assert_eq!(promoted.order_id.as_deref(), Some("A-1"));
    // It is now the device's open payment and the order's payment.
    assert!(matches!(j.begin_payment(sale("other", "dev", Some("B-1"), None, 100, 3_000)).unwrap(), Begin::Busy(r) if r.local_id == "cart"));
    assert!(matches!(j.begin_payment(sale("again", "dev", Some("A-1"), None, 700, 3_000)).unwrap(), Begin::Existing(r) if r.local_id == "cart"));
    assert!(j.open_setup("dev").unwrap().is_none());
    assert_eq!(j.last(Some("dev")).unwrap().map(|r| r.local_id), Some("cart".to_string()));
}

#[test]
fn apply_observation_ignores_what_the_caller_finds_stale() {
    let (_d, j) = journal();
    started(j.begin_payment(sale("p", "dev", Some("O"), None, 1000, 1)).unwrap());
    j.record_created("p", "N", Status::Initialize, &entity("N", Status::Initialize), 2).unwrap();
    j.apply_status("N", Status::Approved, &entity("N", Status::Approved), EventSource::Socket, 3).unwrap();
    j.apply_status("N", Status::PartiallyRefunded, &entity("N", Status::PartiallyRefunded), EventSource::Poll, 4).unwrap();
    // 13 → 12 is a legal transition (a second refund), unless the caller knows it is old news.
    let stale = j
        .apply_observation("N", Status::ProcessingRefund, &entity("N", Status::ProcessingRefund), EventSource::Socket, 5, |rec| {
            rec.status == Some(Status::PartiallyRefunded)
        })
        .unwrap();
    assert_eq!(stale.transition, Transition::Ignore);
    assert_eq!(stale.record.status, Some(Status::PartiallyRefunded));
    let events = j.events("p").unwrap();
    assert!(events.last().map(|e| !e.applied && e.status == Status::ProcessingRefund).unwrap_or(false), "recorded, not applied");
    let fresh = j.apply_status("N", Status::ProcessingRefund, &entity("N", Status::ProcessingRefund), EventSource::Socket, 6).unwrap();
    assert_eq!(fresh.transition, Transition::Advance);
}

#[test]
fn refunds_processing_lists_status_12_through_its_index() {
    let (_d, j) = journal();
    for (id, end) in [("a", Status::ProcessingRefund), ("b", Status::PartiallyRefunded), ("c", Status::ProcessingRefund)] {
        started(j.begin_payment(sale(id, "dev", Some(id), None, 100, 1)).unwrap());
        let number = format!("N-{id}");
        j.record_created(id, &number, Status::Initialize, &entity(&number, Status::Initialize), 2).unwrap();
        j.apply_status(&number, Status::Approved, &entity(&number, Status::Approved), EventSource::Poll, 3).unwrap();
        j.apply_status(&number, end, &entity(&number, end), EventSource::Poll, 4).unwrap();
    }
    let ids: Vec<String> = j.refunds_processing().unwrap().into_iter().map(|r| r.local_id).collect();
    // The query names its partial index (INDEXED BY): SQLite refuses to run it without that index.
    assert_eq!(ids, vec!["a", "c"]);
}

/// A payment stuck open (SensePass no longer knows it) closed by a manager: no longer open, the
/// device free and the order attemptable again, named `closed` — and a later observation from
/// SensePass still moves it forward, so an approval could never be hidden by the closing.
#[test]
fn a_stuck_payment_closed_by_a_manager() {
    let (_d, j) = journal();
    let a = started(j.begin_payment(sale("s1", "dev", Some("ST-1"), None, 900, 1_000)).unwrap());
    j.record_created(&a.local_id, "NS1", Status::Initialize, &entity("NS1", Status::Initialize), 1_001).unwrap();
    assert!(matches!(j.begin_payment(sale("s2", "dev", None, None, 100, 1_002)).unwrap(), Begin::Busy(_)));
    assert!(matches!(
        j.resolve_payment("nope", "x", 1_003),
        Err(JournalError::NotFound { .. })
    ));

    let closed = j.resolve_payment("s1", "SensePass does not know this transaction", 2_000).unwrap();
    assert!(!closed.is_open());
    assert_eq!(closed.status_key(), "closed");
    assert_eq!(closed.status, Some(Status::Initialize), "the SensePass status is kept as observed");
    assert_eq!((closed.resolved_at, closed.final_at), (Some(2_000), Some(2_000)));
    assert_eq!(j.resolve_payment("s1", "again", 3_000).unwrap().resolution.as_deref(), Some("SensePass does not know this transaction"));
    assert!(j.open_payments().unwrap().is_empty());
    let pending = till_journal::Query { status: vec![Status::Initialize, Status::WaitingForTap], ..Default::default() };
    assert_eq!(j.query(&pending).unwrap().total, 0, "a closed payment is not found as pending");
    let closed_filter = till_journal::Query { include_closed: true, ..Default::default() };
    assert_eq!(j.query(&closed_filter).unwrap().items.iter().map(|r| r.local_id.as_str()).collect::<Vec<_>>(), ["s1"]);
    assert_eq!(j.counts().unwrap().open_payments, 0);
    // The device is free, and the order may be tried again.
    assert!(matches!(j.begin_payment(sale("s3", "dev", Some("ST-1"), None, 900, 3_001)).unwrap(), Begin::Started(_)));
    // Still open at SensePass after all: a pending observation does not reopen it ...
    let later = j.apply_status("NS1", Status::TapDetected, &entity("NS1", Status::TapDetected), EventSource::Socket, 3_002).unwrap();
    assert!(!later.record.is_open());
    assert_eq!(later.record.status_key(), "closed");
    // ... and an approval shows as approved.
    let paid = j.apply_status("NS1", Status::Approved, &entity("NS1", Status::Approved), EventSource::Poll, 3_003).unwrap();
    assert!(paid.advanced());
    assert_eq!(paid.record.status_key(), "approved");
    assert_eq!(j.query(&closed_filter).unwrap().total, 0, "approved since: no longer closed");
    assert!(paid.record.was_captured());
    // Finished payments cannot be closed.
    let done = started(j.begin_payment(sale("s4", "dev2", None, None, 100, 4_000)).unwrap());
    j.record_created(&done.local_id, "NS4", Status::Initialize, &entity("NS4", Status::Initialize), 4_001).unwrap();
    j.apply_status("NS4", Status::Declined, &entity("NS4", Status::Declined), EventSource::Api, 4_002).unwrap();
    assert!(matches!(j.resolve_payment("s4", "x", 4_003), Err(JournalError::InvalidPhase { .. })));
}
