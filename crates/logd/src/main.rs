//! `dynamod-logd`: see the library documentation for the design.

use std::io::Write;
use std::process::ExitCode;

use dynamod_logd::args::{self, Command};
use dynamod_logd::daemon;

fn main() -> ExitCode {
    let command = match args::parse(std::env::args_os().skip(1), |k| std::env::var_os(k)) {
        Ok(c) => c,
        Err(e) => {
            daemon::say(&format!("{e}\n{}", args::USAGE.trim_end()));
            return ExitCode::from(2);
        }
    };
    match command {
        // A closed stdout is not worth a panic: ignore write errors here.
        Command::Help => {
            let _ = std::io::stdout().write_all(args::USAGE.as_bytes());
        }
        Command::Version => {
            let _ = writeln!(
                std::io::stdout(),
                "dynamod-logd {}",
                env!("CARGO_PKG_VERSION")
            );
        }
        Command::Run(opts) => {
            if let Err(e) = daemon::run(opts) {
                let cause = std::error::Error::source(&e).map(|c| format!(": {c}"));
                daemon::say(&format!("{e}{}", cause.unwrap_or_default()));
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
