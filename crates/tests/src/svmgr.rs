//! Running dynamod-svmgr as a plain process against a temporary configuration, and talking to
//! it over its control socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamod_proto::{FrameDecoder, Hello, Request, Response, ServiceDetail, ServiceState};

use crate::{TempDir, bin, wait_for};

/// A svmgr process with its own config and runtime directories; killed on drop.
pub struct Svmgr {
    /// Holds `services/`, `supervisors/`, `run/`.
    pub dir: TempDir,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Svmgr {
    /// Writes `files` (relative path, content) under the temp dir and starts svmgr without
    /// cgroups (parallel tests must not share a cgroup tree).
    pub fn start(tag: &str, files: &[(&str, &str)]) -> Self {
        Self::start_args(tag, files, &["--cgroup-root", "none"])
    }

    /// Like [`Svmgr::start`] with extra svmgr arguments (which replace the default
    /// `--cgroup-root none`).
    pub fn start_args(tag: &str, files: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = TempDir::new(tag);
        for sub in ["services", "supervisors", "run"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        for (path, content) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, content).expect("write config");
        }
        let mut s = Svmgr {
            dir,
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
        };
        s.spawn(args);
        let sock = s.socket();
        wait_for("the control socket", Duration::from_secs(30), || {
            UnixStream::connect(&sock).is_ok().then_some(())
        });
        s
    }

    fn spawn(&mut self, args: &[&str]) {
        let d = self.dir.path();
        let mut child = Command::new(bin("dynamod-svmgr"))
            .args(args)
            .arg("--services")
            .arg(d.join("services"))
            .arg("--supervisors")
            .arg(d.join("supervisors"))
            .arg("--runtime-dir")
            .arg(d.join("run"))
            .env("NO_COLOR", "1")
            .env_remove("DYNAMOD_INIT_FD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dynamod-svmgr");
        for stream in [
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        ] {
            let log = Arc::clone(&self.log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("DYNAMOD_TEST_VERBOSE").is_some() {
                        eprintln!("svmgr| {line}");
                    }
                    log.lock().expect("log lock").push(line);
                }
            });
        }
        self.child = Some(child);
    }

    /// The control socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/control.sock")
    }

    /// svmgr's PID.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Everything svmgr printed so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits until a printed line contains `needle`; returns that line.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        wait_for(&format!("log line containing {needle:?}"), timeout, || {
            self.log().into_iter().find(|l| l.contains(needle))
        })
    }

    /// Number of printed lines containing `needle`.
    pub fn count_log(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }

    /// One request/response exchange on a fresh connection.
    pub fn request(&self, req: &Request) -> Response {
        request(&self.socket(), req).expect("control request")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY-free: kill(2) on our own child's pid.
        unsafe_kill(child.id() as i32, libc::SIGTERM);
        child.wait().expect("wait svmgr")
    }

    /// Waits for svmgr to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_for("svmgr to exit", timeout, || child.try_wait().ok().flatten())
    }

    /// Path under the temp dir.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for Svmgr {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill(c.id() as i32, libc::SIGTERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `kill(pid, sig)`, ignoring errors.
pub fn unsafe_kill(pid: i32, sig: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::try_from(sig).ok(),
    );
}

/// Connects, says hello, sends `req` and returns the answer.
pub fn request(socket: &Path, req: &Request) -> std::io::Result<Response> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut out =
        dynamod_proto::encode(&Request::Hello(Hello::new("dynamod-tests"))).expect("encode");
    dynamod_proto::encode_into(req, &mut out).expect("encode");
    s.write_all(&out)?;
    let mut dec = FrameDecoder::new();
    let mut buf = [0u8; 65536];
    let mut got_hello = false;
    loop {
        while let Some(resp) = dec.next::<Response>().map_err(std::io::Error::other)? {
            match resp {
                Response::Hello(_) if !got_hello => got_hello = true,
                other => return Ok(other),
            }
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "svmgr closed",
            ));
        }
        dec.push(&buf[..n]);
    }
}

/// PIDs of live processes whose command line contains `needle` (excluding zombies).
pub fn pids_matching(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rfind(')')
            .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
        if cmd.contains(needle) && !zombie {
            out.push(pid);
        }
    }
    out
}

/// Zombie children of `parent`.
pub fn zombies_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let Some(i) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[i + 1..].split_whitespace().collect();
        if f.first() == Some(&"Z") && f.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(parent) {
            out.push(pid);
        }
    }
    out
}

// ---- helpers shared by the svmgr-based test files ----

/// A service file at `services/<name>.toml` with `body` after the `[service]` name.
pub fn service(name: &str, body: &str) -> (String, String) {
    (
        format!("services/{name}.toml"),
        format!("[service]\nname = \"{name}\"\n{body}\n"),
    )
}

/// [`Svmgr::start`] with owned (path, content) pairs.
pub fn start(tag: &str, files: &[(String, String)]) -> Svmgr {
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Svmgr::start(tag, &refs)
}

/// `status NAME` of one service.
pub fn status(s: &Svmgr, name: &str) -> ServiceDetail {
    match s.request(&Request::Status {
        names: vec![name.into()],
    }) {
        Response::Status(mut v) => v.remove(0),
        other => panic!("unexpected {other:?}"),
    }
}

/// Waits (30 s at most) until `name` is in state `want`; returns its status.
pub fn wait_state(s: &Svmgr, name: &str, want: ServiceState) -> ServiceDetail {
    wait_for(
        &format!("{name} to be {want:?}"),
        Duration::from_secs(30),
        || {
            let d = status(s, name);
            (d.summary.state == want).then_some(d)
        },
    )
}
