//! The sd_notify datagram protocol (sd_notify(3)): newline-separated `KEY=VALUE` assignments.

/// Largest datagram accepted; bigger ones are ignored and counted.
pub const MAX_DATAGRAM: usize = 4096;

/// What one datagram said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyMsg {
    /// `READY=1`.
    pub ready: bool,
    /// `STOPPING=1`.
    pub stopping: bool,
    /// `RELOADING=1`.
    pub reloading: bool,
    /// `STATUS=…`.
    pub status: Option<String>,
    /// `MAINPID=…`.
    pub main_pid: Option<i32>,
    /// `ERRNO=…`.
    pub errno: Option<i32>,
}

/// Why a datagram was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// Larger than [`MAX_DATAGRAM`].
    #[error("datagram of {0} bytes is too large")]
    TooLarge(usize),
    /// Not UTF-8, or a line without `=`.
    #[error("malformed notify message")]
    Malformed,
}

/// Parses one datagram. Unknown keys are ignored (the protocol is extensible); a bad
/// `MAINPID` makes the whole message malformed.
pub fn parse(data: &[u8]) -> Result<NotifyMsg, NotifyError> {
    if data.len() > MAX_DATAGRAM {
        return Err(NotifyError::TooLarge(data.len()));
    }
    let text = std::str::from_utf8(data).map_err(|_| NotifyError::Malformed)?;
    let mut msg = NotifyMsg::default();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=').ok_or(NotifyError::Malformed)?;
        match k {
            "READY" => msg.ready = v == "1",
            "STOPPING" => msg.stopping = v == "1",
            "RELOADING" => msg.reloading = v == "1",
            "STATUS" => msg.status = Some(v.to_owned()),
            "MAINPID" => {
                let pid: i32 = v.parse().map_err(|_| NotifyError::Malformed)?;
                if pid <= 0 {
                    return Err(NotifyError::Malformed);
                }
                msg.main_pid = Some(pid);
            }
            "ERRNO" => msg.errno = v.parse().ok(),
            _ => {}
        }
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_status_are_read() {
        let m = parse(b"READY=1\nSTATUS=serving 3 clients\n").unwrap();
        assert!(m.ready);
        assert_eq!(m.status.as_deref(), Some("serving 3 clients"));
    }

    #[test]
    fn mainpid_stopping_reloading() {
        let m = parse(b"MAINPID=42\nSTOPPING=1\nRELOADING=1").unwrap();
        assert_eq!(m.main_pid, Some(42));
        assert!(m.stopping && m.reloading && !m.ready);
    }

    #[test]
    fn malformed_and_oversized_are_refused() {
        assert_eq!(parse(b"READY"), Err(NotifyError::Malformed));
        assert_eq!(parse(b"MAINPID=abc"), Err(NotifyError::Malformed));
        assert_eq!(parse(b"MAINPID=-1"), Err(NotifyError::Malformed));
        assert_eq!(parse(&[0xff, b'=', b'1']), Err(NotifyError::Malformed));
        assert_eq!(
            parse(&vec![b'a'; MAX_DATAGRAM + 1]),
            Err(NotifyError::TooLarge(MAX_DATAGRAM + 1))
        );
    }

    #[test]
    fn unknown_keys_are_ignored() {
        assert_eq!(
            parse(b"WATCHDOG=1\nX_FOO=bar").unwrap(),
            NotifyMsg::default()
        );
    }
}
