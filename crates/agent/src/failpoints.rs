//! Crash points for the reliability harness.
//!
//! With the `failpoints` feature, `fail_point!` sites between each journal write and each network
//! call can be armed through the `FAILPOINTS` environment variable; an armed site kills the agent
//! on the spot with SIGKILL — exactly what a power cut at that step does. Without the feature the
//! sites compile to nothing.
//!
//! Sites: `payment::before_create` (intent journaled, SensePass not called), `payment::after_create`
//! (SensePass answered, outcome not journaled), `outbox::before_send` (operation claimed, not sent),
//! `outbox::after_send` (SensePass answered, not journaled), `status::before_apply` (event received,
//! not journaled), `print::before_claim` (printer opened, print job not yet claimed: nothing
//! written), `print::after_write` (receipt written to the printer, not journaled as printed),
//! `recovery::before_evaluate` (a decline and the evaluation intent journaled, FlexFactor not
//! asked), `recovery::after_evaluate` (FlexFactor answered, outcome not journaled),
//! `recovery::before_refund` (a refund of a recovered payment journaled as prepared, not sent).

/// Kills this process with SIGKILL (no destructors, no flushing), like `kill -9`.
pub fn crash(site: &str) -> ! {
    eprintln!("failpoint {site}: killing the agent");
    #[cfg(unix)]
    // SAFETY: kill(2) on our own pid with a valid signal number has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// Arms the sites named in `FAILPOINTS` (no-op without the feature). Keep the guard alive.
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// Environment variable that moves the agent's clock for idempotency decisions by this many
/// milliseconds — honoured only in builds with the `failpoints` feature (the test harness's), so
/// that an end-to-end test can step past the order-ID window without waiting minutes.
pub const CLOCK_OFFSET_ENV: &str = "TILL_AGENT_TEST_CLOCK_OFFSET_MS";

/// The test clock offset in ms (always 0 without the `failpoints` feature).
pub fn clock_offset_ms() -> i64 {
    if cfg!(feature = "failpoints") {
        std::env::var(CLOCK_OFFSET_ENV).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    } else {
        0
    }
}
