//! The on-disk line format, and its inverse.
//!
//! One record is one line:
//!
//! ```text
//! <timestamp> <out|err> <pid> <seq> <text>[ \]
//! 2026-12-04T16:21:28.123456Z out 1234 57 hello world
//! ```
//!
//! * `timestamp` is RFC 3339 in UTC with exactly six fractional digits (microseconds), taken from
//!   the record's `time_us` (when svmgr read the line, not when logd wrote it).
//! * `text` is the service's bytes with three kinds of bytes escaped so that a file is always one
//!   record per line and every line decodes back to the exact bytes: a backslash becomes `\\`;
//!   control bytes other than tab (`0x00`–`0x1f`, `0x7f`, and the C1 controls `U+0080`–`U+009F`)
//!   and bytes that are not valid UTF-8 become `\xNN` (lowercase hex), byte by byte.
//! * A `partial` record (no newline before EOF or svmgr's length cap) ends with a space and a
//!   lone backslash (` \`). No escaped text can end that way, because every backslash that comes
//!   from the text is doubled or followed by `x`.

use dynamod_proto::{LogRecord, Stream};

/// Why a stored line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A field is missing (the line is shorter than the fixed prefix).
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// The timestamp is not `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    #[error("bad timestamp")]
    BadTimestamp,
    /// The stream is neither `out` nor `err`.
    #[error("bad stream")]
    BadStream,
    /// The pid is not a decimal `i32`.
    #[error("bad pid")]
    BadPid,
    /// The sequence number is not a decimal `u64`.
    #[error("bad sequence number")]
    BadSeq,
    /// A backslash is followed by something other than `\` or `xNN`.
    #[error("bad escape at byte {0} of the text")]
    BadEscape(usize),
}

/// A line of a log file, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    /// Microseconds since the Unix epoch.
    pub time_us: u64,
    /// stdout or stderr.
    pub stream: Stream,
    /// Writer's PID.
    pub pid: i32,
    /// svmgr's sequence number.
    pub seq: u64,
    /// The original bytes.
    pub text: Vec<u8>,
    /// The record was not a complete line.
    pub partial: bool,
}

/// Converts a day count since 1970-01-01 into a proleptic Gregorian `(year, month, day)`.
///
/// The calendar repeats every 400 years (146 097 days), so the day is first placed in a 400-year
/// era that starts on 1 March (putting the leap day at the end of the year), then in a year of
/// that era, then in a month using the fact that March to January alternate 31/30-ish lengths
/// that the formula `(153 * m + 2) / 5` reproduces.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, 0..=365
    let mp = (5 * doy + 2) / 153; // March-based month, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
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

/// Appends `n` as exactly `width` decimal digits (the caller keeps `n` below `10^width`).
fn push_digits(mut n: u64, width: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Appends `n` in decimal.
fn push_decimal(n: u64, out: &mut Vec<u8>) {
    let mut digits = 1;
    let mut rest = n / 10;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    push_digits(n, digits, out);
}

/// Appends the RFC 3339 UTC timestamp of `time_us` (microseconds since the epoch).
///
/// Written digit by digit: this runs for every stored line, and `format!` made it the most
/// expensive step of storing one.
pub fn push_timestamp(time_us: u64, out: &mut Vec<u8>) {
    let secs = time_us / 1_000_000;
    let micros = time_us % 1_000_000;
    // u64 microseconds reach only year 586 912, so the day count always fits an i64.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    match u64::try_from(y) {
        Ok(y) if y > 9_999 => push_decimal(y, out),
        Ok(y) => push_digits(y, 4, out),
        Err(_) => out.extend_from_slice(b"0000"),
    }
    out.push(b'-');
    push_digits(u64::from(mo), 2, out);
    out.push(b'-');
    push_digits(u64::from(d), 2, out);
    out.push(b'T');
    push_digits(rem / 3_600, 2, out);
    out.push(b':');
    push_digits(rem / 60 % 60, 2, out);
    out.push(b':');
    push_digits(rem % 60, 2, out);
    out.push(b'.');
    push_digits(micros, 6, out);
    out.push(b'Z');
}

/// The RFC 3339 UTC timestamp of `time_us` as a string.
pub fn timestamp(time_us: u64) -> String {
    let mut out = Vec::with_capacity(27);
    push_timestamp(time_us, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_timestamp(s: &[u8]) -> Option<u64> {
    // 2026-12-04T16:21:28.123456Z: fixed width, 27 bytes.
    if s.len() != 27 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = &s[r];
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let punct = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ];
    if punct.iter().any(|&(i, c)| s[i] != c) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, m, sec, micros) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(year as i64, month as u32, day as u32);
    let days = u64::try_from(days).ok()?;
    Some(((days * 86_400 + h * 3_600 + m * 60 + sec) * 1_000_000) + micros)
}

/// Length of the UTF-8 sequence starting at `bytes[0]` if it is a valid, printable character
/// (not a C1 control), or `None` if the first byte must be escaped.
fn printable_char_len(bytes: &[u8]) -> Option<usize> {
    let b = bytes[0];
    let len = match b {
        0x20..=0x7e => return Some(1),
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(bytes.get(..len)?).ok()?;
    let c = s.chars().next()?;
    if ('\u{80}'..='\u{9f}').contains(&c) {
        None
    } else {
        Some(len)
    }
}

/// Appends `text` with backslashes, control bytes and invalid UTF-8 escaped (see the module docs).
pub fn escape_into(text: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(text.len());
    let mut i = 0;
    while i < text.len() {
        // Fast path: a run of plain printable ASCII is copied as it is.
        let run = text[i..]
            .iter()
            .position(|&b| !(0x20..=0x7e).contains(&b) || b == b'\\')
            .unwrap_or(text.len() - i);
        if run > 0 {
            out.extend_from_slice(&text[i..i + run]);
            i += run;
            continue;
        }
        let b = text[i];
        if b == b'\\' {
            out.extend_from_slice(b"\\\\");
            i += 1;
        } else if b == b'\t' {
            out.push(b);
            i += 1;
        } else if let Some(len) = printable_char_len(&text[i..]) {
            out.extend_from_slice(&text[i..i + len]);
            i += len;
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
            i += 1;
        }
    }
}

/// Decodes text written by [`escape_into`].
pub fn unescape(text: &[u8]) -> Result<Vec<u8>, ParseError> {
    let hex = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            out.push(text[i]);
            i += 1;
            continue;
        }
        match text.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hi = text.get(i + 2).copied().and_then(hex);
                let lo = text.get(i + 3).copied().and_then(hex);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(ParseError::BadEscape(i)),
                }
                i += 4;
            }
            _ => return Err(ParseError::BadEscape(i)),
        }
    }
    Ok(out)
}

/// Appends the stored form of `rec`, including the final newline.
pub fn format_line(rec: &LogRecord, out: &mut Vec<u8>) {
    push_timestamp(rec.time_us, out);
    let stream = match rec.stream {
        Stream::Out => "out",
        Stream::Err => "err",
    };
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.push(b' ');
    if rec.pid < 0 {
        out.push(b'-');
    }
    push_decimal(u64::from(rec.pid.unsigned_abs()), out);
    out.push(b' ');
    push_decimal(rec.seq, out);
    out.push(b' ');
    escape_into(&rec.line, out);
    if rec.partial {
        out.extend_from_slice(b" \\");
    }
    out.push(b'\n');
}

/// Decodes one stored line (with or without its final newline).
pub fn parse_line(line: &[u8]) -> Result<StoredLine, ParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut fields = line.splitn(5, |&b| b == b' ');
    let mut next = |name| fields.next().ok_or(ParseError::MissingField(name));
    let time = next("timestamp")?;
    let stream = next("stream")?;
    let pid = next("pid")?;
    let seq = next("seq")?;
    let text = next("text")?;
    let time_us = parse_timestamp(time).ok_or(ParseError::BadTimestamp)?;
    let stream = match stream {
        b"out" => Stream::Out,
        b"err" => Stream::Err,
        _ => return Err(ParseError::BadStream),
    };
    let decimal = |s: &[u8]| std::str::from_utf8(s).ok().map(str::to_owned);
    let pid = decimal(pid)
        .and_then(|s| s.parse().ok())
        .ok_or(ParseError::BadPid)?;
    let seq = decimal(seq)
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(ParseError::BadSeq)?;
    let (text, partial) = split_partial_marker(text);
    Ok(StoredLine {
        time_us,
        stream,
        pid,
        seq,
        text: unescape(text)?,
        partial,
    })
}

/// Reads only the sequence number of a stored line: cheaper than [`parse_line`] and enough to
/// recover where a file ends.
pub fn line_seq(line: &[u8]) -> Option<u64> {
    let field = line.split(|&b| b == b' ').nth(3)?;
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// Splits a trailing ` \` partial marker off escaped text.
fn split_partial_marker(text: &[u8]) -> (&[u8], bool) {
    let Some(body) = text.strip_suffix(b" \\") else {
        return (text, false);
    };
    // The final backslash is a marker only if it does not close a `\\` pair: count the run of
    // backslashes it ends; an escaped text contributes them in pairs.
    let run = text.iter().rev().take_while(|&&b| b == b'\\').count();
    if run % 2 == 1 {
        (body, true)
    } else {
        (text, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, line: &[u8], partial: bool) -> LogRecord {
        LogRecord {
            seq,
            service: "svc".into(),
            pid: 1234,
            stream: Stream::Out,
            time_us: 1_796_401_288_123_456,
            line: line.to_vec(),
            partial,
        }
    }

    fn formatted(r: &LogRecord) -> String {
        let mut out = Vec::new();
        format_line(r, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn epoch_is_1970_01_01() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn leap_days_exist_in_2000_and_2024_but_not_2100() {
        let d2000 = days_from_civil(2000, 2, 28);
        assert_eq!(civil_from_days(d2000 + 1), (2000, 2, 29));
        let d2024 = days_from_civil(2024, 2, 28);
        assert_eq!(civil_from_days(d2024 + 1), (2024, 2, 29));
        assert_eq!(civil_from_days(d2024 + 2), (2024, 3, 1));
        let d2100 = days_from_civil(2100, 2, 28);
        assert_eq!(civil_from_days(d2100 + 1), (2100, 3, 1));
        let d2023 = days_from_civil(2023, 2, 28);
        assert_eq!(civil_from_days(d2023 + 1), (2023, 3, 1));
    }

    #[test]
    fn known_dates_match_their_day_counts() {
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
    }

    #[test]
    fn every_day_for_five_centuries_round_trips_and_advances_by_one() {
        let mut prev = civil_from_days(-1);
        for days in 0..(500 * 366) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let next_day = (prev.0, prev.1, prev.2 + 1) == (y, m, d);
            let next_month = (prev.0, prev.1 + 1) == (y, m) && d == 1;
            let next_year = (prev.0 + 1, 1, 1) == (y, m, d) && prev.1 == 12;
            assert!(
                next_day || next_month || next_year,
                "{prev:?} -> {:?}",
                (y, m, d)
            );
            prev = (y, m, d);
        }
    }

    #[test]
    fn timestamp_has_microseconds_and_utc_suffix() {
        assert_eq!(
            timestamp(1_796_401_288_123_456),
            "2026-12-04T16:21:28.123456Z"
        );
        assert_eq!(
            timestamp(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
    }

    #[test]
    fn line_has_timestamp_stream_pid_seq_and_text() {
        let r = rec(57, b"hello world", false);
        assert_eq!(
            formatted(&r),
            "2026-12-04T16:21:28.123456Z out 1234 57 hello world\n"
        );
        let mut e = r.clone();
        e.stream = Stream::Err;
        assert_eq!(
            formatted(&e),
            "2026-12-04T16:21:28.123456Z err 1234 57 hello world\n"
        );
    }

    #[test]
    fn control_bytes_backslashes_and_bad_utf8_are_escaped_but_tab_is_kept() {
        let mut out = Vec::new();
        escape_into(b"a\tb\rc\\d\x1b[0m\x7f\xff\x00", &mut out);
        assert_eq!(out, b"a\tb\\x0dc\\\\d\\x1b[0m\\x7f\\xff\\x00");
    }

    #[test]
    fn printable_unicode_is_kept_and_c1_controls_are_escaped() {
        let mut out = Vec::new();
        escape_into("héllo ✓ 🦀 \u{9b}".as_bytes(), &mut out);
        assert_eq!(out, "héllo ✓ 🦀 \\xc2\\x9b".as_bytes());
    }

    #[test]
    fn truncated_and_overlong_utf8_sequences_are_escaped_bytewise() {
        let mut out = Vec::new();
        escape_into(b"\xe2\x9c x \xc0\xaf", &mut out);
        assert_eq!(out, b"\\xe2\\x9c x \\xc0\\xaf");
    }

    #[test]
    fn partial_records_end_with_a_lone_backslash() {
        assert_eq!(
            formatted(&rec(3, b"abc", true)),
            "2026-12-04T16:21:28.123456Z out 1234 3 abc \\\n"
        );
        assert_eq!(
            formatted(&rec(3, b"", true)),
            "2026-12-04T16:21:28.123456Z out 1234 3  \\\n"
        );
    }

    #[test]
    fn text_ending_in_backslash_is_not_mistaken_for_a_partial_marker() {
        for (text, partial) in [
            (&b"a \\"[..], false),
            (b"a \\", true),
            (b"a \\\\", false),
            (b" ", true),
            (b"", false),
            (b"\\", true),
        ] {
            let r = rec(9, text, partial);
            let mut line = Vec::new();
            format_line(&r, &mut line);
            let back = parse_line(&line).unwrap();
            assert_eq!(
                (back.text.as_slice(), back.partial),
                (text, partial),
                "{line:?}"
            );
        }
    }

    #[test]
    fn every_byte_value_round_trips_through_a_single_line() {
        let all: Vec<u8> = (0..=255u8).chain(b"\\x41 \\".iter().copied()).collect();
        let r = rec(u64::MAX, &all, false);
        let mut line = Vec::new();
        format_line(&r, &mut line);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
        assert!(!line.contains(&b'\r'));
        let back = parse_line(&line).unwrap();
        assert_eq!(
            back,
            StoredLine {
                time_us: r.time_us,
                stream: Stream::Out,
                pid: 1234,
                seq: u64::MAX,
                text: all,
                partial: false
            }
        );
    }

    #[test]
    fn pseudo_random_byte_strings_round_trip() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let text: Vec<u8> = (0..len)
                .map(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8)
                .collect();
            let r = rec(x, &text, x.is_multiple_of(3));
            let mut line = Vec::new();
            format_line(&r, &mut line);
            let back = parse_line(&line).unwrap();
            assert_eq!(
                (back.text, back.partial, back.seq),
                (text, r.partial, r.seq)
            );
        }
    }

    #[test]
    fn line_seq_reads_the_fourth_field() {
        assert_eq!(
            line_seq(b"2026-12-04T16:21:28.123456Z out 1234 57 hello"),
            Some(57)
        );
        assert_eq!(
            line_seq(b"2026-12-04T16:21:28.123456Z out 1234 57 "),
            Some(57)
        );
        assert_eq!(line_seq(b"garbage"), None);
        assert_eq!(line_seq(b"a b c -1 x"), None);
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        assert_eq!(parse_line(b""), Err(ParseError::MissingField("stream")));
        assert_eq!(
            parse_line(b"2026-13-04T16:21:28.123456Z out 1 2 x"),
            Err(ParseError::BadTimestamp)
        );
        assert_eq!(
            parse_line(b"2026-12-04T16:21:28.123456Z bad 1 2 x"),
            Err(ParseError::BadStream)
        );
        assert_eq!(
            parse_line(b"2026-12-04T16:21:28.123456Z out 1 2 a\\qb"),
            Err(ParseError::BadEscape(1))
        );
        assert_eq!(
            parse_line(b"2026-12-04T16:21:28.123456Z out 1 2 a\\x4"),
            Err(ParseError::BadEscape(1))
        );
    }
}
