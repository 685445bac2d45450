//! dynamod-sd1bridge: see the library documentation.

use std::process::ExitCode;

use clap::Parser;
use dynamod_sd1bridge::{Options, bridge};

fn main() -> ExitCode {
    let opts = Options::parse();
    dynamod_dbus::daemon::main("dynamod-sd1bridge", bridge::run(opts))
}
