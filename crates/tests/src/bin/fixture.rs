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
