//! The command line, as clap derive definitions (also the source of `--help`), and a quick
//! parse of the frequent read commands that skips building clap's parser ([`Cli::parse_quick`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use dynamod_proto::ShutdownKind;

/// Default control socket.
pub const DEFAULT_SOCKET: &str = "/run/dynamod/control.sock";

/// Control dynamod's service manager and read its logs.
///
/// dynamodctl talks to dynamod-svmgr over its control socket: it lists and inspects services,
/// starts, stops and restarts them, reloads the configuration, shuts the system down and waits
/// for start-up. It reads service output from dynamod-logd, validates configuration offline
/// (check), draws the dependency graph and analyses the boot. Read commands work for every
/// user; changes need root or the group given to svmgr with --control-group.
#[derive(Debug, Parser)]
#[command(name = "dynamodctl", version, propagate_version = true)]
#[command(after_help = EXIT_HELP)]
pub struct Cli {
    /// The control socket of dynamod-svmgr.
    #[arg(long, global = true, value_name = "PATH", env = "DYNAMOD_SOCKET")]
    #[arg(default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print the answer as JSON (schema in docs/operations.md; `logs` prints one object per
    /// line).
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up waiting for the answer after this long: 30s, 5min, 250ms, 1h or seconds
    /// [default: none for blocking start/stop/restart, reload, shutdown and wait; 30s
    /// otherwise].
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the command lines of the frequent read commands (`status NAME...`, `list`,
    /// `tree`, `is-healthy`, with `--socket`, `--json` and `--timeout` anywhere) without
    /// building clap's parser, whose allocations cost a short-lived process more than the
    /// question it asks svmgr. `socket_env` is `$DYNAMOD_SOCKET`.
    ///
    /// Returns `None` for anything else, including every usage error, help and version: the
    /// caller then parses with clap, which stays the definition of the command line. Whatever
    /// this accepts, clap parses to the same value (a unit test compares them).
    pub fn parse_quick(
        args: impl IntoIterator<Item = OsString>,
        socket_env: Option<OsString>,
    ) -> Option<Self> {
        let mut args = args.into_iter().skip(1);
        let mut socket: Option<PathBuf> = None;
        let mut json = false;
        let mut timeout: Option<Duration> = None;
        let mut command: Option<Command> = None;
        while let Some(arg) = args.next() {
            let arg = arg.into_string().ok()?;
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
                _ => (arg.as_str(), None),
            };
            match flag {
                "--json" if inline.is_none() && !json => json = true,
                "--socket" if socket.is_none() => {
                    socket = Some(PathBuf::from(option_value(inline, &mut args)?));
                }
                "--timeout" if timeout.is_none() => {
                    timeout = Some(parse_duration(&option_value(inline, &mut args)?).ok()?);
                }
                _ if arg.starts_with('-') => return None,
                _ => match &mut command {
                    None => {
                        command = Some(match arg.as_str() {
                            "status" => Command::Status { names: Vec::new() },
                            "list" => Command::List,
                            "tree" => Command::Tree,
                            "is-healthy" => Command::IsHealthy,
                            _ => return None,
                        });
                    }
                    Some(Command::Status { names }) => names.push(arg),
                    Some(_) => return None,
                },
            }
        }
        if matches!(&command, Some(Command::Status { names }) if names.is_empty()) {
            return None;
        }
        let socket = match socket {
            Some(s) => s,
            None => match socket_env {
                Some(v) if !v.is_empty() => PathBuf::from(v),
                Some(_) => return None,
                None => PathBuf::from(DEFAULT_SOCKET),
            },
        };
        Some(Self {
            socket,
            json,
            timeout,
            command: command?,
        })
    }
}

/// The value of an option, given inline (`--socket=PATH`) or as the next argument; `None`
/// (leave it to clap) when it is missing, empty or looks like an option.
fn option_value(
    inline: Option<String>,
    rest: &mut impl Iterator<Item = OsString>,
) -> Option<String> {
    let value = match inline {
        Some(v) => v,
        None => rest.next()?.into_string().ok()?,
    };
    (!value.is_empty() && !value.starts_with('-')).then_some(value)
}

/// The exit statuses, shown after `--help` and in the man page.
pub const EXIT_HELP: &str = "Exit status: 0 ok, 1 negative answer or failure, 2 usage, \
3 permission denied, 4 unknown service, 5 svmgr (or dynamod-logd) unreachable.";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every service with its state.
    List,
    /// Show the supervisor tree.
    Tree,
    /// Show the details of services, including their most recent output.
    Status {
        /// Service names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Start services and wait until they are ready (or failed).
    Start(Change),
    /// Stop services; they stay stopped until started again.
    Stop(Change),
    /// Stop then start services.
    Restart(Change),
    /// Re-read the configuration and apply the difference.
    Reload,
    /// Replace the running dynamod-svmgr with the binary on disk (an in-place upgrade);
    /// services keep running with the same PIDs.
    Reexec,
    /// Stop every service, then power off, reboot or halt.
    Shutdown {
        /// What to do at the end.
        #[arg(value_enum)]
        kind: Kind,
    },
    /// Show services' stored output (from dynamod-logd), oldest first.
    Logs(Logs),
    /// Validate a configuration directory offline, with the same messages as svmgr.
    Check(Check),
    /// Print the dependency graph as Graphviz DOT (the default) or JSON.
    Graph(Graph),
    /// Show the boot timeline and the critical chain.
    Analyze(Analyze),
    /// Wait until the named services are ready, or until start-up is complete.
    Wait {
        /// Service names; none waits for start-up to complete.
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
    /// Exit 0 when start-up is complete and no service failed, 1 otherwise.
    IsHealthy,
    /// Write the man pages and shell completions under PREFIX (for packaging).
    #[command(hide = true)]
    Generate {
        /// Files go to PREFIX/share/man/man1, PREFIX/share/bash-completion/completions,
        /// PREFIX/share/zsh/site-functions and PREFIX/share/fish/vendor_completions.d.
        #[arg(value_name = "PREFIX")]
        prefix: PathBuf,
    },
}

/// Arguments of `logs`.
#[derive(Debug, Args)]
pub struct Logs {
    /// Service names; every service, interleaved by time, when none is named.
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Keep printing new lines as they are stored (across rotations) until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines [default: all; 10 with --follow].
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<u64>,
    /// Only lines since TIME: a duration ago (10m, 2h, 30s) or a UTC date and time
    /// (2026-12-04T16:21:28Z, "2026-12-04 16:21", 2026-12-04).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub since: Option<Since>,
    /// dynamod-logd's query socket [default: logd.sock next to the control socket].
    #[arg(long, value_name = "PATH", env = "DYNAMOD_LOGD_SOCKET")]
    pub log_socket: Option<PathBuf>,
}

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct Check {
    /// Configuration directory holding services/ and supervisors/.
    #[arg(value_name = "DIR", default_value = DEFAULT_CONFIG_DIR)]
    pub dir: PathBuf,
    /// Service files from this directory instead of DIR/services.
    #[arg(long, value_name = "DIR")]
    pub services: Option<PathBuf>,
    /// Supervisor files from this directory instead of DIR/supervisors.
    #[arg(long, value_name = "DIR")]
    pub supervisors: Option<PathBuf>,
}

/// Arguments of `graph`.
#[derive(Debug, Args)]
pub struct Graph {
    /// Graphviz DOT (the default; render with `dot -Tsvg`).
    #[arg(long, conflicts_with = "json")]
    pub dot: bool,
    /// Read the configuration in DIR instead of asking the running svmgr (which is otherwise
    /// asked first, with /etc/dynamod as the fallback when it is not running).
    #[arg(long, value_name = "DIR")]
    pub config: Option<PathBuf>,
}

/// Arguments of `analyze`.
#[derive(Debug, Args)]
pub struct Analyze {
    /// End the critical chain at this service [default: the one that became ready last].
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Also draw the timeline as an SVG image into FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// Default configuration directory of `check` and `graph`.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/dynamod";

/// When `logs --since` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// This long before now.
    Ago(Duration),
    /// At this time, microseconds since the Unix epoch.
    At(u64),
}

impl Since {
    /// The start in microseconds since the Unix epoch, given the current time.
    pub fn to_unix_us(self, now_us: u64) -> u64 {
        match self {
            Self::Ago(d) => now_us.saturating_sub(d.as_micros() as u64),
            Self::At(t) => t,
        }
    }
}

/// Arguments of start, stop and restart.
#[derive(Debug, Args)]
pub struct Change {
    /// Service names.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    /// Return as soon as svmgr accepted the request instead of waiting for the outcome.
    #[arg(long)]
    pub no_block: bool,
}

/// The shutdown kinds as command-line words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Power the machine off (in a container: stop and exit).
    Poweroff,
    /// Reboot.
    Reboot,
    /// Halt without powering off.
    Halt,
}

impl From<Kind> for ShutdownKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Poweroff => Self::Poweroff,
            Kind::Reboot => Self::Reboot,
            Kind::Halt => Self::Halt,
        }
    }
}

/// Parses `--since`: a duration ago, or a UTC date with an optional time (`T` or a space between
/// them, seconds and fraction optional, a final `Z` allowed).
pub fn parse_since(s: &str) -> Result<Since, String> {
    if let Ok(d) = parse_duration(s) {
        return Ok(Since::Ago(d));
    }
    parse_utc(s).map(Since::At).ok_or_else(|| {
        format!("`{s}` is neither a duration like 10m nor a date like 2026-12-04T16:21:28Z")
    })
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.ffffff]]][Z]` in UTC, as microseconds since the Unix epoch.
fn parse_utc(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (mut h, mut m, mut sec, mut micros) = (0u64, 0u64, 0u64, 0u64);
    if let Some(t) = time {
        let (hms, frac) = match t.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (t, None),
        };
        let mut parts = hms.split(':');
        h = parts.next()?.parse().ok()?;
        m = parts.next()?.parse().ok()?;
        sec = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        if parts.next().is_some() || h > 23 || m > 59 || sec > 60 {
            return None;
        }
        if let Some(f) = frac {
            if f.is_empty() || f.len() > 6 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            micros = format!("{f:0<6}").parse().ok()?;
        }
    }
    let days = u64::try_from(crate::human::days_from_civil(year, month, day)).ok()?;
    Some(((days * 86_400 + h * 3_600 + m * 60 + sec) * 1_000_000) + micros)
}

/// Parses `250ms`, `30s`, `5m`/`5min`, `1h`, or a bare number of seconds; zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30s"))?;
    let ms_per = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("unknown unit `{other}` (use ms, s, min or h)")),
    };
    match n.checked_mul(ms_per) {
        Some(0) => Err("the timeout must be positive".to_owned()),
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Err(format!("`{s}` is too long")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_take_units_or_plain_seconds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5min"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn globals_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "dynamodctl",
            "start",
            "a",
            "b",
            "--no-block",
            "--json",
            "--socket",
            "/s",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.socket, PathBuf::from("/s"));
        match cli.command {
            Command::Start(c) => {
                assert_eq!((c.names, c.no_block), (vec!["a".into(), "b".into()], true))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn since_takes_a_duration_or_a_utc_date() {
        assert_eq!(parse_since("10m"), Ok(Since::Ago(Duration::from_secs(600))));
        assert_eq!(parse_since("1970-01-02"), Ok(Since::At(86_400 * 1_000_000)));
        assert_eq!(
            parse_since("2026-12-04T16:21:28Z"),
            Ok(Since::At(1_796_401_288_000_000))
        );
        assert_eq!(
            parse_since("2026-12-04 16:21:28.5"),
            Ok(Since::At(1_796_401_288_500_000))
        );
        assert_eq!(
            parse_since("2026-12-04T16:21"),
            Ok(Since::At(1_796_401_260_000_000))
        );
        assert!(parse_since("2026-13-01").is_err());
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("2026-12-04T25:00").is_err());
        assert_eq!(
            Since::Ago(Duration::from_secs(1)).to_unix_us(3_000_000),
            2_000_000
        );
    }

    #[test]
    fn logs_take_names_and_options() {
        let cli =
            Cli::try_parse_from(["dynamodctl", "logs", "web", "db", "-f", "-n", "5"]).unwrap();
        match cli.command {
            Command::Logs(l) => {
                assert_eq!(l.names, ["web", "db"]);
                assert!(l.follow);
                assert_eq!(l.lines, Some(5));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["dynamodctl", "logs"]).is_ok());
        assert!(Cli::try_parse_from(["dynamodctl", "graph", "--dot", "--json"]).is_err());
        assert!(Cli::try_parse_from(["dynamodctl", "wait"]).is_ok());
    }

    /// `argv` after the program name, as `parse_quick` and clap get it.
    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("dynamodctl")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn the_quick_parse_takes_the_read_commands_and_agrees_with_clap() {
        let taken: &[&[&str]] = &[
            &["status", "svc0500"],
            &["status", "a", "b", "c"],
            &["--socket", "/s", "status", "a"],
            &["status", "a", "--socket", "/s"],
            &["--socket=/s=t", "status", "a"],
            &["status", "a", "--json", "b"],
            &["--json", "--timeout", "250ms", "status", "a"],
            &["status", "a", "--timeout=5min"],
            &["status", "help"],
            &["status", "a=b", "list"],
            &["list"],
            &["list", "--json"],
            &["--socket", "/run/x.sock", "tree"],
            &["is-healthy", "--timeout", "30"],
        ];
        // Help, version, usage errors and everything else are left to clap.
        let declined: &[&[&str]] = &[
            &[],
            &["status"],
            &["status", "--json"],
            &["--help"],
            &["-h"],
            &["status", "-h"],
            &["--version"],
            &["-V"],
            &["help"],
            &["help", "status"],
            &["status", "a", "--"],
            &["status", "--", "-a"],
            &["status", "-a"],
            &["status", "-"],
            &["--json", "--json", "list"],
            &["--json=true", "list"],
            &["--socket", "/a", "--socket", "/b", "list"],
            &["--socket", "list"],
            &["--socket", "--json", "list"],
            &["--socket=", "list"],
            &["--timeout", "0", "list"],
            &["--timeout", "5 days", "list"],
            &["--timeout", "-1", "list"],
            &["--timeout", "1s", "--timeout", "2s", "list"],
            &["list", "extra"],
            &["tree", "--no-block"],
            &["lis"],
            &["start", "a"],
            &["stop", "a", "--no-block"],
            &["logs", "web"],
            &["check"],
            &["wait"],
            &["shutdown", "reboot"],
        ];
        let env = std::env::var_os("DYNAMOD_SOCKET");
        for args in taken {
            let quick = Cli::parse_quick(argv(args), env.clone());
            let clap = Cli::try_parse_from(argv(args));
            match (quick, clap) {
                (Some(q), Ok(c)) => assert_eq!(format!("{q:?}"), format!("{c:?}"), "{args:?}"),
                (q, c) => panic!("{args:?}: quick {q:?}, clap {c:?}"),
            }
        }
        for args in declined {
            assert!(
                Cli::parse_quick(argv(args), env.clone()).is_none(),
                "{args:?}"
            );
        }
    }

    #[test]
    fn the_quick_parse_takes_the_socket_from_the_environment_unless_given() {
        let env = Some(OsString::from("/env.sock"));
        let cli = Cli::parse_quick(argv(&["list"]), env.clone()).unwrap();
        assert_eq!(cli.socket, PathBuf::from("/env.sock"));
        let cli = Cli::parse_quick(argv(&["list", "--socket", "/s"]), env).unwrap();
        assert_eq!(cli.socket, PathBuf::from("/s"));
        let cli = Cli::parse_quick(argv(&["list"]), None).unwrap();
        assert_eq!(cli.socket, PathBuf::from(DEFAULT_SOCKET));
        assert!(Cli::parse_quick(argv(&["list"]), Some(OsString::new())).is_none());
    }

    #[test]
    fn the_quick_parse_leaves_arguments_that_are_not_utf8_to_clap() {
        use std::os::unix::ffi::OsStringExt;
        let mut args = argv(&["status"]);
        args.push(OsString::from_vec(vec![b's', 0xff]));
        assert!(Cli::parse_quick(args, None).is_none());
    }

    #[test]
    fn status_needs_a_name_and_shutdown_a_known_kind() {
        assert!(Cli::try_parse_from(["dynamodctl", "status"]).is_err());
        assert!(Cli::try_parse_from(["dynamodctl", "shutdown", "explode"]).is_err());
        assert!(Cli::try_parse_from(["dynamodctl", "list", "--no-block"]).is_err());
    }
}
