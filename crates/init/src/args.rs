//! The command line of `dynamod-init`.
//!
//! As PID 1 the kernel passes whatever it did not understand on its own command line (`single`,
//! `emergency`, `-s`, …); those are ignored rather than refused, because refusing would mean
//! not booting. When not PID 1, an unknown argument is a usage error.

use std::ffi::OsString;
use std::path::PathBuf;

/// Where the service manager is installed.
pub const DEFAULT_SVMGR: &str = "/usr/lib/dynamod/dynamod-svmgr";

/// Printed for usage errors.
pub const USAGE: &str = "\
usage: dynamod-init [--svmgr PATH] [--allow-non-pid1] [--emergency-shell PATH] [--console PATH]
       dynamod-init --write-machine-id

  --write-machine-id      write /etc/machine-id if it is missing or invalid, then exit
  --svmgr PATH            service manager to run (default /usr/lib/dynamod/dynamod-svmgr)
  --allow-non-pid1        development: run without being PID 1, as a child subreaper
  --emergency-shell PATH  development: program to run instead of sulogin or /bin/sh
  --console PATH          development: terminal for the emergency shell (default /dev/console)";

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `--write-machine-id`: the helper mode for a oneshot service.
    WriteMachineId,
    /// Run as init.
    Run(RunArgs),
}

/// Options of the init mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    /// The service manager binary.
    pub svmgr: PathBuf,
    /// Run even when not PID 1.
    pub allow_non_pid1: bool,
    /// Replaces the sulogin / `/bin/sh` choice.
    pub emergency_shell: Option<PathBuf>,
    /// Replaces `/dev/console` for the emergency shell.
    pub console: Option<PathBuf>,
}

impl Default for RunArgs {
    fn default() -> Self {
        Self {
            svmgr: PathBuf::from(DEFAULT_SVMGR),
            allow_non_pid1: false,
            emergency_shell: None,
            console: None,
        }
    }
}

/// A usage error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// An argument nobody knows.
    Unknown(OsString),
    /// An option that needs a value was last.
    MissingValue(&'static str),
}

// Written by hand: dynamod-init depends on nothing but the syscall seam and the protocol.
impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown(a) => write!(f, "unknown argument {a:?}"),
            Self::MissingValue(name) => write!(f, "{name} needs a value"),
        }
    }
}

impl std::error::Error for ArgsError {}

/// Parses the arguments after argv\[0\]. `pid1` relaxes unknown arguments into warnings, which
/// are returned so the caller can log them once logging works.
pub fn parse(args: &[OsString], pid1: bool) -> Result<(Invocation, Vec<OsString>), ArgsError> {
    let mut run = RunArgs::default();
    let mut ignored = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value =
            |name: &'static str| it.next().cloned().ok_or(ArgsError::MissingValue(name));
        match arg.to_str() {
            Some("--write-machine-id") => return Ok((Invocation::WriteMachineId, ignored)),
            Some("--svmgr") => run.svmgr = PathBuf::from(value("--svmgr")?),
            Some("--allow-non-pid1") => run.allow_non_pid1 = true,
            Some("--emergency-shell") => {
                run.emergency_shell = Some(PathBuf::from(value("--emergency-shell")?));
            }
            Some("--console") => run.console = Some(PathBuf::from(value("--console")?)),
            _ if pid1 => ignored.push(arg.clone()),
            _ => return Err(ArgsError::Unknown(arg.clone())),
        }
    }
    Ok((Invocation::Run(run), ignored))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn no_arguments_run_init_with_defaults() {
        let (inv, ignored) = parse(&[], true).unwrap();
        assert_eq!(inv, Invocation::Run(RunArgs::default()));
        assert!(ignored.is_empty());
    }

    #[test]
    fn reads_every_development_option() {
        let args = os(&[
            "--svmgr",
            "/x/svmgr",
            "--allow-non-pid1",
            "--emergency-shell",
            "/bin/true",
            "--console",
            "/dev/null",
        ]);
        let (inv, _) = parse(&args, false).unwrap();
        assert_eq!(
            inv,
            Invocation::Run(RunArgs {
                svmgr: PathBuf::from("/x/svmgr"),
                allow_non_pid1: true,
                emergency_shell: Some(PathBuf::from("/bin/true")),
                console: Some(PathBuf::from("/dev/null")),
            })
        );
    }

    #[test]
    fn write_machine_id_selects_the_helper_mode() {
        let (inv, _) = parse(&os(&["--write-machine-id"]), false).unwrap();
        assert_eq!(inv, Invocation::WriteMachineId);
    }

    #[test]
    fn unknown_argument_is_an_error_when_not_pid1() {
        assert_eq!(
            parse(&os(&["--bogus"]), false),
            Err(ArgsError::Unknown("--bogus".into()))
        );
    }

    #[test]
    fn kernel_leftovers_are_ignored_as_pid1() {
        let (inv, ignored) = parse(&os(&["single", "-s", "--svmgr", "/s"]), true).unwrap();
        assert_eq!(ignored, os(&["single", "-s"]));
        assert!(matches!(inv, Invocation::Run(r) if r.svmgr == Path::new("/s")));
    }

    #[test]
    fn option_without_value_is_an_error() {
        assert_eq!(
            parse(&os(&["--svmgr"]), false),
            Err(ArgsError::MissingValue("--svmgr"))
        );
    }
}
