//! The value grammars of configuration files: durations, sizes, signals, names, `cpu-max`,
//! namespaces and environment variable names.
//!
//! Every function takes the text of one TOML string and returns the parsed value or a
//! [`ValueError`] whose message explains what is wrong (lowercase, no final period). The file
//! parser adds the key and the position; `dynamodctl` and the service manager can use the same
//! functions for command-line arguments.

use std::time::Duration;

use crate::model::{CpuMax, Limit, Namespace, SignalSpec};

/// The longest duration accepted, in seconds (about 136 years), so that adding it to a clock
/// reading can never overflow.
pub const MAX_DURATION_SECS: u64 = u32::MAX as u64;

/// The longest service or supervisor name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// The `cpu-max` period used with `"max"` and percentages, in microseconds.
pub const DEFAULT_CPU_PERIOD_US: u64 = 100_000;

/// The number of `SIGRTMIN` as the kernel and glibc number it (`kill -l`, systemd).
pub const SIGRTMIN: i32 = 34;

/// The number of `SIGRTMAX` on Linux.
pub const SIGRTMAX: i32 = 64;

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Nothing to parse.
    #[error("the value is empty")]
    Empty,
    /// A character that has no place in this grammar.
    #[error("unexpected character `{}`", printable(*.0))]
    UnexpectedChar(char),
    /// A number with a decimal point.
    #[error("fractions are not supported; use a smaller unit (for example \"{example}\")")]
    Fraction {
        /// A whole-number spelling of a similar value.
        example: &'static str,
    },
    /// A number followed by letters that are not a unit.
    #[error("unknown unit `{unit}` (use {expected})")]
    UnknownUnit {
        /// What was written.
        unit: String,
        /// The units of this grammar.
        expected: &'static str,
    },
    /// A number in a compound duration without a unit.
    #[error("`{0}` has no unit (use ms, s, m, h or d)")]
    MissingUnit(String),
    /// A unit without a number before it.
    #[error("unit `{0}` has no number before it")]
    MissingNumber(String),
    /// Compound duration units out of order or repeated.
    #[error("units must go from the largest to the smallest, each at most once")]
    UnitOrder,
    /// A number too large for this value.
    #[error("the value is too large (at most {max})")]
    TooLarge {
        /// The largest accepted value, spelled for humans.
        max: String,
    },
    /// A signal name that does not exist.
    #[error("unknown signal name")]
    UnknownSignal,
    /// A signal number that does not exist or is reserved.
    #[error("no usable signal has number {0} (use 1-31 or {SIGRTMIN}-{SIGRTMAX})")]
    SignalNumber(i64),
    /// An empty name.
    #[error("a name must not be empty")]
    NameEmpty,
    /// A name over [`MAX_NAME_LEN`] bytes.
    #[error("a name is at most {MAX_NAME_LEN} bytes long, this one has {0}")]
    NameTooLong(usize),
    /// A name with a `/`.
    #[error("a name must not contain `/`")]
    NameSlash,
    /// A name with `..`.
    #[error("a name must not contain `..`")]
    NameDotDot,
    /// A name starting with something other than `a-z` or `0-9`.
    #[error("a name must start with a lowercase letter or a digit, not `{}`", printable(*.0))]
    NameStart(char),
    /// A name with a character outside `a-z 0-9 . _ @ -`.
    #[error(
        "a name may only contain a-z, 0-9, `.`, `_`, `@` and `-`, not `{}`",
        printable(*.0)
    )]
    NameChar(char),
    /// `cpu-max` text that is none of the three forms.
    #[error(
        "expected \"max\", a percentage of one CPU such as \"50%\", or \"QUOTA PERIOD\" in \
         microseconds such as \"50000 100000\""
    )]
    CpuMaxSyntax,
    /// `cpu-max` period out of the kernel's range.
    #[error("the period must be between 1000 and 1000000 microseconds")]
    CpuPeriod,
    /// `cpu-max` quota below the kernel's minimum.
    #[error("the quota must be at least 1000 microseconds (1%)")]
    CpuQuota,
    /// A namespace name that does not exist.
    #[error("expected one of `pid`, `mnt`, `net`, `uts`, `ipc`, `user`, `cgroup`")]
    UnknownNamespace,
    /// An environment variable name that `execve` cannot carry.
    #[error("an environment variable name must be non-empty and contain neither `=` nor NUL")]
    EnvName,
}

/// A character for a message: control characters escaped (`\t`, `\u{1b}`), so a message
/// stays one printable line.
fn printable(c: char) -> String {
    if c.is_control() {
        c.escape_default().collect()
    } else {
        c.to_string()
    }
}

/// Parses a duration: `"250ms"`, `"30s"`, `"5m"`, `"1h"`, `"2d"`, compounds from the largest
/// unit to the smallest (`"1h30m"`, `"1m30s"`, `"2s500ms"`), or plain digits meaning seconds.
///
/// Units are lowercase. Surrounding whitespace is ignored; whitespace inside is not allowed.
/// The result is at most [`MAX_DURATION_SECS`].
pub fn parse_duration(text: &str) -> Result<Duration, ValueError> {
    const UNITS: &str = "ms, s, m, h or d";
    let text = text.trim();
    if text.is_empty() {
        return Err(ValueError::Empty);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let secs = parse_digits(text).filter(|&s| s <= MAX_DURATION_SECS);
        return secs.map(Duration::from_secs).ok_or_else(duration_too_large);
    }
    let mut total_ms: u64 = 0;
    // Rank of the previous unit; each unit must rank strictly lower than the one before it.
    let mut last_rank = u8::MAX;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, after) = rest.split_at(digits);
        let letters = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(letters);
        let unit_info = match unit {
            "ms" => Some((0, 1)),
            "s" => Some((1, 1_000)),
            "m" => Some((2, 60_000)),
            "h" => Some((3, 3_600_000)),
            "d" => Some((4, 86_400_000)),
            _ => None,
        };
        if number.is_empty() {
            return Err(match (unit_info, rest.chars().next()) {
                (Some(_), _) => ValueError::MissingNumber(unit.to_owned()),
                (None, Some(c)) => ValueError::UnexpectedChar(c),
                (None, None) => ValueError::Empty,
            });
        }
        if unit.is_empty() {
            return Err(match after.chars().next() {
                Some('.') => ValueError::Fraction { example: "1500ms" },
                Some(c) => ValueError::UnexpectedChar(c),
                None => ValueError::MissingUnit(number.to_owned()),
            });
        }
        let Some((rank, ms_per_unit)) = unit_info else {
            return Err(ValueError::UnknownUnit {
                unit: unit.to_owned(),
                expected: UNITS,
            });
        };
        if rank >= last_rank {
            return Err(ValueError::UnitOrder);
        }
        last_rank = rank;
        let part = parse_digits(number).and_then(|n| n.checked_mul(ms_per_unit));
        total_ms = part
            .and_then(|p| total_ms.checked_add(p))
            .ok_or_else(duration_too_large)?;
        rest = after;
    }
    if total_ms / 1000 > MAX_DURATION_SECS {
        return Err(duration_too_large());
    }
    Ok(Duration::from_millis(total_ms))
}

/// The error for a duration over [`MAX_DURATION_SECS`].
fn duration_too_large() -> ValueError {
    ValueError::TooLarge {
        max: format!("{MAX_DURATION_SECS}s"),
    }
}

/// Parses ASCII digits as a `u64`; `None` on overflow or anything else.
fn parse_digits(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parses a size: plain digits (bytes), digits followed by `K`, `M`, `G` or `T` (powers of
/// 1024, either case, optionally spelled `KiB`, `MiB`, `GiB`, `TiB`), or `"max"`.
///
/// Decimal units (`KB`, `MB`) are refused rather than guessed.
pub fn parse_size(text: &str) -> Result<Limit, ValueError> {
    const UNITS: &str = "K, M, G or T, powers of 1024";
    let text = text.trim();
    if text.is_empty() {
        return Err(ValueError::Empty);
    }
    if text.eq_ignore_ascii_case("max") {
        return Ok(Limit::Max);
    }
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(ValueError::UnexpectedChar(
            unit.chars().next().unwrap_or(' '),
        ));
    }
    if unit.starts_with('.') {
        return Err(ValueError::Fraction { example: "1536M" });
    }
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        _ => {
            return Err(ValueError::UnknownUnit {
                unit: unit.to_owned(),
                expected: UNITS,
            });
        }
    };
    let too_large = || ValueError::TooLarge {
        max: u64::MAX.to_string(),
    };
    let value = parse_digits(number).ok_or_else(too_large)?;
    value
        .checked_mul(1u64 << shift)
        .map(Limit::Value)
        .ok_or_else(too_large)
}

/// Parses a `cpu-max` value: `"max"`, `"N%"` of one CPU (period 100000 µs; over 100% means
/// more than one CPU), `"QUOTA"` or `"QUOTA PERIOD"` in microseconds, or `"max PERIOD"`.
///
/// The quota is at least 1000 µs and the period between 1000 and 1000000 µs, the kernel's
/// limits for `cpu.max`.
pub fn parse_cpu_max(text: &str) -> Result<CpuMax, ValueError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ValueError::Empty);
    }
    if let Some(percent) = text.strip_suffix('%') {
        if percent.contains('.') {
            return Err(ValueError::Fraction { example: "50%" });
        }
        let percent = parse_digits(percent.trim()).ok_or(ValueError::CpuMaxSyntax)?;
        let quota = percent
            .checked_mul(DEFAULT_CPU_PERIOD_US / 100)
            .ok_or_else(|| ValueError::TooLarge {
                max: format!("{}%", u64::MAX / 1000),
            })?;
        if quota < 1000 {
            return Err(ValueError::CpuQuota);
        }
        return Ok(CpuMax {
            quota_us: Some(quota),
            period_us: DEFAULT_CPU_PERIOD_US,
        });
    }
    let mut words = text.split_ascii_whitespace();
    let quota = words.next().ok_or(ValueError::CpuMaxSyntax)?;
    let period = match words.next() {
        Some(p) => parse_digits(p).ok_or(ValueError::CpuMaxSyntax)?,
        None => DEFAULT_CPU_PERIOD_US,
    };
    if words.next().is_some() {
        return Err(ValueError::CpuMaxSyntax);
    }
    if !(1000..=1_000_000).contains(&period) {
        return Err(ValueError::CpuPeriod);
    }
    let quota_us = if quota == "max" {
        None
    } else {
        let q = parse_digits(quota).ok_or(ValueError::CpuMaxSyntax)?;
        if q < 1000 {
            return Err(ValueError::CpuQuota);
        }
        Some(q)
    };
    Ok(CpuMax {
        quota_us,
        period_us: period,
    })
}

/// Checks a service or supervisor name: `[a-z0-9][a-z0-9._@-]*`, at most [`MAX_NAME_LEN`]
/// bytes, without `..` (names become path components of cgroups and sockets).
pub fn validate_name(name: &str) -> Result<(), ValueError> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(ValueError::NameEmpty);
    };
    if name.contains('/') {
        return Err(ValueError::NameSlash);
    }
    if name.contains("..") {
        return Err(ValueError::NameDotDot);
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(ValueError::NameStart(first));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._@-".contains(c);
    if let Some(bad) = chars.find(|&c| !allowed(c)) {
        return Err(ValueError::NameChar(bad));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ValueError::NameTooLong(name.len()));
    }
    Ok(())
}

/// Parses a namespace name: `pid`, `mnt` (or `mount`), `net` (or `network`), `uts`, `ipc`,
/// `user`, `cgroup`. Lowercase only.
pub fn parse_namespace(text: &str) -> Result<Namespace, ValueError> {
    Ok(match text {
        "pid" => Namespace::Pid,
        "mnt" | "mount" => Namespace::Mnt,
        "net" | "network" => Namespace::Net,
        "uts" => Namespace::Uts,
        "ipc" => Namespace::Ipc,
        "user" => Namespace::User,
        "cgroup" => Namespace::Cgroup,
        _ => return Err(ValueError::UnknownNamespace),
    })
}

/// The word used for a namespace in files and output.
pub fn namespace_name(ns: Namespace) -> &'static str {
    match ns {
        Namespace::Pid => "pid",
        Namespace::Mnt => "mnt",
        Namespace::Net => "net",
        Namespace::Uts => "uts",
        Namespace::Ipc => "ipc",
        Namespace::User => "user",
        Namespace::Cgroup => "cgroup",
    }
}

/// Checks the name of an environment variable given in `[service] environment`: non-empty,
/// without `=` and without NUL (what `execve` can carry).
pub fn validate_env_name(name: &str) -> Result<(), ValueError> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(ValueError::EnvName);
    }
    Ok(())
}

/// The standard Linux signals (x86-64, arm64 and most architectures) with their aliases.
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
    // Aliases; the canonical name is the first entry with the same number.
    ("IOT", 6),
    ("CLD", 17),
    ("POLL", 29),
];

/// The canonical name of a signal number (`SIGTERM`, `SIGRTMIN+3`, `SIGRTMAX-1`), or `None`
/// when no usable signal has that number.
///
/// Real-time signals are named as `kill -l` names them: `SIGRTMIN+1` to `SIGRTMIN+15`, then
/// `SIGRTMAX-14` to `SIGRTMAX-1`.
pub fn signal_name(number: i32) -> Option<String> {
    if let Some((name, _)) = SIGNALS.iter().find(|&&(_, n)| n == number) {
        return Some(format!("SIG{name}"));
    }
    match number {
        SIGRTMIN => Some("SIGRTMIN".to_owned()),
        SIGRTMAX => Some("SIGRTMAX".to_owned()),
        n if n > SIGRTMIN && n <= SIGRTMIN + 15 => Some(format!("SIGRTMIN+{}", n - SIGRTMIN)),
        n if n > SIGRTMIN + 15 && n < SIGRTMAX => Some(format!("SIGRTMAX-{}", SIGRTMAX - n)),
        _ => None,
    }
}

/// A signal from its number; 0, 32 and 33 (reserved by the C library) and anything above 64
/// are refused.
pub fn signal_from_number(number: i64) -> Result<SignalSpec, ValueError> {
    i32::try_from(number)
        .ok()
        .and_then(|n| signal_name(n).map(|name| SignalSpec { number: n, name }))
        .ok_or(ValueError::SignalNumber(number))
}

/// Parses a signal: a name in any case with or without the `SIG` prefix (`TERM`, `sigterm`,
/// `SIGRTMIN+3`, `RTMAX-2`), or a number (`"15"`). Unknown names are refused.
pub fn parse_signal(text: &str) -> Result<SignalSpec, ValueError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ValueError::Empty);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let number = text.parse::<i64>().unwrap_or(i64::MAX);
        return signal_from_number(number);
    }
    let upper = text.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let number = if let Some(&(_, n)) = SIGNALS.iter().find(|&&(name, _)| name == bare) {
        n
    } else if let Some(offset) = bare.strip_prefix("RTMIN") {
        SIGRTMIN + rt_offset(offset, '+')?
    } else if let Some(offset) = bare.strip_prefix("RTMAX") {
        SIGRTMAX - rt_offset(offset, '-')?
    } else {
        return Err(ValueError::UnknownSignal);
    };
    signal_from_number(i64::from(number))
}

/// The `+N` after `RTMIN` or `-N` after `RTMAX` (0 when empty), at most the real-time range.
fn rt_offset(text: &str, sign: char) -> Result<i32, ValueError> {
    if text.is_empty() {
        return Ok(0);
    }
    let digits = text.strip_prefix(sign).ok_or(ValueError::UnknownSignal)?;
    parse_digits(digits)
        .and_then(|n| i32::try_from(n).ok())
        .filter(|&n| n <= SIGRTMAX - SIGRTMIN)
        .ok_or(ValueError::UnknownSignal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn durations_parse_every_documented_form() {
        let cases: &[(&str, Duration)] = &[
            ("30s", secs(30)),
            ("5m", secs(300)),
            ("1h", secs(3600)),
            ("2d", secs(172_800)),
            ("250ms", Duration::from_millis(250)),
            ("1m30s", secs(90)),
            ("1h1m1s1ms", Duration::from_millis(3_661_001)),
            ("2s500ms", Duration::from_millis(2500)),
            ("90m", secs(5400)),
            ("0s", secs(0)),
            ("0", secs(0)),
            ("45", secs(45)),
            (" 10s ", secs(10)),
            ("4294967295", secs(MAX_DURATION_SECS)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("", "the value is empty"),
            ("   ", "the value is empty"),
            ("5x", "unknown unit `x` (use ms, s, m, h or d)"),
            ("5 s", "unexpected character ` `"),
            ("5S", "unknown unit `S` (use ms, s, m, h or d)"),
            (
                "1.5s",
                "fractions are not supported; use a smaller unit (for example \"1500ms\")",
            ),
            ("-5s", "unexpected character `-`"),
            ("s", "unit `s` has no number before it"),
            ("1m30", "`30` has no unit (use ms, s, m, h or d)"),
            (
                "30s1m",
                "units must go from the largest to the smallest, each at most once",
            ),
            (
                "1s1s",
                "units must go from the largest to the smallest, each at most once",
            ),
            ("4294967296", "the value is too large (at most 4294967295s)"),
            (
                "99999999999999999999s",
                "the value is too large (at most 4294967295s)",
            ),
            ("49711d", "the value is too large (at most 4294967295s)"),
            ("1m+", "unexpected character `+`"),
            ("ten", "unexpected character `t`"),
            ("ms", "unit `ms` has no number before it"),
        ];
        for (text, want) in cases {
            let got = parse_duration(text).map_err(|e| e.to_string());
            assert_eq!(got, Err((*want).to_owned()), "{text:?}");
        }
    }

    #[test]
    fn sizes_are_powers_of_1024() {
        let cases: &[(&str, Limit)] = &[
            ("0", Limit::Value(0)),
            ("4096", Limit::Value(4096)),
            ("1024K", Limit::Value(1 << 20)),
            ("1k", Limit::Value(1024)),
            ("512M", Limit::Value(512 << 20)),
            ("2G", Limit::Value(2 << 30)),
            ("1T", Limit::Value(1 << 40)),
            ("3MiB", Limit::Value(3 << 20)),
            ("1gib", Limit::Value(1 << 30)),
            ("max", Limit::Max),
            ("MAX", Limit::Max),
            (" 7 ", Limit::Value(7)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn bad_sizes_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("", "the value is empty"),
            ("M", "unexpected character `M`"),
            ("12Q", "unknown unit `Q` (use K, M, G or T, powers of 1024)"),
            (
                "5MB",
                "unknown unit `MB` (use K, M, G or T, powers of 1024)",
            ),
            (
                "5 M",
                "unknown unit ` M` (use K, M, G or T, powers of 1024)",
            ),
            (
                "1.5G",
                "fractions are not supported; use a smaller unit (for example \"1536M\")",
            ),
            ("-1", "unexpected character `-`"),
            (
                "16777216T",
                "the value is too large (at most 18446744073709551615)",
            ),
            (
                "99999999999999999999",
                "the value is too large (at most 18446744073709551615)",
            ),
        ];
        for (text, want) in cases {
            let got = parse_size(text).map_err(|e| e.to_string());
            assert_eq!(got, Err((*want).to_owned()), "{text:?}");
        }
    }

    #[test]
    fn cpu_max_accepts_max_percentages_and_quota_period() {
        let cm = |q, p| CpuMax {
            quota_us: q,
            period_us: p,
        };
        let cases: &[(&str, CpuMax)] = &[
            ("max", cm(None, 100_000)),
            ("max 50000", cm(None, 50_000)),
            ("50%", cm(Some(50_000), 100_000)),
            ("1%", cm(Some(1_000), 100_000)),
            ("250%", cm(Some(250_000), 100_000)),
            ("50000 100000", cm(Some(50_000), 100_000)),
            ("20000", cm(Some(20_000), 100_000)),
            ("  1000   1000 ", cm(Some(1_000), 1_000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_cpu_max(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn bad_cpu_max_values_are_refused() {
        let cases: &[(&str, ValueError)] = &[
            ("", ValueError::Empty),
            ("half", ValueError::CpuMaxSyntax),
            ("0%", ValueError::CpuQuota),
            ("12.5%", ValueError::Fraction { example: "50%" }),
            ("x%", ValueError::CpuMaxSyntax),
            ("999", ValueError::CpuQuota),
            ("5000 999", ValueError::CpuPeriod),
            ("5000 1000001", ValueError::CpuPeriod),
            ("5000 100000 7", ValueError::CpuMaxSyntax),
            ("5000 x", ValueError::CpuMaxSyntax),
            ("-5000", ValueError::CpuMaxSyntax),
        ];
        for (text, want) in cases {
            assert_eq!(parse_cpu_max(text).as_ref(), Err(want), "{text}");
        }
    }

    #[test]
    fn names_follow_the_documented_grammar() {
        for ok in [
            "a",
            "0",
            "nginx",
            "getty@tty1",
            "foo.bar_baz-1",
            &"a".repeat(64),
        ] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        let cases: &[(&str, ValueError)] = &[
            ("", ValueError::NameEmpty),
            ("Nginx", ValueError::NameStart('N')),
            ("-x", ValueError::NameStart('-')),
            (".hidden", ValueError::NameStart('.')),
            ("a b", ValueError::NameChar(' ')),
            ("aB", ValueError::NameChar('B')),
            ("a/b", ValueError::NameSlash),
            ("../etc", ValueError::NameSlash),
            ("a..b", ValueError::NameDotDot),
            ("é", ValueError::NameStart('é')),
            ("a\0", ValueError::NameChar('\0')),
        ];
        for (name, want) in cases {
            assert_eq!(validate_name(name).as_ref(), Err(want), "{name:?}");
        }
        assert_eq!(
            validate_name(&"a".repeat(65)),
            Err(ValueError::NameTooLong(65))
        );
    }

    #[test]
    fn namespaces_accept_aliases() {
        assert_eq!(parse_namespace("mount"), Ok(Namespace::Mnt));
        assert_eq!(parse_namespace("network"), Ok(Namespace::Net));
        for ns in [
            Namespace::Pid,
            Namespace::Mnt,
            Namespace::Net,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::User,
            Namespace::Cgroup,
        ] {
            assert_eq!(parse_namespace(namespace_name(ns)), Ok(ns));
        }
        assert_eq!(parse_namespace("PID"), Err(ValueError::UnknownNamespace));
        assert_eq!(parse_namespace("time"), Err(ValueError::UnknownNamespace));
    }

    #[test]
    fn environment_names_exclude_equals_and_nul() {
        assert_eq!(validate_env_name("PATH"), Ok(()));
        assert_eq!(validate_env_name("weird.name-1"), Ok(()));
        for bad in ["", "A=B", "A\0"] {
            assert_eq!(validate_env_name(bad), Err(ValueError::EnvName), "{bad:?}");
        }
    }

    #[test]
    fn signals_parse_by_name_in_any_case_or_number() {
        let cases: &[(&str, i32, &str)] = &[
            ("TERM", 15, "SIGTERM"),
            ("sigterm", 15, "SIGTERM"),
            ("SIGTERM", 15, "SIGTERM"),
            ("SigHup", 1, "SIGHUP"),
            ("kill", 9, "SIGKILL"),
            ("SIGIOT", 6, "SIGABRT"),
            ("cld", 17, "SIGCHLD"),
            ("SIGPOLL", 29, "SIGIO"),
            ("SIGPWR", 30, "SIGPWR"),
            ("SIGRTMIN", 34, "SIGRTMIN"),
            ("SIGRTMIN+3", 37, "SIGRTMIN+3"),
            ("rtmin+15", 49, "SIGRTMIN+15"),
            ("SIGRTMIN+16", 50, "SIGRTMAX-14"),
            ("SIGRTMAX-1", 63, "SIGRTMAX-1"),
            ("SIGRTMAX", 64, "SIGRTMAX"),
            ("SIGRTMIN+30", 64, "SIGRTMAX"),
            ("15", 15, "SIGTERM"),
            ("38", 38, "SIGRTMIN+4"),
        ];
        for (text, number, name) in cases {
            let want = SignalSpec {
                number: *number,
                name: (*name).to_owned(),
            };
            assert_eq!(parse_signal(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn unknown_signals_are_refused_without_fallback() {
        let cases: &[(&str, ValueError)] = &[
            ("", ValueError::Empty),
            ("SIGFOO", ValueError::UnknownSignal),
            ("SIG", ValueError::UnknownSignal),
            ("TERM2", ValueError::UnknownSignal),
            ("SIGRTMIN+31", ValueError::UnknownSignal),
            ("SIGRTMIN-1", ValueError::UnknownSignal),
            ("SIGRTMAX+1", ValueError::UnknownSignal),
            ("RTMIN+x", ValueError::UnknownSignal),
            ("0", ValueError::SignalNumber(0)),
            ("32", ValueError::SignalNumber(32)),
            ("33", ValueError::SignalNumber(33)),
            ("65", ValueError::SignalNumber(65)),
            (
                "99999999999999999999999",
                ValueError::SignalNumber(i64::MAX),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_signal(text).as_ref(), Err(want), "{text}");
        }
        assert_eq!(
            ValueError::SignalNumber(99).to_string(),
            "no usable signal has number 99 (use 1-31 or 34-64)"
        );
        assert_eq!(signal_from_number(-1), Err(ValueError::SignalNumber(-1)));
    }

    #[test]
    fn every_signal_number_round_trips_through_its_name() {
        for n in (1..=31).chain(SIGRTMIN..=SIGRTMAX) {
            let name = signal_name(n).unwrap();
            assert_eq!(parse_signal(&name).map(|s| s.number), Ok(n), "{name}");
        }
    }
}
