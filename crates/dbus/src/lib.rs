//! Shared D-Bus plumbing for dynamod's systemd-compatible daemons (`dynamod-hostnamed`,
//! `dynamod-sd1bridge`).
//!
//! * [`object`]: interfaces described as data (names exactly as systemd documents them),
//!   property sets, replies, and the context of one call.
//! * [`server`]: the dispatcher — standard interfaces answered like sd-bus, including
//!   `GetAll("")` — and the peer-to-peer listener behind `/run/systemd/private`.
//! * [`auth`]: the caller's uid (`GetConnectionUnixUser`, or the socket's credentials) and the
//!   policy: reads are open, changes need root.
//! * [`bus`]: connecting to the system bus and owning names.
//! * [`notify`]: `READY=1` to the service manager (sd_notify protocol).
//! * [`validate`]: checks for values that reach files or paths.
//! * [`platform`]: architecture and virtualization, in systemd's vocabulary.
//! * [`svmgr`]: requests to dynamod-svmgr over its control socket.
//! * [`error`]: D-Bus error replies and set-up errors.

pub mod auth;
pub mod bus;
pub mod daemon;
pub mod error;
pub mod notify;
pub mod object;
pub mod platform;
pub mod server;
pub mod svmgr;
pub mod validate;

pub use error::{BusError, MethodError};
pub use object::{Call, Interface, Method, Property, Props, Reply, Signal};
pub use server::{Service, Signals};
pub use zbus;
