//! Telling the service manager that a daemon is ready: the sd_notify(3) datagram protocol on
//! `$NOTIFY_SOCKET` (a path, or an abstract socket when it starts with `@`).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sending a notification failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is not a usable address.
    #[error("NOTIFY_SOCKET={0:?} is not a socket path or abstract name")]
    BadAddress(String),
    /// Creating the socket or sending failed.
    #[error("send {state:?} to {socket}")]
    Send {
        /// What was sent.
        state: String,
        /// The socket.
        socket: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Sends `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET`. `Ok(false)` when the variable is unset
/// (not started by a service manager that listens).
pub fn notify(state: &str) -> Result<bool, NotifyError> {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = socket.to_string_lossy().into_owned();
    if socket.is_empty() {
        return Ok(false);
    }
    send_to(&socket, state)?;
    Ok(true)
}

/// Sends `state` to the notify socket `socket`.
pub fn send_to(socket: &str, state: &str) -> Result<(), NotifyError> {
    let addr = address(socket)?;
    let send_err = |source| NotifyError::Send {
        state: state.to_owned(),
        socket: socket.to_owned(),
        source,
    };
    let sock = UnixDatagram::unbound().map_err(send_err)?;
    sock.send_to_addr(state.as_bytes(), &addr)
        .map_err(send_err)?;
    Ok(())
}

fn address(socket: &str) -> Result<SocketAddr, NotifyError> {
    let bad = || NotifyError::BadAddress(socket.to_owned());
    if let Some(name) = socket.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes()).map_err(|_| bad())
    } else if socket.starts_with('/') {
        SocketAddr::from_pathname(socket).map_err(|_| bad())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_reaches_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("dynamod-dbus-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        send_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_datagram_reaches_an_abstract_socket() {
        let name = format!("dynamod-dbus-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(&format!("@{name}"), "STATUS=hi").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=hi");
    }

    #[test]
    fn a_relative_address_is_refused() {
        assert!(matches!(
            send_to("relative.sock", "READY=1"),
            Err(NotifyError::BadAddress(_))
        ));
    }
}
