//! Values turned into text a person reads at a glance: durations, sizes, dates, exit statuses.

use dynamod_proto::ExitStatus;

/// A duration in its two most significant units: `850ms`, `42s`, `5min 3s`, `2h 5min`, `3d 4h`.
pub fn duration(ms: u64) -> String {
    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let s = ms / 1_000;
    let (big, big_unit, small, small_unit) = if s < MIN {
        return format!("{s}s");
    } else if s < HOUR {
        (s / MIN, "min", s % MIN, "s")
    } else if s < DAY {
        (s / HOUR, "h", s % HOUR / MIN, "min")
    } else {
        (s / DAY, "d", s % DAY / HOUR, "h")
    };
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit} {small}{small_unit}")
    }
}

/// CPU time from microseconds: `0.012s`, `1.234s`, then [`duration`] from a minute on.
pub fn cpu_time(usec: u64) -> String {
    if usec < 60_000_000 {
        format!("{}.{:03}s", usec / 1_000_000, usec % 1_000_000 / 1_000)
    } else {
        duration(usec / 1_000)
    }
}

/// Bytes in binary units with one decimal: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01: the same 400-year
/// era computation as `dynamod_logd::format::civil_from_days`, which documents the derivation.
// FIXME: duplicated with dynamod-logd; a shared home (dynamod-proto) would remove the copy.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The inverse of `civil_from_days`: days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 in UTC with microseconds, as in the log files: `2026-12-04T16:21:28.123456Z`.
pub fn rfc3339_us(unix_us: u64) -> String {
    let secs = unix_us / 1_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60,
        unix_us % 1_000_000
    )
}

/// A time offset from svmgr's start with millisecond precision: `+0.012s`, `+75.300s`.
pub fn offset(ms: u64) -> String {
    format!("+{}.{:03}s", ms / 1_000, ms % 1_000)
}

/// Wall-clock time in UTC: `2026-12-04 16:21:28 UTC`.
pub fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The conventional name of a Linux signal number.
pub fn signal_name(sig: i32) -> Option<String> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match sig {
        1..=31 => Some(NAMES[(sig - 1) as usize].to_owned()),
        34 => Some("SIGRTMIN".to_owned()),
        35..=63 => Some(format!("SIGRTMIN+{}", sig - 34)),
        64 => Some("SIGRTMAX".to_owned()),
        _ => None,
    }
}

/// How a process ended: `exited 0`, `exited 1`, `killed by SIGKILL (signal 9)`.
pub fn exit_status(status: ExitStatus) -> String {
    match status {
        ExitStatus::Exited(code) => format!("exited {code}"),
        ExitStatus::Signaled(sig) => match signal_name(sig) {
            Some(name) => format!("killed by {name} (signal {sig})"),
            None => format!("killed by signal {sig}"),
        },
    }
}

/// `n thing` or `n things`.
pub fn plural(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// Makes text from the server safe to print on a terminal: control characters other than tab
/// (including C1 controls and ESC) are shown as `\xNN` / `\u{NN}`, so a service's output cannot
/// move the cursor or change colours.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if ('\u{80}'..='\u{9f}').contains(&c) => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// [`sanitize`] for multi-line text: newlines are kept, everything else is made visible.
pub fn sanitize_lines(text: &str) -> String {
    text.split('\n')
        .map(sanitize)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A command line as a shell would read it back: words quoted only when needed.
pub fn shell_join(words: &[String]) -> String {
    let quote = |w: &String| -> String {
        let plain = !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
        if plain {
            w.clone()
        } else {
            format!("'{}'", w.replace('\'', r"'\''"))
        }
    };
    sanitize(&words.iter().map(quote).collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_two_units() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(42_000), "42s");
        assert_eq!(duration(300_000), "5min");
        assert_eq!(duration(303_500), "5min 3s");
        assert_eq!(duration(2 * 3_600_000 + 5 * 60_000 + 7_000), "2h 5min");
        assert_eq!(duration(3 * 86_400_000 + 4 * 3_600_000), "3d 4h");
        assert_eq!(duration(86_400_000), "1d");
    }

    #[test]
    fn cpu_time_has_millisecond_precision() {
        assert_eq!(cpu_time(12_345), "0.012s");
        assert_eq!(cpu_time(1_234_567), "1.234s");
        assert_eq!(cpu_time(125_000_000), "2min 5s");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12_897_485), "12.3 MiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn utc_dates_handle_leap_years() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_401_288_999), "2026-12-04 16:21:28 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(4_107_542_400_000), "2100-03-01 00:00:00 UTC");
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in [-719_468, -1, 0, 1, 10_957, 11_016, 20_426, 47_541] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn rfc3339_has_microseconds_and_offsets_milliseconds() {
        assert_eq!(
            rfc3339_us(1_796_401_288_123_456),
            "2026-12-04T16:21:28.123456Z"
        );
        assert_eq!(rfc3339_us(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(offset(12), "+0.012s");
        assert_eq!(offset(75_300), "+75.300s");
    }

    #[test]
    fn exit_statuses_are_decoded() {
        assert_eq!(exit_status(ExitStatus::Exited(1)), "exited 1");
        assert_eq!(
            exit_status(ExitStatus::Signaled(9)),
            "killed by SIGKILL (signal 9)"
        );
        assert_eq!(
            exit_status(ExitStatus::Signaled(15)),
            "killed by SIGTERM (signal 15)"
        );
        assert_eq!(
            exit_status(ExitStatus::Signaled(36)),
            "killed by SIGRTMIN+2 (signal 36)"
        );
        assert_eq!(exit_status(ExitStatus::Signaled(99)), "killed by signal 99");
    }

    #[test]
    fn control_characters_are_made_visible() {
        assert_eq!(
            sanitize("a\tb\x1b[31mc\rd\u{9b}"),
            "a\tb\\x1b[31mc\\x0dd\\u{9b}"
        );
        assert_eq!(sanitize("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn shell_join_quotes_only_what_needs_it() {
        let words: Vec<String> = ["/usr/sbin/nginx", "-g", "daemon off;", "it's", ""]
            .map(String::from)
            .to_vec();
        assert_eq!(
            shell_join(&words),
            r"/usr/sbin/nginx -g 'daemon off;' 'it'\''s' ''"
        );
    }
}
