//! The `main` every D-Bus daemon shares: logging to stderr (`DYNAMOD_LOG` filter), a
//! single-threaded tokio runtime, and one error line prefixed with the program name.

use std::future::Future;
use std::process::ExitCode;

/// Runs `run` to completion as program `name`; maps an error to exit status 1.
pub fn main<F, E>(name: &str, run: F) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: std::error::Error,
{
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DYNAMOD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let cause = e.source().map(|c| format!(": {c}")).unwrap_or_default();
            eprintln!("{name}: {e}{cause}");
            ExitCode::FAILURE
        }
    }
}
