//! The kernel command line (`/proc/cmdline`).
//!
//! Parameters are separated by whitespace; a value may be double-quoted to hold spaces
//! (`dynamod.media="LABEL=My Disk"`), the way the kernel's own `next_arg()` splits them
//! (lib/cmdline.c). Quotes are removed; a later occurrence of a key wins.

use std::path::Path;

/// A parsed kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    params: Vec<(String, Option<String>)>,
}

impl Cmdline {
    /// Parses command-line text.
    pub fn parse(text: &str) -> Self {
        let mut params = Vec::new();
        let mut chars = text.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.peek().is_none() {
                break;
            }
            let mut word = String::new();
            let mut quoted = false;
            while let Some(c) = chars.next_if(|c| quoted || !c.is_whitespace()) {
                if c == '"' {
                    quoted = !quoted;
                } else {
                    word.push(c);
                }
            }
            match word.split_once('=') {
                Some((k, v)) => params.push((k.to_owned(), Some(v.to_owned()))),
                None => params.push((word, None)),
            }
        }
        Self { params }
    }

    /// Reads and parses a command-line file (normally `/proc/cmdline`).
    pub fn read(path: &Path) -> std::io::Result<Self> {
        std::fs::read(path).map(|b| Self::parse(&String::from_utf8_lossy(&b)))
    }

    /// `None` when `key` is absent, `Some(None)` for a bare `key`, `Some(Some(v))` for `key=v`.
    pub fn get(&self, key: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_deref())
    }

    /// The value of `key=value`, if present with a value.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).flatten()
    }

    /// Whether a boolean flag is on: bare `key`, or `key=1|yes|true|on`.
    pub fn flag(&self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(None) => true,
            Some(Some(v)) => {
                matches!(
                    v.to_ascii_lowercase().as_str(),
                    "1" | "yes" | "true" | "on" | "y"
                )
            }
        }
    }

    /// Whether `key` appears at all, with or without a value.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_keys_values_and_bare_words() {
        let c = Cmdline::parse("BOOT_IMAGE=/vmlinuz root=UUID=ab-cd ro quiet\n");
        assert_eq!(c.value("root"), Some("UUID=ab-cd"));
        assert_eq!(c.get("ro"), Some(None));
        assert_eq!(c.get("rw"), None);
        assert!(c.contains("quiet"));
    }

    #[test]
    fn quoted_value_keeps_its_spaces_and_loses_its_quotes() {
        let c = Cmdline::parse(r#"a=1 dynamod.media="LABEL=My Disk" b"#);
        assert_eq!(c.value("dynamod.media"), Some("LABEL=My Disk"));
        assert_eq!(c.get("b"), Some(None));
    }

    #[test]
    fn later_occurrence_wins() {
        let c = Cmdline::parse("dynamod.heartbeat_ms=100 dynamod.heartbeat_ms=250");
        assert_eq!(c.value("dynamod.heartbeat_ms"), Some("250"));
    }

    #[test]
    fn flag_accepts_bare_and_truthy_values_only() {
        let c = Cmdline::parse("a b=1 c=yes d=0 e=false f=TRUE");
        assert!(c.flag("a"));
        assert!(c.flag("b"));
        assert!(c.flag("c"));
        assert!(!c.flag("d"));
        assert!(!c.flag("e"));
        assert!(c.flag("f"));
        assert!(!c.flag("missing"));
    }

    #[test]
    fn empty_and_blank_lines_give_nothing() {
        assert_eq!(Cmdline::parse(""), Cmdline::default());
        assert_eq!(Cmdline::parse("  \t\n"), Cmdline::default());
    }

    #[test]
    fn unterminated_quote_runs_to_the_end() {
        let c = Cmdline::parse(r#"x="a b"#);
        assert_eq!(c.value("x"), Some("a b"));
    }
}
