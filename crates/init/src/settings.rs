//! Tunables: heartbeat period and the bound on svmgr's ordered stop.
//!
//! Sources, first match wins: init's environment (`DYNAMOD_HEARTBEAT_MS`,
//! `DYNAMOD_SHUTDOWN_SVMGR_MS`), then the kernel command line (`dynamod.heartbeat_ms=`) — but
//! only on a real machine: a container sees the host's command line, which is not its own.

use dynamod_sys::cmdline::Cmdline;

/// Default heartbeat period.
pub const DEFAULT_HEARTBEAT_MS: u64 = 5_000;
/// Default bound on waiting for svmgr to stop the services at shutdown.
pub const DEFAULT_SHUTDOWN_SVMGR_MS: u64 = 30_000;
/// svmgr is declared hung after this many periods without a frame.
pub const MISSED_BEATS: u64 = 3;

const MIN_MS: u64 = 10;
const MAX_MS: u64 = 3_600_000;

/// The effective tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Heartbeat period, both directions.
    pub heartbeat_ms: u64,
    /// Bound on step 1 of the shutdown.
    pub shutdown_svmgr_ms: u64,
    /// `dynamod.emergency` was on the command line.
    pub emergency_boot: bool,
}

/// A value that was present but unusable, for a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue {
    /// Where it came from.
    pub source: &'static str,
    /// What it was.
    pub value: String,
}

impl Settings {
    /// Computes the settings. `env` looks a variable up; `cmdline` is `None` when the kernel
    /// command line is not ours (container, development). Unusable values are reported and
    /// replaced by the default.
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        cmdline: Option<&Cmdline>,
    ) -> (Self, Vec<BadValue>) {
        let mut bad = Vec::new();
        let mut pick = |var: &'static str, param: &'static str, default: u64| {
            let from_env = env(var).map(|v| (var, v));
            let from_cmdline = cmdline
                .and_then(|c| c.value(param))
                .map(|v| (param, v.to_owned()));
            match from_env.or(from_cmdline) {
                None => default,
                Some((source, value)) => match value.trim().parse::<u64>() {
                    Ok(ms) if (MIN_MS..=MAX_MS).contains(&ms) => ms,
                    _ => {
                        bad.push(BadValue { source, value });
                        default
                    }
                },
            }
        };
        let heartbeat_ms = pick(
            "DYNAMOD_HEARTBEAT_MS",
            "dynamod.heartbeat_ms",
            DEFAULT_HEARTBEAT_MS,
        );
        let shutdown_svmgr_ms = pick(
            "DYNAMOD_SHUTDOWN_SVMGR_MS",
            "dynamod.shutdown_svmgr_ms",
            DEFAULT_SHUTDOWN_SVMGR_MS,
        );
        let emergency_boot = cmdline.is_some_and(|c| c.flag("dynamod.emergency"));
        (
            Self {
                heartbeat_ms,
                shutdown_svmgr_ms,
                emergency_boot,
            },
            bad,
        )
    }

    /// Silence after which svmgr counts as hung.
    pub fn hang_after_ms(&self) -> u64 {
        self.heartbeat_ms.saturating_mul(MISSED_BEATS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_apply_without_any_source() {
        let (s, bad) = Settings::resolve(no_env, None);
        assert_eq!(s.heartbeat_ms, 5000);
        assert_eq!(s.shutdown_svmgr_ms, 30_000);
        assert!(!s.emergency_boot);
        assert!(bad.is_empty());
        assert_eq!(s.hang_after_ms(), 15_000);
    }

    #[test]
    fn environment_wins_over_the_command_line() {
        let c = Cmdline::parse("dynamod.heartbeat_ms=700");
        let env = |k: &str| (k == "DYNAMOD_HEARTBEAT_MS").then(|| "200".to_owned());
        assert_eq!(Settings::resolve(env, Some(&c)).0.heartbeat_ms, 200);
        assert_eq!(Settings::resolve(no_env, Some(&c)).0.heartbeat_ms, 700);
    }

    #[test]
    fn foreign_command_line_is_ignored() {
        let (s, _) = Settings::resolve(no_env, None);
        assert!(!s.emergency_boot);
        let c = Cmdline::parse("dynamod.emergency");
        assert!(Settings::resolve(no_env, Some(&c)).0.emergency_boot);
    }

    #[test]
    fn unusable_values_fall_back_and_are_reported() {
        let env = |k: &str| match k {
            "DYNAMOD_HEARTBEAT_MS" => Some("fast".to_owned()),
            "DYNAMOD_SHUTDOWN_SVMGR_MS" => Some("0".to_owned()),
            _ => None,
        };
        let (s, bad) = Settings::resolve(env, None);
        assert_eq!(s.heartbeat_ms, DEFAULT_HEARTBEAT_MS);
        assert_eq!(s.shutdown_svmgr_ms, DEFAULT_SHUTDOWN_SVMGR_MS);
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].source, "DYNAMOD_HEARTBEAT_MS");
    }
}
