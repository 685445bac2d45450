//! `dynamodctl`, the command-line interface to dynamod's service manager.
//!
//! * [`cli`]: the clap definitions.
//! * [`client`]: connect to `control.sock`, handshake, one request, one response.
//! * [`render`]: human output (pure functions, unit-tested with exact text).
//! * [`json`]: `--json` output shapes.
//! * [`human`]: durations, sizes, dates and exit statuses as text.
//! * [`exit`]: the exit statuses.
//! * [`check`], [`graph`], [`analyze`], [`wait`], [`logs`]: the commands that do more than one
//!   request and print its answer.
//! * [`generate`]: man pages and shell completions from the clap definitions.
//!
//! [`main`] wires them: parse, connect, ask, print, exit. Errors are printed once, as
//! `dynamodctl: <what>: <cause>`; a closed stdout (`dynamodctl list | head -1`) ends quietly.

pub mod analyze;
pub mod check;
pub mod cli;
pub mod client;
pub mod exit;
pub mod generate;
pub mod graph;
pub mod human;
pub mod json;
pub mod logs;
pub mod render;
pub mod wait;

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use dynamod_proto::{LogQuery, Request, Response, ServiceDetail};

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
    let quick = Cli::parse_quick(std::env::args_os(), std::env::var_os("DYNAMOD_SOCKET"));
    let cli = match quick.map_or_else(Cli::try_parse, Ok) {
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
    let result = match &cli.command {
        Command::Logs(args) => run_logs(&cli, args, colour),
        _ => execute(&cli, colour),
    };
    match result {
        Ok(outcome) => {
            if let Err(e) = write_stdout(&outcome.text) {
                return write_failure(&e).unwrap_or(outcome.exit).into();
            }
            outcome.exit.into()
        }
        Err(e) => {
            let _ = writeln!(io::stderr().lock(), "dynamodctl: {e:#}");
            exit_for(&e).into()
        }
    }
}

/// The exit status for a failure: the first error in the chain that knows its class.
pub fn exit_for(e: &anyhow::Error) -> Exit {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return c.exit();
        }
        if let Some(l) = cause.downcast_ref::<logs::LogsError>() {
            return l.exit();
        }
        if let Some(analyze::AnalyzeError::Unknown(_)) = cause.downcast_ref() {
            return Exit::UnknownService;
        }
    }
    Exit::Negative
}

/// `logs`: streams straight to stdout, so a follow prints lines as they come.
fn run_logs(cli: &Cli, args: &cli::Logs, colour: bool) -> anyhow::Result<Outcome> {
    let socket = logs::socket_path(args.log_socket.as_deref(), &cli.socket);
    let lines = match (args.lines, args.follow) {
        (Some(n), _) => Some(n),
        (None, true) => Some(logs::FOLLOW_DEFAULT_LINES),
        (None, false) => None,
    };
    let query = LogQuery {
        services: args.names.clone(),
        lines,
        since_us: args.since.map(|s| s.to_unix_us(now_unix_ms() * 1_000)),
        follow: args.follow,
    };
    let fmt = logs::Format {
        json: cli.json,
        colour,
    };
    let what = if args.names.is_empty() {
        "logs".to_owned()
    } else {
        format!("logs {}", args.names.join(" "))
    };
    let mut out = io::stdout().lock();
    logs::run(&socket, &query, fmt, &mut out).context(what)?;
    Ok(Outcome::ok(String::new()))
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

/// Runs one command (every one but `logs`, which streams) and returns what to print.
pub fn execute(cli: &Cli, colour: bool) -> anyhow::Result<Outcome> {
    let quick = Some(cli.timeout.unwrap_or(QUICK_TIMEOUT));
    match &cli.command {
        Command::Check(args) => return run_check(cli, args, colour),
        Command::Generate { prefix } => {
            let files = generate::install(prefix)
                .with_context(|| format!("generate {}", prefix.display()))?;
            let text: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
            return Ok(Outcome::ok(text));
        }
        Command::Graph(args) => return run_graph(cli, args, quick),
        Command::Wait { names } => return run_wait(cli, names),
        Command::Logs(args) => return run_logs(cli, args, colour),
        _ => {}
    }
    let Some((what, request, timeout)) = first_request(cli, quick) else {
        return unreachable_command();
    };
    // The hello and the request go out together: one round trip for the usual one question.
    let mut client = Client::connect_with(&cli.socket, CONNECT_TIMEOUT, &request)?;
    let answer = client.answer(timeout);
    match &cli.command {
        Command::List => {
            let list = match answer.context(what.clone())? {
                Response::List(l) => l,
                other => return unexpected(&what, &other),
            };
            let text = if cli.json {
                json::to_text(&json::list(&list))?
            } else {
                render::render_list(&list, colour)
            };
            Ok(Outcome::ok(text))
        }
        Command::Tree => {
            let tree = match answer.context(what.clone())? {
                Response::Tree(t) => t,
                other => return unexpected(&what, &other),
            };
            let text = if cli.json {
                json::to_text(&json::tree(&tree))?
            } else {
                render::render_tree(&tree, colour)
            };
            Ok(Outcome::ok(text))
        }
        Command::Status { .. } => {
            let details = match answer.context(what.clone())? {
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
            let sys = match answer.context(what.clone())? {
                Response::SystemState(s) => s,
                other => return unexpected(&what, &other),
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
        Command::Start(_)
        | Command::Stop(_)
        | Command::Restart(_)
        | Command::Reload
        | Command::Reexec => done(cli, &what, answer.context(what.clone())),
        Command::Analyze(args) => {
            let sys = match answer.context(what.clone())? {
                Response::SystemState(s) => s,
                other => return unexpected(&what, &other),
            };
            let details = all_details(&mut client, quick).context("analyze")?;
            let a = analyze::analyze(
                &details,
                sys.uptime_ms,
                sys.startup_complete,
                now_unix_ms(),
                args.name.as_deref(),
            )
            .context("analyze")?;
            if let Some(path) = &args.svg {
                std::fs::write(path, analyze::svg(&a))
                    .with_context(|| format!("analyze: cannot write {}", path.display()))?;
            }
            let text = if cli.json {
                json::to_text(&a)?
            } else {
                analyze::render(&a)
            };
            Ok(Outcome::ok(text))
        }
        Command::Shutdown { kind } => {
            let kind = dynamod_proto::ShutdownKind::from(*kind);
            match answer {
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
        Command::Logs(_)
        | Command::Check(_)
        | Command::Generate { .. }
        | Command::Graph(_)
        | Command::Wait { .. } => unreachable_command(),
    }
}

/// The first request of a command that talks to svmgr: what it is called in errors, the
/// request, and how long to wait for its answer. `None` for the commands that do not connect
/// (or connect on their own).
fn first_request(
    cli: &Cli,
    quick: Option<Duration>,
) -> Option<(String, Request, Option<Duration>)> {
    let change = |verb: &str, c: &cli::Change, request: Request| {
        // Blocking requests are answered when the job is done, which has no natural bound.
        let timeout = if c.no_block { quick } else { cli.timeout };
        Some((format!("{verb} {}", c.names.join(" ")), request, timeout))
    };
    match &cli.command {
        Command::List => Some(("list".to_owned(), Request::List, quick)),
        Command::Tree => Some(("tree".to_owned(), Request::Tree, quick)),
        Command::Status { names } => Some((
            format!("status {}", names.join(" ")),
            Request::Status {
                names: names.clone(),
            },
            quick,
        )),
        Command::IsHealthy => Some(("is-healthy".to_owned(), Request::SystemState, quick)),
        Command::Analyze(_) => Some(("analyze".to_owned(), Request::SystemState, quick)),
        Command::Start(c) => change(
            "start",
            c,
            Request::Start {
                names: c.names.clone(),
                no_block: c.no_block,
            },
        ),
        Command::Stop(c) => change(
            "stop",
            c,
            Request::Stop {
                names: c.names.clone(),
                no_block: c.no_block,
            },
        ),
        Command::Restart(c) => change(
            "restart",
            c,
            Request::Restart {
                names: c.names.clone(),
                no_block: c.no_block,
            },
        ),
        Command::Reload => Some(("reload".to_owned(), Request::Reload, cli.timeout)),
        Command::Reexec => Some(("reexec".to_owned(), Request::Reexec, cli.timeout)),
        Command::Shutdown { kind } => {
            let kind = dynamod_proto::ShutdownKind::from(*kind);
            Some((
                format!("shutdown {}", kind.as_str()),
                Request::Shutdown { kind },
                cli.timeout,
            ))
        }
        Command::Logs(_)
        | Command::Check(_)
        | Command::Generate { .. }
        | Command::Graph(_)
        | Command::Wait { .. } => None,
    }
}

/// The commands handled before connecting never get here.
fn unreachable_command() -> anyhow::Result<Outcome> {
    Err(anyhow::anyhow!("internal error: command dispatched twice"))
}

/// `Status` of every service (an empty name list asks for all of them).
fn all_details(
    client: &mut Client,
    timeout: Option<Duration>,
) -> Result<Vec<ServiceDetail>, ClientError> {
    match client.request(&Request::Status { names: Vec::new() }, timeout)? {
        Response::Status(d) => Ok(d),
        other => Err(ClientError::Unexpected(format!(
            "a {} answer",
            client::variant(&other)
        ))),
    }
}

fn run_check(cli: &Cli, args: &cli::Check, colour: bool) -> anyhow::Result<Outcome> {
    let services = args
        .services
        .clone()
        .unwrap_or_else(|| args.dir.join("services"));
    let supervisors = args
        .supervisors
        .clone()
        .unwrap_or_else(|| args.dir.join("supervisors"));
    let config = check::load(&services, &supervisors);
    let ok = check::Tally::of(&config).ok();
    let text = if cli.json {
        json::to_text(&check::report(&config))?
    } else {
        check::render(&config, colour)
    };
    Ok(Outcome {
        text,
        exit: if ok { Exit::Ok } else { Exit::Negative },
    })
}

fn run_graph(cli: &Cli, args: &cli::Graph, quick: Option<Duration>) -> anyhow::Result<Outcome> {
    let from_dir = |dir: &Path| {
        let config = dynamod_config::load_root(dir);
        graph::from_config(&config, &dir.display().to_string())
    };
    let g = match &args.config {
        Some(dir) => from_dir(dir),
        None => match Client::connect(&cli.socket, CONNECT_TIMEOUT) {
            Ok(mut client) => {
                graph::from_details(&all_details(&mut client, quick).context("graph")?)
            }
            // Not running: the installed configuration is what would run.
            Err(e) if e.exit() == Exit::Unreachable => from_dir(Path::new(cli::DEFAULT_CONFIG_DIR)),
            Err(e) => return Err(e).context("graph"),
        },
    };
    let text = if cli.json {
        json::to_text(&g)?
    } else {
        graph::to_dot(&g)
    };
    Ok(Outcome::ok(text))
}

fn run_wait(cli: &Cli, names: &[String]) -> anyhow::Result<Outcome> {
    let what = if names.is_empty() {
        "wait".to_owned()
    } else {
        format!("wait {}", names.join(" "))
    };
    let (report, failure) = wait::run(&cli.socket, names, cli.timeout).context(what.clone())?;
    if cli.json {
        let exit = if report.ok { Exit::Ok } else { Exit::Negative };
        return Ok(Outcome {
            text: json::to_text(&report)?,
            exit,
        });
    }
    match failure {
        None => Ok(Outcome::ok(wait::render_ok(&report))),
        Some(e) => Err(e).context(what),
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
