//! The seed corpora: what each fuzz target starts from.
//!
//! Seeds are small and meaningful rather than random: the repository's real service and
//! supervisor files, a few hand-written files that use every key, environment files for each
//! documented rule, frames made by encoding real messages with the protocol crate, and the
//! datagrams `sd_notify(3)` users send. `cargo run --example gen_seeds` writes them to
//! `fuzz/seeds/TARGET/`, where they are committed; run it again when the configuration files
//! or the message types change.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use dynamod_proto::{
    CgroupUsage, ErrorKind, ExitInfo, ExitStatus, Hello, InitMsg, LogMsg, LogQuery, LogRecord,
    LogReply, LogRequest, NodeKind, Request, Response, ServiceDetail, ServiceState, ServiceSummary,
    ShutdownKind, Stream, SvmgrMsg, SystemState, TreeNode, encode,
};
use serde::Serialize;

/// One seed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// The fuzz target (directory under `seeds/`).
    pub target: &'static str,
    /// The file name.
    pub name: String,
    /// The contents.
    pub bytes: Vec<u8>,
}

/// Every seed, built from the repository at `repo` (its `config/` and `docker/` directories).
pub fn all(repo: &Path) -> io::Result<Vec<Seed>> {
    let mut out = Vec::new();
    config_seeds(repo, &mut out)?;
    env_seeds(&mut out);
    proto_seeds(&mut out);
    notify_seeds(&mut out);
    Ok(out)
}

/// Writes `seeds` under `dir`, replacing whatever the target directories held.
pub fn write(dir: &Path, seeds: &[Seed]) -> io::Result<()> {
    let mut targets: Vec<_> = seeds.iter().map(|s| s.target).collect();
    targets.dedup();
    for target in targets {
        let sub = dir.join(target);
        if sub.exists() {
            fs::remove_dir_all(&sub)?;
        }
        fs::create_dir_all(&sub)?;
    }
    for s in seeds {
        fs::write(dir.join(s.target).join(&s.name), &s.bytes)?;
    }
    Ok(())
}

/// `dir/*.toml`, sorted.
fn toml_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    Ok(files)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A service file with every key set.
const EVERY_SERVICE_KEY: &str = r#"[service]
name = "web"
supervisor = "desktop"
exec = ["nginx", "-g", "daemon off;"]
workdir = "/var/www"
type = "notify"
environment = { LANG = "C.UTF-8", "WITH SPACE" = "ok" }
environment-file = "/etc/default/web"
pidfile = "/run/web.pid"
tty = "/dev/tty2"
main = true

[service.user]
user = "www-data"
group = 33
supplementary-groups = ["audio", 29]

[restart]
policy = "transient"
delay = "250ms"
max-delay = "1m30s"
max-restarts = 3
max-restart-window = 60
reset-after = "5m"
success-exit-codes = [143, 0]

[readiness]
type = "tcp-port"
port = 8080
host = "::1"
timeout = "10s"

[dependencies]
requires = ["network"]
wants = ["syslog"]
after = ["bootmisc"]
before = ["agetty-tty1"]

[cgroup]
memory-max = "512M"
memory-high = 1073741824
cpu-weight = 100
cpu-max = "50%"
pids-max = "max"
io-weight = 10000

[namespace]
enable = ["pid", "net", "uts", "ipc", "cgroup"]
bind-mounts = [{ source = "/srv", target = "/srv", writable = true }]
private-tmp = true
protect-system = "strict"

[shutdown]
stop-signal = "SIGQUIT"
stop-timeout = "30s"
stop-exec = ["/usr/sbin/nginx", "-s", "quit"]

[log]
max-size = "10M"
max-files = 5
"#;

/// A service with the other readiness kinds, written with dotted keys and inline tables.
const DOTTED_SERVICE: &str = r#"service.name = "probe"
service.exec = ["/bin/probe"]
service.type = "forking"
service.pidfile = "/run/probe.pid"
service.user = { user = 0 }
readiness = { type = "exec", check-exec = ["/bin/true"], interval = 2 }
shutdown.stop-signal = 10
cgroup.cpu-max = "25000 100000"
namespace.enable = ["user", "mnt"]
"#;

/// A service file with many mistakes at once (the fuzzer starts from an error path too).
const BROKEN_SERVICE: &str = r#"[service]
name = "Web/.."
exec = []
type = "daemon"
enviroment = {}
[restart]
delay = "1.5s"
max-delay = "0s"
success-exit-codes = [256, "x"]
[readiness]
type = "tcp-port"
[dependencies]
requires = ["a", "a", "B"]
[cgroup]
memory-max = "12Q"
[shutdown]
stop-signal = "SIGFOO"
"#;

/// A supervisor file with every key set.
const EVERY_SUPERVISOR_KEY: &str = r#"[supervisor]
name = "desk"
parent = "early-boot"
strategy = "rest-for-one"

[restart]
max-restarts = 4
max-restart-window = "2m"
"#;

/// Small multi-file configurations that reach each cross-file check.
const CROSS_FILE: &[(&str, &str)] = &[
    (
        "duplicate-names",
        "--- services/a.toml\n[service]\nname = \"a\"\nexec = [\"/bin/a\"]\n\
         --- services/b.toml\n[service]\nname = \"a\"\nexec = [\"/bin/b\"]\n",
    ),
    (
        "dependency-cycle",
        "--- services/a.toml\n[service]\nname = \"a\"\nexec = [\"a\"]\n[dependencies]\nrequires = [\"b\"]\n\
         --- services/b.toml\n[service]\nname = \"b\"\nexec = [\"b\"]\n[dependencies]\nafter = [\"c\"]\n\
         --- services/c.toml\n[service]\nname = \"c\"\nexec = [\"c\"]\n[dependencies]\nbefore = [\"b\"]\nwants = [\"a\"]\n",
    ),
    (
        "supervisor-tree",
        "--- supervisors/root.toml\n[supervisor]\nname = \"root\"\nstrategy = \"one-for-all\"\n\
         --- supervisors/x.toml\n[supervisor]\nname = \"x\"\nparent = \"y\"\n\
         --- supervisors/y.toml\n[supervisor]\nname = \"y\"\nparent = \"x\"\n\
         --- supervisors/z.toml\n[supervisor]\nname = \"z\"\nparent = \"nope\"\n\
         --- services/s.toml\n[service]\nname = \"s\"\nsupervisor = \"x\"\nexec = [\"s\"]\n\
         --- services/z.toml\n[service]\nname = \"z\"\nexec = [\"z\"]\n",
    ),
    (
        "two-mains-and-references",
        "--- services/m1.toml\n[service]\nname = \"m1\"\nexec = [\"m\"]\nmain = true\n\
         [dependencies]\nrequires = [\"bad\", \"missing\"]\n\
         --- services/m2.toml\n[service]\nname = \"m2\"\nexec = [\"m\"]\nmain = true\n\
         [dependencies]\nrequires = [\"root\"]\n\
         --- services/bad.toml\n[service]\nname = \"bad\"\n",
    ),
];

/// Service, supervisor and whole-directory seeds.
fn config_seeds(repo: &Path, out: &mut Vec<Seed>) -> io::Result<()> {
    let supervisors = toml_files(&repo.join("config/supervisors"))?;
    let mut whole = Vec::new();
    for origin in ["config", "docker"] {
        let services = toml_files(&repo.join(origin).join("services"))?;
        let mut dir = Vec::new();
        for p in &services {
            let bytes = fs::read(p)?;
            let name = format!("{origin}-{}", file_name(p));
            dir.extend_from_slice(format!("--- services/{}\n", file_name(p)).as_bytes());
            dir.extend_from_slice(&bytes);
            out.push(Seed {
                target: "config_service",
                name,
                bytes,
            });
        }
        for p in &supervisors {
            dir.extend_from_slice(format!("--- supervisors/{}\n", file_name(p)).as_bytes());
            dir.extend_from_slice(&fs::read(p)?);
        }
        whole.push((format!("{origin}-tree"), dir));
    }
    for p in &supervisors {
        let name = format!("config-{}", file_name(p));
        out.push(Seed {
            target: "config_supervisor",
            name,
            bytes: fs::read(p)?,
        });
    }

    let crlf_bom = format!("\u{FEFF}{}", EVERY_SERVICE_KEY.replace('\n', "\r\n"));
    for (name, text) in [
        ("every-key.toml", EVERY_SERVICE_KEY.to_owned()),
        ("every-key-crlf-bom.toml", crlf_bom),
        ("dotted-and-inline.toml", DOTTED_SERVICE.to_owned()),
        ("many-errors.toml", BROKEN_SERVICE.to_owned()),
    ] {
        out.push(Seed {
            target: "config_service",
            name: name.to_owned(),
            bytes: text.into_bytes(),
        });
    }
    out.push(Seed {
        target: "config_supervisor",
        name: "every-key.toml".to_owned(),
        bytes: EVERY_SUPERVISOR_KEY.as_bytes().to_vec(),
    });

    for (name, bytes) in whole {
        out.push(Seed {
            target: "config_load",
            name,
            bytes,
        });
    }
    for (name, text) in CROSS_FILE {
        out.push(Seed {
            target: "config_load",
            name: (*name).to_owned(),
            bytes: text.as_bytes().to_vec(),
        });
    }
    Ok(())
}

/// Environment files, one per documented rule plus a realistic one.
fn env_seeds(out: &mut Vec<Seed>) {
    let files: &[(&str, &str)] = &[
        (
            "realistic",
            "# /etc/default/web\nexport LANG=C.UTF-8\nPATH=/usr/local/bin:/usr/bin:/bin\n\n\
             GREETING='hello, $USER'\nMOTD=\"line one\\nline two\\t(tab) \\\"quoted\\\"\"\n",
        ),
        (
            "comments",
            "  # indented\nA=b #comment\nB=b#kept\nC= #only\n",
        ),
        (
            "quotes-multiline",
            "A=\"two\nlines\"\nB='also\ntwo'\nC=\"joined \\\nline\"\n",
        ),
        ("crlf-bom", "\u{FEFF}A=1\r\nB=\"x\r\ny\"\r\n"),
        ("no-expansion", "A=$HOME\nB=\"$(id)\"\nC=`id`\n"),
        ("unterminated", "A='open\n"),
        ("trailing-text", "A=\"x\" y\n"),
        ("bad-names", "1A=1\nexport =2\nA-B=3\n"),
    ];
    for (name, text) in files {
        out.push(Seed {
            target: "envfile",
            name: (*name).to_owned(),
            bytes: text.as_bytes().to_vec(),
        });
    }
}

/// A frame stream seed: the chunk-size byte, then the frames.
fn stream<T: Serialize>(chunk: u8, msgs: &[T]) -> Vec<u8> {
    let mut out = vec![chunk];
    for m in msgs {
        // The messages here are small and always encode.
        out.extend(encode(m).unwrap_or_default());
    }
    out
}

/// Frames of every message type, each variant at least once.
fn proto_seeds(out: &mut Vec<Seed>) {
    let names = vec!["syslog".to_owned(), "network".to_owned()];
    let requests = [
        Request::Hello(Hello::new("dynamodctl")),
        Request::List,
        Request::Tree,
        Request::Status {
            names: names.clone(),
        },
        Request::Start {
            names: names.clone(),
            no_block: false,
        },
        Request::Stop {
            names: names.clone(),
            no_block: true,
        },
        Request::Restart {
            names,
            no_block: false,
        },
        Request::Reload,
        Request::Shutdown {
            kind: ShutdownKind::Reboot,
        },
        Request::SystemState,
    ];
    let summary = ServiceSummary {
        name: "syslog".into(),
        state: ServiceState::Running,
        pid: Some(42),
        supervisor: "root".into(),
        kind: "simple".into(),
        reason: None,
    };
    let detail = ServiceDetail {
        summary: summary.clone(),
        file: Some("/etc/dynamod/services/syslog.toml".into()),
        exec: vec!["/sbin/syslogd".into(), "-n".into()],
        restart_policy: "permanent".into(),
        readiness: "none".into(),
        since_ms: Some(1500),
        since_unix_ms: Some(1_760_000_000_000),
        restarts: 2,
        next_restart_ms: None,
        last_exit: Some(ExitInfo {
            status: ExitStatus::Signaled(9),
            at_unix_ms: 1_759_999_999_000,
        }),
        cgroup: Some("/sys/fs/cgroup/dynamod/root/syslog".into()),
        usage: Some(CgroupUsage {
            memory_current: Some(1 << 20),
            tasks: Some(1),
            ..Default::default()
        }),
        recent_logs: vec!["syslogd started".into()],
        log_dropped: 0,
        requires: vec![],
        wants: vec![],
        after: vec!["bootmisc".into()],
        spawned_ms: Some(120),
        ready_ms: Some(135),
    };
    let blocked = ServiceSummary {
        name: "web".into(),
        state: ServiceState::Blocked,
        pid: None,
        supervisor: "desktop".into(),
        kind: "notify".into(),
        reason: Some("requires `db`, which failed".into()),
    };
    let responses = [
        Response::Hello(Hello::new("dynamod-svmgr")),
        Response::Done {
            message: "started syslog".into(),
        },
        Response::List(vec![summary, blocked]),
        Response::Status(vec![detail]),
        Response::Tree(TreeNode {
            name: "root".into(),
            node: NodeKind::Supervisor {
                strategy: "one-for-one".into(),
                state: "running".into(),
            },
            children: vec![TreeNode {
                name: "early-boot".into(),
                node: NodeKind::Supervisor {
                    strategy: "one-for-all".into(),
                    state: "running".into(),
                },
                children: vec![TreeNode {
                    name: "network".into(),
                    node: NodeKind::Service {
                        state: ServiceState::Done,
                        pid: None,
                    },
                    children: vec![],
                }],
            }],
        }),
        Response::SystemState(SystemState {
            state: "degraded".into(),
            startup_complete: true,
            counts: vec![(ServiceState::Running, 5), (ServiceState::Failed, 1)],
            uptime_ms: 60_000,
        }),
        Response::Error {
            kind: ErrorKind::PermissionDenied,
            message: "only root may stop services".into(),
        },
    ];
    let init = [
        InitMsg::Hello(Hello::new("dynamod-init")),
        InitMsg::Heartbeat,
        InitMsg::HeartbeatAck,
        InitMsg::Shutdown {
            kind: ShutdownKind::Poweroff,
        },
        InitMsg::Reload,
        InitMsg::OrphanExited {
            pid: 317,
            status: ExitStatus::Exited(127),
        },
    ];
    let svmgr = [
        SvmgrMsg::Hello(Hello::new("dynamod-svmgr")),
        SvmgrMsg::Heartbeat,
        SvmgrMsg::HeartbeatAck,
        SvmgrMsg::RequestShutdown {
            kind: ShutdownKind::Halt,
            exit_code: Some(143),
        },
        SvmgrMsg::ShutdownComplete,
    ];
    let record = |seq, stream, line: &[u8], partial| LogRecord {
        seq,
        service: "syslog".into(),
        pid: 42,
        stream,
        time_us: 1_760_000_000_000_000,
        line: line.to_vec(),
        partial,
    };
    let log = [
        LogMsg::Hello(Hello::new("dynamod-logd")),
        LogMsg::Records(vec![
            record(1, Stream::Out, b"hello", false),
            record(2, Stream::Err, b"bin\xff\0\r", true),
        ]),
        LogMsg::Ack { seq: 2 },
    ];

    let log_requests = [
        LogRequest::Hello(Hello::new("dynamodctl")),
        LogRequest::Query(LogQuery {
            services: vec!["syslog".into()],
            lines: Some(20),
            since_us: Some(1_760_000_000_000_000),
            follow: true,
        }),
    ];
    let log_replies = [
        LogReply::Hello(Hello::new("dynamod-logd")),
        LogReply::Records(vec![record(3, Stream::Out, b"\x1b[1mbold\x1b[0m", false)]),
        LogReply::End,
        LogReply::Error {
            kind: ErrorKind::UnknownService,
            message: "no service `x`".into(),
        },
    ];

    let mut push = |name: String, bytes| {
        out.push(Seed {
            target: "proto_frames",
            name,
            bytes,
        })
    };
    // Whole conversations, delivered in one piece and byte by byte.
    push("control-requests".into(), stream(255, &requests));
    push("control-responses".into(), stream(255, &responses));
    push("init-to-svmgr".into(), stream(255, &init));
    push("svmgr-to-init".into(), stream(0, &svmgr));
    push("svmgr-logd".into(), stream(6, &log));
    push("log-query".into(), stream(255, &log_requests));
    push("log-replies".into(), stream(3, &log_replies));
    // One frame per message, so each variant is also a small input of its own.
    for (i, m) in requests.iter().enumerate() {
        push(format!("request-{i}"), stream(255, &[m]));
    }
    for (i, m) in responses.iter().enumerate() {
        push(format!("response-{i}"), stream(255, &[m]));
    }
    // Trees nested as deep as the decoder allows, and deeper.
    push("tree-60-levels".into(), nested_tree_frame(60));
    push("tree-200-levels".into(), nested_tree_frame(200));
    // A header announcing more than the limit, and bad magic after a good frame.
    let mut big = vec![255, b'D', b'M'];
    big.extend_from_slice(&(dynamod_proto::MAX_FRAME as u32 + 1).to_be_bytes());
    push("too-large".into(), big);
    let mut bad = stream(255, &[Request::List]);
    bad.extend_from_slice(b"XM\0\0\0\0");
    push("bad-magic".into(), bad);
}

/// A frame stream seed holding a `Response::Tree` of `levels` nested nodes, built from bytes
/// (encoding it would recurse as deeply as decoding it).
fn nested_tree_frame(levels: usize) -> Vec<u8> {
    // The payload of a message (these small ones always encode).
    let bare = |frame: Result<Vec<u8>, _>| {
        let frame: Vec<u8> = frame.unwrap_or_default();
        frame
            .get(dynamod_proto::HEADER_LEN..)
            .unwrap_or_default()
            .to_vec()
    };
    let leaf = TreeNode {
        name: "x".into(),
        node: NodeKind::Service {
            state: ServiceState::Running,
            pid: None,
        },
        children: vec![],
    };
    let parent = TreeNode {
        children: vec![leaf.clone()],
        ..leaf.clone()
    };
    let leaf_bytes = bare(encode(&leaf));
    // `children` is the last field: a parent is a prefix followed by its child.
    let parent_bytes = bare(encode(&parent));
    let level = &parent_bytes[..parent_bytes.len() - leaf_bytes.len()];
    let response = bare(encode(&Response::Tree(leaf)));
    let mut payload = response[..response.len() - leaf_bytes.len()].to_vec();
    for _ in 0..levels {
        payload.extend_from_slice(level);
    }
    payload.extend_from_slice(&leaf_bytes);
    let mut out = vec![255, b'D', b'M'];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Datagrams as services send them with `sd_notify(3)`.
fn notify_seeds(out: &mut Vec<Seed>) {
    let datagrams: &[(&str, &[u8])] = &[
        ("ready", b"READY=1"),
        ("ready-status", b"READY=1\nSTATUS=serving 3 clients\n"),
        ("mainpid", b"MAINPID=4242\n"),
        ("reloading", b"RELOADING=1\nMONOTONIC_USEC=123456789\n"),
        ("stopping", b"STOPPING=1\nSTATUS=shutting down\n"),
        ("errno", b"STATUS=cannot bind\nERRNO=98\n"),
        ("watchdog", b"WATCHDOG=1"),
        ("fdstore", b"FDSTORE=1\nFDNAME=listen\n"),
        ("malformed", b"READY"),
    ];
    for (name, bytes) in datagrams {
        out.push(Seed {
            target: "notify",
            name: (*name).to_owned(),
            bytes: bytes.to_vec(),
        });
    }
}
