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
//! * [`store`]: files, rotation (global and per-service limits), sequence recovery, the hold
//!   queue for a failing disk, acks.
//! * [`ring`]: each service's recent records in memory, shared with the query threads.
//! * [`query`]: the query socket (`logd.sock`) answering `dynamodctl logs`, with follow.
//! * [`daemon`]: the svmgr socket, signals and the storing loop.
//! * [`args`]: command line and environment.
//!
//! Storing is synchronous on the main thread (a read, a format and a write per batch); each
//! query runs on a thread of its own, so a slow reader never delays storing.

pub mod args;
pub mod daemon;
pub mod format;
pub mod query;
pub mod ring;
pub mod store;
