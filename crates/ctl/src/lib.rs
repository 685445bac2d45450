//! `dynamodctl`, the command-line interface to dynamod's service manager.
//!
//! * [`cli`]: the clap definitions.
//! * [`client`]: connect to `control.sock`, handshake, one request, one response.
//! * [`render`]: human output (pure functions, unit-tested with exact text).
//! * [`json`]: `--json` output shapes.
//! * [`human`]: durations, sizes, dates and exit statuses as text.
//! * [`exit`]: the exit statuses.
//!
//! [`main`] wires them: parse, connect, ask, print, exit. Errors are printed once, as
//! `dynamodctl: <what>: <cause>`; a closed stdout (`dynamodctl list | head -1`) ends quietly.

pub mod cli;
pub mod client;
pub mod exit;
pub mod human;
pub mod json;
pub mod render;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use dynamod_proto::{Request, Response};

use crate::cli::{Cli, Command};
use crate::client::{Client, ClientError};
use crate::exit::Exit;

/// Connecting and the hello exchange must finish within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default wait for read commands and `--no-block` requests, which svmgr answers at once.
pub const QUICK_TIMEOUT: Duration = Duration::from_secs(30);

/// What a command prints and how it exits.
#[derive(Debug)]
pub struct Outcome {
    /// Text for stdout.
    pub text: String,
    /// The exit status.
    pub exit: Exit,
}

impl Outcome {
    fn ok(text: String) -> Self {
        Self {
            text,
            exit: Exit::Ok,
        }
    }
}

/// The program: parse the command line, run it, print, and return the exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and exit 0; usage errors to stderr and exit 2.
            let _ = e.print();
            let exit = if e.exit_code() == 0 {
                Exit::Ok
            } else {
                Exit::Usage
            };
            return exit.into();
        }
    };
    let colour =
        io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    match execute(&cli, colour) {
        Ok(outcome) => {
            if let Err(e) = write_stdout(&outcome.text) {
                return write_failure(&e).unwrap_or(outcome.exit).into();
            }
            outcome.exit.into()
        }
        Err(e) => {
            let exit = e
                .chain()
                .find_map(|c| c.downcast_ref::<ClientError>())
                .map_or(Exit::Negative, ClientError::exit);
            let _ = writeln!(io::stderr().lock(), "dynamodctl: {e:#}");
            exit.into()
        }
    }
}

fn write_stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// A broken pipe ends quietly with the command's own status; other write errors are reported.
fn write_failure(e: &io::Error) -> Option<Exit> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return None;
    }
    let _ = writeln!(io::stderr().lock(), "dynamodctl: cannot write output: {e}");
    Some(Exit::Negative)
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs one command against svmgr.
pub fn execute(cli: &Cli, colour: bool) -> anyhow::Result<Outcome> {
    let mut client = Client::connect(&cli.socket, CONNECT_TIMEOUT)?;
    let quick = Some(cli.timeout.unwrap_or(QUICK_TIMEOUT));
    match &cli.command {
        Command::List => {
            let list = match client.request(&Request::List, quick).context("list")? {
                Response::List(l) => l,
                other => return unexpected("list", &other),
            };
            let text = if cli.json {
                json::to_text(&json::list(&list))?
            } else {
                render::render_list(&list, colour)
            };
            Ok(Outcome::ok(text))
        }
        Command::Tree => {
            let tree = match client.request(&Request::Tree, quick).context("tree")? {
                Response::Tree(t) => t,
                other => return unexpected("tree", &other),
            };
            let text = if cli.json {
                json::to_text(&json::tree(&tree))?
            } else {
                render::render_tree(&tree, colour)
            };
            Ok(Outcome::ok(text))
        }
        Command::Status { names } => {
            let what = format!("status {}", names.join(" "));
            let request = Request::Status {
                names: names.clone(),
            };
            let details = match client.request(&request, quick).context(what.clone())? {
                Response::Status(d) => d,
                other => return unexpected(&what, &other),
            };
            let text = if cli.json {
                json::to_text(&json::status(&details))?
            } else {
                render::render_status(&details, now_unix_ms(), colour)
            };
            Ok(Outcome::ok(text))
        }
        Command::IsHealthy => {
            let sys = match client
                .request(&Request::SystemState, quick)
                .context("is-healthy")?
            {
                Response::SystemState(s) => s,
                other => return unexpected("is-healthy", &other),
            };
            let verdict = render::health(&sys);
            let text = if cli.json {
                json::to_text(&json::health(&sys, &verdict))?
            } else {
                format!("{}\n", verdict.line)
            };
            Ok(Outcome {
                text,
                exit: if verdict.healthy {
                    Exit::Ok
                } else {
                    Exit::Negative
                },
            })
        }
        Command::Start(c) | Command::Stop(c) | Command::Restart(c) => {
            let (verb, request) = match &cli.command {
                Command::Start(_) => (
                    "start",
                    Request::Start {
                        names: c.names.clone(),
                        no_block: c.no_block,
                    },
                ),
                Command::Stop(_) => (
                    "stop",
                    Request::Stop {
                        names: c.names.clone(),
                        no_block: c.no_block,
                    },
                ),
                _ => (
                    "restart",
                    Request::Restart {
                        names: c.names.clone(),
                        no_block: c.no_block,
                    },
                ),
            };
            // Blocking requests are answered when the job is done, which has no natural bound.
            let timeout = if c.no_block { quick } else { cli.timeout };
            let what = format!("{verb} {}", c.names.join(" "));
            let answer = client.request(&request, timeout).context(what.clone());
            done(cli, &what, answer)
        }
        Command::Reload => {
            let answer = client
                .request(&Request::Reload, cli.timeout)
                .context("reload");
            done(cli, "reload", answer)
        }
        Command::Shutdown { kind } => {
            let kind = dynamod_proto::ShutdownKind::from(*kind);
            let what = format!("shutdown {}", kind.as_str());
            match client.request(&Request::Shutdown { kind }, cli.timeout) {
                // svmgr may go down with the system before its answer gets out.
                Err(ClientError::Closed) => {
                    let message = format!(
                        "{} in progress (svmgr closed the connection)",
                        kind.as_str()
                    );
                    done(cli, &what, Ok(Response::Done { message }))
                }
                answer => done(cli, &what, answer.context(what.clone())),
            }
        }
    }
}

fn done(cli: &Cli, what: &str, answer: anyhow::Result<Response>) -> anyhow::Result<Outcome> {
    let message = match answer? {
        Response::Done { message } => message,
        other => return unexpected(what, &other),
    };
    if cli.json {
        return Ok(Outcome::ok(json::to_text(&json::Done {
            message: &message,
        })?));
    }
    let mut text = human::sanitize_lines(&message);
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(Outcome::ok(text))
}

fn unexpected(what: &str, got: &Response) -> anyhow::Result<Outcome> {
    Err(ClientError::Unexpected(format!(
        "a {} answer",
        client::variant(got)
    )))
    .context(what.to_owned())
}
