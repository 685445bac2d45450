//! dynamod's log daemon: stores every service's output in `/var/log/dynamod/<service>.log`.
//!
//! svmgr owns the services' stdout and stderr pipes (so a logd restart loses nothing and never
//! blocks a service) and serves `log.sock`. logd is an ordinary service that connects to it,
//! exchanges [`LogMsg::Hello`](dynamod_proto::LogMsg::Hello), then receives
//! [`LogMsg::Records`](dynamod_proto::LogMsg::Records) and answers
//! [`LogMsg::Ack`](dynamod_proto::LogMsg::Ack) once the records are in the files. svmgr re-sends
//! whatever is unacknowledged when logd reconnects, so logd skips records whose sequence number
//! is not above the last one stored for that service; it recovers that number from the tail of
//! the file at start-up, which is why every stored line carries it.
//!
//! * [`format`](mod@format): the line format (timestamp, escaping, partial marker) and its parser.
//! * [`store`]: files, rotation, sequence recovery, the hold queue for a failing disk, acks.
//! * [`daemon`]: the socket, signals and the event loop.
//! * [`args`]: command line and environment.
//!
//! Synchronous and single-threaded: the work is a read, a format and a write per batch.

pub mod args;
pub mod daemon;
pub mod format;
pub mod store;
