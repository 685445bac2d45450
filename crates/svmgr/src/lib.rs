//! dynamod-svmgr: runs the supervision core ([`dynamod_core`]) against real processes.
//!
//! The binary is a thin wrapper around [`runtime::Runtime`]; the modules are public within the
//! crate for unit tests.

pub mod cgroup;
pub mod launch;
pub mod logbuf;
pub mod notify;
pub mod runtime;
pub mod state;
pub mod users;

mod control;

pub use runtime::{Options, Runtime};
