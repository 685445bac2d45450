//! Command line and environment.
//!
//! logd is small enough that a hand-written parser is shorter than pulling in clap: a handful of
//! options, each `--name VALUE` or `--name=VALUE`, flags overriding the environment.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::store::StoreConfig;

/// Default svmgr log socket.
pub const DEFAULT_SOCKET: &str = "/run/dynamod/log.sock";
/// Default log directory.
pub const DEFAULT_DIR: &str = "/var/log/dynamod";
/// Default size at which a file is rotated (10 MiB).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Default number of rotated files kept per service.
pub const DEFAULT_MAX_FILES: u32 = 5;
/// Default bound of each service's in-memory queue while the disk fails (1 MiB).
pub const DEFAULT_QUEUE_BYTES: usize = 1024 * 1024;
/// Default configuration directory (per-service `[log]` settings).
pub const DEFAULT_CONFIG_DIR: &str = "/etc/dynamod";
/// Default size of each service's in-memory ring of recent records (64 KiB: a few hundred
/// lines, enough for `logs -f` to start from; 100 chatty services cost about 6 MiB).
pub const DEFAULT_RING_BYTES: u64 = 64 * 1024;

/// Usage text for `--help`.
pub const USAGE: &str = "\
usage: dynamod-logd [--socket PATH] [--query-socket PATH] [--dir DIR] [--config-dir DIR]
                    [--max-size SIZE] [--max-files N] [--ring-size SIZE]

Stores every service's output in DIR/<service>.log, as sent by dynamod-svmgr, and answers
`dynamodctl logs` on the query socket.

options:
  --socket PATH        svmgr's log socket (env DYNAMOD_LOG_SOCKET; default /run/dynamod/log.sock)
  --query-socket PATH  where queries are answered (env DYNAMOD_LOGD_QUERY_SOCKET; default
                       logd.sock in the directory of the log socket)
  --dir DIR            log directory (env DYNAMOD_LOG_DIR; default /var/log/dynamod)
  --config-dir DIR     dynamod configuration with services/ and supervisors/, read for each
                       service's [log] max-size and max-files (default /etc/dynamod; `none`
                       to ignore it); read again on SIGHUP
  --max-size SIZE      rotate a file before it grows past SIZE: bytes or 512K, 10M, 1G
                       (default 10M)
  --max-files N        rotated files kept per service, <service>.log.1 to .N (default 5)
  --ring-size SIZE     recent output kept in memory per service for queries (default 64K)
  --help               print this text
  --version            print the version
";

/// A command line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// An option nobody knows.
    #[error("unknown option `{0}`")]
    Unknown(String),
    /// An option given without its value.
    #[error("option `{0}` needs a value")]
    MissingValue(&'static str),
    /// A value that does not parse.
    #[error("invalid value `{value}` for `{option}`: {why}")]
    BadValue {
        /// The option.
        option: &'static str,
        /// What was given.
        value: String,
        /// What is expected.
        why: &'static str,
    },
}

/// Everything the daemon needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// svmgr's log socket.
    pub socket: PathBuf,
    /// Where queries are answered.
    pub query_socket: PathBuf,
    /// Configuration directory for per-service `[log]` settings (`None`: ignore).
    pub config_dir: Option<PathBuf>,
    /// Bound of each service's ring of recent records, in bytes.
    pub ring_bytes: usize,
    /// File storage.
    pub store: StoreConfig,
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Run the daemon.
    Run(Options),
    /// Print [`USAGE`].
    Help,
    /// Print the version.
    Version,
}

/// Parses a size: a number of bytes, or a number followed by `K`, `M` or `G` (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Parses `args` (without the program name); `env` looks up environment variables.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Command, ArgsError> {
    let mut socket = env("DYNAMOD_LOG_SOCKET").map(PathBuf::from);
    let mut query_socket = env("DYNAMOD_LOGD_QUERY_SOCKET").map(PathBuf::from);
    let mut dir = env("DYNAMOD_LOG_DIR").map(PathBuf::from);
    let mut config_dir = Some(PathBuf::from(DEFAULT_CONFIG_DIR));
    let mut ring_bytes = DEFAULT_RING_BYTES;
    let mut max_size = DEFAULT_MAX_SIZE;
    let mut max_files = DEFAULT_MAX_FILES;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(OsString::from(v))),
            _ => (arg.clone(), None),
        };
        let option: &'static str = match name.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--version" | "-V" => return Ok(Command::Version),
            "--socket" => "--socket",
            "--query-socket" => "--query-socket",
            "--dir" => "--dir",
            "--config-dir" => "--config-dir",
            "--ring-size" => "--ring-size",
            "--max-size" => "--max-size",
            "--max-files" => "--max-files",
            _ => return Err(ArgsError::Unknown(arg)),
        };
        let value = inline
            .or_else(|| args.next())
            .ok_or(ArgsError::MissingValue(option))?;
        let text = value.to_string_lossy().into_owned();
        let bad = |why| ArgsError::BadValue {
            option,
            value: text.clone(),
            why,
        };
        match option {
            "--socket" => socket = Some(PathBuf::from(value)),
            "--query-socket" => query_socket = Some(PathBuf::from(value)),
            "--dir" => dir = Some(PathBuf::from(value)),
            "--config-dir" if text == "none" => config_dir = None,
            "--config-dir" => config_dir = Some(PathBuf::from(value)),
            "--ring-size" => {
                ring_bytes = parse_size(&text)
                    .filter(|&n| n > 0 && n <= 1 << 30)
                    .ok_or_else(|| bad("a positive size up to 1G like 64K"))?;
            }
            "--max-size" => {
                max_size = parse_size(&text)
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("a positive size like 10M"))?;
            }
            _ => max_files = text.parse().map_err(|_| bad("a whole number"))?,
        }
    }
    let socket = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let query_socket = query_socket.unwrap_or_else(|| {
        socket
            .parent()
            .unwrap_or_else(|| std::path::Path::new("/"))
            .join("logd.sock")
    });
    Ok(Command::Run(Options {
        socket,
        query_socket,
        config_dir,
        ring_bytes: ring_bytes as usize,
        store: StoreConfig {
            dir: dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DIR)),
            max_size,
            max_files,
            queue_bytes: DEFAULT_QUEUE_BYTES,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Options, ArgsError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| OsString::from(v))
        };
        match parse(args.iter().map(OsString::from), lookup)? {
            Command::Run(o) => Ok(o),
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_installed_paths() {
        let o = run(&[], &[]).unwrap();
        assert_eq!(o.socket, PathBuf::from("/run/dynamod/log.sock"));
        assert_eq!(o.query_socket, PathBuf::from("/run/dynamod/logd.sock"));
        assert_eq!(o.config_dir, Some(PathBuf::from("/etc/dynamod")));
        assert_eq!(o.ring_bytes, 64 * 1024);
        assert_eq!(o.store.dir, PathBuf::from("/var/log/dynamod"));
        assert_eq!(o.store.max_size, 10 * 1024 * 1024);
        assert_eq!(o.store.max_files, 5);
    }

    #[test]
    fn flags_override_the_environment() {
        let env = [
            ("DYNAMOD_LOG_SOCKET", "/e/sock"),
            ("DYNAMOD_LOG_DIR", "/e/dir"),
        ];
        let o = run(&[], &env).unwrap();
        assert_eq!(
            (o.socket.to_str(), o.store.dir.to_str()),
            (Some("/e/sock"), Some("/e/dir"))
        );
        let o = run(&["--socket", "/f/sock", "--dir=/f/dir"], &env).unwrap();
        assert_eq!(
            (o.socket.to_str(), o.store.dir.to_str()),
            (Some("/f/sock"), Some("/f/dir"))
        );
    }

    #[test]
    fn the_query_socket_follows_the_log_socket_unless_given() {
        let o = run(&["--socket", "/x/log.sock"], &[]).unwrap();
        assert_eq!(o.query_socket, PathBuf::from("/x/logd.sock"));
        let o = run(&["--socket", "/x/log.sock", "--query-socket=/q.sock"], &[]).unwrap();
        assert_eq!(o.query_socket, PathBuf::from("/q.sock"));
        let o = run(&["--config-dir", "none", "--ring-size", "1M"], &[]).unwrap();
        assert_eq!((o.config_dir, o.ring_bytes), (None, 1 << 20));
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("4K"), Some(4096));
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
        let o = run(&["--max-size", "1K", "--max-files", "0"], &[]).unwrap();
        assert_eq!((o.store.max_size, o.store.max_files), (1024, 0));
    }

    #[test]
    fn bad_command_lines_are_named_errors() {
        assert_eq!(
            run(&["--frob"], &[]).unwrap_err(),
            ArgsError::Unknown("--frob".into())
        );
        assert_eq!(
            run(&["--dir"], &[]).unwrap_err(),
            ArgsError::MissingValue("--dir")
        );
        assert!(matches!(
            run(&["--max-size", "0"], &[]),
            Err(ArgsError::BadValue {
                option: "--max-size",
                ..
            })
        ));
        assert!(matches!(
            run(&["--max-files", "x"], &[]),
            Err(ArgsError::BadValue {
                option: "--max-files",
                ..
            })
        ));
    }

    #[test]
    fn help_and_version_win() {
        let none = |_: &str| None;
        assert!(matches!(
            parse([OsString::from("--help")], none),
            Ok(Command::Help)
        ));
        assert!(matches!(
            parse([OsString::from("--version")], none),
            Ok(Command::Version)
        ));
    }
}
