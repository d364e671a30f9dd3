//! What the tray says about the agent: paired or not, online or offline, queued operations, and
//! the receipt printer ("Printer: out of paper, 2 receipts waiting").
//!
//! A manager glancing at the tray must see the three facts that matter when something looks wrong
//! at the till: is this PC paired with a SensePass device, can the agent reach SensePass, and are
//! refunds or payment commits waiting to be sent. The words here are the tray's; the figures are
//! the same ones `GET /api/agent/health` reports (`paired`, `sensepassReachable`/`socketConnected`,
//! `queuedOperations`, `printer.summary`), read from the same in-process [`Agent`].
//!
//! [`TrayStatus`] is plain data with pure formatting, so it is unit-tested without a window.

use std::sync::atomic::Ordering;
use till_agent::Agent;
use till_journal::PrintCounts;
use till_printer::PrinterState;

/// How the agent's link to SensePass looks right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// Start-up reconciliation is still running; new payments are refused until it ends.
    Starting,
    /// The live Socket.IO stream is connected and the last SensePass call went through.
    Online,
    /// The live stream is down but no SensePass call has failed: payments still work (the agent
    /// polls), status updates come a little later. An idle agent makes no REST calls, so an
    /// unreachable SensePass shows as this until the next call fails.
    Connecting,
    /// SensePass cannot be reached (since `since_ms`, Unix milliseconds): payments cannot start,
    /// refunds and commits are queued.
    Offline {
        /// When the agent first failed to reach SensePass.
        since_ms: i64,
    },
}

/// The paired SensePass device, as far as the tray needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedTill {
    /// Register name shown in SensePass dashboards (may be empty).
    pub pos_name: String,
    /// `sandbox`, `production` or `custom`: a sandbox till must never be mistaken for a live one.
    pub environment: String,
}

/// One reading of the agent's state, turned into tray text by its methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayStatus {
    /// The paired device, or `None` when the till is not paired yet (no payments possible).
    pub paired: Option<PairedTill>,
    /// The SensePass link.
    pub connectivity: Connectivity,
    /// Outbox operations (refunds, payment commits) waiting to be sent: the same figure as the
    /// health endpoint's `queuedOperations`.
    pub queued_operations: u64,
    /// Changes of the journal the fleet server has not acknowledged, when this till is enrolled
    /// with one (`None` otherwise): the same figure as health's `fleet.changesBehind`.
    pub fleet_behind: Option<i64>,
    /// The receipt printer: a cashier waiting for a receipt that does not come looks at the tray
    /// first (the window is usually hidden behind the POS).
    pub printer: PrinterLine,
}

/// The receipt printer as the tray shows it: the same figures as health's `printer` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterLine {
    /// Whether a printer is configured at all (no printer: PDF receipts only).
    pub configured: bool,
    /// What the printer said at the last attempt.
    pub state: PrinterState,
    /// Receipts waiting, and ones a crash left "may have printed".
    pub counts: PrintCounts,
}

impl TrayStatus {
    /// Reads the figures from the running agent (pairing and outbox counts from the journal,
    /// connectivity from its live health atomics).
    pub async fn read(agent: &Agent) -> Result<TrayStatus, till_agent::error::AgentError> {
        let pairing = agent.pairing().await?;
        let counts = agent.journal(|j| j.counts()).await?;
        let behind = agent.journal(|j| j.changes_behind()).await?;
        let enrolled = till_agent::fleet::Identity::load(&agent.config().data_dir).ok().flatten().is_some();
        let print_counts = agent.journal(|j| j.print_counts()).await?;
        let printer = PrinterLine {
            configured: agent.printing().settings().url.is_some(),
            state: agent.printing().status().state,
            counts: print_counts,
        };
        let health = agent.health();
        let offline_since = health.offline_since_ms.load(Ordering::SeqCst);
        let connectivity = if health.recovering.load(Ordering::SeqCst) {
            Connectivity::Starting
        } else if offline_since != 0 {
            Connectivity::Offline {
                since_ms: offline_since,
            }
        } else if health.socket_connected.load(Ordering::SeqCst) {
            Connectivity::Online
        } else {
            Connectivity::Connecting
        };
        Ok(TrayStatus {
            paired: pairing.map(|p| PairedTill {
                pos_name: p.pos_name,
                environment: p.environment,
            }),
            connectivity,
            queued_operations: counts.queued_operations(),
            fleet_behind: enrolled.then_some(behind),
            printer,
        })
    }

    /// One word for the state, used first in the menu and the tooltip.
    pub fn state_word(&self) -> &'static str {
        match (&self.paired, self.connectivity) {
            (None, _) => "Not paired",
            (Some(_), Connectivity::Starting) => "Starting",
            (Some(_), Connectivity::Online) => "Online",
            (Some(_), Connectivity::Connecting) => "Connecting",
            (Some(_), Connectivity::Offline { .. }) => "Offline",
        }
    }

    /// The first (disabled) menu line: state and which till, e.g.
    /// `Online · Front till (sandbox)` or `Offline for 12 min · Front till`.
    pub fn status_line(&self, now_ms: i64) -> String {
        let Some(till) = &self.paired else {
            return "Not paired: open Till Agent to pair".to_string();
        };
        let state = match self.connectivity {
            Connectivity::Offline { since_ms } => {
                let minutes = (now_ms - since_ms).max(0) / 60_000;
                if minutes >= 1 {
                    format!("Offline for {minutes} min")
                } else {
                    "Offline".to_string()
                }
            }
            _ => self.state_word().to_string(),
        };
        format!("{state} · {}", till_name(till))
    }

    /// The second (disabled) menu line: `No queued operations`, `1 queued operation`, `3 queued
    /// operations`.
    pub fn queued_line(&self) -> String {
        let queued = match self.queued_operations {
            0 => "No queued operations".to_string(),
            1 => "1 queued operation".to_string(),
            n => format!("{n} queued operations"),
        };
        match self.fleet_behind {
            None => queued,
            Some(n) => format!("{queued} · fleet: {n} changes behind"),
        }
    }

    /// The third (disabled) menu line: the printer in the words health uses (one rule:
    /// `till_agent::printer::summary`), e.g. `Printer: out of paper, 2 receipts waiting`,
    /// `No printer`.
    pub fn printer_line(&self) -> String {
        let p = &self.printer;
        let text = till_agent::printer::summary(p.configured, p.state, &p.counts);
        let mut chars = text.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => text,
        }
    }

    /// The tray tooltip (where the platform shows one: Windows, macOS; Linux tray hosts ignore
    /// it, which is why the menu carries the same facts).
    pub fn tooltip(&self, now_ms: i64) -> String {
        match &self.paired {
            None => "Till Agent: not paired".to_string(),
            Some(_) => format!(
                "Till Agent: {}\n{}\n{}",
                self.status_line(now_ms),
                self.queued_line(),
                self.printer_line()
            ),
        }
    }
}

/// `Front till (sandbox)`; a nameless device is `this till`. Production is the normal case and
/// gets no suffix.
fn till_name(till: &PairedTill) -> String {
    let name = if till.pos_name.trim().is_empty() {
        "this till"
    } else {
        till.pos_name.trim()
    };
    if till.environment == "production" || till.environment.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({})", till.environment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paired(connectivity: Connectivity, queued: u64) -> TrayStatus {
        TrayStatus {
            paired: Some(PairedTill {
                pos_name: "Front till".into(),
                environment: "sandbox".into(),
            }),
            connectivity,
            queued_operations: queued,
            fleet_behind: None,
            printer: no_printer(),
        }
    }

    fn no_printer() -> PrinterLine {
        PrinterLine { configured: false, state: PrinterState::Unknown, counts: PrintCounts::default() }
    }

    #[test]
    fn the_printer_line_says_what_health_says() {
        let mut s = paired(Connectivity::Online, 0);
        assert_eq!(s.printer_line(), "No printer");
        s.printer = PrinterLine {
            configured: true,
            state: PrinterState::PaperOut,
            counts: PrintCounts { waiting: 2, may_have_printed: 0, failed: 0 },
        };
        assert_eq!(s.printer_line(), "Printer: out of paper, 2 receipts waiting");
        assert!(s.tooltip(0).ends_with("\nPrinter: out of paper, 2 receipts waiting"), "{}", s.tooltip(0));
        s.printer.state = PrinterState::Ready;
        s.printer.counts = PrintCounts { waiting: 0, may_have_printed: 1, failed: 0 };
        assert_eq!(s.printer_line(), "Printer: ready, 1 may have printed");
    }

    #[test]
    fn not_paired_says_so_whatever_the_link() {
        let s = TrayStatus {
            paired: None,
            connectivity: Connectivity::Online,
            queued_operations: 0,
            fleet_behind: None,
            printer: no_printer(),
        };
        assert_eq!(s.state_word(), "Not paired");
        assert_eq!(s.status_line(0), "Not paired: open Till Agent to pair");
        assert_eq!(s.tooltip(0), "Till Agent: not paired");
    }

    #[test]
    fn an_enrolled_till_says_how_far_behind_the_fleet_is() {
        let mut s = paired(Connectivity::Online, 1);
        s.fleet_behind = Some(12);
        assert_eq!(s.queued_line(), "1 queued operation · fleet: 12 changes behind");
    }

    #[test]
    fn online_names_the_till_and_its_environment() {
        let s = paired(Connectivity::Online, 0);
        assert_eq!(s.status_line(0), "Online · Front till (sandbox)");
        assert_eq!(
            s.tooltip(0),
            "Till Agent: Online · Front till (sandbox)\nNo queued operations\nNo printer"
        );
    }

    #[test]
    fn production_gets_no_suffix_and_a_nameless_device_a_placeholder() {
        let mut s = paired(Connectivity::Online, 0);
        s.paired = Some(PairedTill {
            pos_name: " ".into(),
            environment: "production".into(),
        });
        assert_eq!(s.status_line(0), "Online · this till");
    }

    #[test]
    fn offline_counts_minutes_and_queued_operations() {
        let s = paired(
            Connectivity::Offline {
                since_ms: 1_000_000,
            },
            3,
        );
        assert_eq!(s.state_word(), "Offline");
        assert_eq!(
            s.status_line(1_000_000 + 30_000),
            "Offline · Front till (sandbox)"
        );
        assert_eq!(
            s.status_line(1_000_000 + 12 * 60_000 + 5),
            "Offline for 12 min · Front till (sandbox)"
        );
        assert_eq!(s.queued_line(), "3 queued operations");
        assert_eq!(
            paired(Connectivity::Online, 1).queued_line(),
            "1 queued operation"
        );
    }

    #[test]
    fn starting_and_connecting_are_not_online() {
        assert_eq!(paired(Connectivity::Starting, 0).state_word(), "Starting");
        assert_eq!(
            paired(Connectivity::Connecting, 0).state_word(),
            "Connecting"
        );
    }
}
