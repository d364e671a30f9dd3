//! The command line of `till-desktop`: the flags of `till-agent run`, plus `--hidden`.
//!
//! The desktop app runs the same agent as the headless binary, so it takes the same settings with
//! the same names and environment variables (flag > environment > config file > default; see
//! `till_agent::config`). Someone who moves from `till-agent run --sandbox` to the desktop app keeps
//! their command line.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use till_agent::config::Overrides;

/// `till-desktop [--sandbox [--autopilot-ms N]] [--listen ADDR] [--data-dir DIR] [--config FILE]
/// [--sensepass-url URL] [--socket-url URL] [--waive-pos-token] [--hidden]`.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(
    name = "till-desktop",
    version,
    about = "Till Agent desktop app: the agent (local API on 127.0.0.1:8003) with a window and a tray icon"
)]
pub struct Cli {
    /// Config file (TOML). Default: the platform config dir's till-agent/config.toml.
    #[arg(long, env = "TILL_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Local API address; loopback only. Default 127.0.0.1:8003. Port 0 picks a free port.
    #[arg(long, env = "TILL_AGENT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory (journal, logs). Default: the platform data dir.
    #[arg(long, env = "TILL_AGENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// SensePass REST base, e.g. https://api.sandbox.sensepass.com/api/ (default: production).
    #[arg(long, env = "TILL_AGENT_SENSEPASS_URL")]
    pub sensepass_url: Option<String>,
    /// SensePass Socket.IO server, e.g. https://api.sandbox.sensepass.com (default: production).
    #[arg(long, env = "TILL_AGENT_SOCKET_URL")]
    pub socket_url: Option<String>,
    /// Start the embedded SensePass sandbox and pair with it (no credentials needed).
    #[arg(long)]
    pub sandbox: bool,
    /// With --sandbox: pay every new payment automatically after N ms with a test card.
    #[arg(long, requires = "sandbox")]
    pub autopilot_ms: Option<u64>,
    /// Receipt printer: tcp://host:9100, file:///dev/usb/lp0 or cups://queue (over `[printer] url`;
    /// what a manager saves in Settings overrides both).
    #[arg(long, env = "TILL_AGENT_PRINTER")]
    pub printer: Option<String>,
    /// Accept money-out operations without the POS token (legacy POS software). Not recommended.
    #[arg(long, env = "TILL_AGENT_WAIVE_POS_TOKEN")]
    pub waive_pos_token: bool,
    /// Start with the window hidden (in the tray). Used by "Start at login". Ignored when the
    /// desktop has no tray, because the window would then be unreachable.
    #[arg(long)]
    pub hidden: bool,
}

impl Cli {
    /// The settings that override the config file, exactly as `till-agent run` builds them.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            sensepass_url: self.sensepass_url.clone(),
            socket_url: self.socket_url.clone(),
            waive_pos_token: self.waive_pos_token.then_some(true),
        }
    }

    /// The arguments "Start at login" launches the app with: `--hidden` (a till PC boots into the
    /// POS, with Till Agent in the tray) plus the agent settings given on this command line, so
    /// that login starts the same agent the user turned the setting on in (sandbox or not, same
    /// data directory and port). Values clap took from `TILL_AGENT_*` environment variables are
    /// copied too (the login session may not have them); the config file is not, because the login
    /// session reads it again.
    ///
    /// A relative path would resolve against the login session's working directory, so paths are
    /// made absolute where the current directory is known. Each argument is quoted for the
    /// platform's autostart entry where needed (see [`quote_for_autostart`]).
    pub fn autostart_args(&self) -> Vec<String> {
        self.autostart_argv()
            .iter()
            .map(|a| quote_for_autostart(a))
            .collect()
    }

    /// [`Cli::autostart_args`] before quoting: the argument vector the login launch should see.
    fn autostart_argv(&self) -> Vec<String> {
        let mut args = vec!["--hidden".to_string()];
        let absolute = |p: &PathBuf| -> String {
            let p = if p.is_relative() {
                std::env::current_dir()
                    .map(|cwd| cwd.join(p))
                    .unwrap_or_else(|_| p.clone())
            } else {
                p.clone()
            };
            p.to_string_lossy().into_owned()
        };
        if let Some(p) = &self.config {
            args.extend(["--config".to_string(), absolute(p)]);
        }
        if let Some(a) = self.listen {
            args.extend(["--listen".to_string(), a.to_string()]);
        }
        if let Some(p) = &self.data_dir {
            args.extend(["--data-dir".to_string(), absolute(p)]);
        }
        if let Some(u) = &self.sensepass_url {
            args.extend(["--sensepass-url".to_string(), u.clone()]);
        }
        if let Some(u) = &self.socket_url {
            args.extend(["--socket-url".to_string(), u.clone()]);
        }
        if let Some(u) = &self.printer {
            args.extend(["--printer".to_string(), u.clone()]);
        }
        if self.sandbox {
            args.push("--sandbox".to_string());
        }
        if let Some(ms) = self.autopilot_ms {
            args.extend(["--autopilot-ms".to_string(), ms.to_string()]);
        }
        if self.waive_pos_token {
            args.push("--waive-pos-token".to_string());
        }
        args
    }
}

/// Quotes one argument for the autostart entry `tauri-plugin-autostart` writes, which joins the
/// arguments with spaces and quotes nothing itself: a data directory such as
/// `C:\Users\Jane Doe\Till` would otherwise split in two at login. Plain arguments (no spaces or
/// special characters) are returned unchanged.
///
/// - Linux: the `Exec` key of an XDG `.desktop` file (Desktop Entry spec: reserved characters force
///   double quotes, inside which `"`, `` ` ``, `$` and `\` are backslash-escaped; the string-value
///   escape then doubles every backslash again; `%` is written `%%`).
/// - Windows: the `Run` registry value is a command line split by `CommandLineToArgvW` rules.
/// - macOS: the launch agent stores each argument separately; nothing to quote.
pub fn quote_for_autostart(arg: &str) -> String {
    #[cfg(windows)]
    {
        quote_windows(arg)
    }
    #[cfg(target_os = "macos")]
    {
        arg.to_string()
    }
    #[cfg(not(any(windows, target_os = "macos")))]
    {
        quote_desktop_entry(arg)
    }
}

/// Desktop Entry `Exec` quoting (see [`quote_for_autostart`]).
#[cfg_attr(any(windows, target_os = "macos"), allow(dead_code))]
fn quote_desktop_entry(arg: &str) -> String {
    const RESERVED: &[char] = &[
        ' ', '\t', '\n', '"', '\'', '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#', '(',
        ')', '`',
    ];
    let arg = arg.replace('%', "%%");
    if !arg.is_empty() && !arg.contains(RESERVED) {
        return arg;
    }
    let mut quoted = String::from("\"");
    for c in arg.chars() {
        match c {
            // Quoting rule (backslash + char), then the string-value rule doubles each backslash.
            '"' | '`' | '$' => {
                quoted.push_str("\\\\");
                quoted.push(c);
            }
            '\\' => quoted.push_str("\\\\\\\\"),
            _ => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Windows command-line quoting (see [`quote_for_autostart`]): backslashes are literal except
/// before a double quote, where they must be doubled.
#[cfg_attr(not(windows), allow(dead_code))]
fn quote_windows(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '"']) {
        return arg.to_string();
    }
    let mut quoted = String::from("\"");
    let mut backslashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                quoted.push_str(&"\\".repeat(backslashes * 2 + 1));
                quoted.push('"');
                backslashes = 0;
            }
            _ => {
                quoted.push_str(&"\\".repeat(backslashes));
                quoted.push(c);
                backslashes = 0;
            }
        }
    }
    quoted.push_str(&"\\".repeat(backslashes * 2));
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut all = vec!["till-desktop"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn takes_the_flags_of_till_agent_run() {
        let cli = parse(&[
            "--sandbox",
            "--autopilot-ms",
            "2500",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/tmp/till",
            "--config",
            "/tmp/till.toml",
            "--sensepass-url",
            "http://127.0.0.1:9/api/",
            "--socket-url",
            "http://127.0.0.1:9",
            "--printer",
            "tcp://10.0.0.9:9100",
        ]);
        assert!(cli.sandbox);
        assert_eq!(cli.printer.as_deref(), Some("tcp://10.0.0.9:9100"));
        assert_eq!(cli.autopilot_ms, Some(2500));
        let o = cli.overrides();
        assert_eq!(o.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(o.data_dir, Some(PathBuf::from("/tmp/till")));
        assert_eq!(o.sensepass_url.as_deref(), Some("http://127.0.0.1:9/api/"));
        assert_eq!(o.socket_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(o.waive_pos_token, None);
        assert_eq!(cli.config, Some(PathBuf::from("/tmp/till.toml")));
    }

    #[test]
    fn autopilot_needs_the_sandbox() {
        assert!(Cli::try_parse_from(["till-desktop", "--autopilot-ms", "10"]).is_err());
    }

    #[test]
    fn waiving_the_token_is_an_override_only_when_asked() {
        assert_eq!(
            parse(&["--waive-pos-token"]).overrides().waive_pos_token,
            Some(true)
        );
        assert_eq!(parse(&[]).overrides().waive_pos_token, None);
    }

    #[test]
    fn autostart_relaunches_the_same_agent_hidden() {
        let cli = parse(&[
            "--sandbox",
            "--listen",
            "127.0.0.1:8123",
            "--data-dir",
            "/srv/till",
            "--printer",
            "cups://Front",
        ]);
        assert_eq!(
            cli.autostart_args(),
            [
                "--hidden",
                "--listen",
                "127.0.0.1:8123",
                "--data-dir",
                "/srv/till",
                "--printer",
                "cups://Front",
                "--sandbox"
            ]
        );
        assert_eq!(parse(&[]).autostart_args(), ["--hidden"]);
    }

    #[test]
    fn autostart_paths_are_absolute() {
        let args = parse(&["--data-dir", "relative/dir"]).autostart_argv();
        assert!(PathBuf::from(&args[2]).is_absolute(), "{args:?}");
    }

    #[test]
    fn desktop_entry_quoting() {
        assert_eq!(quote_desktop_entry("--data-dir"), "--data-dir");
        assert_eq!(quote_desktop_entry("/srv/till"), "/srv/till");
        assert_eq!(
            quote_desktop_entry("/home/jane doe/till"),
            r#""/home/jane doe/till""#
        );
        assert_eq!(quote_desktop_entry(r#"a"b$c"#), r#""a\\"b\\$c""#);
        assert_eq!(quote_desktop_entry(r"a\b"), r#""a\\\\b""#);
        assert_eq!(quote_desktop_entry("50%"), "50%%");
        assert_eq!(quote_desktop_entry(""), r#""""#);
    }

    #[test]
    fn windows_quoting() {
        assert_eq!(quote_windows(r"C:\Till"), r"C:\Till");
        assert_eq!(
            quote_windows(r"C:\Users\Jane Doe\Till"),
            r#""C:\Users\Jane Doe\Till""#
        );
        assert_eq!(quote_windows(r"C:\Jane Doe\"), r#""C:\Jane Doe\\""#);
        assert_eq!(quote_windows(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(quote_windows(""), r#""""#);
    }
}
