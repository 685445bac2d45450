//! Object paths, exactly as systemd-logind builds them.
//!
//! * Manager: `/org/freedesktop/login1`.
//! * Sessions and seats: `sd_bus_path_encode()` of the id under `…/session` and `…/seat`:
//!   letters are kept, digits are kept unless they come first, every other byte becomes `_xx`
//!   (lowercase hex); an empty id is `_`. Session `c1` is `…/session/c1`, session `2` is
//!   `…/session/_32`, seat `seat0` is `…/seat/seat0`.
//! * Users: `…/user/_<uid>` (logind's own format, not the label escaping), e.g. `…/user/_1000`.
//! * The caller-relative aliases `…/session/self`, `…/session/auto`, `…/user/self`,
//!   `…/seat/self` and `…/seat/auto` name the caller's own objects.

/// The Manager object.
pub const MANAGER: &str = "/org/freedesktop/login1";
/// Parent of the session objects.
pub const SESSION_DIR: &str = "/org/freedesktop/login1/session";
/// Parent of the seat objects.
pub const SEAT_DIR: &str = "/org/freedesktop/login1/seat";
/// Parent of the user objects.
pub const USER_DIR: &str = "/org/freedesktop/login1/user";

/// sd-bus label escaping (`bus_label_escape()`).
pub fn escape_label(id: &str) -> String {
    if id.is_empty() {
        return "_".to_owned();
    }
    let mut out = String::with_capacity(id.len());
    for (i, b) in id.bytes().enumerate() {
        let keep = b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit());
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// The object path of session `id`.
pub fn session(id: &str) -> String {
    format!("{SESSION_DIR}/{}", escape_label(id))
}

/// The object path of seat `id`.
pub fn seat(id: &str) -> String {
    format!("{SEAT_DIR}/{}", escape_label(id))
}

/// The object path of the user with `uid`.
pub fn user(uid: u32) -> String {
    format!("{USER_DIR}/_{uid}")
}

/// The uid in a user object's last path component (`_1000`).
pub fn parse_user_label(label: &str) -> Option<u32> {
    let digits = label.strip_prefix('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// Which kind of object a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The Manager.
    Manager,
    /// A session, by escaped label.
    Session(String),
    /// A seat, by escaped label.
    Seat(String),
    /// A user, by uid.
    User(u32),
    /// `/`, `/org`, `/org/freedesktop` and the three directories: nodes without interfaces.
    Node,
    /// Nothing logind serves.
    Unknown,
}

/// Classifies `path`.
pub fn classify(path: &str) -> Target {
    match path {
        MANAGER => return Target::Manager,
        "/" | "/org" | "/org/freedesktop" | SESSION_DIR | SEAT_DIR | USER_DIR => {
            return Target::Node;
        }
        _ => {}
    }
    let one = |dir: &str| {
        path.strip_prefix(dir)
            .and_then(|r| r.strip_prefix('/'))
            .filter(|r| !r.is_empty() && !r.contains('/'))
            .map(str::to_owned)
    };
    if let Some(label) = one(SESSION_DIR) {
        return Target::Session(label);
    }
    if let Some(label) = one(SEAT_DIR) {
        return Target::Seat(label);
    }
    if let Some(label) = one(USER_DIR) {
        return parse_user_label(&label).map_or(Target::Unknown, Target::User);
    }
    Target::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_and_seat_ids_are_label_escaped_like_sd_bus() {
        assert_eq!(session("c1"), "/org/freedesktop/login1/session/c1");
        assert_eq!(session("2"), "/org/freedesktop/login1/session/_32");
        assert_eq!(session("12"), "/org/freedesktop/login1/session/_312");
        assert_eq!(seat("seat0"), "/org/freedesktop/login1/seat/seat0");
        assert_eq!(seat("seat-1"), "/org/freedesktop/login1/seat/seat_2d1");
        assert_eq!(escape_label(""), "_");
    }

    #[test]
    fn user_paths_use_an_underscore_and_the_decimal_uid() {
        assert_eq!(user(1000), "/org/freedesktop/login1/user/_1000");
        assert_eq!(user(0), "/org/freedesktop/login1/user/_0");
        assert_eq!(parse_user_label("_1000"), Some(1000));
        assert_eq!(parse_user_label("_0"), Some(0));
        for bad in ["1000", "_", "_01", "_1a", "_99999999999"] {
            assert_eq!(parse_user_label(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths_are_classified_by_directory() {
        assert_eq!(classify(MANAGER), Target::Manager);
        assert_eq!(classify("/org"), Target::Node);
        assert_eq!(classify(SESSION_DIR), Target::Node);
        assert_eq!(
            classify("/org/freedesktop/login1/session/c1"),
            Target::Session("c1".into())
        );
        assert_eq!(
            classify("/org/freedesktop/login1/seat/seat0"),
            Target::Seat("seat0".into())
        );
        assert_eq!(
            classify("/org/freedesktop/login1/user/_1000"),
            Target::User(1000)
        );
        assert_eq!(classify("/org/freedesktop/login1/user/x"), Target::Unknown);
        assert_eq!(
            classify("/org/freedesktop/login1/session/c1/x"),
            Target::Unknown
        );
        assert_eq!(classify("/org/freedesktop/hostname1"), Target::Unknown);
    }
}
