//! dynamod-sd1bridge: systemd's `org.freedesktop.systemd1` in front of dynamod-svmgr, so that
//! `systemctl list-units`, `status`, `show`, `is-active`, `start`, `stop`, `restart`,
//! `is-system-running` and `poweroff` work unchanged on a dynamod machine.
//!
//! * [`bridge`]: the objects (manager, units, jobs) answered from svmgr's control socket, and
//!   the connections: the system bus and the peer-to-peer `/run/systemd/private`.
//! * [`interfaces`]: the interfaces, named and typed as systemd documents them.
//! * [`units`]: each service as `<name>.service` — object paths, states, properties.
//! * [`jobs`]: one job per start/stop/restart, announced with `JobNew`/`JobRemoved` once svmgr
//!   has answered, so `systemctl start` without `--no-block` waits for the real outcome.
//! * [`procs`]: which unit a PID belongs to, a unit's processes, pidfd signalling.
//! * [`glob`]: unit name patterns.
//! * [`args`]: the command line.
//!
//! Reads are open to everyone; every change needs root (`dynamod_dbus::auth`). The bridge
//! talks to svmgr as root, so it is the bridge that refuses other callers.

pub mod args;
pub mod bridge;
pub mod glob;
pub mod interfaces;
pub mod jobs;
pub mod procs;
pub mod units;

pub use args::Options;
