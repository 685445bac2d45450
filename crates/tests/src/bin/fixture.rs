//! A small program the integration tests run as a service, to exercise readiness protocols,
//! daemonizing and credentials without depending on host tools.
//!
//! ```text
//! fixture notify MSG [DELAY_MS]     send MSG to $NOTIFY_SOCKET after DELAY_MS, then sleep
//! fixture ready-fd [DELAY_MS]       write "\n" to $DYNAMOD_READY_FD after DELAY_MS, then sleep
//! fixture listen ADDR [DELAY_MS]    listen on ADDR (e.g. 127.0.0.1:4000, [::1]:4000), then sleep
//! fixture daemonize PIDFILE         double fork + setsid, write the daemon's pid, parent exits 0
//! fixture ids                       print "uid gid groups" and sleep
//! fixture sleep                     sleep forever
//! fixture probe [WRITE_PATH…]       print what it sees from inside (one `key=value` per line:
//!                                   pid, uid/gid/groups, signal mask, open fds, cgroup,
//!                                   namespaces, interfaces, environment) and try writing each
//!                                   WRITE_PATH (`write:PATH=ok|EROFS…`), then sleep
//! ```

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::Write;
use std::time::Duration;

fn delay(arg: Option<&String>) {
    if let Some(ms) = arg.and_then(|a| a.parse::<u64>().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("notify") => {
            delay(args.get(2));
            let path = std::env::var("NOTIFY_SOCKET").expect("NOTIFY_SOCKET");
            let sock = std::os::unix::net::UnixDatagram::unbound().unwrap();
            sock.send_to(args[1].replace("\\n", "\n").as_bytes(), path)
                .unwrap();
            println!("sent {}", args[1]);
            sleep_forever();
        }
        Some("ready-fd") => {
            delay(args.get(1));
            let fd: i32 = std::env::var("DYNAMOD_READY_FD")
                .expect("DYNAMOD_READY_FD")
                .parse()
                .unwrap();
            nix::unistd::write(unsafe_borrow(fd), b"\n").unwrap();
            sleep_forever();
        }
        Some("listen") => {
            delay(args.get(2));
            let _l = std::net::TcpListener::bind(&args[1]).unwrap();
            println!("listening on {}", args[1]);
            sleep_forever();
        }
        Some("daemonize") => {
            use nix::unistd::{ForkResult, fork, setsid};
            // SAFETY-free in spirit: this is a single-threaded test fixture.
            match unsafe_fork(fork) {
                ForkResult::Parent { .. } => std::process::exit(0),
                ForkResult::Child => {
                    setsid().unwrap();
                    match unsafe_fork(fork) {
                        ForkResult::Parent { .. } => std::process::exit(0),
                        ForkResult::Child => {
                            std::fs::write(&args[1], format!("{}\n", std::process::id())).unwrap();
                            sleep_forever();
                        }
                    }
                }
            }
        }
        Some("ids") => {
            let groups: Vec<String> = nix::unistd::getgroups()
                .unwrap()
                .iter()
                .map(|g| g.as_raw().to_string())
                .collect();
            println!(
                "ids {} {} {}",
                nix::unistd::getuid(),
                nix::unistd::getgid(),
                groups.join(",")
            );
            std::io::stdout().flush().unwrap();
            sleep_forever();
        }
        Some("sleep") => sleep_forever(),
        Some("probe") => {
            probe(&args[1..]);
            sleep_forever();
        }
        _ => {
            eprintln!("usage: fixture notify|ready-fd|listen|daemonize|ids|sleep");
            std::process::exit(2);
        }
    }
}

fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    #[allow(unsafe_code)]
    // SAFETY: the fd was passed to us by svmgr and stays open for the life of the process.
    unsafe {
        std::os::fd::BorrowedFd::borrow_raw(fd)
    }
}

fn unsafe_fork(f: unsafe fn() -> nix::Result<nix::unistd::ForkResult>) -> nix::unistd::ForkResult {
    #[allow(unsafe_code)]
    // SAFETY: the fixture has a single thread when it forks.
    unsafe {
        f().unwrap()
    }
}

fn probe(writes: &[String]) {
    let mut out = String::new();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    out.push_str(&format!("pid={}\n", std::process::id()));
    out.push_str(&format!("uid={}\n", field("Uid:")));
    out.push_str(&format!("gid={}\n", field("Gid:")));
    out.push_str(&format!("groups={}\n", field("Groups:")));
    out.push_str(&format!("sigblk={}\n", field("SigBlk:")));
    out.push_str(&format!("sigign={}\n", field("SigIgn:")));
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let target = std::fs::read_link(e.path())
                        .map(|t| t.display().to_string())
                        .unwrap_or_default();
                    format!("{}:{}", e.file_name().to_string_lossy(), target)
                })
                .collect()
        })
        .unwrap_or_default();
    fds.sort();
    out.push_str(&format!("fds={}\n", fds.join(" ")));
    out.push_str(&format!(
        "cgroup={}\n",
        std::fs::read_to_string("/proc/self/cgroup")
            .unwrap_or_default()
            .trim()
            .replace('\n', ";")
    ));
    for ns in ["pid", "mnt", "net", "uts", "ipc", "user", "cgroup"] {
        let l = std::fs::read_link(format!("/proc/self/ns/{ns}"))
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        out.push_str(&format!("ns.{ns}={l}\n"));
    }
    let procs = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    out.push_str(&format!("proc_count={procs}\n"));
    // Interfaces of the process's own network namespace (sysfs may belong to another one).
    let mut ifaces: Vec<String> = Vec::new();
    let mut lo_up = false;
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            if !ifaces.contains(&a.interface_name) {
                ifaces.push(a.interface_name.clone());
            }
            if a.interface_name == "lo" && a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP) {
                lo_up = true;
            }
        }
    }
    ifaces.sort();
    out.push_str(&format!("ifaces={}\n", ifaces.join(",")));
    out.push_str(&format!("lo_up={lo_up}\n"));
    let mut env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    env.sort();
    out.push_str(&format!("env={}\n", env.join(",")));
    for w in writes {
        let r = std::fs::write(w, b"probe");
        let res = match r {
            Ok(()) => "ok".to_owned(),
            Err(e) => match e.raw_os_error() {
                Some(libc::EROFS) => "EROFS".to_owned(),
                Some(libc::EACCES) => "EACCES".to_owned(),
                Some(libc::ENOENT) => "ENOENT".to_owned(),
                _ => format!("{e}"),
            },
        };
        out.push_str(&format!("write:{w}={res}\n"));
    }
    out.push_str("probe-end\n");
    print!("{out}");
    std::io::stdout().flush().unwrap();
}
