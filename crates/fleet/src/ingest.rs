//! Applying a till's batch of changes: validated, then written in one PostgreSQL transaction
//! that also moves the till's cursor, so a batch is applied wholly or not at all, exactly once.

use crate::enrol::TillAuth;
use crate::error::ApiError;
use crate::Fleet;
use std::collections::HashMap;
use till_core::InvalidParameters;
use till_fleet_protocol::{
    Batch, BatchAck, ChangeRecord, OperationRow, PaymentRow, Refusal, RefusalKind, Row, StatusEventRow, Table,
    MAX_BATCH_CHANGES,
};
use time::OffsetDateTime;

/// Unix milliseconds as a timestamp; `None` outside 2000–2200 (a till's clock or a bug).
fn ts(ms: i64) -> Option<OffsetDateTime> {
    const MIN: i64 = 946_684_800_000; // 2000-01-01
    const MAX: i64 = 7_258_118_400_000; // 2200-01-01
    (MIN..MAX).contains(&ms).then(|| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()).flatten()
}

fn opt_ts(ms: Option<i64>) -> Option<OffsetDateTime> {
    ms.and_then(ts)
}

fn check_ts(p: &mut InvalidParameters, field: String, ms: i64) {
    if ts(ms).is_none() {
        p.push(field, "must be unix milliseconds between 2000 and 2200");
    }
}

fn check_opt_ts(p: &mut InvalidParameters, field: String, ms: Option<i64>) {
    if let Some(ms) = ms {
        check_ts(p, field, ms);
    }
}

fn check_in(p: &mut InvalidParameters, field: String, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        p.push(field, format!("must be one of {}", allowed.join(", ")));
    }
}

fn check_text(p: &mut InvalidParameters, field: String, value: &str, max: usize) {
    if value.len() > max {
        p.push(field, format!("at most {max} bytes"));
    }
}

fn check_payment(p: &mut InvalidParameters, at: &str, r: &PaymentRow) {
    check_payment_common(p, at, r);
    if let Some(s) = r.status {
        if till_core::Status::from_code(i64::from(s)).is_none() {
            p.push(format!("{at}.status"), "unknown status code");
        }
    }
}

/// A gateway payment: a neutral state instead of a status code, and the amounts it collected.
fn check_gateway_payment(p: &mut InvalidParameters, at: &str, r: &PaymentRow) {
    check_payment_common(p, at, r);
    if r.status.is_some() {
        p.push(format!("{at}.status"), "a gateway payment has a state, not a status code");
    }
    match r.state.as_deref() {
        Some(state) => {
            if state.parse::<till_gateway::PaymentState>().is_err() {
                p.push(format!("{at}.state"), "must be a neutral payment state (pending, authorized, captured, declined, cancelled, expired, failed)");
            }
        }
        None => p.push(format!("{at}.state"), "required for a gateway payment"),
    }
    for (name, v) in [("captured", r.captured), ("refunded", r.refunded)] {
        if v.is_some_and(|v| v < 0) {
            p.push(format!("{at}.{name}"), "must not be negative");
        }
    }
}

fn check_payment_common(p: &mut InvalidParameters, at: &str, r: &PaymentRow) {
    check_text(p, format!("{at}.local_id"), &r.local_id, 100);
    check_text(p, format!("{at}.provider"), &r.provider, 40);
    if r.provider.is_empty() {
        p.push(format!("{at}.provider"), "required");
    }
    check_text(p, format!("{at}.device_id"), &r.device_id, 200);
    check_text(p, format!("{at}.order_id"), r.order_id.as_deref().unwrap_or(""), 200);
    check_text(p, format!("{at}.number"), r.number.as_deref().unwrap_or(""), 200);
    check_text(p, format!("{at}.failure"), r.failure.as_deref().unwrap_or(""), 2000);
    check_text(p, format!("{at}.tender"), r.tender.as_deref().unwrap_or(""), 60);
    check_text(p, format!("{at}.recovered_by"), r.recovered_by.as_deref().unwrap_or(""), 40);
    if r.amount < 0 {
        p.push(format!("{at}.amount"), "must not be negative");
    }
    if till_core::Currency::from_code(&r.currency).is_err() {
        p.push(format!("{at}.currency"), "must be an ISO 4217 code");
    }
    check_in(p, format!("{at}.phase"), &r.phase, &["intent", "created", "create_failed", "create_unknown"]);
    if let Some(l4) = &r.last_four {
        if l4.len() != 4 || !l4.bytes().all(|b| b.is_ascii_digit()) {
            p.push(format!("{at}.last_four"), "must be 4 digits");
        }
    }
    check_ts(p, format!("{at}.created_at_ms"), r.created_at_ms);
    check_ts(p, format!("{at}.updated_at_ms"), r.updated_at_ms);
    check_opt_ts(p, format!("{at}.final_at_ms"), r.final_at_ms);
    check_opt_ts(p, format!("{at}.committed_at_ms"), r.committed_at_ms);
}

fn check_event(p: &mut InvalidParameters, at: &str, r: &StatusEventRow) {
    if till_core::Status::from_code(i64::from(r.status)).is_none() {
        p.push(format!("{at}.status"), "unknown status code");
    }
    check_in(p, format!("{at}.source"), &r.source, &["api", "socket", "poll", "local"]);
    check_in(p, format!("{at}.transition"), &r.transition, &["advance", "same", "ignore"]);
    check_ts(p, format!("{at}.at_ms"), r.at_ms);
}

fn check_operation(p: &mut InvalidParameters, at: &str, r: &OperationRow) {
    check_in(p, format!("{at}.kind"), &r.kind, &["refund", "credit", "cancel", "commit"]);
    check_in(p, format!("{at}.state"), &r.state, &["pending", "in_flight", "delivered", "failed"]);
    check_operation_common(p, at, r);
}

fn check_gateway_operation(p: &mut InvalidParameters, at: &str, r: &OperationRow) {
    check_in(p, format!("{at}.kind"), &r.kind, &["capture", "refund", "void"]);
    check_in(p, format!("{at}.state"), &r.state, &["pending", "prepared", "approved", "declined", "failed"]);
    check_operation_common(p, at, r);
}

fn check_operation_common(p: &mut InvalidParameters, at: &str, r: &OperationRow) {
    check_text(p, format!("{at}.op_key"), &r.op_key, 200);
    check_text(p, format!("{at}.last_error"), r.last_error.as_deref().unwrap_or(""), 2000);
    check_ts(p, format!("{at}.created_at_ms"), r.created_at_ms);
    check_ts(p, format!("{at}.updated_at_ms"), r.updated_at_ms);
    check_opt_ts(p, format!("{at}.finished_at_ms"), r.finished_at_ms);
}

/// Checks the batch's shape before anything is written, naming every invalid field.
fn validate(batch: &Batch) -> Result<(), InvalidParameters> {
    let mut p = InvalidParameters::new();
    if batch.after < 0 {
        p.push("after", "must not be negative");
    }
    if batch.through < batch.after {
        p.push("through", "must not be below after");
    }
    if batch.changes.len() > MAX_BATCH_CHANGES {
        p.push("changes", format!("at most {MAX_BATCH_CHANGES} per batch"));
    }
    check_text(&mut p, "agent.version".into(), &batch.agent.version, 64);
    if let Some(channel) = &batch.agent.channel {
        if !till_fleet_protocol::is_valid_channel(channel) {
            p.push("agent.channel", "1 to 32 letters, digits or '-'");
        }
    }
    let mut prev = batch.after;
    for (i, c) in batch.changes.iter().enumerate() {
        let at = format!("changes[{i}]");
        if c.seq <= prev || c.seq > batch.through {
            p.push(format!("{at}.seq"), "must increase and lie in (after, through]");
        }
        prev = c.seq;
        let row = format!("{at}.row");
        match &c.row {
            Row::Payment(r) => check_payment(&mut p, &row, r),
            Row::StatusEvent(r) => check_event(&mut p, &row, r),
            Row::Operation(r) => check_operation(&mut p, &row, r),
            Row::GatewayPayment(r) => check_gateway_payment(&mut p, &row, r),
            Row::GatewayOperation(r) => check_gateway_operation(&mut p, &row, r),
            Row::Deleted { .. } => {}
        }
    }
    p.into_result()
}

/// The table a change belongs to.
fn table_of(row: &Row) -> Table {
    match row {
        Row::Payment(_) => Table::Payment,
        Row::StatusEvent(_) => Table::StatusEvent,
        Row::Operation(_) => Table::Operation,
        Row::GatewayPayment(_) => Table::GatewayPayment,
        Row::GatewayOperation(_) => Table::GatewayOperation,
        Row::Deleted { of } => *of,
    }
}

/// Applies `batch` from the authenticated till.
pub async fn apply(fleet: &Fleet, till: TillAuth, batch: Batch) -> Result<BatchAck, ApiError> {
    if batch.till_id != till.till_id {
        return Err(ApiError::Forbidden("a till may only write its own rows".into()));
    }
    validate(&batch)?;
    let mut client = fleet.pool.get().await?;
    let instants = batch.changes.iter().filter_map(|c| match &c.row {
        Row::Payment(r) | Row::GatewayPayment(r) => ts(r.created_at_ms),
        Row::StatusEvent(r) => ts(r.at_ms),
        _ => None,
    });
    fleet.partitions.ensure(&client, instants.collect::<Vec<_>>()).await?;

    let tx = client.transaction().await?;
    let row = tx.query_one("SELECT cursor FROM tills WHERE id = $1 FOR UPDATE", &[&till.till_id]).await?;
    let cursor: i64 = row.get(0);
    if batch.after > cursor {
        return Err(ApiError::Refused(Refusal {
            error: RefusalKind::Gap,
            message: format!("batch starts after {} but only {cursor} is applied; resend from {cursor}", batch.after),
            cursor,
        }));
    }
    if !batch.changes.is_empty() && batch.through <= cursor {
        return Err(ApiError::Refused(Refusal {
            error: RefusalKind::Replay,
            message: format!("every change up to {} is already applied (cursor {cursor})", batch.through),
            cursor,
        }));
    }
    // Only what is new, and the last change of each row (a till coalesces already; this makes
    // the bulk upserts safe against a till that does not).
    let mut latest: HashMap<(Table, i64), &ChangeRecord> = HashMap::new();
    for c in batch.changes.iter().filter(|c| c.seq > cursor) {
        latest.insert((table_of(&c.row), c.row_id), c);
    }
    let mut fresh: Vec<&ChangeRecord> = latest.into_values().collect();
    fresh.sort_by_key(|c| c.seq);
    let applied = fresh.len();
    upsert_payments(&tx, till, &fresh).await?;
    upsert_events(&tx, till, &fresh).await?;
    upsert_operations(&tx, till, &fresh).await?;
    delete_rows(&tx, till, &fresh).await?;
    let new_cursor = batch.through.max(cursor);
    tx.execute(
        "UPDATE tills SET cursor = $2, last_seen_at = now(), version = $3, queued_operations = $4, changes_behind = $5, \
                update_channel = coalesce($6, update_channel) WHERE id = $1",
        &[
            &till.till_id,
            &new_cursor,
            &batch.agent.version,
            &i32::try_from(batch.agent.queued_operations.max(0)).unwrap_or(i32::MAX),
            &batch.agent.changes_behind.max(0),
            &batch.agent.channel,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(BatchAck { cursor: new_cursor, applied })
}

async fn upsert_payments(tx: &tokio_postgres::Transaction<'_>, till: TillAuth, changes: &[&ChangeRecord]) -> Result<(), ApiError> {
    // (seq, row id, row, from the journal's gateway tables)
    let rows: Vec<(i64, i64, &PaymentRow, bool)> = changes
        .iter()
        .filter_map(|c| match &c.row {
            Row::Payment(r) => Some((c.seq, c.row_id, r, false)),
            Row::GatewayPayment(r) => Some((c.seq, c.row_id, r, true)),
            _ => None,
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let seq: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let row_id: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let created: Vec<Option<OffsetDateTime>> = rows.iter().map(|r| ts(r.2.created_at_ms)).collect();
    let local_id: Vec<&str> = rows.iter().map(|r| r.2.local_id.as_str()).collect();
    let provider: Vec<&str> = rows.iter().map(|r| r.2.provider.as_str()).collect();
    let number: Vec<Option<&str>> = rows.iter().map(|r| r.2.number.as_deref()).collect();
    let device: Vec<&str> = rows.iter().map(|r| r.2.device_id.as_str()).collect();
    let order: Vec<Option<&str>> = rows.iter().map(|r| r.2.order_id.as_deref()).collect();
    let amount: Vec<i64> = rows.iter().map(|r| r.2.amount).collect();
    let currency: Vec<&str> = rows.iter().map(|r| r.2.currency.as_str()).collect();
    let phase: Vec<&str> = rows.iter().map(|r| r.2.phase.as_str()).collect();
    let status: Vec<Option<i16>> = rows.iter().map(|r| r.2.status.map(i16::from)).collect();
    let is_open: Vec<bool> = rows.iter().map(|r| r.2.is_open).collect();
    let setup: Vec<bool> = rows.iter().map(|r| r.2.setup).collect();
    let tender: Vec<Option<&str>> = rows.iter().map(|r| r.2.tender.as_deref()).collect();
    let last_four: Vec<Option<&str>> = rows.iter().map(|r| r.2.last_four.as_deref()).collect();
    let updated: Vec<Option<OffsetDateTime>> = rows.iter().map(|r| ts(r.2.updated_at_ms)).collect();
    let final_at: Vec<Option<OffsetDateTime>> = rows.iter().map(|r| opt_ts(r.2.final_at_ms)).collect();
    let committed: Vec<Option<OffsetDateTime>> = rows.iter().map(|r| opt_ts(r.2.committed_at_ms)).collect();
    let failure: Vec<Option<&str>> = rows.iter().map(|r| r.2.failure.as_deref()).collect();
    let gateway: Vec<bool> = rows.iter().map(|r| r.3).collect();
    let state: Vec<Option<&str>> = rows.iter().map(|r| r.2.state.as_deref()).collect();
    let captured: Vec<Option<i64>> = rows.iter().map(|r| r.2.captured).collect();
    let refunded: Vec<Option<i64>> = rows.iter().map(|r| r.2.refunded).collect();
    let recovered_by: Vec<Option<&str>> = rows.iter().map(|r| r.2.recovered_by.as_deref()).collect();
    tx.execute(
        "INSERT INTO payments (till_id, store_id, seq, row_id, created_at, local_id, provider, number, device_id, \
             order_id, amount, currency, phase, status, is_open, setup, tender, last_four, updated_at, final_at, \
             committed_at, failure, gateway, state, captured, refunded, recovered_by) \
         SELECT $1, $2, * FROM unnest($3::bigint[], $4::bigint[], $5::timestamptz[], $6::text[], $7::text[], \
             $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::text[], $14::smallint[], \
             $15::boolean[], $16::boolean[], $17::text[], $18::text[], $19::timestamptz[], $20::timestamptz[], \
             $21::timestamptz[], $22::text[], $23::boolean[], $24::text[], $25::bigint[], $26::bigint[], $27::text[]) \
         ON CONFLICT (till_id, gateway, row_id, created_at) DO UPDATE SET seq = excluded.seq, local_id = excluded.local_id, \
             provider = excluded.provider, number = excluded.number, device_id = excluded.device_id, \
             order_id = excluded.order_id, amount = excluded.amount, currency = excluded.currency, \
             phase = excluded.phase, status = excluded.status, is_open = excluded.is_open, setup = excluded.setup, \
             tender = excluded.tender, last_four = excluded.last_four, updated_at = excluded.updated_at, \
             final_at = excluded.final_at, committed_at = excluded.committed_at, failure = excluded.failure, \
             state = excluded.state, captured = excluded.captured, refunded = excluded.refunded, \
             recovered_by = excluded.recovered_by \
         WHERE payments.seq < excluded.seq",
        &[
            &till.till_id, &till.store_id, &seq, &row_id, &created, &local_id, &provider, &number, &device, &order,
            &amount, &currency, &phase, &status, &is_open, &setup, &tender, &last_four, &updated, &final_at,
            &committed, &failure, &gateway, &state, &captured, &refunded, &recovered_by,
        ],
    )
    .await?;
    Ok(())
}

async fn upsert_events(tx: &tokio_postgres::Transaction<'_>, till: TillAuth, changes: &[&ChangeRecord]) -> Result<(), ApiError> {
    let rows: Vec<(i64, i64, &StatusEventRow)> = changes
        .iter()
        .filter_map(|c| match &c.row {
            Row::StatusEvent(r) => Some((c.seq, c.row_id, r)),
            _ => None,
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let seq: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let row_id: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let at: Vec<Option<OffsetDateTime>> = rows.iter().map(|r| ts(r.2.at_ms)).collect();
    let payment: Vec<i64> = rows.iter().map(|r| r.2.payment_row_id).collect();
    let status: Vec<i16> = rows.iter().map(|r| i16::from(r.2.status)).collect();
    let source: Vec<&str> = rows.iter().map(|r| r.2.source.as_str()).collect();
    let transition: Vec<&str> = rows.iter().map(|r| r.2.transition.as_str()).collect();
    let applied: Vec<bool> = rows.iter().map(|r| r.2.applied).collect();
    tx.execute(
        "INSERT INTO status_events (till_id, store_id, seq, row_id, at, payment_row_id, status, source, transition, applied) \
         SELECT $1, $2, * FROM unnest($3::bigint[], $4::bigint[], $5::timestamptz[], $6::bigint[], $7::smallint[], \
             $8::text[], $9::text[], $10::boolean[]) \
         ON CONFLICT (till_id, row_id, at) DO UPDATE SET seq = excluded.seq, payment_row_id = excluded.payment_row_id, \
             status = excluded.status, source = excluded.source, transition = excluded.transition, applied = excluded.applied \
         WHERE status_events.seq < excluded.seq",
        &[&till.till_id, &till.store_id, &seq, &row_id, &at, &payment, &status, &source, &transition, &applied],
    )
    .await?;
    Ok(())
}

async fn upsert_operations(tx: &tokio_postgres::Transaction<'_>, till: TillAuth, changes: &[&ChangeRecord]) -> Result<(), ApiError> {
    let rows: Vec<(i64, i64, &OperationRow, bool)> = changes
        .iter()
        .filter_map(|c| match &c.row {
            Row::Operation(r) => Some((c.seq, c.row_id, r, false)),
            Row::GatewayOperation(r) => Some((c.seq, c.row_id, r, true)),
            _ => None,
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let seq: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let row_id: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let op_key: Vec<&str> = rows.iter().map(|r| r.2.op_key.as_str()).collect();
    let kind: Vec<&str> = rows.iter().map(|r| r.2.kind.as_str()).collect();
    let payment: Vec<Option<&str>> = rows.iter().map(|r| r.2.payment_local_id.as_deref()).collect();
    let amount: Vec<Option<i64>> = rows.iter().map(|r| r.2.amount).collect();
    let state: Vec<&str> = rows.iter().map(|r| r.2.state.as_str()).collect();
    let attempts: Vec<i64> = rows.iter().map(|r| r.2.attempts).collect();
    let last_error: Vec<Option<&str>> = rows.iter().map(|r| r.2.last_error.as_deref()).collect();
    let created: Vec<Option<OffsetDateTime>> = rows.iter().map(|r| ts(r.2.created_at_ms)).collect();
    let updated: Vec<Option<OffsetDateTime>> = rows.iter().map(|r| ts(r.2.updated_at_ms)).collect();
    let finished: Vec<Option<OffsetDateTime>> = rows.iter().map(|r| opt_ts(r.2.finished_at_ms)).collect();
    let gateway: Vec<bool> = rows.iter().map(|r| r.3).collect();
    tx.execute(
        "INSERT INTO operations (till_id, store_id, seq, row_id, op_key, kind, payment_local_id, amount, state, attempts, \
             last_error, created_at, updated_at, finished_at, gateway) \
         SELECT $1, $2, * FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::bigint[], \
             $9::text[], $10::bigint[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], \
             $15::boolean[]) \
         ON CONFLICT (till_id, gateway, row_id) DO UPDATE SET seq = excluded.seq, op_key = excluded.op_key, kind = excluded.kind, \
             payment_local_id = excluded.payment_local_id, amount = excluded.amount, state = excluded.state, \
             attempts = excluded.attempts, last_error = excluded.last_error, created_at = excluded.created_at, \
             updated_at = excluded.updated_at, finished_at = excluded.finished_at \
         WHERE operations.seq < excluded.seq",
        &[
            &till.till_id, &till.store_id, &seq, &row_id, &op_key, &kind, &payment, &amount, &state, &attempts,
            &last_error, &created, &updated, &finished, &gateway,
        ],
    )
    .await?;
    Ok(())
}

async fn delete_rows(tx: &tokio_postgres::Transaction<'_>, till: TillAuth, changes: &[&ChangeRecord]) -> Result<(), ApiError> {
    for (table, sql) in [
        (Table::Payment, "DELETE FROM payments WHERE till_id = $1 AND NOT gateway AND row_id = ANY($2)"),
        (Table::StatusEvent, "DELETE FROM status_events WHERE till_id = $1 AND row_id = ANY($2)"),
        (Table::Operation, "DELETE FROM operations WHERE till_id = $1 AND NOT gateway AND row_id = ANY($2)"),
        (Table::GatewayPayment, "DELETE FROM payments WHERE till_id = $1 AND gateway AND row_id = ANY($2)"),
        (Table::GatewayOperation, "DELETE FROM operations WHERE till_id = $1 AND gateway AND row_id = ANY($2)"),
    ] {
        let ids: Vec<i64> = changes
            .iter()
            .filter(|c| matches!(c.row, Row::Deleted { of } if of == table))
            .map(|c| c.row_id)
            .collect();
        if !ids.is_empty() {
            tx.execute(sql, &[&till.till_id, &ids]).await?;
        }
    }
    Ok(())
}
