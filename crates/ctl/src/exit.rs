//! dynamodctl's exit statuses: one enum, documented in `docs/operations.md`.

use dynamod_proto::ErrorKind;

/// How dynamodctl ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// 0: the request succeeded (for `is-healthy`: the system is healthy).
    Ok = 0,
    /// 1: a negative answer: not healthy, the operation failed or was refused as invalid, the
    /// answer did not come in time, or svmgr spoke another protocol version.
    Negative = 1,
    /// 2: the command line is wrong.
    Usage = 2,
    /// 3: svmgr (or the socket's permissions) refused this user.
    PermissionDenied = 3,
    /// 4: a named service does not exist.
    UnknownService = 4,
    /// 5: svmgr could not be reached (no socket, nobody listening, no answer to the hello).
    Unreachable = 5,
}

impl Exit {
    /// The numeric status.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The status for an error class reported by svmgr.
    pub fn from_kind(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::UnknownService => Self::UnknownService,
            ErrorKind::PermissionDenied => Self::PermissionDenied,
            ErrorKind::Invalid | ErrorKind::Failed | ErrorKind::Protocol => Self::Negative,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        Self::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_kinds_map_to_documented_codes() {
        assert_eq!(Exit::from_kind(ErrorKind::UnknownService).code(), 4);
        assert_eq!(Exit::from_kind(ErrorKind::PermissionDenied).code(), 3);
        assert_eq!(Exit::from_kind(ErrorKind::Failed).code(), 1);
        assert_eq!(Exit::from_kind(ErrorKind::Invalid).code(), 1);
        assert_eq!(Exit::from_kind(ErrorKind::Protocol).code(), 1);
        assert_eq!(
            (
                Exit::Ok.code(),
                Exit::Usage.code(),
                Exit::Unreachable.code()
            ),
            (0, 2, 5)
        );
    }
}
