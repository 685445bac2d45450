//! Connecting to the system bus and owning names.

use zbus::{Connection, MessageStream};

use crate::error::BusError;

/// Connects to the system bus — `address` when given, else `$DBUS_SYSTEM_BUS_ADDRESS`, else
/// `unix:path=/run/dbus/system_bus_socket` — and returns the stream of incoming messages, set
/// up before any message can arrive.
pub async fn connect(address: Option<&str>) -> Result<MessageStream, BusError> {
    let connect_err = |source| BusError::Connect {
        address: address.map(str::to_owned),
        source,
    };
    let builder = match address {
        Some(a) => zbus::connection::Builder::address(a),
        None => zbus::connection::Builder::system(),
    };
    builder.build_message_stream().await.map_err(connect_err)
}

/// Owns each of `names` on the bus; fails if another connection has one of them.
pub async fn own_names(conn: &Connection, names: &[&str]) -> Result<(), BusError> {
    for name in names {
        conn.request_name(*name)
            .await
            .map_err(|source| BusError::RequestName {
                name: (*name).to_owned(),
                source,
            })?;
    }
    Ok(())
}
