//! Read-only facts about the machine: os-release(5), DMI (`/sys/class/dmi/id`), the kernel
//! (uname(2)), machine and boot ids, and the chassis guess used when machine-info has none.

use std::path::Path;

use dynamod_dbus::platform::{self, Probe};

use crate::envfile::EnvFile;

/// os-release(5): `etc/os-release`, falling back to `usr/lib/os-release`, under `root`.
pub fn os_release(root: &Path) -> EnvFile {
    for rel in ["etc/os-release", "usr/lib/os-release"] {
        let path = root.join(rel);
        if path.exists() {
            return EnvFile::read(&path).unwrap_or_default();
        }
    }
    EnvFile::default()
}

/// One DMI field, trimmed; empty when unreadable.
pub fn dmi(field: &str) -> String {
    std::fs::read_to_string(Path::new("/sys/class/dmi/id").join(field))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The kernel's name, release and version (uname(2)).
pub fn kernel() -> (String, String, String) {
    match dynamod_sys::nix::sys::utsname::uname() {
        Ok(u) => (
            u.sysname().to_string_lossy().into_owned(),
            u.release().to_string_lossy().into_owned(),
            u.version().to_string_lossy().into_owned(),
        ),
        Err(_) => (String::new(), String::new(), String::new()),
    }
}

/// The chassis when machine-info does not set one: `container` or `vm` when virtualized, else
/// from the SMBIOS chassis type, else empty.
pub fn detect_chassis() -> String {
    let probe = Probe::default();
    if platform::container(&probe).is_some() {
        return "container".to_owned();
    }
    if !platform::virtualization(&probe).is_empty() {
        return "vm".to_owned();
    }
    chassis_from_dmi_type(dmi("chassis_type").parse().unwrap_or(0)).to_owned()
}

/// SMBIOS 3.x chassis type codes (DSP0134 §7.4.1) grouped the way systemd-hostnamed does.
pub fn chassis_from_dmi_type(code: u32) -> &'static str {
    match code {
        0x03..=0x07 | 0x0D | 0x23 | 0x24 => "desktop",
        0x08..=0x0A | 0x0E => "laptop",
        0x0B => "handset",
        0x11 | 0x17 | 0x1C | 0x1D => "server",
        0x1E => "tablet",
        0x1F | 0x20 => "convertible",
        0x21 | 0x22 => "embedded",
        _ => "",
    }
}

/// A DMI `bios_date` (`MM/DD/YYYY`) as microseconds since the epoch (midnight UTC); 0 if
/// unknown.
pub fn firmware_date_usec(text: &str) -> u64 {
    let mut it = text.trim().split('/');
    let (Some(m), Some(d), Some(y), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return 0;
    };
    let (Ok(m), Ok(d), Ok(y)) = (m.parse::<u32>(), d.parse::<u32>(), y.parse::<i64>()) else {
        return 0;
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return 0;
    }
    let days = days_from_civil(y, m, d);
    u64::try_from(days).map_or(0, |d| d * 86_400 * 1_000_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let d = i64::from(d);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A 128-bit id from its 32-hex-digit (or dashed UUID) text.
pub fn parse_id128(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `/etc/machine-id` under `root`, as bytes; empty when missing.
pub fn machine_id(root: &Path) -> Vec<u8> {
    std::fs::read_to_string(root.join("etc/machine-id"))
        .ok()
        .and_then(|t| parse_id128(&t))
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

/// The kernel's boot id, as bytes.
pub fn boot_id() -> Vec<u8> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .and_then(|t| parse_id128(&t))
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_dates_become_utc_midnight_microseconds() {
        assert_eq!(firmware_date_usec("01/01/1970"), 0);
        assert_eq!(firmware_date_usec("04/01/2014"), 1_396_310_400_000_000);
        assert_eq!(firmware_date_usec("02/29/2024\n"), 1_709_164_800_000_000);
        assert_eq!(firmware_date_usec("garbage"), 0);
        assert_eq!(firmware_date_usec("13/01/2020"), 0);
    }

    #[test]
    fn ids_parse_from_hex_or_uuid_text() {
        let id = parse_id128("0123456789abcdef0123456789ABCDEF\n").unwrap();
        assert_eq!(hex(&id), "0123456789abcdef0123456789abcdef");
        let uuid = parse_id128("01234567-89ab-cdef-0123-456789abcdef").unwrap();
        assert_eq!(uuid, id);
        assert!(parse_id128("xyz").is_none());
    }

    #[test]
    fn dmi_chassis_codes_map_to_systemd_names() {
        assert_eq!(chassis_from_dmi_type(3), "desktop");
        assert_eq!(chassis_from_dmi_type(10), "laptop");
        assert_eq!(chassis_from_dmi_type(23), "server");
        assert_eq!(chassis_from_dmi_type(30), "tablet");
        assert_eq!(chassis_from_dmi_type(1), "");
    }
}
