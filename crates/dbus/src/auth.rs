//! Who is calling, and the authorization policy.
//!
//! Policy (the same for every dynamod D-Bus daemon, documented in `docs/systemd-compat.md`):
//! every read — properties, `Get*`, `List*`, `Describe`, introspection — is open to anyone;
//! every change needs the caller to be root (uid 0). There is no polkit: where systemd would ask
//! polkit, dynamod answers `org.freedesktop.DBus.Error.AccessDenied` for a non-root caller.
//!
//! On a bus the caller's uid comes from the bus daemon
//! (`org.freedesktop.DBus.GetConnectionUnixUser` on the sender's unique name), which got it
//! from the kernel (`SO_PEERCRED`) when the caller connected; on a peer-to-peer connection
//! (systemd's `/run/systemd/private`) it comes from the socket's own credentials.

use zbus::{Connection, Message};

use crate::error::MethodError;

const BUS_NAME: &str = "org.freedesktop.DBus";
const BUS_PATH: &str = "/org/freedesktop/DBus";

/// The identity of a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Its user id.
    pub uid: u32,
}

/// Identifying a caller failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The bus daemon did not answer the credentials query.
    #[error("ask the bus for the credentials of {sender}")]
    Bus {
        /// The caller's unique name.
        sender: String,
        /// The cause.
        #[source]
        source: zbus::Error,
    },
    /// The socket's peer credentials could not be read.
    #[error("read the peer credentials of a direct connection")]
    Peer(#[source] std::io::Error),
    /// The credentials carry no uid.
    #[error("the peer's uid is unknown")]
    NoUid,
}

/// The caller of `msg` on `conn`.
pub async fn caller(conn: &Connection, msg: &Message) -> Result<Caller, AuthError> {
    let header = msg.header();
    match header.sender() {
        Some(sender) if conn.is_bus() => {
            let sender = sender.to_string();
            let uid = bus_query_u32(conn, "GetConnectionUnixUser", &sender).await?;
            Ok(Caller { uid })
        }
        _ => {
            let creds = conn.peer_creds().await.map_err(AuthError::Peer)?;
            let uid = creds.unix_user_id().ok_or(AuthError::NoUid)?;
            Ok(Caller { uid })
        }
    }
}

/// The process id of the caller of `msg` (used by `GetUnitByPID(0)`).
pub async fn caller_pid(conn: &Connection, msg: &Message) -> Result<Option<u32>, AuthError> {
    let header = msg.header();
    match header.sender() {
        Some(sender) if conn.is_bus() => {
            let sender = sender.to_string();
            bus_query_u32(conn, "GetConnectionUnixProcessID", &sender)
                .await
                .map(Some)
        }
        _ => {
            let creds = conn.peer_creds().await.map_err(AuthError::Peer)?;
            Ok(creds.process_id())
        }
    }
}

async fn bus_query_u32(conn: &Connection, method: &str, sender: &str) -> Result<u32, AuthError> {
    let bus_err = |source| AuthError::Bus {
        sender: sender.to_owned(),
        source,
    };
    let reply = conn
        .call_method(Some(BUS_NAME), BUS_PATH, Some(BUS_NAME), method, &sender)
        .await
        .map_err(bus_err)?;
    reply.body().deserialize::<u32>().map_err(bus_err)
}

/// The policy: root may change things, nobody else may. `action` completes "Only root may …".
pub fn require_root(caller: &Caller, action: &str) -> Result<(), MethodError> {
    if caller.uid == 0 {
        Ok(())
    } else {
        Err(MethodError::access_denied(format!(
            "Access denied: only root may {action}."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_allowed_to_change() {
        assert!(require_root(&Caller { uid: 0 }, "set the hostname").is_ok());
    }

    #[test]
    fn non_root_is_refused_with_access_denied() {
        let e = require_root(&Caller { uid: 1000 }, "set the hostname").unwrap_err();
        assert_eq!(e.name, crate::error::ACCESS_DENIED);
        assert_eq!(e.message, "Access denied: only root may set the hostname.");
    }
}
