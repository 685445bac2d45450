//! What `/proc` says about the processes of a benchmark's PID namespace: which they are, the
//! CPU time they used (`schedstat`, nanoseconds) and their memory (`smaps_rollup`, `status`).

use std::fs;
use std::path::Path;

/// Kernel stack of one thread on x86_64 (`THREAD_SIZE`, 16 KiB).
pub const KERNEL_STACK_KIB: u64 = 16;

/// The PID namespace of a host process, as `/proc/PID/ns/pid` names it (`pid:[INODE]`).
pub fn pid_ns(pid: i32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Host PIDs of every process in the PID namespace `ns`.
pub fn in_namespace(ns: &str) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid_ns(pid).as_deref() == Some(ns))
        .collect();
    pids.sort_unstable();
    pids
}

/// The executable of a process (empty when it is gone or a kernel thread).
pub fn exe(pid: i32) -> String {
    fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The command line of a process, arguments joined by spaces.
pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The working directory of a process.
pub fn cwd(pid: i32) -> String {
    fs::read_link(format!("/proc/{pid}/cwd"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether `pid` runs the benchmark's service program `ready`.
pub fn is_service(pid: i32, ready: &Path) -> bool {
    Path::new(&exe(pid)) == ready
}

/// CPU time used by every thread of a process so far, in nanoseconds (the first field of each
/// `/proc/PID/task/TID/schedstat`: time spent on the CPU).
pub fn cpu_ns(pid: i32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| {
            let path = t.ok()?.path().join("schedstat");
            fs::read_to_string(path)
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Memory of one process, in KiB.
#[derive(Debug, Default, Clone, Copy)]
pub struct Mem {
    /// Proportional set size (shared pages divided among their users).
    pub pss: u64,
    /// Resident set size.
    pub rss: u64,
    /// Page tables (`VmPTE`).
    pub pte: u64,
    /// Kernel stacks: threads × 16 KiB.
    pub kstack: u64,
    /// Processes counted.
    pub procs: u64,
}

impl Mem {
    /// Adds another process's figures.
    pub fn add(&mut self, other: Mem) {
        self.pss += other.pss;
        self.rss += other.rss;
        self.pte += other.pte;
        self.kstack += other.kstack;
        self.procs += other.procs;
    }
}

fn field_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The memory of one process; zeros when it is gone.
pub fn mem(pid: i32) -> Mem {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = field_kib(&status, "Threads:").unwrap_or(1);
    Mem {
        pss: field_kib(&rollup, "Pss:").unwrap_or(0),
        rss: field_kib(&rollup, "Rss:").unwrap_or(0),
        pte: field_kib(&status, "VmPTE:").unwrap_or(0),
        kstack: threads * KERNEL_STACK_KIB,
        procs: 1,
    }
}

/// The host PID of the process whose PID inside its namespace `ns` is `inner`.
pub fn host_pid(ns: &str, inner: i32) -> Option<i32> {
    in_namespace(ns).into_iter().find(|&pid| {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .and_then(|l| l.split_whitespace().last()?.parse::<i32>().ok())
            })
            == Some(inner)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_fields_are_read_by_key() {
        let text = "Rss:                1234 kB\nPss:                 567 kB\nThreads:\t3\n";
        assert_eq!(field_kib(text, "Rss:"), Some(1234));
        assert_eq!(field_kib(text, "Pss:"), Some(567));
        assert_eq!(field_kib(text, "Threads:"), Some(3));
        assert_eq!(field_kib(text, "VmPTE:"), None);
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let me = std::process::id() as i32;
        let m = mem(me);
        assert!(m.rss > 0 && m.kstack >= KERNEL_STACK_KIB);
        assert!(pid_ns(me).is_some_and(|ns| ns.starts_with("pid:[")));
    }
}
