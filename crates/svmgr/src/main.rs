//! dynamod-svmgr: the service manager. Started by dynamod-init (which passes
//! `DYNAMOD_INIT_FD`), or by hand with a configuration and runtime directory for development
//! and tests.

use std::path::PathBuf;
use std::time::Duration;

use dynamod_svmgr::{Options, Runtime};

const USAGE: &str =
    "usage: dynamod-svmgr [--services DIR] [--supervisors DIR] [--runtime-dir DIR] [--etc DIR]
                     [--cgroup-root DIR|auto|none] [--control-group NAME|GID]

  --services DIR      service files (default /etc/dynamod/services)
  --supervisors DIR   supervisor files (default /etc/dynamod/supervisors)
  --runtime-dir DIR   sockets and state (default /run/dynamod)
  --etc DIR           where passwd and group are read (default /etc)
  --cgroup-root DIR   base of the service cgroups, `auto` (default: <cgroup2 mount><own
                      cgroup>/dynamod) or `none` (process groups only)
  --control-group G   members of group G (a name from <etc>/group, or a number) may start,
                      stop, restart, reload and shut down over the control socket, like root";

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        services: PathBuf::from("/etc/dynamod/services"),
        supervisors: PathBuf::from("/etc/dynamod/supervisors"),
        runtime: PathBuf::from("/run/dynamod"),
        etc: PathBuf::from("/etc"),
        cgroups: dynamod_svmgr::cgroup::CgroupSetting::Auto,
        control_group: None,
        heartbeat: Duration::from_millis(
            std::env::var("DYNAMOD_HEARTBEAT_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(5000),
        ),
    };
    let mut control_group = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.to_str() {
            Some("--services") => opts.services = value("--services")?,
            Some("--supervisors") => opts.supervisors = value("--supervisors")?,
            Some("--runtime-dir") => opts.runtime = value("--runtime-dir")?,
            Some("--etc") => opts.etc = value("--etc")?,
            Some("--cgroup-root") => {
                let v = value("--cgroup-root")?;
                opts.cgroups = match v.to_str() {
                    Some("none") => dynamod_svmgr::cgroup::CgroupSetting::Disabled,
                    Some("auto") => dynamod_svmgr::cgroup::CgroupSetting::Auto,
                    _ => dynamod_svmgr::cgroup::CgroupSetting::Base(v),
                };
            }
            Some("--control-group") => control_group = Some(value("--control-group")?),
            Some("-h" | "--help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {}", a.to_string_lossy())),
        }
    }
    if let Some(group) = control_group {
        opts.control_group = Some(resolve_group(&group, &opts.etc)?);
    }
    Ok(opts)
}

/// A group given by number, or by name from `<etc>/group`.
fn resolve_group(group: &std::path::Path, etc: &std::path::Path) -> Result<u32, String> {
    let text = group.to_string_lossy();
    if let Ok(gid) = text.parse::<u32>() {
        return Ok(gid);
    }
    let file = etc.join("group");
    let groups = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "--control-group {text}: cannot read {}: {e}",
            file.display()
        )
    })?;
    dynamod_svmgr::users::parse_group(&groups)
        .into_iter()
        .find(|g| g.name == text)
        .map(|g| g.gid)
        .ok_or_else(|| {
            format!(
                "--control-group {text}: no such group in {}",
                file.display()
            )
        })
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("dynamod-svmgr: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .without_time()
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DYNAMOD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let code = match Runtime::new(opts).and_then(Runtime::run) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            1
        }
    };
    std::process::exit(code);
}
