//! The manager's views: filtered, paged queries; counts; totals; pairing and settings.

mod common;

use common::{journal, sale};
use serde_json::json;
use till_core::{Currency, Minor, Status};
use till_journal::{EventSource, Journal, NewOperation, OpKind, Pairing, Query};

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

/// 30 payments, one per hour, on two devices: amounts 100..=3000, EUR every fifth, statuses
/// cycling approved / declined / timeout, order IDs `o0..o29`.
fn seed(j: &Journal) {
    for i in 0..30_i64 {
        let id = format!("p{i}");
        let mut p = sale(
            &id,
            if i % 2 == 0 { "dev-even" } else { "dev-odd" },
            Some(&format!("o{i}")),
            None,
            (i + 1) * 100,
            T0 + i * HOUR,
        );
        if i % 5 == 0 {
            p.currency = Currency::Eur;
        }
        j.begin_payment(p).unwrap();
        let number = format!("N{i}");
        j.record_created(&id, &number, Status::Initialize, &json!({}), T0 + i * HOUR)
            .unwrap();
        let end = [Status::Approved, Status::Declined, Status::Timeout][(i % 3) as usize];
        j.apply_status(
            &number,
            end,
            &json!({}),
            EventSource::Socket,
            T0 + i * HOUR + 1,
        )
        .unwrap();
    }
    let mut s = sale("setup", "dev-even", None, None, 5, T0 + 5 * HOUR);
    s.setup = true;
    j.begin_payment(s).unwrap();
}

fn ids(page: &till_journal::Page<till_journal::PaymentRecord>) -> Vec<String> {
    page.items.iter().map(|r| r.local_id.clone()).collect()
}

#[test]
fn default_query_is_newest_sales_first() {
    let (_d, j) = journal();
    seed(&j);
    let page = j.query(&Query::default()).unwrap();
    assert_eq!(page.total, 30, "setup carts are not sales");
    assert_eq!(page.items.len(), 30);
    assert_eq!(page.items[0].local_id, "p29");
    assert_eq!(page.items[29].local_id, "p0");
    let with_setup = j
        .query(&Query {
            include_setup: true,
            ..Query::default()
        })
        .unwrap();
    assert_eq!(with_setup.total, 31);
}

#[test]
fn filters_combine() {
    let (_d, j) = journal();
    seed(&j);
    // Time window [from, to).
    let q = Query {
        from_ms: Some(T0 + 10 * HOUR),
        to_ms: Some(T0 + 20 * HOUR),
        ..Query::default()
    };
    let page = j.query(&q).unwrap();
    assert_eq!(page.total, 10);
    assert_eq!(ids(&page).first().unwrap(), "p19");
    assert_eq!(ids(&page).last().unwrap(), "p10");

    // Statuses.
    let q = Query {
        status: vec![Status::Approved],
        ..Query::default()
    };
    let page = j.query(&q).unwrap();
    assert_eq!(page.total, 10);
    assert!(page
        .items
        .iter()
        .all(|r| r.status == Some(Status::Approved)));
    let q = Query {
        status: vec![Status::Declined, Status::Timeout],
        ..Query::default()
    };
    assert_eq!(j.query(&q).unwrap().total, 20);

    // Order ID.
    let q = Query {
        order_id: Some("o7".into()),
        ..Query::default()
    };
    assert_eq!(ids(&j.query(&q).unwrap()), ["p7"]);

    // Amount range (inclusive) and currency.
    let q = Query {
        min_amount: Some(Minor(1000)),
        max_amount: Some(Minor(1500)),
        ..Query::default()
    };
    assert_eq!(
        ids(&j.query(&q).unwrap()),
        ["p14", "p13", "p12", "p11", "p10", "p9"]
    );
    let q = Query {
        currency: Some(Currency::Eur),
        ..Query::default()
    };
    assert_eq!(
        ids(&j.query(&q).unwrap()),
        ["p25", "p20", "p15", "p10", "p5", "p0"]
    );

    // Device, and everything at once.
    let q = Query {
        device_id: Some("dev-even".into()),
        status: vec![Status::Approved],
        currency: Some(Currency::Usd),
        from_ms: Some(T0),
        to_ms: Some(T0 + 30 * HOUR),
        min_amount: Some(Minor(200)),
        ..Query::default()
    };
    // even i, i % 3 == 0, i % 5 != 0: 6, 12, 18, 24
    assert_eq!(ids(&j.query(&q).unwrap()), ["p24", "p18", "p12", "p6"]);

    // Nothing matches.
    let q = Query {
        order_id: Some("nope".into()),
        ..Query::default()
    };
    let page = j.query(&q).unwrap();
    assert_eq!((page.total, page.items.len()), (0, 0));
}

#[test]
fn pagination() {
    let (_d, j) = journal();
    seed(&j);
    let mut seen = Vec::new();
    for page_no in 0..4 {
        let page = j
            .query(&Query {
                limit: 8,
                offset: page_no * 8,
                ..Query::default()
            })
            .unwrap();
        assert_eq!(page.total, 30);
        assert_eq!(page.items.len(), if page_no < 3 { 8 } else { 6 });
        seen.extend(ids(&page));
    }
    let expected: Vec<String> = (0..30).rev().map(|i| format!("p{i}")).collect();
    assert_eq!(seen, expected);
    let beyond = j
        .query(&Query {
            limit: 8,
            offset: 100,
            ..Query::default()
        })
        .unwrap();
    assert_eq!((beyond.total, beyond.items.len()), (30, 0));
}

#[test]
fn query_deserializes_from_json_with_defaults() {
    let q: Query = serde_json::from_value(json!({"status": [5, 6], "limit": 10})).unwrap();
    assert_eq!(q.status, vec![Status::Approved, Status::Declined]);
    assert_eq!((q.limit, q.offset, q.include_setup), (10, 0, false));
}

#[test]
fn counts_and_totals() {
    let (_d, j) = journal();
    seed(&j);
    let c = j.counts().unwrap();
    assert_eq!(c.transactions, 31);
    assert_eq!(c.open_payments, 1, "the setup cart");
    assert_eq!(c.uncommitted_approved, 10);

    // One delivered refund of p3 (USD 400), inside the window.
    let op = j
        .enqueue_refund(
            NewOperation {
                kind: OpKind::Refund,
                transaction_local_id: Some("p3".into()),
                op_key: "r".into(),
                amount: Some(Minor(150)),
                payload: json!({}),
                now_ms: T0 + 4 * HOUR,
            },
            Minor(400),
        )
        .unwrap();
    j.mark_delivered(op.id, &json!({}), T0 + 4 * HOUR).unwrap();

    let totals = j.totals(T0, T0 + 12 * HOUR).unwrap();
    // Approved in [0, 12): 0, 3, 6, 9 → EUR: p0 (100); USD: p3 400 + p6 700 + p9 1000.
    assert_eq!(totals.len(), 2);
    let usd = totals.iter().find(|t| t.currency == Currency::Usd).unwrap();
    assert_eq!(
        (usd.captured_count, usd.captured_amount, usd.refunded_amount),
        (3, Minor(2100), Minor(150))
    );
    let eur = totals.iter().find(|t| t.currency == Currency::Eur).unwrap();
    assert_eq!(
        (eur.captured_count, eur.captured_amount, eur.refunded_amount),
        (1, Minor(100), Minor(0))
    );
    assert!(j.totals(T0 - 10 * HOUR, T0).unwrap().is_empty());
}

#[test]
fn pairing_and_settings() {
    let (_d, j) = journal();
    assert!(j.pairing().unwrap().is_none());
    let mut p = Pairing {
        device_id: "dev-1".into(),
        pos_name: "Front till".into(),
        environment: "sandbox".into(),
        api_base: "http://127.0.0.1:9/api".into(),
        socket_url: "http://127.0.0.1:9".into(),
        client_box_url: Some("http://127.0.0.1:10".into()),
        paired_at: T0,
    };
    j.set_pairing(&p).unwrap();
    assert_eq!(j.pairing().unwrap().as_ref(), Some(&p));
    p.device_id = "dev-2".into();
    p.client_box_url = None;
    j.set_pairing(&p).unwrap();
    assert_eq!(
        j.pairing().unwrap().as_ref(),
        Some(&p),
        "re-pairing replaces"
    );
    j.clear_pairing().unwrap();
    assert!(j.pairing().unwrap().is_none());

    assert_eq!(j.setting("a").unwrap(), None);
    j.set_setting("a", "1").unwrap();
    j.set_setting("a", "2").unwrap();
    assert_eq!(j.setting("a").unwrap().as_deref(), Some("2"));
    assert!(j.delete_setting("a").unwrap());
    assert!(!j.delete_setting("a").unwrap());
}

#[test]
fn status_counts_per_currency() {
    let (_d, j) = journal();
    seed(&j);
    // [0, 6): p0 EUR approved, p1 declined, p2 timeout, p3 approved, p4 declined, p5 EUR timeout.
    let counts = j.status_counts(T0, T0 + 6 * HOUR).unwrap();
    let get = |c: Currency, s: Status| {
        counts.iter().find(|(cc, ss, _)| *cc == c && *ss == Some(s)).map(|(_, _, n)| *n).unwrap_or(0)
    };
    assert_eq!(get(Currency::Usd, Status::Approved), 1);
    assert_eq!(get(Currency::Usd, Status::Declined), 2);
    assert_eq!(get(Currency::Usd, Status::Timeout), 1);
    assert_eq!(get(Currency::Eur, Status::Approved), 1);
    assert_eq!(get(Currency::Eur, Status::Timeout), 1);
    assert_eq!(counts.iter().map(|(_, _, n)| n).sum::<u64>(), 6, "the setup cart is not a sale: {counts:?}");
}

/// Two amounts near `i64::MAX` (a journal from before amounts were bounded) used to make the
/// summary fail with SQLite's "integer overflow"; the totals now saturate instead.
#[test]
fn totals_of_huge_amounts_do_not_overflow() {
    let (_d, j) = journal();
    for i in 0..2_i64 {
        let id = format!("h{i}");
        j.begin_payment(sale(&id, "d", Some(&id), None, i64::MAX - i, T0 + i)).unwrap();
        let number = format!("H{i}");
        j.record_created(&id, &number, Status::Initialize, &json!({}), T0 + i).unwrap();
        j.apply_status(&number, Status::Approved, &json!({}), EventSource::Socket, T0 + i + 1).unwrap();
    }
    let totals = j.totals(T0, T0 + HOUR).unwrap();
    assert_eq!(totals[0].captured_count, 2);
    assert_eq!(totals[0].captured_amount, Minor(i64::MAX));
}

/// Card data in a request or an answer never reaches the journal file (PCI DSS: no CVV stored,
/// card numbers masked); the test reads the SQLite file's bytes, WAL included.
#[test]
fn card_data_never_reaches_the_file() {
    let (dir, j) = journal();
    let mut p = sale("c1", "d", Some("c1"), None, 100, T0);
    p.request_json = json!({"amount": 100, "paymentDetails": {"creditCard": {
        "cardNumber": "4111111111111111", "cvv": "737", "expiration": "11/29", "socialID": "123456782"}}});
    j.begin_payment(p).unwrap();
    j.record_created("c1", "C1", Status::Initialize,
        &json!({"TransactionNumber": "C1", "status": 1, "creditCardDetails": {"cardNumber": "5555555555554444", "securityCode": "9876"}}), T0)
        .unwrap();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let text = String::from_utf8_lossy(&bytes);
    for secret in ["4111111111111111", "\"737\"", "11/29", "123456782", "5555555555554444", "9876"] {
        assert!(!text.contains(secret), "{secret} is in the journal file");
    }
    assert!(text.contains("411111******1111"), "the masked number is kept");
}

/// The manager's order search finds any part of an order ID in any ASCII case, and its own `%`
/// and `_` are plain characters, not wildcards.
#[test]
fn order_search_is_a_case_insensitive_part() {
    let (_d, j) = journal();
    for (i, order) in ["Table-12/A", "table-120", "TAKEAWAY-7", "50%_off", "500-off"].iter().enumerate() {
        let id = format!("s{i}");
        j.begin_payment(sale(&id, "d", Some(order), None, 100, T0 + i as i64)).unwrap();
        j.record_created(&id, &format!("S{i}"), Status::Initialize, &json!({}), T0 + i as i64).unwrap();
        j.apply_status(&format!("S{i}"), Status::Approved, &json!({}), EventSource::Api, T0 + i as i64).unwrap();
    }
    let find = |text: &str| {
        ids(&j.query(&Query { order_search: Some(text.into()), ..Query::default() }).unwrap())
    };
    assert_eq!(find("TABLE-12"), ["s1", "s0"]);
    assert_eq!(find("12/a"), ["s0"]);
    assert_eq!(find("away"), ["s2"]);
    assert_eq!(find("%_"), ["s3"], "% and _ match themselves");
    assert!(find("0_o").is_empty(), "_ is no wildcard: 500-off does not match");
    assert_eq!(find("0%_O"), ["s3"]);
    assert!(find("nothing").is_empty());
    // The POS's exact lookup stays exact.
    let exact = j.query(&Query { order_id: Some("table-12".into()), ..Query::default() }).unwrap();
    assert_eq!(exact.total, 0);
}

/// A payment never created at SensePass is "failed" everywhere: its key, the "Failed" filter
/// (with `include_not_created`) and the end-of-day counts by key.
#[test]
fn never_created_payments_are_failed_in_the_filter_and_the_counts() {
    let (_d, j) = journal();
    j.begin_payment(sale("nc", "d", Some("NC-1"), None, 100, T0)).unwrap();
    let rec = j.record_create_failed("nc", "SensePass is unreachable", T0 + 1).unwrap();
    assert_eq!(rec.status_key(), "failed");
    j.begin_payment(sale("sf", "d", Some("SF-1"), None, 200, T0 + 2)).unwrap();
    j.record_created("sf", "SF", Status::Initialize, &json!({}), T0 + 2).unwrap();
    j.apply_status("SF", Status::Failed, &json!({}), EventSource::Api, T0 + 3).unwrap();
    j.begin_payment(sale("ok", "d", Some("OK-1"), None, 300, T0 + 4)).unwrap();
    j.record_created("ok", "OK", Status::Initialize, &json!({}), T0 + 4).unwrap();
    j.begin_payment(sale("open", "d2", Some("OPEN-1"), None, 300, T0 + 5)).unwrap();

    let failed = Query { status: vec![Status::Failed], include_not_created: true, ..Query::default() };
    assert_eq!(ids(&j.query(&failed).unwrap()), ["sf", "nc"]);
    let only_status = Query { status: vec![Status::Failed], ..Query::default() };
    assert_eq!(ids(&j.query(&only_status).unwrap()), ["sf"]);
    let only_not_created = Query { include_not_created: true, ..Query::default() };
    assert_eq!(ids(&j.query(&only_not_created).unwrap()), ["nc"], "an intent still open is not failed");

    let counts = j.status_key_counts(T0, T0 + HOUR).unwrap();
    assert_eq!(
        counts,
        vec![(Currency::Usd, "creating", 1), (Currency::Usd, "failed", 2), (Currency::Usd, "initialized", 1)]
    );
}
