//! Getting bytes to a printer, the three ways stores connect them, named by one URL:
//!
//! - `tcp://host:9100` — a network printer's raw port (JetDirect / "port 9100"). The only
//!   transport that talks back: before a job the printer's real-time status is asked
//!   (`DLE EOT 1` printer, `DLE EOT 4` paper sensor, `DLE EOT 2` offline cause) and a printer that
//!   reports paper out, cover open or offline gets nothing; after the job one more query proves
//!   that the printer received every byte before it (TCP keeps order).
//! - `file:///dev/usb/lp0` — a device file (USB printer class, serial port) or a FIFO. Opened
//!   non-blocking, so a FIFO without a reader or a device that is gone fails at once instead of
//!   hanging the queue. A regular file is refused: it would swallow receipts silently.
//! - `cups://queue` — a CUPS queue, through `lp -d queue -o raw` (the bytes pass through
//!   untouched). CUPS owns the printer then; "sent" means CUPS accepted the job.
//!
//! Everything here is blocking std I/O with timeouts; the agent runs it on a blocking thread.

use crate::PrinterError;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the printer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Raw TCP to `host:port`.
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// Port, 9100 unless the URL says otherwise.
        port: u16,
    },
    /// A device file or FIFO.
    File(PathBuf),
    /// A CUPS queue name.
    Cups(String),
}

impl Target {
    /// Parses `tcp://host[:port]`, `file:///absolute/path` or `cups://queue`.
    pub fn parse(url: &str) -> Result<Target, PrinterError> {
        let bad = |why: &str| PrinterError::Url(format!("`{url}`: {why}"));
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
                let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed [ in the host"))?;
                (h.to_string(), after.strip_prefix(':'))
            } else {
                match rest.rsplit_once(':') {
                    Some((h, p)) => (h.to_string(), Some(p)),
                    None => (rest.to_string(), None),
                }
            };
            if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
                return Err(bad("expected tcp://host:port"));
            }
            let port = match port {
                None => 9100,
                Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("the port must be 1 to 65535"))?,
            };
            Ok(Target::Tcp { host, port })
        } else if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad("expected file:///absolute/path (three slashes)"));
            }
            if path.split('/').any(|seg| seg == "..") {
                return Err(bad("the path may not contain .."));
            }
            Ok(Target::File(PathBuf::from(path)))
        } else if let Some(queue) = url.strip_prefix("cups://") {
            let queue = queue.trim_end_matches('/');
            let ok = !queue.is_empty()
                && !queue.starts_with('-')
                && queue.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !ok {
                return Err(bad("a CUPS queue name is letters, digits, '_', '-' and '.'"));
            }
            Ok(Target::Cups(queue.to_string()))
        } else {
            Err(bad("must start with tcp://, file:// or cups://"))
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Target::File(p) => write!(f, "file://{}", p.display()),
            Target::Cups(q) => write!(f, "cups://{q}"),
        }
    }
}

/// What the printer said about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrinterState {
    /// Answered, and ready.
    Ready,
    /// The roll is empty.
    PaperOut,
    /// The cover is open.
    CoverOpen,
    /// Offline for another reason (error, feed button held).
    Offline,
    /// Cannot be reached (connection refused, device gone, FIFO without a reader).
    Unreachable,
    /// Reachable but does not answer status queries (device files, CUPS, some printers).
    Unknown,
}

impl PrinterState {
    /// Words for a person: "out of paper", "offline"…
    pub fn describe(self) -> &'static str {
        match self {
            PrinterState::Ready => "ready",
            PrinterState::PaperOut => "out of paper",
            PrinterState::CoverOpen => "cover open",
            PrinterState::Offline => "offline",
            PrinterState::Unreachable => "not reachable",
            PrinterState::Unknown => "no status (printer does not report it)",
        }
    }
}

/// Why a job did not print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Nothing reached the printer (unreachable, or it reported paper out / cover open /
    /// offline before the job): safe to send again later.
    #[error("not sent: {reason}")]
    NotSent {
        /// What the printer is.
        state: PrinterState,
        /// Details for the log and the UI.
        reason: String,
    },
    /// Part of the job may have reached the printer before the connection broke; the end of it
    /// (the cut) cannot be shown to have arrived.
    #[error("interrupted mid-job: {0}")]
    Interrupted(String),
}

/// The timeouts of one job.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting (TCP) or opening (file).
    pub connect: Duration,
    /// Waiting for one status answer before deciding the printer does not answer.
    pub status: Duration,
    /// Writing the whole job.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(3), status: Duration::from_millis(700), write: Duration::from_secs(10) }
    }
}

/// Checks a target as a manager saves it: the host answers on its port, the path is a
/// character device or a FIFO, the CUPS queue exists. The error says what is wrong.
pub fn check(target: &Target, timeouts: Timeouts) -> Result<(), PrinterError> {
    match target {
        Target::Tcp { .. } => {
            connect(target, timeouts.connect).map_err(|e| PrinterError::Unreachable(e.to_string()))?;
            Ok(())
        }
        Target::File(path) => file_kind(path).map(|_| ()),
        Target::Cups(queue) => {
            let out = std::process::Command::new("lpstat")
                .args(["-p", queue])
                .output()
                .map_err(|e| PrinterError::Unreachable(format!("cannot run lpstat (is CUPS installed?): {e}")))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(PrinterError::Unreachable(format!("CUPS has no queue `{queue}`")))
            }
        }
    }
}

/// Is `path` something a printer can be behind? Character device or FIFO, else why not.
fn file_kind(path: &std::path::Path) -> Result<&'static str, PrinterError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path).map_err(|e| PrinterError::NotADevice(format!("{}: {e}", path.display())))?;
    let t = meta.file_type();
    if t.is_char_device() {
        Ok("device")
    } else if t.is_fifo() {
        Ok("fifo")
    } else {
        Err(PrinterError::NotADevice(format!("{} is not a device file or a FIFO", path.display())))
    }
}

fn connect(target: &Target, timeout: Duration) -> std::io::Result<TcpStream> {
    let Target::Tcp { host, port } = target else {
        return Err(std::io::Error::other("not a TCP printer"));
    };
    let mut last = std::io::Error::other(format!("{host} has no address"));
    for addr in (host.as_str(), *port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Asks the printer's real-time status over an open connection. `Ok(None)`: no answer in time
/// (a printer without status support); `Err`: the connection is gone.
fn query(stream: &mut TcpStream, n: u8, timeout: Duration) -> std::io::Result<Option<u8>> {
    stream.write_all(&[0x10, 0x04, n])?;
    stream.set_read_timeout(Some(timeout))?;
    let mut b = [0u8; 1];
    match stream.read(&mut b) {
        Ok(0) => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "printer closed the connection")),
        Ok(_) => Ok(Some(b[0])),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The printer's state from its status bytes (Epson: `DLE EOT 1` bit 3 offline; `DLE EOT 4`
/// bits 5–6 paper end; `DLE EOT 2` bit 2 cover open, bit 5 stopped for paper end).
fn status_of(stream: &mut TcpStream, timeout: Duration) -> std::io::Result<PrinterState> {
    let Some(printer) = query(stream, 1, timeout)? else {
        return Ok(PrinterState::Unknown);
    };
    if let Some(paper) = query(stream, 4, timeout)? {
        if paper & 0x60 != 0 {
            return Ok(PrinterState::PaperOut);
        }
    }
    if printer & 0x08 != 0 {
        let cause = query(stream, 2, timeout)?.unwrap_or(0);
        return Ok(if cause & 0x20 != 0 {
            PrinterState::PaperOut
        } else if cause & 0x04 != 0 {
            PrinterState::CoverOpen
        } else {
            PrinterState::Offline
        });
    }
    Ok(PrinterState::Ready)
}

/// Asks how the printer is, without printing.
pub fn probe(target: &Target, timeouts: Timeouts) -> PrinterState {
    match target {
        Target::Tcp { .. } => match connect(target, timeouts.connect) {
            Ok(mut s) => status_of(&mut s, timeouts.status).unwrap_or(PrinterState::Unreachable),
            Err(_) => PrinterState::Unreachable,
        },
        Target::File(path) => match file_kind(path) {
            Ok(_) => PrinterState::Unknown,
            Err(_) => PrinterState::Unreachable,
        },
        Target::Cups(_) => match check(target, timeouts) {
            Ok(()) => PrinterState::Unknown,
            Err(_) => PrinterState::Unreachable,
        },
    }
}

/// A printer ready to take a job: connected (TCP, having answered that it is ready or not
/// answered at all), opened (device file or FIFO), or a CUPS queue. Opening sends nothing that
/// prints, so a failure here means nothing reached the paper; the caller journals its claim on
/// the job between [`open`] and [`Connection::write_job`].
#[derive(Debug)]
pub enum Connection {
    /// A raw TCP connection; `answers` when the printer replied to the status query.
    Tcp {
        /// The socket.
        stream: TcpStream,
        /// Whether the printer answered `DLE EOT`.
        answers: bool,
    },
    /// An open device file or FIFO.
    File(std::fs::File),
    /// A CUPS queue (`lp` runs in [`Connection::write_job`]).
    Cups(String),
}

/// Opens the printer for one job, refusing one that reports paper out, cover open or offline.
pub fn open(target: &Target, timeouts: Timeouts) -> Result<Connection, SendError> {
    let unreachable = |e: &dyn std::fmt::Display| SendError::NotSent { state: PrinterState::Unreachable, reason: e.to_string() };
    match target {
        Target::Tcp { .. } => {
            let mut stream = connect(target, timeouts.connect).map_err(|e| unreachable(&e))?;
            let state = status_of(&mut stream, timeouts.status).map_err(|e| unreachable(&e))?;
            if matches!(state, PrinterState::PaperOut | PrinterState::CoverOpen | PrinterState::Offline) {
                return Err(SendError::NotSent { state, reason: format!("printer reports {}", state.describe()) });
            }
            Ok(Connection::Tcp { stream, answers: state != PrinterState::Unknown })
        }
        Target::File(path) => {
            file_kind(path).map_err(|e| unreachable(&e))?;
            let file = open_nonblocking(path).map_err(|e| {
                if e.raw_os_error() == Some(libc::ENXIO) {
                    unreachable(&format!("{}: nothing is reading it (printer not connected)", path.display()))
                } else {
                    unreachable(&format!("{}: {e}", path.display()))
                }
            })?;
            Ok(Connection::File(file))
        }
        Target::Cups(queue) => Ok(Connection::Cups(queue.clone())),
    }
}

impl Connection {
    /// Writes one job. `Ok(state)` when the printer received all of it (`state` is what its
    /// status answer after the job said, or [`PrinterState::Unknown`]).
    pub fn write_job(self, bytes: &[u8], timeouts: Timeouts) -> Result<PrinterState, SendError> {
        let unreachable = |e: &dyn std::fmt::Display| SendError::NotSent { state: PrinterState::Unreachable, reason: e.to_string() };
        match self {
            Connection::Tcp { mut stream, answers } => {
                stream
                    .set_write_timeout(Some(timeouts.write))
                    .and_then(|_| stream.write_all(bytes))
                    .and_then(|_| stream.flush())
                    .map_err(|e| SendError::Interrupted(e.to_string()))?;
                if !answers {
                    // A printer that never answers: the bytes left in order; nothing more to learn.
                    return Ok(PrinterState::Unknown);
                }
                // The answer to a query sent after the job proves every byte before it arrived.
                status_of(&mut stream, timeouts.status)
                    .map_err(|e| SendError::Interrupted(format!("no answer after the job: {e}")))
            }
            Connection::File(mut file) => {
                write_patiently(&mut file, bytes, timeouts.write)?;
                Ok(PrinterState::Unknown)
            }
            Connection::Cups(queue) => {
                let mut child = std::process::Command::new("lp")
                    .args(["-d", &queue, "-o", "raw"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| unreachable(&format!("cannot run lp (is CUPS installed?): {e}")))?;
                // lp may refuse (unknown queue, CUPS down) before reading all of its stdin: then
                // the write fails with a broken pipe, and lp's own words say why.
                let written = match child.stdin.take() {
                    Some(mut stdin) => stdin.write_all(bytes),
                    None => Ok(()),
                };
                let out = child.wait_with_output().map_err(|e| unreachable(&format!("lp: {e}")))?;
                if !out.status.success() {
                    Err(unreachable(&format!("lp refused the job: {}", String::from_utf8_lossy(&out.stderr).trim())))
                } else if let Err(e) = written {
                    Err(unreachable(&format!("lp: {e}")))
                } else {
                    Ok(PrinterState::Unknown)
                }
            }
        }
    }
}

/// [`open`] and [`Connection::write_job`] in one go.
pub fn send(target: &Target, bytes: &[u8], timeouts: Timeouts) -> Result<PrinterState, SendError> {
    open(target, timeouts)?.write_job(bytes, timeouts)
}

fn open_nonblocking(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)
}

/// Writes everything to a non-blocking file, waiting while the device (or the FIFO's buffer) is
/// full, up to `timeout`.
fn write_patiently(file: &mut std::fs::File, mut bytes: &[u8], timeout: Duration) -> Result<(), SendError> {
    let deadline = Instant::now() + timeout;
    let mut written = 0usize;
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(0) => return Err(SendError::Interrupted("the device accepted no more bytes".into())),
            Ok(n) => {
                written += n;
                bytes = &bytes[n..];
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) if written == 0 => {
                return Err(SendError::NotSent { state: PrinterState::Unreachable, reason: e.to_string() })
            }
            Err(e) => return Err(SendError::Interrupted(e.to_string())),
        }
    }
    Ok(())
}

/// Sends `bytes` without any status check or retry — the cash drawer kick, which must happen
/// now or not at all.
pub fn send_now(target: &Target, bytes: &[u8], timeouts: Timeouts) -> Result<(), SendError> {
    match target {
        Target::Tcp { .. } => {
            let mut stream = connect(target, timeouts.connect)
                .map_err(|e| SendError::NotSent { state: PrinterState::Unreachable, reason: e.to_string() })?;
            stream
                .set_write_timeout(Some(timeouts.write))
                .and_then(|_| stream.write_all(bytes))
                .and_then(|_| stream.flush())
                .map_err(|e| SendError::Interrupted(e.to_string()))
        }
        _ => send(target, bytes, timeouts).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(Target::parse("tcp://10.0.0.5").unwrap(), Target::Tcp { host: "10.0.0.5".into(), port: 9100 });
        assert_eq!(Target::parse("tcp://printer.lan:9101/").unwrap(), Target::Tcp { host: "printer.lan".into(), port: 9101 });
        assert_eq!(Target::parse("tcp://[::1]:9100").unwrap(), Target::Tcp { host: "::1".into(), port: 9100 });
        assert_eq!(Target::parse("file:///dev/usb/lp0").unwrap(), Target::File("/dev/usb/lp0".into()));
        assert_eq!(Target::parse("cups://Receipts_1").unwrap(), Target::Cups("Receipts_1".into()));
        for bad in ["", "http://x", "tcp://", "tcp://h:0", "tcp://h:99999", "file://dev/lp0", "file:///dev/../etc/passwd", "cups://-o", "cups://a b"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Target::parse("tcp://[::1]:9100").unwrap().to_string(), "tcp://[::1]:9100");
    }

    #[test]
    fn regular_files_are_not_printers() {
        let dir = std::env::temp_dir().join(format!("till-printer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("receipts.txt");
        std::fs::write(&f, b"").unwrap();
        let err = check(&Target::File(f.clone()), Timeouts::default()).unwrap_err();
        assert!(err.to_string().contains("not a device file or a FIFO"), "{err}");
        assert!(check(&Target::File("/dev/null".into()), Timeouts::default()).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
