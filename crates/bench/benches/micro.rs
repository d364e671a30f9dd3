//! Criterion micro-benchmarks of the CPU-bound pieces on a payment's path: the QR code the
//! cashier screen shows, the PDF receipt, validation of a POS request, and applying a status
//! event (the transition rule alone, and through an in-memory journal without I/O).
//!
//! `cargo bench -p till-bench --bench micro`; `scripts/bench.sh` runs it with short warm-up and
//! measurement times and copies the estimates into BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use std::hint::black_box;
use till_core::{Currency, Minor, Product, Status};
use till_journal::{EventSource, Journal, NewPayment};
use till_receipts::{Approval, Merchant, Receipt, ReceiptLine, RefundLine};
use till_sensepass::InitRequest;

/// A payment URL as the sandbox hands them out (`transactionPage.qrURL`): 56 hex characters.
const QR_URL: &str =
    "http://127.0.0.1:8700/pay/6f1c0e5a9b2d47e3a8c4f0b19d7e2a6c5b3f8e1d0a9c7b4e2f6a1d3c";

fn qr(c: &mut Criterion) {
    let mut g = c.benchmark_group("qr");
    g.bench_function("svg", |b| {
        b.iter(|| till_receipts::qr_svg(black_box(QR_URL)).unwrap())
    });
    g.bench_function("png", |b| {
        b.iter(|| till_receipts::qr_png(black_box(QR_URL), 8).unwrap())
    });
    g.finish();
}

fn receipt_20_items() -> Receipt {
    let names = [
        "Espresso",
        "Café crème",
        "Croissant",
        "Pain au chocolat",
        "Bagel with cream cheese",
        "Orange juice",
        "Sparkling water",
        "Club sandwich",
        "Caesar salad",
        "Tomato soup",
        "Brownie",
        "Cheesecake",
        "Flat white",
        "Chai latte",
        "Muffin (blueberry)",
        "Granola bowl",
        "Avocado toast",
        "Smoothie (mango)",
        "Still water",
        "Crème brûlée for Zoë Núñez",
    ];
    let lines: Vec<ReceiptLine> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut p = Product::simple(n, 1 + (i as i64 % 3), 250 + 75 * i as i64);
            p.vat = Minor(20 + i as i64);
            if i % 4 == 0 {
                p.sub_products.push(Product::simple("Extra shot", 1, 60));
            }
            ReceiptLine::from_product(&p).unwrap()
        })
        .collect();
    let total: i64 = lines.iter().map(|l| l.total.0).sum();
    let vat: i64 = lines.iter().map(|l| l.vat.0).sum();
    Receipt {
        merchant: Merchant {
            name: "Sandbox Coffee".into(),
            address: Some("Calle Mayor 5, 28013 Madrid".into()),
            phone: Some("+34 910 000 000".into()),
        },
        transaction_number: Some("6f1c0e5a9b2d47e3a8c4f0b19d7e2a6c5b3f8e1d0a9c7b4e2f6a1d3c".into()),
        order_id: Some("ORD-2024-0042".into()),
        date: "2024-05-03 14:21".into(),
        currency: Currency::Eur,
        lines,
        total: Minor(total),
        vat_total: Minor(vat),
        status: "Partially refunded".into(),
        paid: true,
        provider: Some("SensePass".into()),
        approval: Some(Approval {
            confirmation: Some("CNF-778899".into()),
            payment_method: Some("Visa".into()),
            card_mask: Some("411111******1111".into()),
            auth_number: Some("A1B2C3".into()),
            approved_at: Some("2024-05-03 14:22".into()),
        }),
        refunds: vec![RefundLine {
            amount: Minor(500),
            at: "2024-05-03 15:00".into(),
            confirmation: Some("RFD-0001".into()),
            queued: false,
        }],
        qr_data: Some(QR_URL.into()),
        note: None,
    }
}

fn pdf(c: &mut Criterion) {
    let receipt = receipt_20_items();
    let mut g = c.benchmark_group("pdf");
    // Milliseconds per iteration: fewer samples keep the run inside its time budget.
    g.sample_size(20);
    g.bench_function("receipt_20_items", |b| {
        b.iter(|| till_receipts::render_pdf_at(black_box(&receipt), 1_714_746_000).unwrap())
    });
    g.finish();
}

fn init_body() -> Value {
    json!({
        "amount": 4590, "currency": "USD", "isCent": true, "timeOut": 600, "methodType": "payment",
        "posData": {"orderId": "ORD-2024-0042", "pos": "till 1"},
        "products": [
            {"name": "Burger", "quantity": 2, "amount": 900, "vat": 60, "subProducts": [{"name": "Extra cheese", "quantity": 1, "amount": 100}]},
            {"name": "Fries", "quantity": 2, "amount": 350},
            {"name": "Cola", "quantity": 2, "amount": 250, "vat": 20},
            {"name": "Ice cream", "quantity": 1, "amount": 450, "discount": 50},
            {"name": "Coffee", "quantity": 1, "amount": 290}
        ],
        "metadata": [{"key": "table", "value": "12"}]
    })
}

fn validation(c: &mut Criterion) {
    let good = init_body();
    assert!(
        InitRequest::from_pos_json(good.clone()).is_ok(),
        "the benchmark body must be valid"
    );
    let bad = json!({"amount": -5, "currency": "XYZ", "timeOut": 3, "methodType": "barter", "posData": {"orderId": "A"}});
    assert!(InitRequest::from_pos_json(bad.clone()).is_err());
    let mut g = c.benchmark_group("validation");
    g.bench_function("init_request", |b| {
        b.iter(|| InitRequest::from_pos_json(black_box(good.clone())).unwrap())
    });
    g.bench_function("init_request_invalid", |b| {
        b.iter(|| InitRequest::from_pos_json(black_box(bad.clone())).unwrap_err())
    });
    g.finish();
}

fn events(c: &mut Criterion) {
    let mut g = c.benchmark_group("events");
    g.bench_function("status_transition", |b| {
        b.iter(|| {
            let mut advances = 0u32;
            for from in Status::ALL {
                for to in Status::ALL {
                    if black_box(from).transition(black_box(to)) == till_core::Transition::Advance {
                        advances += 1;
                    }
                }
            }
            advances
        })
    });
    // One open payment per iteration batch; each iteration applies a socket event to it.
    let j = Journal::open_in_memory().unwrap();
    let mut n = 0u64;
    let mut open_payment = |j: &Journal| {
        n += 1;
        let local_id = format!("bench-{n}");
        let number = format!("number-{n}");
        let now = till_journal::now_ms();
        j.begin_payment(NewPayment {
            local_id: local_id.clone(),
            device_id: format!("device-{n}"),
            order_id: Some(format!("order-{n}")),
            idempotency_key: None,
            amount: Minor(1250),
            currency: Currency::Usd,
            request_json: json!({"amount": 1250, "currency": "USD"}),
            product_sum_mismatch: false,
            setup: false,
            now_ms: now,
        })
        .unwrap();
        let entity =
            json!({"TransactionNumber": number, "status": 0, "amount": "12.5", "currency": "USD"});
        j.record_created(&local_id, &number, Status::Initialize, &entity, now)
            .unwrap();
        number
    };
    g.bench_function("apply_status_memory", |b| {
        b.iter_batched(
            || open_payment(&j),
            |number| {
                let entity = json!({"TransactionNumber": number, "status": 5, "statusName": "Transaction Approved", "amount": "12.5", "currency": "USD"});
                j.apply_status(&number, Status::Approved, &entity, EventSource::Socket, till_journal::now_ms()).unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, qr, pdf, validation, events);
criterion_main!(benches);
