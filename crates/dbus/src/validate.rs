//! Input validation for values that end up in configuration files or paths: no control
//! characters (so no newline can inject a second line), no path escapes, bounded lengths.
//! Each check answers `org.freedesktop.DBus.Error.InvalidArgs` with the offending value quoted.

use crate::error::MethodError;

/// The keys `/etc/locale.conf` may set (locale.conf(5)).
pub const LOCALE_KEYS: [&str; 13] = [
    "LANG",
    "LC_CTYPE",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_COLLATE",
    "LC_MONETARY",
    "LC_MESSAGES",
    "LC_PAPER",
    "LC_NAME",
    "LC_ADDRESS",
    "LC_TELEPHONE",
    "LC_MEASUREMENT",
    "LC_IDENTIFICATION",
];

/// The chassis types machine-info(5) defines.
pub const CHASSIS: [&str; 10] = [
    "desktop",
    "laptop",
    "convertible",
    "server",
    "tablet",
    "handset",
    "watch",
    "embedded",
    "vm",
    "container",
];

fn invalid(what: &str, value: &str) -> MethodError {
    MethodError::invalid_args(format!("Invalid {what} {value:?}."))
}

/// Free text on one line: no control characters at all, at most `max` bytes.
pub fn single_line(what: &str, value: &str, max: usize) -> Result<(), MethodError> {
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(invalid(what, value));
    }
    Ok(())
}

fn only(what: &str, value: &str, max: usize, ok: impl Fn(char) -> bool) -> Result<(), MethodError> {
    if value.is_empty() || value.len() > max || !value.chars().all(ok) {
        return Err(invalid(what, value));
    }
    Ok(())
}

/// An internet host name: dot-separated labels of ASCII letters, digits, `-` and `_`, none
/// empty or starting with `-`, at most 64 bytes in all (`HOST_NAME_MAX`).
pub fn hostname(value: &str) -> Result<(), MethodError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if value.is_empty() || value.len() > 64 || !value.split('.').all(label_ok) {
        return Err(invalid("hostname", value));
    }
    Ok(())
}

/// A time zone name as found under `/usr/share/zoneinfo`: relative, no `.`/`..` or empty
/// components, only `A-Za-z0-9_+-./`.
pub fn timezone(value: &str) -> Result<(), MethodError> {
    let component_ok = |c: &str| !c.is_empty() && c != "." && c != ".." && !c.starts_with('.');
    let chars_ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+-./".contains(c));
    if value.is_empty() || value.len() > 255 || !chars_ok || !value.split('/').all(component_ok) {
        return Err(invalid("time zone", value));
    }
    Ok(())
}

/// One `KEY=value` of `SetLocale`: a known locale.conf key and a locale name.
pub fn locale_assignment(value: &str) -> Result<(&str, &str), MethodError> {
    let Some((key, locale)) = value.split_once('=') else {
        return Err(invalid("locale assignment", value));
    };
    if !LOCALE_KEYS.contains(&key) {
        return Err(invalid("locale variable", value));
    }
    only("locale", locale, 128, |c| {
        c.is_ascii_alphanumeric() || "._@-+".contains(c)
    })?;
    Ok((key, locale))
}

/// A console keymap name (a file name under the keymap directories, without a path).
pub fn keymap(value: &str) -> Result<(), MethodError> {
    only("keymap", value, 64, |c| {
        c.is_ascii_alphanumeric() || "._-+".contains(c)
    })?;
    if value.starts_with('.') {
        return Err(invalid("keymap", value));
    }
    Ok(())
}

/// An X11 keyboard layout, model, variant or options list: `A-Za-z0-9` and `_-+,:()`.
pub fn x11_field(what: &str, value: &str) -> Result<(), MethodError> {
    only(what, value, 256, |c| {
        c.is_ascii_alphanumeric() || "_-+,:()".contains(c)
    })
}

/// An icon name (XDG icon naming): `A-Za-z0-9._-`, not starting with `.`.
pub fn icon_name(value: &str) -> Result<(), MethodError> {
    only("icon name", value, 255, |c| {
        c.is_ascii_alphanumeric() || "._-".contains(c)
    })?;
    if value.starts_with('.') {
        return Err(invalid("icon name", value));
    }
    Ok(())
}

/// A chassis type from [`CHASSIS`].
pub fn chassis(value: &str) -> Result<(), MethodError> {
    if CHASSIS.contains(&value) {
        Ok(())
    } else {
        Err(invalid("chassis", value))
    }
}

/// A deployment name (machine-info(5)): `A-Za-z0-9-.:`.
pub fn deployment(value: &str) -> Result<(), MethodError> {
    only("deployment", value, 255, |c| {
        c.is_ascii_alphanumeric() || "-.:".contains(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_refuses_newlines_and_other_control_characters() {
        assert!(single_line("pretty hostname", "Lennart's PC", 255).is_ok());
        for bad in ["a\nb", "a\rb", "a\0b", "tab\there", "\u{7f}"] {
            let e = single_line("pretty hostname", bad, 255).unwrap_err();
            assert_eq!(e.name, crate::error::INVALID_ARGS, "{bad:?}");
        }
        assert!(single_line("x", &"a".repeat(256), 255).is_err());
    }

    #[test]
    fn hostnames_follow_label_rules() {
        for ok in ["foo", "web-1", "a.b.c", "x_y", &"a".repeat(63)] {
            assert!(hostname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a..b",
            ".a",
            "a b",
            "a/b",
            "ä",
            &"a".repeat(65),
            "a\nb",
        ] {
            assert!(hostname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn time_zones_cannot_escape_the_zoneinfo_directory() {
        for ok in [
            "UTC",
            "Europe/Paris",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(timezone(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../../etc/shadow",
            "Europe/../../x",
            "Europe//Paris",
            "Europe/Paris\n",
            "Europe/.hidden",
            "a b",
        ] {
            assert!(timezone(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn locale_assignments_need_a_known_key_and_a_plain_value() {
        assert_eq!(
            locale_assignment("LANG=de_DE.UTF-8").unwrap(),
            ("LANG", "de_DE.UTF-8")
        );
        assert!(locale_assignment("LC_TIME=en_GB.UTF-8@euro").is_ok());
        for bad in [
            "LANG",
            "PATH=/bin",
            "LANG=",
            "LANG=a b",
            "LANG=x\nLC_ALL=y",
            "LANG=\"x\"",
        ] {
            assert!(locale_assignment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keymaps_and_x11_fields_are_plain_words() {
        assert!(keymap("de-latin1").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(keymap(bad).is_err(), "{bad:?}");
        }
        assert!(x11_field("layout", "us,de").is_ok());
        assert!(x11_field("options", "grp:alt_shift_toggle,ctrl:nocaps").is_ok());
        for bad in ["", "us de", "\"us\"", "us\n", "a\\b"] {
            assert!(x11_field("layout", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chassis_deployment_and_icon_have_fixed_vocabularies() {
        assert!(chassis("laptop").is_ok());
        assert!(chassis("toaster").is_err());
        assert!(deployment("production").is_ok());
        assert!(deployment("prod env").is_err());
        assert!(icon_name("computer-laptop").is_ok());
        assert!(icon_name("../icon").is_err());
    }
}
