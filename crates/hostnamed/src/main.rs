//! dynamod-hostnamed: see the library documentation.

use std::process::ExitCode;

use clap::Parser;
use dynamod_hostnamed::{Options, daemon};

fn main() -> ExitCode {
    let opts = Options::parse();
    dynamod_dbus::daemon::main("dynamod-hostnamed", daemon::run(opts))
}
