//! dynamod-logind: see the library documentation.

use std::process::ExitCode;

use clap::Parser;
use dynamod_logind::{Options, daemon};

fn main() -> ExitCode {
    let opts = Options::parse();
    dynamod_dbus::daemon::main("dynamod-logind", daemon::run(opts))
}
