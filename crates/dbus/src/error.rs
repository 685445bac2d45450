//! Errors: [`MethodError`] is what a D-Bus caller receives (an error name and a message, as
//! systemd's clients print them); [`BusError`] is what setting up a daemon can fail with.

use std::path::PathBuf;

/// `org.freedesktop.DBus.Error.AccessDenied`.
pub const ACCESS_DENIED: &str = "org.freedesktop.DBus.Error.AccessDenied";
/// `org.freedesktop.DBus.Error.InvalidArgs`.
pub const INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";
/// `org.freedesktop.DBus.Error.NotSupported`.
pub const NOT_SUPPORTED: &str = "org.freedesktop.DBus.Error.NotSupported";
/// `org.freedesktop.DBus.Error.Failed`.
pub const FAILED: &str = "org.freedesktop.DBus.Error.Failed";
/// `org.freedesktop.DBus.Error.UnknownObject`.
pub const UNKNOWN_OBJECT: &str = "org.freedesktop.DBus.Error.UnknownObject";
/// `org.freedesktop.DBus.Error.UnknownInterface`.
pub const UNKNOWN_INTERFACE: &str = "org.freedesktop.DBus.Error.UnknownInterface";
/// `org.freedesktop.DBus.Error.UnknownMethod`.
pub const UNKNOWN_METHOD: &str = "org.freedesktop.DBus.Error.UnknownMethod";
/// `org.freedesktop.DBus.Error.UnknownProperty`.
pub const UNKNOWN_PROPERTY: &str = "org.freedesktop.DBus.Error.UnknownProperty";
/// `org.freedesktop.DBus.Error.PropertyReadOnly`.
pub const PROPERTY_READ_ONLY: &str = "org.freedesktop.DBus.Error.PropertyReadOnly";

/// A D-Bus error reply: a dotted error name and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct MethodError {
    /// The error name, e.g. `org.freedesktop.systemd1.NoSuchUnit`.
    pub name: String,
    /// What clients print after "Failed to …: ".
    pub message: String,
}

impl MethodError {
    /// An error with any name.
    pub fn new(name: &str, message: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            message: message.into(),
        }
    }

    /// The caller may not do this.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(ACCESS_DENIED, message)
    }

    /// An argument was rejected.
    pub fn invalid_args(message: impl Into<String>) -> Self {
        Self::new(INVALID_ARGS, message)
    }

    /// The operation exists but dynamod cannot do it.
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(NOT_SUPPORTED, message)
    }

    /// The operation was attempted and failed.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(FAILED, message)
    }
}

/// Setting up or running a D-Bus daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Connecting to the bus failed.
    #[error("connect to the D-Bus system bus{}", address.as_deref().map(|a| format!(" at {a}")).unwrap_or_default())]
    Connect {
        /// The address, when one was given.
        address: Option<String>,
        /// The cause.
        #[source]
        source: zbus::Error,
    },
    /// A well-known name could not be owned.
    #[error("own the bus name {name}")]
    RequestName {
        /// The name.
        name: String,
        /// The cause.
        #[source]
        source: zbus::Error,
    },
    /// The peer-to-peer socket could not be created.
    #[error("listen on {}", path.display())]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bus connection ended.
    #[error("the bus connection closed")]
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_use_the_standard_error_names() {
        assert_eq!(
            MethodError::access_denied("x").name,
            "org.freedesktop.DBus.Error.AccessDenied"
        );
        assert_eq!(MethodError::invalid_args("x").name, INVALID_ARGS);
        assert_eq!(MethodError::not_supported("x").name, NOT_SUPPORTED);
        assert_eq!(
            MethodError::failed("boom").to_string(),
            "org.freedesktop.DBus.Error.Failed: boom"
        );
    }
}
