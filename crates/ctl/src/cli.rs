//! The command line, as clap derive definitions (also the source of `--help`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use dynamod_proto::ShutdownKind;

/// Default control socket.
pub const DEFAULT_SOCKET: &str = "/run/dynamod/control.sock";

/// Control dynamod's service manager.
#[derive(Debug, Parser)]
#[command(name = "dynamodctl", version, about, propagate_version = true)]
#[command(
    after_help = "Exit status: 0 ok, 1 negative answer or failure, 2 usage, \
3 permission denied, 4 unknown service, 5 svmgr unreachable."
)]
pub struct Cli {
    /// The control socket of dynamod-svmgr.
    #[arg(long, global = true, value_name = "PATH", env = "DYNAMOD_SOCKET")]
    #[arg(default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print the answer as JSON (schema in docs/operations.md).
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up waiting for the answer after this long: 30s, 5min, 250ms, 1h or seconds
    /// [default: none for blocking start/stop/restart, reload and shutdown; 30s otherwise].
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every service with its state.
    List,
    /// Show the supervisor tree.
    Tree,
    /// Show the details of services.
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
    /// Stop every service, then power off, reboot or halt.
    Shutdown {
        /// What to do at the end.
        #[arg(value_enum)]
        kind: Kind,
    },
    /// Exit 0 when start-up is complete and no service failed, 1 otherwise.
    IsHealthy,
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
    fn status_needs_a_name_and_shutdown_a_known_kind() {
        assert!(Cli::try_parse_from(["dynamodctl", "status"]).is_err());
        assert!(Cli::try_parse_from(["dynamodctl", "shutdown", "explode"]).is_err());
        assert!(Cli::try_parse_from(["dynamodctl", "list", "--no-block"]).is_err());
    }
}
